/*
 * twin_cli: bic-sim's `twin` command around the pure run in twin.c: the options, the tables
 * and JSON it prints, and the plot drawn with gnuplot from the run's series.
 */
#include "twin.h"
#include "twin_group.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dirent.h>
#include <sys/stat.h>

#include "bic_device.h"
#include "daygen.h"
#include "household.h"
#include "numconv.h"

/* ---- plot -------------------------------------------------------------------------------- */

/* The day as a picture: grid power of each run in panels of its own (the ideal dashed in each,
 * so every line stays visible), battery power of the controller and the ideal with the
 * device's power limits marked, the SOC of every run, and each run's figures on the picture. */
static int s_plot(const char *path, const twin_plot_t *pl, const twin_result_t *res,
                  const twin_model_t *m, char *err, size_t errlen)
{
    char data[] = "/tmp/bic-twin-XXXXXX";
    int fd = mkstemp(data);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a temporary file: %s", strerror(errno));
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(data);
        snprintf(err, errlen, "cannot write the plot data");
        return -1;
    }
    /* columns: 1 hour, then per run (controller, none, ideal, seed, deadbeat) grid, battery,
     * SOC: run k's grid is column 2 + 3k */
    size_t rows = pl->run[TWIN_CONTROLLER].n;
    for (size_t k = 0; k < rows; k++) {
        fprintf(f, "%.4f", (double)k * TWIN_PLOT_EVERY_S / 3600.0);
        for (int r = 0; r < TWIN_RUNS; r++) {
            const twin_series_t *sr = &pl->run[r];
            if (k < sr->n)
                fprintf(f, " %.1f %.1f %.2f", sr->grid_w[k], sr->batt_w[k], sr->soc_pct[k]);
            else
                fprintf(f, " NaN NaN NaN");
        }
        fprintf(f, "\n");
    }
    fclose(f);

    char title[sizeof pl->title];
    snprintf(title, sizeof title, "%s", pl->title);
    for (char *t = title; *t; t++)
        if (*t == '\'' || *t == '\\')
            *t = ' ';
    FILE *g = popen("gnuplot 2>&1", "w");
    if (!g) {
        unlink(data);
        snprintf(err, errlen, "cannot run gnuplot (Debian package gnuplot-nox)");
        return -1;
    }
    static const char *colour[TWIN_RUNS] = {"#0072b2", "#888888", "#000000", "#e69f00", "#cc79a7"};
#define COL(run, what) (2 + 3 * (run) + (what)) /* what: 0 grid, 1 battery, 2 SOC */
    fprintf(g,
            "set terminal pngcairo size 1500,1500 font ',10'\n"
            "set termoption noenhanced\n"
            "set output '%s'\n"
            "set multiplot title '%s'\n"
            "set grid\nset xrange [0:24]\nset xtics 2\n"
            "set key outside right\nset lmargin 12\nset rmargin 30\n",
            path, title);
    /* the figures, top right */
    fprintf(g,
            "set label 1 at screen 0.08,0.955 left font 'monospace,10' \"%-10s %9s %10s %9s %7s\\n",
            "run", "captured", "shortfall", "overshoot", "EEPROM");
    for (int r = 0; r < TWIN_RUNS; r++) {
        const twin_metrics_t *mt = &res->m[r];
        fprintf(g, "%-10s %8.1f%% %6.3f kWh %9d %7ld\\n", twin_run_name(r), mt->captured_pct,
                mt->shortfall_kwh, mt->overshoot_events, mt->eeprom_writes);
    }
    fprintf(g, "\"\n");
    /* five panels, each 0.17 of the height, below the figures */
    const int grid_runs[] = {TWIN_CONTROLLER, TWIN_DEADBEAT, TWIN_SEED};
    double y = 0.69, h = 0.16;
    fprintf(g, "set ylabel 'grid power (W, + import)'\nset format x ''\n");
    for (size_t i = 0; i < 3; i++, y -= h) {
        int r = grid_runs[i];
        fprintf(g,
                "set origin 0,%.3f\nset size 1,%.3f\n"
                "plot '%s' u 1:%d w l lc rgb '#cccccc' t 'no battery', "
                "'' u 1:%d w l lc rgb '%s' t '%s', "
                "'' u 1:%d w l dt 2 lc rgb '#000000' t 'ideal'\n",
                y, h, data, COL(TWIN_NONE, 0), COL(r, 0), colour[r], twin_run_name(r),
                COL(TWIN_IDEAL, 0));
    }
    fprintf(g,
            "set origin 0,%.3f\nset size 1,%.3f\n"
            "set ylabel 'battery power (W AC, + charge)'\n"
            "set arrow 1 from 0,%g to 24,%g nohead lc rgb '#d55e00' dt 3\n"
            "set arrow 2 from 0,%g to 24,%g nohead lc rgb '#d55e00' dt 3\n"
            "set label 2 'charge limit %g W' at 0.2,%g offset 0,0.7 tc rgb '#d55e00'\n"
            "set label 3 'discharge limit %g W' at 0.2,%g offset 0,-0.7 tc rgb '#d55e00'\n"
            "plot '%s' u 1:%d w l lc rgb '%s' t 'controller', "
            "'' u 1:%d w l dt 2 lc rgb '#000000' t 'ideal'\n"
            "unset arrow 1\nunset arrow 2\nunset label 2\nunset label 3\n",
            y, h, m->max_charge_w, m->max_charge_w, -m->max_discharge_w, -m->max_discharge_w,
            m->max_charge_w, m->max_charge_w, -m->max_discharge_w, -m->max_discharge_w, data,
            COL(TWIN_CONTROLLER, 1), colour[TWIN_CONTROLLER], COL(TWIN_IDEAL, 1));
    y -= h;
    fprintf(g,
            "set origin 0,%.3f\nset size 1,%.3f\nset format x '%%g'\n"
            "set ylabel 'SOC (%%)'\nset xlabel 'hour of day'\nset yrange [0:100]\n"
            "plot '%s' u 1:%d w l dt 2 lc rgb '#000000' t 'ideal', "
            "'' u 1:%d w l dt 4 lc rgb '%s' t 'seed', '' u 1:%d w l dt 5 lc rgb '%s' t 'deadbeat', "
            "'' u 1:%d w l lw 2 lc rgb '%s' t 'controller'\n"
            "unset multiplot\n",
            y - 0.04, h + 0.04, data, COL(TWIN_IDEAL, 2), COL(TWIN_SEED, 2), colour[TWIN_SEED],
            COL(TWIN_DEADBEAT, 2), colour[TWIN_DEADBEAT], COL(TWIN_CONTROLLER, 2),
            colour[TWIN_CONTROLLER]);
