/*
 * twin_cli: bic-sim's `twin` command around the pure run in twin.c: the options, the tables
 * and JSON it prints, and the plot drawn with gnuplot from the run's series.
 */
#include "twin.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bic_device.h"

/* ---- plot -------------------------------------------------------------------------------- */

static int s_plot(const char *path, const twin_plot_t *pl, char *err, size_t errlen)
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
    const twin_series_t *c = &pl->run[TWIN_CONTROLLER], *n = &pl->run[TWIN_NONE],
                        *s = &pl->run[TWIN_SEED], *i = &pl->run[TWIN_IDEAL];
    for (size_t k = 0; k < c->n; k++)
        fprintf(f, "%.4f %.1f %.1f %.2f %.1f %.1f %.2f %.2f\n",
                (double)k * TWIN_PLOT_EVERY_S / 3600.0, c->grid_w[k], c->batt_w[k], c->soc_pct[k],
                k < n->n ? n->grid_w[k] : 0, k < s->n ? s->grid_w[k] : 0,
                k < s->n ? s->soc_pct[k] : 0, k < i->n ? i->soc_pct[k] : 0);
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
    fprintf(g,
            "set terminal pngcairo size 1400,1000 font ',10'\n"
            "set termoption noenhanced\n"
            "set output '%s'\n"
            "set multiplot layout 3,1 title '%s'\n"
            "set grid\nset xrange [0:24]\nset xtics 2\n"
            "set key outside right\n"
            "set ylabel 'grid power (W, + import)'\n"
            "plot '%s' u 1:5 w l lc rgb '#bbbbbb' t 'no battery', "
            "'' u 1:6 w l lc rgb '#e69f00' t 'seed', '' u 1:2 w l lc rgb '#0072b2' t 'controller'\n"
            "set ylabel 'battery power (W AC, + charge)'\n"
            "plot '%s' u 1:3 w l lc rgb '#009e73' t 'controller'\n"
            "set ylabel 'SOC (%%)'\nset xlabel 'hour of day'\nset yrange [0:100]\n"
            "plot '%s' u 1:8 w l lc rgb '#999999' t 'ideal', '' u 1:7 w l lc rgb '#e69f00' t 'seed', "
            "'' u 1:4 w l lc rgb '#0072b2' lw 2 t 'controller'\n"
            "unset multiplot\n",
            path, title, data, data, data);
    int rc = pclose(g);
    unlink(data);
    if (rc != 0) {
        snprintf(err, errlen, "gnuplot failed (exit %d) writing %s", rc, path);
        return -1;
    }
    return 0;
}

void twin_print_breakdown(FILE *f, const twin_result_t *res)
{
    if (!res->has_bd)
        return;
    fprintf(f, "shortfall by situation (= missed battery throughput + 2 x wrong-way energy)\n");
    fprintf(f, "%-18s %8s %14s %14s %14s\n", "situation", "hours", "shortfall_kWh",
            "missed_kWh", "wrong_way_kWh");
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
}

void twin_print_table(FILE *f, const twin_result_t *res)
{
    fprintf(f, "%-11s %10s %10s %9s %9s %8s %10s %8s %11s %9s %11s\n", "run", "import_kWh",
            "export_kWh", "X_kWh", "captured%", "overshoot", "rms_W", "changes", "eeprom_writes",
            "thru_kWh", "final_soc%");
    for (int k = 0; k < TWIN_RUNS; k++) {
        const twin_metrics_t *m = &res->m[k];
        fprintf(f, "%-11s %10.3f %10.3f %9.3f %9.2f %9d %10.1f %8ld %13ld %9.3f %11.1f\n",
                twin_run_name(k), m->import_kwh, m->export_kwh, m->import_kwh + m->export_kwh,
                m->captured_pct, m->overshoot_events, m->rms_w, m->setpoint_changes,
                m->eeprom_writes, m->throughput_kwh, m->final_soc_pct);
    }
    double xi = res->m[TWIN_IDEAL].import_kwh + res->m[TWIN_IDEAL].export_kwh;
    double xc = res->m[TWIN_CONTROLLER].import_kwh + res->m[TWIN_CONTROLLER].export_kwh - xi;
    double xs = res->m[TWIN_SEED].import_kwh + res->m[TWIN_SEED].export_kwh - xi;
    fprintf(f, "shortfall (X - X_ideal): controller %.3f kWh, seed %.3f kWh\n", xc, xs);
}

