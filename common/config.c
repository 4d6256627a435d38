/*  config: the ini loader. inih splits the file into section/key/value; this file matches
    each key against the schema (config_schema.c), validates its value, records warnings
    for what it does not know, then runs the cross-field rules. Every problem found is
    reported with file and line; a file with any error gives no config at all.
*/
#include "config.h"
#include "config_schema.h"
#include "jget.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#define KEY_MAX 256 /* longer keys match nothing in the schema */

typedef struct {
    const config_key_t *schema;
    char *section; /* canonical */
    char *key;     /* canonical: schema spelling, numbers without leading zeros */
    char *value;   /* normalised text (quotes stripped, enum canonical) */
    long ival;
    double fval;
    int line;
    bool valid; /* false: the value failed validation (kept so cross checks stay quiet) */
} entry_t;

typedef struct {
    char **items;
    size_t count, cap;
} strlist_t;

struct config_t {
    char *path;
    entry_t *entries;
    size_t count, cap;
    strlist_t warnings;
};

typedef struct {
    config_t *cfg;
    FILE *file;
    char *buf;
    size_t bufsz;
    int lineno;
    size_t bytes; /* read so far: a file that grows while it is read stays bounded */
    bool read_error;
    bool too_big;
    strlist_t errors;
    strlist_t seen_sections; /* unknown/ignored sections already warned about */
} loader_t;

//  --------------------------------------------------------------------------
//  Small helpers

static int s_strlist_add(strlist_t *list, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int s_strlist_add(strlist_t *list, const char *fmt, ...)
{
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 8;
        char **items = realloc(list->items, cap * sizeof *items);
        if (!items)
            return -1;
        list->items = items;
        list->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    int rc = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (rc < 0)
        return -1;
    list->items[list->count++] = text;
    return 0;
}

static bool s_strlist_has(const strlist_t *list, const char *text)
{
    for (size_t i = 0; i < list->count; i++)
        if (strcasecmp(list->items[i], text) == 0)
            return true;
    return false;
}

static void s_strlist_free(strlist_t *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    memset(list, 0, sizeof *list);
}

//  Copy TEXT for a message: at most 80 characters, control characters as '?'.
static void s_printable(const char *text, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = text; *p && o + 4 < n; p++) {
        if (o >= 80) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        out[o++] = iscntrl((unsigned char)*p) ? '?' : *p;
    }
    out[o] = '\0';
}

static const char *s_canonical_section(const char *name)
{
    for (const char *const *s = config_sections; *s; s++)
        if (strcasecmp(*s, name) == 0)
            return *s;
    return NULL;
}

//  The range of the number standing for '#' at HASH in PATTERN, from the text before it.
//  A controller's sections ([CHARGE_CONTROL], [SURPLUS_SWITCH]) name the device it drives:
//  a BIC's address 0-63 or an NPB's device number 64-67 (64 + its address).
static void s_number_range(const char *section, const char *pattern, const char *hash, long *lo,
                           long *hi, const char **what, const char **note)
{
    size_t before = (size_t)(hash - pattern);
    *lo = 0;
    *hi = 63;
    *what = "device address";
    *note = "";
    if (before == 3 && section &&
        (strcmp(section, "CHARGE_CONTROL") == 0 || strcmp(section, "SURPLUS_SWITCH") == 0)) {
        *hi = CONFIG_MAX_IDS - 1;
        *what = "device number";
        *note = " (a BIC's address 0-63, an NPB's 64-67)";
    }
    /* another gateway: [GATEWAY] Gw/G/..., a device on it Id/Y@G/ */
    if ((before == 3 && strncasecmp(pattern, "Gw/", 3) == 0) || (before >= 1 && hash[-1] == '@')) {
        *lo = 1;
        *hi = CONFIG_MAX_GATEWAYS - 1;
        *what = "gateway number";
        *note = " (0 is [GATEWAY]'s own endpoints)";
    }
    if (before >= 5 && strncasecmp(hash - 5, "Hour/", 5) == 0) {
        *hi = 23;
        *what = "hour";
    } else if (before >= 6 && strncasecmp(hash - 6, "Cap2V/", 6) == 0) {
        *hi = 100;
        *what = "percentage";
    }
}

//  Match KEY against PATTERN (case-insensitive, '#' = a number). Returns 1 on a match
//  (CANON = the canonical spelling), 0 when the shape differs, -1 when the shape matches
//  but a number is out of its range (WHY says which).
static int s_match(const char *section, const char *pattern, const char *key, char *canon, size_t n,
                   char *why, size_t whyn)
{
    const char *p = pattern;
    const char *k = key;
    size_t o = 0;
    int status = 1;
    while (*p) {
        if (o + 12 >= n)
            return 0;
        if (*p == '#') {
            /* a negative number is out of range like one too large (Id/-1 as Id/64) */
            bool neg = *k == '-' && isdigit((unsigned char)k[1]);
            if (neg)
                k++;
            if (!isdigit((unsigned char)*k))
                return 0;
            long value = 0;
            int digits = 0;
            while (isdigit((unsigned char)*k)) {
                if (++digits <= 6)
                    value = value * 10 + (*k - '0');
                k++;
            }
            long lo, hi;
            const char *what, *note;
            s_number_range(section, pattern, p, &lo, &hi, &what, &note);
            if (neg || digits > 6 || value < lo || value > hi) {
                if (status == 1 && why)
                    snprintf(why, whyn, "%s %s%ld is out of range; allowed: %ld..%ld%s", what,
                             neg          ? "-"
                             : digits > 6 ? ">"
                                          : "",
                             value, lo, hi, note);
                status = -1;
            }
            o += (size_t)snprintf(canon + o, n - o, "%s%ld", neg ? "-" : "", value);
            p++;
            continue;
        }
        if (tolower((unsigned char)*p) != tolower((unsigned char)*k))
            return 0;
        canon[o++] = *p++;
        k++;
    }
    if (*k)
        return 0;
    canon[o] = '\0';
    return status;
}