#undef COL
    int rc = pclose(g);
    unlink(data);
    if (rc != 0) {
        snprintf(err, errlen, "gnuplot failed (exit %d) writing %s", rc, path);
        return -1;
    }
    return 0;
}

/* The runs whose shortfall the breakdown splits by the ideal battery's state. */
static const int s_split[] = {TWIN_CONTROLLER, TWIN_DEADBEAT, TWIN_SEED};

void twin_print_breakdown(FILE *f, const twin_result_t *res)
{
    if (!res->has_bd)
        return;
    fprintf(f, "shortfall by situation (= missed battery throughput + 2 x wrong-way energy)\n");
    fprintf(f, "%-18s %8s %14s %14s %14s\n", "situation", "hours", "shortfall_kWh", "missed_kWh",
            "wrong_way_kWh");
    double h = 0, d = 0, mi = 0, w = 0;
    for (int k = 0; k < TWIN_BD_N; k++) {
        fprintf(f, "%-18s %8.2f %14.4f %14.4f %14.4f\n", twin_bd_name(k), res->bd.hours[k],
                res->bd.delta_kwh[k], res->bd.missed_kwh[k], res->bd.wrong_kwh[k]);
        h += res->bd.hours[k];
        d += res->bd.delta_kwh[k];
        mi += res->bd.missed_kwh[k];
        w += res->bd.wrong_kwh[k];
    }
    fprintf(f, "%-18s %8.2f %14.4f %14.4f %14.4f\n", "total", h, d, mi, w);
    fprintf(f, "shortfall where the ideal battery is at a limit / elsewhere (kWh):");
    for (size_t k = 0; k < sizeof s_split / sizeof s_split[0]; k++)
        fprintf(f, "%s %s %.4f / %.4f", k ? "," : "", twin_run_name(s_split[k]),
                res->bd.at_limit_kwh[s_split[k]], res->bd.elsewhere_kwh[s_split[k]]);
    fprintf(f, "\n");
}

/* The breakdown as JSON members (no braces): the controller's situations and each run's
 * shortfall where the ideal battery is at a limit and elsewhere. */
static void s_json_breakdown(FILE *f, const twin_result_t *res)
{
    fprintf(f, "\"breakdown\":{");
    for (int k = 0; k < TWIN_BD_N; k++)
        fprintf(f,
                "%s\"%s\":{\"hours\":%.3f,\"shortfall_kwh\":%.4f,\"missed_kwh\":%.4f,"
                "\"wrong_way_kwh\":%.4f}",
                k ? "," : "", twin_bd_name(k), res->bd.hours[k], res->bd.delta_kwh[k],
                res->bd.missed_kwh[k], res->bd.wrong_kwh[k]);
    fprintf(f, "},\"by_ideal_limit\":{");
    for (size_t k = 0; k < sizeof s_split / sizeof s_split[0]; k++)
        fprintf(f, "%s\"%s\":{\"at_limit_kwh\":%.4f,\"elsewhere_kwh\":%.4f}", k ? "," : "",
                twin_run_name(s_split[k]), res->bd.at_limit_kwh[s_split[k]],
                res->bd.elsewhere_kwh[s_split[k]]);
    fprintf(f, "}");
}

