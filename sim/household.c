/* household.c - household load/PV replay: strict CSV loader, zero-order hold, synthetic
 * transients from a seeded PRNG. */
#include "household.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { EV_LOAD, EV_PV_DIP } s_ev_kind_t;

typedef struct {
    s_ev_kind_t kind;
    double start_s; /* relative to the profile start */
    double dur_s;
    double power_w; /* EV_LOAD: added load while on; EV_PV_DIP: unused */
    double factor;  /* EV_PV_DIP: PV multiplied by this */
    double on_s;    /* duty cycle: on for on_s, off for off_s; off_s 0 = always on */
    double off_s;
} s_event_t;

struct household_t {
    double *t, *load, *pv;
    size_t n, cap;
    s_event_t ev[HOUSEHOLD_MAX_EVENTS];
    size_t nev;
};

static void s_msg(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_msg(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void household_destroy(household_t **p)
{
    if (!p || !*p)
        return;
    free((*p)->t);
    free((*p)->load);
    free((*p)->pv);
    free(*p);
    *p = NULL;
}

static int s_push(household_t *h, double t, double load, double pv)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 1024;
        double *nt = realloc(h->t, cap * sizeof *nt);
        if (!nt)
            return -1;
        h->t = nt;
        double *nl = realloc(h->load, cap * sizeof *nl);
        if (!nl)
            return -1;
        h->load = nl;
        double *np = realloc(h->pv, cap * sizeof *np);
        if (!np)
            return -1;
        h->pv = np;
        h->cap = cap;
    }
    h->t[h->n] = t;
    h->load[h->n] = load;
    h->pv[h->n] = pv;
    h->n++;
    return 0;
}

static char *s_trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* Splits a line into exactly three comma-separated fields. */
static int s_split3(char *line, char *f[3])
{
    int k = 0;
    char *p = line;
    f[k++] = p;
    for (; *p; p++) {
        if (*p == ',') {
            if (k == 3)
                return -1;
            *p = '\0';
            f[k++] = p + 1;
        }
    }
    if (k != 3)
        return -1;
    for (int i = 0; i < 3; i++)
        f[i] = s_trim(f[i]);
    return 0;
}