//  The schema row for SECTION (canonical) and KEY; CANON gets the canonical key.
static const config_key_t *s_find_schema(const char *section, const char *key, char *canon,
                                         size_t n, int *status, char *why, size_t whyn)
{
    const config_key_t *out_of_range = NULL;
    for (size_t i = 0; i < config_schema_count; i++) {
        const config_key_t *row = &config_schema[i];
        if (strcmp(row->section, section) != 0)
            continue;
        int rc = s_match(section, row->key, key, canon, n, why, whyn);
        if (rc == 1) {
            *status = 1;
            return row;
        }
        if (rc == -1 && !out_of_range)
            out_of_range = row;
    }
    *status = out_of_range ? -1 : 0;
    return out_of_range;
}

//  --------------------------------------------------------------------------
//  Value validation

static bool s_has_control(const char *text)
{
    for (const char *p = text; *p; p++)
        if (iscntrl((unsigned char)*p))
            return true;
    return false;
}

static int s_parse_long(const char *text, long *out)
{
    const char *p = text;
    if (*p == '+' || *p == '-')
        p++;
    if (!isdigit((unsigned char)*p) || strspn(p, "0123456789") != strlen(p))
        return -1;
    errno = 0;
    //  Base 10 on purpose: the seed's sample writes MaxChargeCurrent=0200 for 2.00 A.
    long value = strtol(text, NULL, 10);
    if (errno == ERANGE)
        return -1;
    *out = value;
    return 0;
}