void twin_print_table(FILE *f, const twin_result_t *res)
{
    fprintf(f, "%-10s %10s %10s %8s %9s %11s %9s %7s %8s %9s %8s %8s %8s %10s\n", "run",
            "import_kWh", "export_kWh", "X_kWh", "captured%", "shortfall", "overshoot", "rms_W",
            "changes", "reversals", "eeprom", "maxc_W", "maxd_W", "final_soc%");
    for (int k = 0; k < TWIN_RUNS; k++) {
        const twin_metrics_t *m = &res->m[k];
        fprintf(f,
                "%-10s %10.3f %10.3f %8.3f %9.2f %11.3f %9d %7.1f %8ld %9ld %8ld %8.0f %8.0f "
                "%10.1f\n",
                twin_run_name(k), m->import_kwh, m->export_kwh, m->import_kwh + m->export_kwh,
                m->captured_pct, m->shortfall_kwh, m->overshoot_events, m->rms_w,
                m->setpoint_changes, m->reversals, m->eeprom_writes, m->max_charge_w,
                m->max_discharge_w, m->final_soc_pct);
    }
    fprintf(f, "shortfall (X - X_ideal): controller %.3f kWh, deadbeat %.3f kWh, seed %.3f kWh\n",
            res->m[TWIN_CONTROLLER].shortfall_kwh, res->m[TWIN_DEADBEAT].shortfall_kwh,
            res->m[TWIN_SEED].shortfall_kwh);
    if (res->m[TWIN_CONTROLLER].switched_kwh > 0)
        fprintf(f, "surplus switches: %.3f kWh into the switched loads (controller run)\n",
                res->m[TWIN_CONTROLLER].switched_kwh);
}

/* One run's figures as JSON members (no braces). */
static void s_json_metrics(FILE *f, const twin_metrics_t *m)
{
    fprintf(f,
            "\"import_kwh\":%.4f,\"export_kwh\":%.4f,\"captured_pct\":%.3f,"
            "\"shortfall_kwh\":%.4f,\"overshoot_events\":%d,\"rms_w\":%.2f,"
            "\"setpoint_changes\":%ld,\"reversals\":%ld,\"eeprom_writes\":%ld,"
            "\"throughput_kwh\":%.4f,\"final_soc_pct\":%.2f,\"max_charge_w\":%.1f,"
            "\"max_discharge_w\":%.1f,\"follow_reports\":%ld,\"switched_kwh\":%.4f",
            m->import_kwh, m->export_kwh, m->captured_pct, m->shortfall_kwh, m->overshoot_events,
            m->rms_w, m->setpoint_changes, m->reversals, m->eeprom_writes, m->throughput_kwh,
            m->final_soc_pct, m->max_charge_w, m->max_discharge_w, m->follow_reports,
            m->switched_kwh);
}

void twin_print_json(FILE *f, const twin_result_t *res)
{
    fprintf(f, "{");
    for (int k = 0; k < TWIN_RUNS; k++) {
        fprintf(f, "%s\"%s\":{", k ? "," : "", twin_run_name(k));
        s_json_metrics(f, &res->m[k]);
        fprintf(f, "}");
    }
    if (res->has_bd) {
        fprintf(f, ",");
        s_json_breakdown(f, res);
    }
    fprintf(f, "}\n");
}

