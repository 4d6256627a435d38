/*
 * twin_group_cli: `bic-sim twin --units N ...`, the group twin's command line and its table
 * and JSON output (twin_group.h).
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "twin_group.h"

bool twin_group_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--units") == 0 || strncmp(argv[i], "--units=", 8) == 0)
            return true;
    return false;
}

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: bic-sim twin --units N --profile FILE.csv -c bic2mqtt.ini [options]\n"
            "  N converters (1-%d) under one controller and the group dispatch, against an\n"
            "  ideal battery of their combined power; the profile's and the device's powers\n"
            "  are per unit\n"
            "  --json                  print the figures as one JSON object\n"
            "  --separate-batteries    one battery per unit (default: one battery of N x --ah)\n"
            "  --unit-soc LIST         each battery's initial SOC, e.g. 40,60 (one per unit)\n"
            "  --unit-lost U@HH:MM-HH:MM  unit U is lost from the first time until the second\n"
            "  --stage-hyst F          staging hysteresis (fraction of the threshold, 0-1)\n"
            "  --rotate-wh W           lead unit rotation energy (0: the first unit leads)\n"
            "  --no-soc-balance        separate batteries: share by limits, not by SOC\n"
            "  (without these three: Id/X/Group/... of the configuration, by default 15 %%,\n"
            "  1000 Wh, balanced; with Id/X/Devices, --units must be its count and each device's\n"
            "  limits and [DEVICE] Battery come from the configuration)\n"
            "  --transients SEED  --id X  --soc PCT [50]  --ah AH [280]  --step S [0.1]\n",
            CTL_GROUP_MAX);
}

static int s_socs(const char *text, twin_group_model_t *g, int *count)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (n >= CTL_GROUP_MAX) {
            fprintf(stderr, "bic-sim twin: --unit-soc: more than %d values\n", CTL_GROUP_MAX);
            return -1;
        }
        if (twin_opt_num("--unit-soc", tok, 0, 100, &g->unit_soc_pct[n]))
            return -1;
        n++;
    }
    *count = n;
    return 0;
}

static int s_lost(const char *text, twin_group_model_t *g)
{
    int u, h1, m1, h2, m2, used = 0;
    if (sscanf(text, "%d@%d:%d-%d:%d%n", &u, &h1, &m1, &h2, &m2, &used) != 5 ||
        text[used] != '\0' || u < 0 || h1 < 0 || h1 > 24 || m1 < 0 || m1 > 59 || h2 < 0 ||
        h2 > 24 || m2 < 0 || m2 > 59) {
        fprintf(stderr,
                "bic-sim twin: --unit-lost '%s': expected U@HH:MM-HH:MM (unit number, the time "
                "it is lost and the time it is back, 00:00-24:00), e.g. 0@12:00-15:00\n",
                text);
        return -1;
    }
    g->lost_unit = u;
    g->lost_from_s = h1 * 3600.0 + m1 * 60.0;
    g->lost_until_s = h2 * 3600.0 + m2 * 60.0;
    return 0;
}

void twin_group_print_table(FILE *f, const twin_group_result_t *res)
{
    fprintf(f, "%-8s %9s %9s %10s %9s %9s %8s  %s\n", "run", "import", "export", "shortfall",
            "losses", "through", "changes", "per unit: kWh / h running / end SOC");
    for (int k = 0; k < TWIN_G_RUNS; k++) {
        const twin_group_metrics_t *m = &res->m[k];
        fprintf(f, "%-8s %9.3f %9.3f %10.3f %9.3f %9.3f %8ld ", twin_group_run_name(k),
                m->import_kwh, m->export_kwh, m->shortfall_kwh, m->loss_kwh, m->throughput_kwh,
                m->unit_changes);
        if (k == TWIN_G_STAGED || k == TWIN_G_EVEN)
            for (int i = 0; i < res->units; i++)
                fprintf(f, " [%d] %.2f/%.1f/%.0f%%", i, m->unit_kwh[i], m->unit_hours[i],
                        m->unit_soc_pct[i]);
        fprintf(f, "\n");
    }
    const twin_group_metrics_t *s = &res->m[TWIN_G_STAGED];
    if (s->takeover_s >= 0 || s->lost_grid_kwh > 0)
        fprintf(f,
                "unit lost: grid exchange meanwhile %.3f kWh (ideal %.3f); its share handed over "
                "%s%.1f s (the commands), taken over %s%.1f s (the units' response)\n",
                s->lost_grid_kwh, res->m[TWIN_G_IDEAL].lost_grid_kwh,
                s->handover_s < 0 ? "never: " : "after ", s->handover_s < 0 ? 0.0 : s->handover_s,
                s->takeover_s < 0 ? "never: " : "after ", s->takeover_s < 0 ? 0.0 : s->takeover_s);
    fprintf(f, "kWh; losses: in the converters (curve), the ideal at its constant efficiency\n");
}

void twin_group_print_json(FILE *f, const twin_group_result_t *res)
{
    fprintf(f, "{\"units\":%d", res->units);
    for (int k = 0; k < TWIN_G_RUNS; k++) {
        const twin_group_metrics_t *m = &res->m[k];
        fprintf(f,
                ",\"%s\":{\"import_kwh\":%.4f,\"export_kwh\":%.4f,\"shortfall_kwh\":%.4f,"
                "\"loss_kwh\":%.4f,\"throughput_kwh\":%.4f,\"unit_changes\":%ld,"
                "\"takeover_s\":%.1f,\"handover_s\":%.1f,\"lost_grid_kwh\":%.4f,\"unit_kwh\":[",
                twin_group_run_name(k), m->import_kwh, m->export_kwh, m->shortfall_kwh, m->loss_kwh,
                m->throughput_kwh, m->unit_changes, m->takeover_s, m->handover_s, m->lost_grid_kwh);
        for (int i = 0; i < res->units; i++)
            fprintf(f, "%s%.4f", i ? "," : "", m->unit_kwh[i]);
        fprintf(f, "],\"unit_hours\":[");
        for (int i = 0; i < res->units; i++)
            fprintf(f, "%s%.3f", i ? "," : "", m->unit_hours[i]);
        fprintf(f, "],\"unit_soc_pct\":[");
        for (int i = 0; i < res->units; i++)
            fprintf(f, "%s%.2f", i ? "," : "", m->unit_soc_pct[i]);
        fprintf(f, "]}");
    }
    fprintf(f, "}\n");
}

int twin_group_main(int argc, char **argv)
{
    enum {
        O_UNITS = 256,
        O_PROFILE,
        O_JSON,
        O_SEP,
        O_USOC,
        O_LOST,
        O_HYST,
        O_ROT,
        O_NOBAL,
        O_TRANS,
        O_ID,
        O_SOC,
        O_AH,
        O_STEP,
    };
    static const struct option opts[] = {
        {"units", required_argument, NULL, O_UNITS},
        {"profile", required_argument, NULL, O_PROFILE},
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, O_JSON},
        {"separate-batteries", no_argument, NULL, O_SEP},
        {"unit-soc", required_argument, NULL, O_USOC},
        {"unit-lost", required_argument, NULL, O_LOST},
        {"stage-hyst", required_argument, NULL, O_HYST},
        {"rotate-wh", required_argument, NULL, O_ROT},
        {"no-soc-balance", no_argument, NULL, O_NOBAL},
        {"transients", required_argument, NULL, O_TRANS},
        {"id", required_argument, NULL, O_ID},
        {"soc", required_argument, NULL, O_SOC},
        {"ah", required_argument, NULL, O_AH},
        {"step", required_argument, NULL, O_STEP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    twin_group_model_t g;
    twin_group_model_defaults(&g);
    const char *profile = NULL, *config = NULL;
    bool json = false;
    int socs = 0;
    int64_t n;
    double v;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case O_UNITS:
            if (twin_opt_whole("--units", optarg, 1, CTL_GROUP_MAX, &n))
                return 2;
            g.units = (int)n;
            break;
        case O_PROFILE:
            profile = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case O_JSON:
            json = true;
            break;
        case O_SEP:
            g.separate = true;
            break;
        case O_USOC:
            if (s_socs(optarg, &g, &socs))
                return 2;
            break;
        case O_LOST:
            if (s_lost(optarg, &g))
                return 2;
            break;
        case O_HYST:
            if (twin_opt_num("--stage-hyst", optarg, 0, 1, &g.stage_hyst))
                return 2;
            break;
        case O_ROT:
            if (twin_opt_num("--rotate-wh", optarg, 0, 1e7, &g.rotate_wh))
                return 2;
            break;
        case O_NOBAL:
            g.soc_balance = false;
            break;
        case O_TRANS:
            if (twin_opt_whole("--transients", optarg, 0, 1e15, &n))
                return 2;
            g.base.transients = true;
            g.base.transient_seed = (uint64_t)n;
            break;
        case O_ID:
            if (twin_opt_whole("--id", optarg, 0, 63, &n))
                return 2;
            g.base.ctl_id = (int)n;
            break;
        case O_SOC:
            if (twin_opt_num("--soc", optarg, 0, 100, &v))
                return 2;
            g.base.soc_pct = v;
            break;
        case O_AH:
            if (twin_opt_num("--ah", optarg, 1, 100000, &g.base.capacity_ah))
                return 2;
            break;
        case O_STEP:
            if (twin_opt_num("--step", optarg, 0.01, 1, &g.base.step_s))
                return 2;
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
            return 2;
        }
    }
    if (!profile || !config) {
        fprintf(stderr, "bic-sim twin: --profile and -c are required\n");
        return 2;
    }
    if (socs > 0 && (!g.separate || socs != g.units)) {
        fprintf(stderr,
                "bic-sim twin: --unit-soc gives %d values: it needs --separate-batteries and "
                "one value per unit (%d)\n",
                socs, g.units);
        return 2;
    }
    if (socs == 0)
        for (int i = 0; i < CTL_GROUP_MAX; i++)
            g.unit_soc_pct[i] = g.base.soc_pct;
    char err[2048] = "";
    if (twin_group_model_validate(&g, err, sizeof err) != 0) {
        fprintf(stderr, "bic-sim twin: %s\n", err);
        return 2;
    }
    household_t *hh = household_load(profile, err, sizeof err);
    if (!hh) {
        fprintf(stderr, "bic-sim twin: %s\n", err);
        return 1;
    }
    twin_group_result_t res;
    int rc = twin_group_run(hh, config, &g, &res, err, sizeof err);
    household_destroy(&hh);
    if (rc != 0) {
        fprintf(stderr, "bic-sim twin: %s\n", err);
        return 1;
    }
    if (json)
        twin_group_print_json(stdout, &res);
    else
        twin_group_print_table(stdout, &res);
    return 0;
}