static int s_parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on", NULL};
    static const char *const no[] = {"0", "false", "no", "off", NULL};
    for (int i = 0; yes[i]; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static void s_fmt_num(double value, char *out, size_t n)
{
    snprintf(out, n, "%.10g", value);
}

static void s_range_text(const config_key_t *k, char *out, size_t n)
{
    if (k->allowed) {
        snprintf(out, n, "%s", k->allowed);
        return;
    }
    char lo[32], hi[32];
    s_fmt_num(k->min, lo, sizeof lo);
    s_fmt_num(k->max, hi, sizeof hi);
    char both[80]; /* two numbers of at most 31 characters and ".." */
    if (k->min == k->max)
        snprintf(both, sizeof both, "%s", lo);
    else
        snprintf(both, sizeof both, "%s..%s", lo, hi);
    if (n == 0)
        return;
    size_t len = strlen(both);
    if (len >= n)
        len = n - 1;
    memcpy(out, both, len);
    out[len] = '\0';
}

static bool s_empty_allowed(const config_key_t *k)
{
    return k->def && k->def[0] == '\0';
}

static int s_check_topic(const char *text)
{
    size_t len = strlen(text);
    if (len == 0)
        return 0;
    if (strpbrk(text, "+#") || text[0] == '/' || text[len - 1] == '/')
        return -1;
    return 0;
}

static int s_check_endpoint(const char *text)
{
    if (strncmp(text, "ipc://", 6) == 0)
        return text[6] ? 0 : -1;
    if (strncmp(text, "tcp://", 6) != 0)
        return -1;
    const char *host = text + 6;
    const char *colon = strrchr(host, ':');
    if (!colon || colon == host)
        return -1;
    const char *port = colon + 1;
    if (strcmp(port, "*") == 0)
        return 0;
    long value;
    if (s_parse_long(port, &value) != 0 || value < 1 || value > 65535 || port[0] == '+' ||
        port[0] == '-')
        return -1;
    for (const char *p = host; p < colon; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-_:[]*", *p))
            return -1;
    return 0;
}

static int s_check_host(const char *text)
{
    size_t len = strlen(text);
    if (len < 1 || len > 253)
        return -1;
    for (const char *p = text; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-_:[]", *p))
            return -1;
    return 0;
}

//  Validate TEXT for schema row K into E. Returns 0, or -1 with "is not ...; allowed: ..."
//  (the part of the message after the quoted value) in MSG.
static int s_validate(const config_key_t *k, const char *text, entry_t *e, char *msg, size_t n)
{
    char range[160];
    s_range_text(k, range, sizeof range);

    if (s_has_control(text)) {
        snprintf(msg, n, "contains control characters; allowed: printable text");
        return -1;
    }
    switch (k->type) {
    case CT_INT: {
        long value;
        if (s_parse_long(text, &value) != 0) {
            snprintf(msg, n, "is not an integer; allowed: %s", range);
            return -1;
        }
        if (value < (long)k->min || value > (long)k->max) {
            snprintf(msg, n, "is out of range; allowed: %s", range);
            return -1;
        }
        e->ival = value;
        e->fval = (double)value;
        e->value = strdup(text);
        break;
    }
    case CT_FLOAT: {
        double value;
        if (num_parse(text, &value) != 0) {
            snprintf(msg, n, "is not a number; allowed: %s", range);
            return -1;
        }
        if (value < k->min || value > k->max) {
            snprintf(msg, n, "is out of range; allowed: %s", range);
            return -1;
        }
        e->fval = value;
        e->ival = lround(value);
        e->value = strdup(text);
        break;
    }
    case CT_BOOL: {
        bool value;
        if (s_parse_bool(text, &value) != 0) {
            snprintf(msg, n, "is not a boolean; allowed: 0, 1 (or true/false, yes/no, on/off)");
            return -1;
        }
        e->ival = value;
        e->fval = value;
        e->value = strdup(value ? "1" : "0");
        break;
    }
    case CT_ENUM: {
        const char *canon = NULL;
        if (*text == '\0')
            canon = k->def ? k->def : "";
        for (const char *const *v = k->values; !canon && *v; v++)
            if (strcasecmp(*v, text) == 0)
                canon = *v;
        if (!canon) {
            char list[256] = "";
            size_t o = 0;
            for (const char *const *v = k->values; *v && o < sizeof list; v++)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "", *v);
            snprintf(msg, n, "is not a known value; allowed: %s%s", list,
                     s_empty_allowed(k) ? " or empty" : "");
            return -1;
        }
        e->value = strdup(canon);
        break;
    }
    case CT_STRING:
    case CT_PATH:
    case CT_TOPIC:
    case CT_ENDPOINT:
    case CT_HOST: {
        size_t len = strlen(text);
        if (len == 0 && k->type != CT_STRING && !s_empty_allowed(k)) {
            snprintf(msg, n, "is empty; a value is required");
            return -1;
        }
        if (k->type == CT_STRING && !k->check && (len < (size_t)k->min || len > (size_t)k->max)) {
            snprintf(msg, n, "has %zu characters; allowed: %s characters", len, range);
            return -1;
        }
        if (len > (size_t)k->max) {
            snprintf(msg, n, "is too long; allowed: at most %.0f characters", k->max);
            return -1;
        }
        if (len > 0 && k->type == CT_TOPIC && s_check_topic(text) != 0) {
            snprintf(msg, n,
                     "is not a valid MQTT topic; allowed: a topic name without '+' or "
                     "'#' and without a leading or trailing '/'");
            return -1;
        }
        if (len > 0 && k->type == CT_ENDPOINT && s_check_endpoint(text) != 0) {
            snprintf(msg, n, "is not a ZeroMQ endpoint; allowed: ipc://PATH or tcp://HOST:PORT");
            return -1;
        }
        if (len > 0 && k->type == CT_HOST && s_check_host(text) != 0) {
            snprintf(msg, n,
                     "is not a host name or address; allowed: 1..253 letters, digits "
                     "and . - _ : [ ]");
            return -1;
        }
        if (k->check) {
            char what[160] = "";
            if (k->check(text, what, sizeof what) != 0) {
                snprintf(msg, n, "is not valid; allowed: %s", what);
                return -1;
            }
        }
        e->value = strdup(text);
        break;
    }
    }
    return e->value ? 0 : -1;
}

//  --------------------------------------------------------------------------
//  Loading

static entry_t *s_entry_find(const config_t *self, const char *section, const char *key)
{
    for (size_t i = 0; i < self->count; i++)
        if (strcmp(self->entries[i].section, section) == 0 &&
            strcmp(self->entries[i].key, key) == 0)
            return &self->entries[i];
    return NULL;
}

static entry_t *s_entry_add(config_t *self)
{
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 32;
        entry_t *entries = realloc(self->entries, cap * sizeof *entries);
        if (!entries)
            return NULL;
        self->entries = entries;
        self->cap = cap;
    }
    entry_t *e = &self->entries[self->count++];
    memset(e, 0, sizeof *e);
    return e;
}

//  Where an unknown key may belong, for a helpful warning.
static void s_unknown_hint(const char *section, const char *key, char *hint, size_t n)
{
    hint[0] = '\0';
    //  The seed's sample ini has its switch keys under [CHARGE_CONTROL], where the seed
    //  never read them either, and SwitchDelaySec without its Id/X/ prefix.
    if (strcasecmp(section, "SURPLUS_SWITCH") != 0 && strcasestr(key, "switch")) {
        if (strcasecmp(key, "SwitchDelaySec") == 0)
            snprintf(hint, n,
                     " (a surplus-switch key: move it to [SURPLUS_SWITCH] as "
                     "Id/0/SwitchDelaySec)");
        else
            snprintf(hint, n, " (a surplus-switch key: move it to [SURPLUS_SWITCH])");
        return;
    }
    char canon[KEY_MAX];
    //  The seed's README lists device keys without their Id/X/ prefix.
    char prefixed[KEY_MAX];
    snprintf(prefixed, sizeof prefixed, "Id/0/%s", key);
    int status;
    if (s_find_schema(section, prefixed, canon, sizeof canon, &status, NULL, 0) && status == 1) {
        snprintf(hint, n, " (keys here carry a device address: Id/0/%s)", key);
        return;
    }
    for (size_t i = 0; i < config_schema_count; i++) {
        const config_key_t *row = &config_schema[i];
        if (strcmp(row->section, section) == 0)
            continue;
        if (s_match(row->section, row->key, key, canon, sizeof canon, NULL, 0) != 0) {
            snprintf(hint, n, " (it belongs in [%s])", row->section);
            return;
        }
    }
}

static int s_handler(void *user, const char *section, const char *name, const char *value)
{
    loader_t *ld = user;
    config_t *cfg = ld->cfg;
    const char *file = cfg->path;
    int line = ld->lineno;

    const char *sect = s_canonical_section(section);
    if (!sect) {
        if (!s_strlist_has(&ld->seen_sections, section)) {
            s_strlist_add(&ld->seen_sections, "%s", section);
            bool ignored = false;
            for (const char *const *s = config_ignored_sections; *s; s++)
                if (strcasecmp(*s, section) == 0)
                    ignored = true;
            if (*section == '\0')
                s_strlist_add(&cfg->warnings, "%s:%d: %s: key outside any [SECTION], ignored", file,
                              line, name);
            else if (ignored)
                s_strlist_add(&cfg->warnings,
                              "%s:%d: [%s]: section not used by bic2mqtt, its keys are ignored",
                              file, line, section);
            else
                s_strlist_add(&cfg->warnings, "%s:%d: [%s]: unknown section, its keys are ignored",
                              file, line, section);
        }
        return 1;
    }

    char canon[KEY_MAX];
    char why[160] = "";
    int status = 0;
    const config_key_t *k =
        s_find_schema(sect, name, canon, sizeof canon, &status, why, sizeof why);
    if (status == -1) {
        s_strlist_add(&ld->errors, "%s:%d: [%s] %s: %s", file, line, sect, name, why);
        return 1;
    }
    if (!k) {
        char hint[160];
        s_unknown_hint(sect, name, hint, sizeof hint);
        s_strlist_add(&cfg->warnings, "%s:%d: [%s] %s: unknown key, ignored%s", file, line, sect,
                      name, hint);
        return 1;
    }

    //  Surrounding double quotes and spaces are stripped, as the seed does.
    char text[1024];
    snprintf(text, sizeof text, "%s", value);
    size_t len = strlen(text);
    if (len >= 2 && text[0] == '"' && text[len - 1] == '"') {
        text[len - 1] = '\0';
        memmove(text, text + 1, len - 1);
        char *start = text;
        while (isspace((unsigned char)*start))
            start++;
        memmove(text, start, strlen(start) + 1);
        len = strlen(text);
        while (len > 0 && isspace((unsigned char)text[len - 1]))
            text[--len] = '\0';
    }

    entry_t *prev = s_entry_find(cfg, sect, canon);
    if (prev) {
        s_strlist_add(&ld->errors, "%s:%d: [%s] %s: set twice (also on line %d); allowed: once",
                      file, line, sect, name, prev->line);
        return 1;
    }

    entry_t *e = s_entry_add(cfg);
    if (!e) {
        s_strlist_add(&ld->errors, "%s:%d: out of memory", file, line);
        return 1;
    }
    e->schema = k;
    e->section = strdup(sect);
    e->key = strdup(canon);
    e->line = line;
    char msg[400];
    if (s_validate(k, text, e, msg, sizeof msg) != 0) {
        char shown[100];
        s_printable(text, shown, sizeof shown);
        s_strlist_add(&ld->errors, "%s:%d: [%s] %s: '%s' %s", file, line, sect, name, shown, msg);
        e->valid = false;
        if (!e->value)
            e->value = strdup("");
    } else {
        e->valid = true;
    }
    return 1;
}

//  inih's line reader, reading whole lines itself so it knows every line number, reports
//  lines inih would silently cut or reject, and never lets an indented line continue the
//  previous value (a seed file has no multi-line values; a stray indent must not glue two
//  keys together).
static char *s_reader(char *str, int num, void *stream)
{
    loader_t *ld = stream;
    const char *file = ld->cfg->path;
    errno = 0;
    ssize_t len = getline(&ld->buf, &ld->bufsz, ld->file);
    if (len < 0) {
        if (ferror(ld->file))
            ld->read_error = true;
        return NULL;
    }
    ld->bytes += (size_t)len;
    if (ld->bytes > CONFIG_MAX_BYTES) {
        ld->too_big = true;
        return NULL;
    }
    ld->lineno++;
    char *line = ld->buf;
    if ((size_t)len != strlen(line)) {
        s_strlist_add(&ld->errors, "%s:%d: contains a NUL byte; allowed: text lines", file,
                      ld->lineno);
        str[0] = '\0';
        return str;
    }
    if (ld->lineno == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
        line += 3;
    while (*line && isspace((unsigned char)*line))
        line++;
    size_t n = strlen(line);
    while (n > 0 && isspace((unsigned char)line[n - 1]))
        line[--n] = '\0';

    //  Comments may be as long as they like: inih never sees them.
    if (n > 0 && strchr(";#", line[0])) {
        str[0] = '\0';
        return str;
    }
    if (n + 2 >= (size_t)num) {
        s_strlist_add(&ld->errors, "%s:%d: line is %zu characters long; allowed: at most %d", file,
                      ld->lineno, n, num - 3);
        str[0] = '\0';
        return str;
    }
    if (n > 0) {
        if (line[0] == '[') {
            if (!strchr(line, ']')) {
                s_strlist_add(&ld->errors, "%s:%d: '%s' is not a section header; allowed: [NAME]",
                              file, ld->lineno, line);
                str[0] = '\0';
                return str;
            }
        } else if (!strpbrk(line, "=:") || strcspn(line, "=:") == 0) {
            char shown[100];
            s_printable(line, shown, sizeof shown);
            s_strlist_add(&ld->errors,
                          "%s:%d: '%s' is not a setting; allowed: KEY=VALUE, [SECTION], or a "
                          "comment starting with ; or #",
                          file, ld->lineno, shown);
            str[0] = '\0';
            return str;
        }
    }
    memcpy(str, line, n);
    str[n] = '\n';
    str[n + 1] = '\0';
    return str;
}

//  --------------------------------------------------------------------------
//  Cross-field rules

static const entry_t *s_get(const config_t *cfg, const char *section, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static const entry_t *s_get(const config_t *cfg, const char *section, const char *fmt, ...)
{
    char key[KEY_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(key, sizeof key, fmt, ap);
    va_end(ap);
    return s_entry_find(cfg, section, key);
}

static int s_first_line(const config_t *cfg, const char *section, int id)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "Id/%d/", id);
    int line = 0;
    for (size_t i = 0; i < cfg->count; i++) {
        const entry_t *e = &cfg->entries[i];
        if (strcmp(e->section, section) == 0 && strncmp(e->key, prefix, strlen(prefix)) == 0)
            if (line == 0 || e->line < line)
                line = e->line;
    }
    return line;
}

static void s_check_device(loader_t *ld, int id)
{
    config_t *cfg = ld->cfg;
    static const char *const required[] = {"ChargeVoltage", "DischargeVoltage", "MaxChargeCurrent",
                                           "MaxDischargeCurrent", NULL};
    int first = s_first_line(cfg, "DEVICE", id);
    for (int i = 0; required[i]; i++) {
        if (!s_get(cfg, "DEVICE", "Id/%d/%s", id, required[i])) {
            char key[KEY_MAX], canon[KEY_MAX], range[64] = "";
            int status;
            snprintf(key, sizeof key, "Id/%d/%s", id, required[i]);
            const config_key_t *k =
                s_find_schema("DEVICE", key, canon, sizeof canon, &status, NULL, 0);
            if (k)
                s_range_text(k, range, sizeof range);
            s_strlist_add(&ld->errors,
                          "%s:%d: [DEVICE] Id/%d/%s: missing; required for device %d (its "
                          "Id/%d/ keys start on this line); allowed: %s",
                          cfg->path, first, id, required[i], id, id, range);
        }
    }
    const entry_t *cv = s_get(cfg, "DEVICE", "Id/%d/ChargeVoltage", id);
    const entry_t *dv = s_get(cfg, "DEVICE", "Id/%d/DischargeVoltage", id);
    if (cv && dv && cv->valid && dv->valid && dv->ival >= cv->ival)
        s_strlist_add(&ld->errors,
                      "%s:%d: [DEVICE] Id/%d/DischargeVoltage: '%ld' is not below "
                      "Id/%d/ChargeVoltage (%ld, line %d); allowed: less than ChargeVoltage",
                      cfg->path, dv->line, id, dv->ival, id, cv->ival, cv->line);

    const entry_t *mc = s_get(cfg, "DEVICE", "Id/%d/MinCurrent", id);
    static const char *const maxima[] = {"MaxChargeCurrent", "MaxDischargeCurrent", NULL};
    for (int i = 0; mc && mc->valid && maxima[i]; i++) {
        const entry_t *mx = s_get(cfg, "DEVICE", "Id/%d/%s", id, maxima[i]);
        if (mx && mx->valid && mc->ival > mx->ival)
            s_strlist_add(&ld->errors,
                          "%s:%d: [DEVICE] Id/%d/MinCurrent: '%ld' is above Id/%d/%s (%ld, "
                          "line %d); allowed: at most %s",
                          cfg->path, mc->line, id, mc->ival, id, maxima[i], mx->ival, mx->line,
                          maxima[i]);
    }
}

static long s_int_or(const entry_t *e, long def)
{
    return e && e->valid ? e->ival : def;
}

static void s_check_controller(loader_t *ld, int id)
{
    config_t *cfg = ld->cfg;
    const char *S = "CHARGE_CONTROL";
    const entry_t *type = s_get(cfg, S, "Id/%d/Type", id);
    const entry_t *enable = s_get(cfg, S, "Id/%d/Enable", id);
    const entry_t *topic = s_get(cfg, S, "Id/%d/TopicPower", id);
    bool pid = !type || !type->valid || strcmp(type->value, "PID") == 0;
    bool enabled = s_int_or(enable, 1) != 0;
    if (pid && enabled && (!topic || (topic->valid && topic->value[0] == '\0')))
        s_strlist_add(&ld->errors,
                      "%s:%d: [CHARGE_CONTROL] Id/%d/TopicPower: missing; required when "
                      "Id/%d/Type=PID and Id/%d/Enable=1; allowed: the smart meter's MQTT topic",
                      cfg->path, topic ? topic->line : s_first_line(cfg, S, id), id, id, id);

    const entry_t *start = s_get(cfg, S, "Id/%d/DischargeBlockHourStart", id);
    const entry_t *stop = s_get(cfg, S, "Id/%d/DischargeBlockHourStop", id);
    if ((!start || start->valid) && (!stop || stop->valid)) {
        long a = s_int_or(start, -1), b = s_int_or(stop, -1);
        if ((a < 0) != (b < 0)) {
            const entry_t *bad = a < 0 ? stop : start;
            s_strlist_add(&ld->errors,
                          "%s:%d: [CHARGE_CONTROL] Id/%d/DischargeBlockHourStart/Stop: '%ld'/'%ld' "
                          "is not a window; allowed: both -1 (no block) or both 0..23",
                          cfg->path, bad->line, id, a, b);
        }
    }

    const entry_t *minsoc = s_get(cfg, S, "Id/%d/MinSocPct", id);
    const entry_t *maxsoc = s_get(cfg, S, "Id/%d/MaxSocPct", id);
    if ((minsoc || maxsoc) && (!minsoc || minsoc->valid) && (!maxsoc || maxsoc->valid)) {
        long lo = s_int_or(minsoc, 5), hi = s_int_or(maxsoc, 100);
        if (lo >= hi)
            s_strlist_add(&ld->errors,
                          "%s:%d: [CHARGE_CONTROL] Id/%d/MinSocPct: '%ld' is not below "
                          "MaxSocPct (%ld); allowed: MinSocPct < MaxSocPct",
                          cfg->path, minsoc ? minsoc->line : maxsoc->line, id, lo, hi);
    }
    const entry_t *minv = s_get(cfg, S, "Id/%d/MinVoltage", id);
    const entry_t *maxv = s_get(cfg, S, "Id/%d/MaxVoltage", id);
    if (minv && maxv && minv->valid && maxv->valid && minv->ival >= maxv->ival)
        s_strlist_add(&ld->errors,
                      "%s:%d: [CHARGE_CONTROL] Id/%d/MinVoltage: '%ld' is not below "
                      "Id/%d/MaxVoltage (%ld, line %d); allowed: MinVoltage < MaxVoltage",
                      cfg->path, minv->line, id, minv->ival, id, maxv->ival, maxv->line);

    const entry_t *capmin = s_get(cfg, S, "Id/%d/Winter/CapMin", id);
    const entry_t *capmax = s_get(cfg, S, "Id/%d/Winter/CapMax", id);
    if ((capmin || capmax) && (!capmin || capmin->valid) && (!capmax || capmax->valid)) {
        long lo = s_int_or(capmin, 20), hi = s_int_or(capmax, 50);
        if (lo >= hi)
            s_strlist_add(&ld->errors,
                          "%s:%d: [CHARGE_CONTROL] Id/%d/Winter/CapMin: '%ld' is not below "
                          "Winter/CapMax (%ld); allowed: CapMin < CapMax",
                          cfg->path, capmin ? capmin->line : capmax->line, id, lo, hi);
    }
}

//  A surplus switch exists when its SurplusMinP is above 0 (as in the seed); it then needs
//  the topic it is switched on.
static void s_check_switches(loader_t *ld)
{
    config_t *cfg = ld->cfg;
    for (size_t i = 0; i < cfg->count; i++) {
        const entry_t *e = &cfg->entries[i];
        int id, sw, end = 0;
        if (strcmp(e->section, "SURPLUS_SWITCH") != 0 || !e->valid || e->ival <= 0 ||
            sscanf(e->key, "Id/%d/switch/%d/SurplusMinP%n", &id, &sw, &end) != 2 ||
            e->key[end] != '\0')
            continue;
        const entry_t *topic = s_get(cfg, "SURPLUS_SWITCH", "Id/%d/switch/%d/Topic", id, sw);
        if (!topic || (topic->valid && topic->value[0] == '\0'))
            s_strlist_add(&ld->errors,
                          "%s:%d: [SURPLUS_SWITCH] Id/%d/switch/%d/Topic: missing; required when "
                          "Id/%d/switch/%d/SurplusMinP is above 0; allowed: the MQTT topic that "
                          "switches the load (payload 0/1)",
                          cfg->path, topic ? topic->line : e->line, id, sw, id, sw);
    }
}

//  The Cap2V entries sorted by percent (ival of the key's number kept in PCT_OF).
static size_t s_cap2v_sorted(const config_t *cfg, const entry_t **out, long *pct, size_t max)
{
    //  Sort pointers by the percent in the key; the entry's ival holds the voltage rounded,
    //  so sort on a temporary array of (pct, entry).
    typedef struct {
        long pct;
        const entry_t *e;
    } pair_t;
    pair_t pairs[CONFIG_MAX_CAP2V];
    size_t n = 0;
    for (size_t i = 0; i < cfg->count && n < CONFIG_MAX_CAP2V; i++) {
        const entry_t *e = &cfg->entries[i];
        if (strcmp(e->section, "BAT_0") != 0 || strncmp(e->key, "Cap2V/", 6) != 0)
            continue;
        pairs[n].pct = strtol(e->key + 6, NULL, 10);
        pairs[n].e = e;
        n++;
    }
    //  Insertion sort: at most 101 entries.
    for (size_t i = 1; i < n; i++) {
        pair_t p = pairs[i];
        size_t j = i;
        while (j > 0 && pairs[j - 1].pct > p.pct) {
            pairs[j] = pairs[j - 1];
            j--;
        }
        pairs[j] = p;
    }
    for (size_t i = 0; i < n && i < max; i++) {
        out[i] = pairs[i].e;
        pct[i] = pairs[i].pct;
    }
    return n;
}

static void s_check_cap2v(loader_t *ld)
{
    const entry_t *entries[CONFIG_MAX_CAP2V];
    long pct[CONFIG_MAX_CAP2V];
    size_t n = s_cap2v_sorted(ld->cfg, entries, pct, CONFIG_MAX_CAP2V);
    const entry_t *prev = NULL;
    long prev_pct = 0;
    for (size_t i = 0; i < n; i++) {
        const entry_t *e = entries[i];
        if (!e->valid)
            continue;
        if (prev && e->fval <= prev->fval)
            s_strlist_add(&ld->errors,
                          "%s:%d: [BAT_0] Cap2V/%ld: '%s' is not above Cap2V/%ld (%s, line %d); "
                          "allowed: voltages rising with the percentage",
                          ld->cfg->path, e->line, pct[i], e->value, prev_pct, prev->value,
                          prev->line);
        prev = e;
        prev_pct = pct[i];
    }
}

static size_t s_ids(const config_t *self, const char *section, int *ids, size_t max)
{
    bool seen[CONFIG_MAX_IDS] = {false};
    for (size_t i = 0; i < self->count; i++) {
        const entry_t *e = &self->entries[i];
        if (strcmp(e->section, section) != 0 || strncmp(e->key, "Id/", 3) != 0)
            continue;
        char *end;
        long id = strtol(e->key + 3, &end, 10);
        if (*end == '/' && id >= 0 && id < CONFIG_MAX_IDS) /* not Id/Y@G/: another gateway's */
            seen[id] = true;
    }
    size_t count = 0;
    for (int id = 0; id < CONFIG_MAX_IDS; id++) {
        if (!seen[id])
            continue;
        if (ids && count < max)
            ids[count] = id;
        count++;
    }
    return count;
}

static void s_cross_checks(loader_t *ld)
{
    int ids[CONFIG_MAX_IDS];
    size_t n = s_ids(ld->cfg, "DEVICE", ids, CONFIG_MAX_IDS);
    for (size_t i = 0; i < n; i++)
        s_check_device(ld, ids[i]);
    n = s_ids(ld->cfg, "CHARGE_CONTROL", ids, CONFIG_MAX_IDS);
    for (size_t i = 0; i < n; i++)
        s_check_controller(ld, ids[i]);
    s_check_cap2v(ld);
    s_check_switches(ld);
}

static void s_join(const strlist_t *list, char *err, size_t errlen)
{
    if (!err || errlen == 0)
        return;
    size_t o = 0;
    err[0] = '\0';
    for (size_t i = 0; i < list->count; i++) {
        int rc = snprintf(err + o, errlen - o, "%s%s", i ? "\n" : "", list->items[i]);
        if (rc < 0 || (size_t)rc >= errlen - o) {
            //  Mark the cut so a reader knows more errors exist.
            if (errlen > 5)
                memcpy(err + errlen - 5, "\n...", 5);
            return;
        }
        o += (size_t)rc;
    }
}

static void s_entries_free(config_t *self)
{
    for (size_t i = 0; i < self->count; i++) {
        free(self->entries[i].section);
        free(self->entries[i].key);
        free(self->entries[i].value);
    }
    free(self->entries);
    self->entries = NULL;
    self->count = self->cap = 0;
}

//  Opens PATH for reading if it is a regular file of at most CONFIG_MAX_BYTES; otherwise
//  NULL with the reason in ERRORS. The open does not block (a FIFO with no writer would
//  hang it) and a device such as /dev/zero is never read.
static FILE *s_open_regular(const char *path, strlist_t *errors)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        s_strlist_add(errors, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        s_strlist_add(errors, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        s_strlist_add(errors, "%s: not a regular file (%s); allowed: an ini file", path,
                      S_ISDIR(st.st_mode)    ? "a directory"
                      : S_ISFIFO(st.st_mode) ? "a FIFO"
                      : S_ISCHR(st.st_mode)  ? "a character device"
                      : S_ISBLK(st.st_mode)  ? "a block device"
                      : S_ISSOCK(st.st_mode) ? "a socket"
                                             : "not a file");
        goto fail;
    }
    if (st.st_size > CONFIG_MAX_BYTES) {
        s_strlist_add(errors, "%s: %lld bytes; allowed: at most %d", path, (long long)st.st_size,
                      CONFIG_MAX_BYTES);
        goto fail;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "r");
    if (!f) {
        s_strlist_add(errors, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    return f;
fail:
    close(fd);
    return NULL;
}

//  Parse PATH into a config, collecting every error in ERRORS. Returns the config (even
//  with errors, so its warnings can be shown) or NULL when out of memory.
static config_t *s_load(const char *path, strlist_t *errors)
{
    loader_t ld;
    memset(&ld, 0, sizeof ld);
    config_t *self = calloc(1, sizeof *self);
    if (!self || !(self->path = strdup(path))) {
        free(self);
        return NULL;
    }
    ld.cfg = self;
    ld.file = s_open_regular(path, &ld.errors);
    if (!ld.file)
        goto done;
    int rc = ini_parse_stream(s_reader, &ld, s_handler, &ld);
    if (ld.too_big) {
        s_strlist_add(&ld.errors, "%s: more than %d bytes; allowed: at most %d", path,
                      CONFIG_MAX_BYTES, CONFIG_MAX_BYTES);
        goto done;
    }
    if (ld.read_error) {
        s_strlist_add(&ld.errors, "%s: cannot read: %s", path, strerror(errno ? errno : EIO));
        goto done;
    }
    if (rc > 0 && ld.errors.count == 0)
        s_strlist_add(&ld.errors, "%s:%d: not a setting, section header or comment", path, rc);
    else if (rc < 0 && ld.errors.count == 0)
        s_strlist_add(&ld.errors, "%s: cannot parse (error %d)", path, rc);
    s_cross_checks(&ld);

done:
    if (ld.file)
        fclose(ld.file);
    free(ld.buf);
    s_strlist_free(&ld.seen_sections);
    *errors = ld.errors;
    return self;
}

config_t *config_load(const char *path, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!path || !*path) {
        if (err && errlen)
            snprintf(err, errlen, "no configuration file given");
        return NULL;
    }
    strlist_t errors = {0};
    config_t *self = s_load(path, &errors);
    if (!self) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (errors.count > 0) {
        s_join(&errors, err, errlen);
        config_destroy(&self);
    }
    s_strlist_free(&errors);
    return self;
}

void config_destroy(config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    config_t *self = *self_p;
    s_entries_free(self);
    s_strlist_free(&self->warnings);
    free(self->path);
    free(self);
    *self_p = NULL;
}

const char *config_path(const config_t *self)
{
    return self->path;
}

size_t config_warning_count(const config_t *self)
{
    return self->warnings.count;
}

const char *config_warning(const config_t *self, size_t index)
{
    return index < self->warnings.count ? self->warnings.items[index] : NULL;
}

//  --------------------------------------------------------------------------
//  Getters

//  Resolve a getter's key; abort when it is not in the schema (a programming error).
static const config_key_t *s_resolve(const config_t *self, const char *section, const char *keyfmt,
                                     va_list ap, const entry_t **entry)
    __attribute__((format(printf, 3, 0)));

static const config_key_t *s_resolve(const config_t *self, const char *section, const char *keyfmt,
                                     va_list ap, const entry_t **entry)
{
    char key[KEY_MAX], canon[KEY_MAX];
    vsnprintf(key, sizeof key, keyfmt, ap);
    const char *sect = section ? s_canonical_section(section) : NULL;
    int status = 0;
    const config_key_t *k =
        sect ? s_find_schema(sect, key, canon, sizeof canon, &status, NULL, 0) : NULL;
    if (!k || status != 1) {
        fprintf(stderr, "config: [%s] %s is not a configuration key (a bug in the caller)\n",
                section ? section : "(null)", key);
        abort();
    }
    *entry = self ? s_entry_find(self, sect, canon) : NULL;
    return k;
}

static void s_type_abort(const config_key_t *k, const char *asked)
{
    fprintf(stderr, "config: [%s] %s is not read as %s (a bug in the caller)\n", k->section, k->key,
            asked);
    abort();
}

long config_int(const config_t *self, const char *section, const char *keyfmt, ...)
{
    const entry_t *e;
    va_list ap;
    va_start(ap, keyfmt);
    const config_key_t *k = s_resolve(self, section, keyfmt, ap, &e);
    va_end(ap);
    if (k->type != CT_INT && k->type != CT_BOOL)
        s_type_abort(k, "an integer");
    if (e)
        return e->ival;
    if (!k->def)
        return 0;
    if (k->type == CT_BOOL)
        return strcmp(k->def, "1") == 0;
    return strtol(k->def, NULL, 10);
}

double config_float(const config_t *self, const char *section, const char *keyfmt, ...)
{
    const entry_t *e;
    va_list ap;
    va_start(ap, keyfmt);
    const config_key_t *k = s_resolve(self, section, keyfmt, ap, &e);
    va_end(ap);
    if (k->type != CT_FLOAT && k->type != CT_INT)
        s_type_abort(k, "a number");
    if (e)
        return e->fval;
    return k->def ? strtod(k->def, NULL) : 0.0;
}

bool config_bool(const config_t *self, const char *section, const char *keyfmt, ...)
{
    const entry_t *e;
    va_list ap;
    va_start(ap, keyfmt);
    const config_key_t *k = s_resolve(self, section, keyfmt, ap, &e);
    va_end(ap);
    if (k->type != CT_BOOL)
        s_type_abort(k, "a boolean");
    if (e)
        return e->ival != 0;
    return k->def && strcmp(k->def, "1") == 0;
}

const char *config_str(const config_t *self, const char *section, const char *keyfmt, ...)
{
    const entry_t *e;
    va_list ap;
    va_start(ap, keyfmt);
    const config_key_t *k = s_resolve(self, section, keyfmt, ap, &e);
    va_end(ap);
    if (e)
        return e->value;
    return k->def ? k->def : "";
}

bool config_has(const config_t *self, const char *section, const char *keyfmt, ...)
{
    const entry_t *e;
    va_list ap;
    va_start(ap, keyfmt);
    s_resolve(self, section, keyfmt, ap, &e);
    va_end(ap);
    return e != NULL;
}

int config_line(const config_t *self, const char *section, const char *keyfmt, ...)
{
    const entry_t *e;
    va_list ap;
    va_start(ap, keyfmt);
    s_resolve(self, section, keyfmt, ap, &e);
    va_end(ap);
    return e ? e->line : 0;
}

size_t config_ids(const config_t *self, const char *section, int *ids, size_t max)
{
    const char *sect = section ? s_canonical_section(section) : NULL;
    if (!sect)
        return 0;
    return s_ids(self, sect, ids, max);
}

size_t config_cap2v(const config_t *self, double *pct, double *volts, size_t max)
{
    const entry_t *entries[CONFIG_MAX_CAP2V];
    long p[CONFIG_MAX_CAP2V];
    size_t n = s_cap2v_sorted(self, entries, p, CONFIG_MAX_CAP2V);
    for (size_t i = 0; i < n && i < max; i++) {
        if (pct)
            pct[i] = (double)p[i];
        if (volts)
            volts[i] = entries[i]->fval;
    }
    return n;
}

int config_check_main(const char *path)
{
    return config_check_main_with(path, NULL);
}

int config_check_main_with(const char *path, config_prog_check_fn check)
{
    if (!path || !*path) {
        fprintf(stderr, "no configuration file given\n");
        return 1;
    }
    strlist_t errors = {0};
    config_t *cfg = s_load(path, &errors);
    if (!cfg) {
        fprintf(stderr, "%s: out of memory\n", path);
        return 1;
    }
    for (size_t i = 0; i < config_warning_count(cfg); i++)
        fprintf(stderr, "warning: %s\n", config_warning(cfg, i));
    if (errors.count == 0 && check) {
        char err[2048] = "";
        if (check(cfg, err, sizeof err) != 0)
            s_strlist_add(&errors, "%s: %s", path, err[0] ? err : "refused");
    }
    for (size_t i = 0; i < errors.count; i++)
        fprintf(stderr, "error: %s\n", errors.items[i]);
    int rc = errors.count > 0 ? 1 : 0;
    if (rc)
        fprintf(stderr, "%s: invalid configuration (%zu error%s)\n", path, errors.count,
                errors.count == 1 ? "" : "s");
    else
        printf("%s: ok\n", path);
    s_strlist_free(&errors);
    config_destroy(&cfg);
    return rc;
}