/* ---- command line ------------------------------------------------------------------------- */

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: bic-sim twin --profile FILE.csv -c bic2mqtt.ini [options]\n"
            "  --json               print the figures as one JSON object\n"
            "  --plot FILE.png      draw grid power, battery power and SOC (gnuplot)\n"
            "  --trace FILE         write the controller's decisions (each command, each minute)\n"
            "  --transients SEED    add synthetic kettle/oven/microwave/cloud transients\n"
            "  --eeprom-on          old firmware: every setpoint write is persisted\n"
            "  --eeprom-interval S  gateway's minimum interval between persisted writes (79)\n"
            "  --eeprom-budget N    also at most N persisted writes a day, as a token bucket\n"
            "                       (a gateway policy allowing bursts; default: interval only)\n"
            "  --eeprom-burst D     the bucket's depth in writes (300)\n"
            "  --gw-keep-other      the gateway leaves the other direction's current alone\n"
            "                       (default: set to its minimum, as bic-can-gateway does)\n"
            "  --breakdown          decompose the controller's shortfall by situation\n"
            "  --id X               [CHARGE_CONTROL] Id/X to run (default: the first)\n"
            "model (defaults in brackets):\n"
            "  --variant V [24]  --soc PCT [50]  --ah AH [280]  --cells N [variant/3]\n"
            "  --r-mohm R [10]  --soc-min PCT [5]  --soc-max PCT [100]\n"
            "  --max-charge-w W [2000]  --max-discharge-w W [1600]  --eff F [0.92]\n"
            "  --min-current A [1 %% of the rated current: 0.9 A on 24 V]  --tau S [1]\n"
            "  --meter-period S [2]  --meter-latency S [0.3]  --telemetry-period S [1]\n"
            "  --meter-phase S|random [0]  first meter sample S seconds into the day (random:\n"
            "                       per day, uniform within one meter period)\n"
            "  --step S [0.1]\n"
            "batch (instead of --profile): every run on many days, per-day figures and a summary\n"
            "  --days LIST          comma-separated CSV files and folders (a folder: its *.csv)\n"
            "  --generated N        N generated days (one-second resolution, sim/daygen.h)\n"
            "  --gen-seed S [1]     the generated days' series (and the random meter phases)\n"
            "  --write-days DIR     write the generated days as CSV files into DIR and stop\n"
            "a group of converters under one controller: --units N (bic-sim twin --units 2 -h)\n");
}

int twin_opt_num(const char *opt, const char *text, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "bic-sim twin: %s '%s' is not a number in [%g, %g]\n", opt, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* A whole number option in [LO, HI] (a fraction is refused, not truncated). */
int twin_opt_whole(const char *opt, const char *text, double lo, double hi, int64_t *out)
{
    double v;
    if (twin_opt_num(opt, text, lo, hi, &v))
        return -1;
    if (numconv_whole(v, (int64_t)lo, (int64_t)hi, out) != 0) {
        fprintf(stderr, "bic-sim twin: %s '%s' is not a whole number in [%g, %g]\n", opt, text, lo,
                hi);
        return -1;
    }
    return 0;
}

/* ---- batch: many days ------------------------------------------------------------------- */

typedef struct {
    const char *days;      /* --days LIST */
    int generated;         /* --generated N */
    uint64_t gen_seed;     /* --gen-seed S */
    bool random_phase;     /* --meter-phase random */
    const char *write_dir; /* --write-days DIR */
} batch_t;

typedef struct {
    char name[128];
    char *path; /* a file, or NULL for a generated day */
    int gen_index;
} day_ref_t;

typedef struct {
    day_ref_t *v;
    size_t n, cap;
} day_list_t;

static int s_day_push(day_list_t *l, const char *name, const char *path, int gen_index)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        day_ref_t *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    day_ref_t *d = &l->v[l->n];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    if (path && !(d->path = strdup(path)))
        return -1;
    d->gen_index = gen_index;
    l->n++;
    return 0;
}

static void s_day_list_free(day_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].path);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int s_csv_filter(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > 4 && strcmp(e->d_name + n - 4, ".csv") == 0;
}

/* The days of --days (files and folders, in the order given; a folder's files sorted by
 * name) and --generated. */
static int s_collect_days(const batch_t *b, day_list_t *l)
{
    if (b->days) {
        char *list = strdup(b->days), *save = NULL;
        if (!list)
            return -1;
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            struct stat st;
            if (stat(tok, &st) != 0) {
                fprintf(stderr, "bic-sim twin: --days: %s: %s\n", tok, strerror(errno));
                free(list);
                return -1;
            }
            if (S_ISDIR(st.st_mode)) {
                struct dirent **ents = NULL;
                int n = scandir(tok, &ents, s_csv_filter, alphasort);
                if (n < 0) {
                    fprintf(stderr, "bic-sim twin: --days: %s: %s\n", tok, strerror(errno));
                    free(list);
                    return -1;
                }
                int rc = 0;
                for (int i = 0; i < n; i++) {
                    char path[4096];
                    snprintf(path, sizeof path, "%s/%s", tok, ents[i]->d_name);
                    if (rc == 0)
                        rc = s_day_push(l, ents[i]->d_name, path, -1);
                    free(ents[i]);
                }
                free(ents);
                if (rc != 0) {
                    free(list);
                    return -1;
                }
                if (n == 0)
                    fprintf(stderr, "bic-sim twin: --days: no *.csv in %s\n", tok);
            } else {
                const char *base = strrchr(tok, '/');
                if (s_day_push(l, base ? base + 1 : tok, tok, -1) != 0) {
                    free(list);
                    return -1;
                }
            }
        }
        free(list);
    }
    for (int i = 0; i < b->generated; i++) {
        char name[64];
        snprintf(name, sizeof name, "gen-%llu-%02d", (unsigned long long)b->gen_seed, i);
        if (s_day_push(l, name, NULL, i) != 0)
            return -1;
    }
    if (l->n == 0) {
        fprintf(stderr, "bic-sim twin: the batch has no days\n");
        return -1;
    }
    return 0;
}