static int s_number(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

household_t *household_parse(const char *text, size_t len, const char *name, char *err,
                             size_t errlen)
{
    household_t *h = calloc(1, sizeof *h);
    char *buf = malloc(len + 1);
    if (!h || !buf) {
        s_msg(err, errlen, "%s: out of memory", name);
        goto fail;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (strlen(buf) != len) {
        s_msg(err, errlen, "%s: contains a NUL byte (expected a text CSV file)", name);
        goto fail;
    }

    bool header = false;
    size_t lineno = 0;
    char *p = buf;
    /* strtok would merge empty lines; count lines by hand. */
    while (p) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        lineno++;
        char *line = s_trim(p);
        p = nl ? nl + 1 : NULL;
        if (!*line || line[0] == '#')
            continue;
        if (!header) {
            char *f[3];
            if (s_split3(line, f) != 0 || strcmp(f[0], "t_s") != 0 || strcmp(f[1], "load_w") != 0 ||
                strcmp(f[2], "pv_w") != 0) {
                s_msg(err, errlen, "%s:%zu: header must be 't_s,load_w,pv_w'", name, lineno);
                goto fail;
            }
            header = true;
            continue;
        }
        char *f[3];
        if (s_split3(line, f) != 0) {
            s_msg(err, errlen, "%s:%zu: expected 3 comma-separated fields t_s,load_w,pv_w", name,
                  lineno);
            goto fail;
        }
        double v[3];
        static const char *const col[3] = {"t_s", "load_w", "pv_w"};
        for (int i = 0; i < 3; i++) {
            if (s_number(f[i], &v[i]) != 0) {
                s_msg(err, errlen, "%s:%zu: %s '%s' is not a finite number", name, lineno, col[i],
                      f[i]);
                goto fail;
            }
            if (v[i] < 0) {
                s_msg(err, errlen, "%s:%zu: %s %g is negative (allowed: >= 0)", name, lineno,
                      col[i], v[i]);
                goto fail;
            }
        }
        if (h->n > 0 && v[0] <= h->t[h->n - 1]) {
            s_msg(err, errlen,
                  "%s:%zu: t_s %g is not after the previous row's %g (t_s must increase)", name,
                  lineno, v[0], h->t[h->n - 1]);
            goto fail;
        }
        if (h->n >= HOUSEHOLD_MAX_ROWS) {
            s_msg(err, errlen, "%s:%zu: more than %d rows", name, lineno, HOUSEHOLD_MAX_ROWS);
            goto fail;
        }
        if (s_push(h, v[0], v[1], v[2]) != 0) {
            s_msg(err, errlen, "%s: out of memory", name);
            goto fail;
        }
    }
    if (!header) {
        s_msg(err, errlen, "%s: empty (expected the header 't_s,load_w,pv_w' and rows)", name);
        goto fail;
    }
    if (h->n == 0) {
        s_msg(err, errlen, "%s: no data rows after the header", name);
        goto fail;
    }
    free(buf);
    return h;
fail:
    free(buf);
    household_destroy(&h);
    return NULL;
}

household_t *household_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        s_msg(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    household_t *h = NULL;
    for (;;) {
        if (len + 65536 > cap) {
            if (cap > 256u * 1024 * 1024) {
                s_msg(err, errlen, "%s: larger than 256 MiB", path);
                goto cleanup;
            }
            cap = cap ? cap * 2 : 131072;
            char *nt = realloc(text, cap);
            if (!nt) {
                s_msg(err, errlen, "%s: out of memory", path);
                goto cleanup;
            }
            text = nt;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        s_msg(err, errlen, "%s: read error", path);
        goto cleanup;
    }
    h = household_parse(text ? text : "", len, path, err, errlen);
cleanup:
    free(text);
    fclose(f);
    return h;
}

size_t household_rows(const household_t *h)
{
    return h->n;
}

double household_start_s(const household_t *h)
{
    return h->t[0];
}

double household_span_s(const household_t *h)
{
    double step = h->n > 1 ? h->t[h->n - 1] - h->t[h->n - 2] : 60;
    return h->t[h->n - 1] + step - h->t[0];
}

/* Index of the row holding at absolute time t (binary search). */
static size_t s_row(const household_t *h, double t)
{
    if (t <= h->t[0])
        return 0;
    size_t lo = 0, hi = h->n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi + 1) / 2;
        if (h->t[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static bool s_event_on(const s_event_t *e, double rel)
{
    if (rel < e->start_s || rel >= e->start_s + e->dur_s)
        return false;
    if (e->off_s <= 0)
        return true;
    double phase = fmod(rel - e->start_s, e->on_s + e->off_s);
    return phase < e->on_s;
}

void household_at(const household_t *h, double t_s, double *load_w, double *pv_w)
{
    size_t i = s_row(h, t_s);
    double load = h->load[i], pv = h->pv[i];
    double rel = t_s - h->t[0];
    for (size_t k = 0; k < h->nev; k++) {
        const s_event_t *e = &h->ev[k];
        if (!s_event_on(e, rel))
            continue;
        if (e->kind == EV_LOAD)
            load += e->power_w;
        else if (pv > 200)
            pv *= e->factor;
    }
    if (load_w)
        *load_w = load;
    if (pv_w)
        *pv_w = pv;
}

double household_meter_w(double load_w, double pv_w, double battery_ac_w)
{
    return load_w - pv_w + battery_ac_w;
}

/* splitmix64: seeds well from any value, reproducible. */
static uint64_t s_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double s_uniform(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * ((s_next(s) >> 11) * (1.0 / 9007199254740992.0));
}

static void s_add(household_t *h, s_ev_kind_t kind, double start, double dur, double power,
                  double factor, double on_s, double off_s)
{
    if (h->nev >= HOUSEHOLD_MAX_EVENTS)
        return;
    s_event_t *e = &h->ev[h->nev++];
    e->kind = kind;
    e->start_s = start;
    e->dur_s = dur;
    e->power_w = power;
    e->factor = factor;
    e->on_s = on_s;
    e->off_s = off_s;
}

void household_clear_transients(household_t *h)
{
    h->nev = 0;
}

int household_add_transients(household_t *h, uint64_t seed)
{
    household_clear_transients(h);
    uint64_t s = seed;
    double span = household_span_s(h);
    double days = span / 86400.0;
    if (days < 1.0 / 24)
        days = 1.0 / 24;
    int kettles = (int)ceil(5 * days);
    for (int i = 0; i < kettles; i++)
        s_add(h, EV_LOAD, s_uniform(&s, 6 * 3600, 22 * 3600) * span / 86400, 180, 2000, 1, 0, 0);
    int ovens = (int)ceil(1 * days);
    for (int i = 0; i < ovens; i++)
        s_add(h, EV_LOAD, s_uniform(&s, 11 * 3600, 19 * 3600) * span / 86400, 2400, 2200, 1, 40,
              80);
    int micro = (int)ceil(3 * days);
    for (int i = 0; i < micro; i++)
        s_add(h, EV_LOAD, s_uniform(&s, 7 * 3600, 21 * 3600) * span / 86400, 240, 1200, 1, 20, 20);
    /* Cloud edges: only have an effect where PV is producing. */
    int clouds = (int)ceil(30 * days);
    for (int i = 0; i < clouds; i++)
        s_add(h, EV_PV_DIP, s_uniform(&s, 8 * 3600, 18 * 3600) * span / 86400,
              s_uniform(&s, 20, 240), 0, 0.3, 0, 0);
    return (int)h->nev;
}