void twin_print_json(FILE *f, const twin_result_t *res)
{
    fprintf(f, "{");
    for (int k = 0; k < TWIN_RUNS; k++) {
        const twin_metrics_t *m = &res->m[k];
        fprintf(f,
                "%s\"%s\":{\"import_kwh\":%.4f,\"export_kwh\":%.4f,\"captured_pct\":%.3f,"
                "\"overshoot_events\":%d,\"rms_w\":%.2f,\"setpoint_changes\":%ld,"
                "\"eeprom_writes\":%ld,\"throughput_kwh\":%.4f,\"final_soc_pct\":%.2f}",
                k ? "," : "", twin_run_name(k), m->import_kwh, m->export_kwh, m->captured_pct,
                m->overshoot_events, m->rms_w, m->setpoint_changes, m->eeprom_writes,
                m->throughput_kwh, m->final_soc_pct);
    }
    if (res->has_bd) {
        fprintf(f, ",\"breakdown\":{");
        for (int k = 0; k < TWIN_BD_N; k++)
            fprintf(f,
                    "%s\"%s\":{\"hours\":%.3f,\"shortfall_kwh\":%.4f,\"missed_kwh\":%.4f,"
                    "\"wrong_way_kwh\":%.4f}",
                    k ? "," : "", twin_bd_name(k), res->bd.hours[k], res->bd.delta_kwh[k],
                    res->bd.missed_kwh[k], res->bd.wrong_kwh[k]);
        fprintf(f, "}");
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
            "  --step S [0.1]\n");
}

static int s_num(const char *opt, const char *text, double lo, double hi, double *out)
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

int twin_main(int argc, char **argv)
{
    enum {
        O_JSON = 256, O_PLOT, O_TRANS, O_EEP, O_EEPI, O_ID, O_SOC, O_AH, O_CELLS, O_RM, O_SOCMIN,
        O_SOCMAX, O_MCW, O_MDW, O_EFF, O_MINA, O_TAU, O_MP, O_ML, O_TP, O_STEP, O_PROFILE, O_TRACE,
        O_VARIANT, O_KEEP, O_BD, O_EEPB, O_EEPD,
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
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    twin_model_t m;
    twin_model_defaults(&m);
    const char *profile = NULL, *config = NULL, *plot = NULL, *trace = NULL;
    bool json = false, cells_given = false, mina_given = false;
    double v;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case O_PROFILE: profile = optarg; break;
        case 'c': config = optarg; break;
        case O_JSON: json = true; break;
        case O_PLOT: plot = optarg; break;
        case O_TRACE: trace = optarg; break;
        case O_TRANS:
            if (s_num("--transients", optarg, 0, 1e15, &v))
                return 2;
            m.transients = true;
            m.transient_seed = (uint64_t)v;
            break;
        case O_EEP: m.eeprom_on = true; break;
        case O_KEEP: m.gw_keep_other = true; break;
        case O_BD: m.breakdown = true; break;
        case O_EEPB:
            if (s_num("--eeprom-budget", optarg, 1, 100000, &v))
                return 2;
            m.eeprom_budget = (int)v;
            break;
        case O_EEPD:
            if (s_num("--eeprom-burst", optarg, 1, 100000, &v))
                return 2;
            m.eeprom_burst = (int)v;
            break;
        case O_EEPI:
            if (s_num("--eeprom-interval", optarg, 0, 86400, &v))
                return 2;
            m.eeprom_interval_s = (int)v;
            break;
        case O_ID:
            if (s_num("--id", optarg, 0, 63, &v))
                return 2;
            m.ctl_id = (int)v;
            break;
#define NUMOPT(O, name, lo, hi, field)                                                             \
    case O:                                                                                        \
        if (s_num(name, optarg, lo, hi, &v))                                                       \
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
            if (s_num("--min-current", optarg, 0.01, 100, &v))
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
            if (s_num("--cells", optarg, 1, 64, &v))
                return 2;
            m.cells = (int)v;
            cells_given = true;
            break;
        case O_VARIANT:
            if (s_num("--variant", optarg, 12, 96, &v) ||
                (v != 12 && v != 24 && v != 48 && v != 96)) {
                fprintf(stderr, "bic-sim twin: --variant must be 12, 24, 48 or 96\n");
                return 2;
            }
            m.variant = (int)v;
            break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    for (int i = optind; i < argc; i++) {
        if (strcmp(argv[i], "twin") != 0) {
            fprintf(stderr, "bic-sim twin: unexpected argument '%s'\n", argv[i]);
            s_usage(stderr);
            return 2;
        }
    }
    if (!profile || !config) {
        fprintf(stderr, "bic-sim twin: --profile and -c are required\n");
        s_usage(stderr);
        return 2;
    }
    if (!cells_given)
        m.cells = m.variant / 3; /* 4, 8, 16, 32 LiFePO4 cells */
    if (!mina_given)
        m.min_current_a = bic_device_rated_current_a(m.variant) / 100.0;
    if (m.cells * 3.2 < m.variant * 0.8 || m.cells * 3.2 > m.variant * 1.15) {
        fprintf(stderr, "bic-sim twin: %d cells (%.1f V nominal) do not suit a %d V BIC; "
                "allowed: about %d cells\n", m.cells, m.cells * 3.2, m.variant, m.variant / 3);
        return 2;
    }
    if (m.soc_min_pct >= m.soc_max_pct) {
        fprintf(stderr, "bic-sim twin: --soc-min %g must be below --soc-max %g\n", m.soc_min_pct,
                m.soc_max_pct);
        return 2;
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
        rc = s_plot(plot, &series, err, sizeof err);
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