static int s_write_days(const batch_t *b)
{
    if (mkdir(b->write_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "bic-sim twin: cannot create %s: %s\n", b->write_dir, strerror(errno));
        return 1;
    }
    for (int i = 0; i < b->generated; i++) {
        size_t len = 0;
        daygen_info_t info;
        char *csv = daygen_csv(b->gen_seed, i, &len, &info);
        if (!csv) {
            fprintf(stderr, "bic-sim twin: out of memory\n");
            return 1;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/gen-%llu-%02d.csv", b->write_dir,
                 (unsigned long long)b->gen_seed, i);
        FILE *f = fopen(path, "w");
        bool ok = f && fwrite(csv, 1, len, f) == len;
        if (f && fclose(f) != 0)
            ok = false;
        free(csv);
        if (!ok) {
            fprintf(stderr, "bic-sim twin: cannot write %s: %s\n", path, strerror(errno));
            return 1;
        }
        printf("%s: day %d of the year, %.1f h of daylight, %.1f kWp %s, base %.0f W, load "
               "%.1f kWh (max %.0f W), PV %.1f kWh (max %.0f W), %d appliance runs\n",
               path, info.day_of_year, info.day_length_h, info.pv_kwp, info.sky, info.base_w,
               info.load_kwh, info.load_max_w, info.pv_kwh, info.pv_max_w, info.appliances);
    }
    return 0;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median and worst (the largest, or the smallest when lower is worse) of n values. */
static void s_stats(double *v, size_t n, bool low_is_worse, double *median, double *worst)
{
    qsort(v, n, sizeof *v, s_cmp_double);
    *median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    *worst = low_is_worse ? v[0] : v[n - 1];
}

enum { S_SHORT = 0, S_CAPT, S_OVER, S_REV, S_EEP, S_NMET };
static const char *s_met_names[S_NMET] = {"shortfall_kwh", "captured_pct", "overshoot_events",
                                          "reversals", "eeprom_writes"};

static double s_met(const twin_metrics_t *m, int k)
{
    switch (k) {
    case S_SHORT:
        return m->shortfall_kwh;
    case S_CAPT:
        return m->captured_pct;
    case S_OVER:
        return m->overshoot_events;
    case S_REV:
        return (double)m->reversals;
    default:
        return (double)m->eeprom_writes;
    }
}

static int s_batch(const batch_t *b, const char *config, const twin_model_t *model, bool json)
{
    day_list_t days = {0};
    twin_result_t *res = NULL;
    double *vals = NULL;
    int rc = 1;
    if (s_collect_days(b, &days) != 0)
        goto cleanup;
    res = calloc(days.n, sizeof *res);
    vals = calloc(days.n, sizeof *vals);
    if (!res || !vals) {
        fprintf(stderr, "bic-sim twin: out of memory\n");
        goto cleanup;
    }
    uint64_t phase_rng = b->gen_seed * 0x9E3779B97F4A7C15ull + 12345;
    if (json)
        printf("{\"days\":[");
    else
        printf("%-28s %7s %10s %10s %10s %9s %9s %9s %7s\n", "day", "phase_s", "ctl_short",
               "db_short", "seed_short", "ctl_over", "seed_over", "ctl_rev", "ctl_eep");
    for (size_t i = 0; i < days.n; i++) {
        twin_model_t m = *model;
        if (b->random_phase) {
            phase_rng = phase_rng * 6364136223846793005ull + 1442695040888963407ull;
            m.meter_phase_s = (double)(phase_rng >> 11) / 9007199254740992.0 * m.meter_period_s;
            m.meter_phase_s = floor(m.meter_phase_s / m.step_s) * m.step_s;
        }
        char err[4096];
        household_t *hh = NULL;
        if (days.v[i].path) {
            hh = household_load(days.v[i].path, err, sizeof err);
        } else {
            size_t len = 0;
            char *csv = daygen_csv(b->gen_seed, days.v[i].gen_index, &len, NULL);
            hh = csv ? household_parse(csv, len, days.v[i].name, err, sizeof err) : NULL;
            if (!csv)
                snprintf(err, sizeof err, "out of memory");
            free(csv);
        }
        int r =
            hh ? twin_run_household(hh, days.v[i].name, config, &m, NULL, &res[i], err, sizeof err)
               : -1;
        household_destroy(&hh);
        if (r != 0) {
            if (json)
                printf("]}\n");
            fprintf(stderr, "bic-sim twin: %s: %s\n", days.v[i].name, err);
            goto cleanup;
        }
        const twin_metrics_t *c = &res[i].m[TWIN_CONTROLLER];
        if (json) {
            printf("%s{\"day\":\"%s\",\"meter_phase_s\":%.2f", i ? "," : "", days.v[i].name,
                   m.meter_phase_s);
            for (int k = 0; k < TWIN_RUNS; k++) {
                printf(",\"%s\":{", twin_run_name(k));
                s_json_metrics(stdout, &res[i].m[k]);
                printf("}");
            }
            if (res[i].has_bd) {
                printf(",");
                s_json_breakdown(stdout, &res[i]);
            }
            printf("}");
        } else {
            printf("%-28s %7.2f %10.3f %10.3f %10.3f %9d %9d %9ld %7ld\n", days.v[i].name,
                   m.meter_phase_s, c->shortfall_kwh, res[i].m[TWIN_DEADBEAT].shortfall_kwh,
                   res[i].m[TWIN_SEED].shortfall_kwh, c->overshoot_events,
                   res[i].m[TWIN_SEED].overshoot_events, c->reversals, c->eeprom_writes);
        }
        fflush(stdout);
    }
    if (json)
        printf("],\"summary\":{");
    else
        printf("summary over %zu days (median / worst)\n", days.n);
    for (int k = 0; k < TWIN_RUNS; k++) {
        if (k == TWIN_NONE || k == TWIN_IDEAL)
            continue;
        if (json)
            printf("%s\"%s\":{", k ? "," : "", twin_run_name(k));
        else
            printf("%-10s", twin_run_name(k));
        for (int q = 0; q < S_NMET; q++) {
            for (size_t i = 0; i < days.n; i++)
                vals[i] = s_met(&res[i].m[k], q);
            double med, worst;
            s_stats(vals, days.n, q == S_CAPT, &med, &worst);
            if (json)
                printf("%s\"%s\":{\"median\":%.4f,\"worst\":%.4f}", q ? "," : "", s_met_names[q],
                       med, worst);
            else
                printf("  %s %.3f / %.3f", s_met_names[q], med, worst);
        }
        printf(json ? "}" : "\n");
    }
    /* the controller's shortfall over the deadbeat's, day by day */
    for (size_t i = 0; i < days.n; i++) {
        double db = res[i].m[TWIN_DEADBEAT].shortfall_kwh;
        vals[i] = res[i].m[TWIN_CONTROLLER].shortfall_kwh / (db > 0.001 ? db : 0.001);
    }
    double med, worst;
    s_stats(vals, days.n, false, &med, &worst);
    if (json)
        printf(",\"controller_over_deadbeat\":{\"median\":%.3f,\"worst\":%.3f}", med, worst);
    else
        printf("controller shortfall / deadbeat shortfall: median %.2f, worst %.2f\n", med, worst);
    /* ... and where the ideal battery meets the net load (the control itself), day by day */
    if (days.n > 0 && res[0].has_bd) {
        for (size_t i = 0; i < days.n; i++) {
            double db = res[i].bd.elsewhere_kwh[TWIN_DEADBEAT];
            vals[i] = res[i].bd.elsewhere_kwh[TWIN_CONTROLLER] / (db > 0.001 ? db : 0.001);
        }
        s_stats(vals, days.n, false, &med, &worst);
        if (json)
            printf(",\"controller_over_deadbeat_elsewhere\":{\"median\":%.3f,\"worst\":%.3f}", med,
                   worst);
        else
            printf("the same where the ideal battery is not at a limit: median %.2f, worst %.2f\n",
                   med, worst);
    }
    if (json)
        printf("}}\n");
    rc = 0;
cleanup:
    free(vals);
    free(res);
    s_day_list_free(&days);
    return rc;
}

int twin_main(int argc, char **argv)
{
    enum {
        O_JSON = 256,
        O_PLOT,
        O_TRANS,
        O_EEP,
        O_EEPI,
        O_ID,
        O_SOC,
        O_AH,
        O_CELLS,
        O_RM,
        O_SOCMIN,
        O_SOCMAX,
        O_MCW,
        O_MDW,
        O_EFF,
        O_MINA,
        O_TAU,
        O_MP,
        O_ML,
        O_TP,
        O_STEP,
        O_PROFILE,
        O_TRACE,
        O_VARIANT,
        O_KEEP,
        O_BD,
        O_EEPB,
        O_EEPD,
        O_PHASE,
        O_DAYS,
        O_GEN,
        O_GSEED,
        O_WDAYS,
    };
    static const struct option opts[] = {
        {"profile", required_argument, NULL, O_PROFILE},
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, O_JSON},
        {"plot", required_argument, NULL, O_PLOT},
        {"trace", required_argument, NULL, O_TRACE},
        {"transients", required_argument, NULL, O_TRANS},
        {"eeprom-on", no_argument, NULL, O_EEP},
        {"eeprom-interval", required_argument, NULL, O_EEPI},
        {"gw-keep-other", no_argument, NULL, O_KEEP},
        {"breakdown", no_argument, NULL, O_BD},
        {"eeprom-budget", required_argument, NULL, O_EEPB},
        {"eeprom-burst", required_argument, NULL, O_EEPD},
        {"id", required_argument, NULL, O_ID},
        {"soc", required_argument, NULL, O_SOC},
        {"ah", required_argument, NULL, O_AH},
        {"cells", required_argument, NULL, O_CELLS},
        {"variant", required_argument, NULL, O_VARIANT},
        {"r-mohm", required_argument, NULL, O_RM},
        {"soc-min", required_argument, NULL, O_SOCMIN},
        {"soc-max", required_argument, NULL, O_SOCMAX},
        {"max-charge-w", required_argument, NULL, O_MCW},
        {"max-discharge-w", required_argument, NULL, O_MDW},
        {"eff", required_argument, NULL, O_EFF},
        {"min-current", required_argument, NULL, O_MINA},
        {"tau", required_argument, NULL, O_TAU},
        {"meter-period", required_argument, NULL, O_MP},
        {"meter-latency", required_argument, NULL, O_ML},
        {"telemetry-period", required_argument, NULL, O_TP},
        {"step", required_argument, NULL, O_STEP},
        {"meter-phase", required_argument, NULL, O_PHASE},
        {"days", required_argument, NULL, O_DAYS},
        {"generated", required_argument, NULL, O_GEN},
        {"gen-seed", required_argument, NULL, O_GSEED},
        {"write-days", required_argument, NULL, O_WDAYS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (twin_group_wanted(argc, argv))
        return twin_group_main(argc, argv);
    twin_model_t m;
    twin_model_defaults(&m);
    batch_t b = {.gen_seed = 1};
    const char *profile = NULL, *config = NULL, *plot = NULL, *trace = NULL;
    bool json = false, cells_given = false, mina_given = false;
    double v;
    int64_t n;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case O_PROFILE:
            profile = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case O_JSON:
            json = true;
            break;
        case O_PLOT:
            plot = optarg;
            break;
        case O_TRACE:
            trace = optarg;
            break;
        case O_TRANS:
            if (twin_opt_whole("--transients", optarg, 0, 1e15, &n))
                return 2;
            m.transients = true;
            m.transient_seed = (uint64_t)n;
            break;
        case O_EEP:
            m.eeprom_on = true;
            break;
        case O_KEEP:
            m.gw_keep_other = true;
            break;
        case O_BD:
            m.breakdown = true;
            break;
        case O_EEPB:
            if (twin_opt_whole("--eeprom-budget", optarg, 1, 100000, &n))
                return 2;
            m.eeprom_budget = (int)n;
            break;
        case O_EEPD:
            if (twin_opt_whole("--eeprom-burst", optarg, 1, 100000, &n))
                return 2;
            m.eeprom_burst = (int)n;
            break;
        case O_EEPI:
            if (twin_opt_whole("--eeprom-interval", optarg, 0, 86400, &n))
                return 2;
            m.eeprom_interval_s = (int)n;
            break;
        case O_ID:
            if (twin_opt_whole("--id", optarg, 0, 63, &n))
                return 2;
            m.ctl_id = (int)n;
            break;
#define NUMOPT(O, name, lo, hi, field)                                                             \
    case O:                                                                                        \
        if (twin_opt_num(name, optarg, lo, hi, &v))                                                \
            return 2;                                                                              \
        m.field = v;                                                                               \
        break;
            NUMOPT(O_SOC, "--soc", 0, 100, soc_pct)
            NUMOPT(O_AH, "--ah", 1, 100000, capacity_ah)
            NUMOPT(O_RM, "--r-mohm", 0, 1000, r_mohm)
            NUMOPT(O_SOCMIN, "--soc-min", 0, 100, soc_min_pct)
            NUMOPT(O_SOCMAX, "--soc-max", 0, 100, soc_max_pct)
            NUMOPT(O_MCW, "--max-charge-w", 0, 100000, max_charge_w)
            NUMOPT(O_MDW, "--max-discharge-w", 0, 100000, max_discharge_w)
            NUMOPT(O_EFF, "--eff", 0.5, 1, efficiency)
        case O_MINA:
            if (twin_opt_num("--min-current", optarg, 0.01, 100, &v))
                return 2;
            m.min_current_a = v;
            mina_given = true;
            break;
            NUMOPT(O_TAU, "--tau", 0, 60, tau_s)
            NUMOPT(O_MP, "--meter-period", 0.1, 600, meter_period_s)
            NUMOPT(O_ML, "--meter-latency", 0, 60, meter_latency_s)
            NUMOPT(O_TP, "--telemetry-period", 0.1, 600, telemetry_period_s)
            NUMOPT(O_STEP, "--step", 0.01, 1, step_s)
#undef NUMOPT
        case O_CELLS:
            if (twin_opt_whole("--cells", optarg, 1, 64, &n))
                return 2;
            m.cells = (int)n;
            cells_given = true;
            break;
        case O_VARIANT:
            if (twin_opt_whole("--variant", optarg, 12, 96, &n) ||
                (n != 12 && n != 24 && n != 48 && n != 96)) {
                fprintf(stderr, "bic-sim twin: --variant must be 12, 24, 48 or 96\n");
                return 2;
            }
            m.variant = (int)n;
            break;
        case O_PHASE:
            if (strcmp(optarg, "random") == 0)
                b.random_phase = true;
            else if (twin_opt_num("--meter-phase", optarg, 0, 3600, &v))
                return 2;
            else
                m.meter_phase_s = v;
            break;
        case O_DAYS:
            b.days = optarg;
            break;
        case O_GEN:
            if (twin_opt_whole("--generated", optarg, 1, 10000, &n))
                return 2;
            b.generated = (int)n;
            break;
        case O_GSEED:
            if (twin_opt_whole("--gen-seed", optarg, 0, 1e15, &n))
                return 2;
            b.gen_seed = (uint64_t)n;
            break;
        case O_WDAYS:
            b.write_dir = optarg;
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    for (int i = optind; i < argc; i++) {
        if (strcmp(argv[i], "twin") != 0) {
            fprintf(stderr, "bic-sim twin: unexpected argument '%s'\n", argv[i]);
            s_usage(stderr);
            return 2;
        }
    }
    if (b.write_dir) {
        if (!b.generated) {
            fprintf(stderr, "bic-sim twin: --write-days needs --generated N\n");
            return 2;
        }
        return s_write_days(&b);
    }
    if (b.days || b.generated) {
        if (profile || plot) {
            fprintf(stderr, "bic-sim twin: --profile and --plot are for one day; a batch "
                            "(--days, --generated) prints figures only\n");
            return 2;
        }
        if (!config) {
            fprintf(stderr, "bic-sim twin: -c is required\n");
            return 2;
        }
    } else if (b.random_phase) {
        fprintf(stderr,
                "bic-sim twin: --meter-phase random is for a batch (--days, --generated)\n");
        return 2;
    }
    if (!b.days && !b.generated && (!profile || !config)) {
        fprintf(stderr, "bic-sim twin: --profile and -c are required\n");
        s_usage(stderr);
        return 2;
    }
    if (!cells_given)
        m.cells = m.variant / 3; /* 4, 8, 16, 32 LiFePO4 cells */
    if (!mina_given)
        m.min_current_a = bic_device_rated_current_a(m.variant) / 100.0;
    if (m.cells * 3.2 < m.variant * 0.8 || m.cells * 3.2 > m.variant * 1.15) {
        fprintf(stderr,
                "bic-sim twin: %d cells (%.1f V nominal) do not suit a %d V BIC; "
                "allowed: about %d cells\n",
                m.cells, m.cells * 3.2, m.variant, m.variant / 3);
        return 2;
    }
    if (m.soc_min_pct >= m.soc_max_pct) {
        fprintf(stderr, "bic-sim twin: --soc-min %g must be below --soc-max %g\n", m.soc_min_pct,
                m.soc_max_pct);
        return 2;
    }
    if (m.meter_phase_s >= m.meter_period_s) {
        fprintf(stderr, "bic-sim twin: --meter-phase %g must be below --meter-period %g\n",
                m.meter_phase_s, m.meter_period_s);
        return 2;
    }
    if (b.days || b.generated) {
        if (trace) {
            fprintf(stderr, "bic-sim twin: --trace is for one day\n");
            return 2;
        }
        return s_batch(&b, config, &m, json);
    }
    if (trace) {
        m.trace = strcmp(trace, "-") == 0 ? stderr : fopen(trace, "w");
        if (!m.trace) {
            fprintf(stderr, "bic-sim twin: cannot write %s: %s\n", trace, strerror(errno));
            return 1;
        }
    }
    twin_result_t res;
    twin_plot_t series;
    char err[4096];
    int rc = twin_run(profile, config, &m, plot ? &series : NULL, &res, err, sizeof err);
    if (m.trace && m.trace != stderr)
        fclose(m.trace);
    if (rc == 0 && plot)
        rc = s_plot(plot, &series, &res, &m, err, sizeof err);
    if (plot)
        twin_plot_free(&series);
    if (rc != 0) {
        fprintf(stderr, "bic-sim twin: %s\n", err);
        return 1;
    }
    if (json)
        twin_print_json(stdout, &res);
    else {
        twin_print_table(stdout, &res);
        twin_print_breakdown(stdout, &res);
    }
    return 0;
}
