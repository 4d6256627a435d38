/*
 * The twin on the shared days: runs `twin --json` (the same entry point as `bic-sim twin`)
 * on both measured days, with fast transients off and on, and with EEPROM writes on, and
 * checks the controller's figures against the seed's and the write budget. The figures come
 * from simulated time, so they are deterministic; nothing here measures wall-clock time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <math.h>

#include <cJSON.h>
#include <cmocka.h>

#include "twin.h"

#ifndef BIC_SOURCE_DIR
#define BIC_SOURCE_DIR "."
#endif
#define INI BIC_SOURCE_DIR "/sim/twin-example.ini"
#define P1 BIC_SOURCE_DIR "/data/profiles/p1_clear_march.csv"
#define P3 BIC_SOURCE_DIR "/data/profiles/p3_overcast_april.csv"

#define DAILY_BUDGET 1095 /* 4,000,000 writes over 10 years */

/* Run twin_main with argv, its stdout into a string (caller frees); returns the exit code. */
static int s_twin(char **out, int argc, char **argv)
{
    char path[] = "/tmp/test_twin_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDOUT_FILENO) >= 0);
    int rc = twin_main(argc, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    long len = lseek(fd, 0, SEEK_END);
    lseek(fd, 0, SEEK_SET);
    *out = calloc(1, (size_t)(len > 0 ? len : 0) + 1);
    assert_non_null(*out);
    if (len > 0)
        assert_int_equal(read(fd, *out, (size_t)len), len);
    close(fd);
    unlink(path);
    return rc;
}

typedef struct {
    double x, import, export_, captured, rms, thru, soc;
    int over;
    long changes, eeprom;
} fig_t;

static fig_t s_fig(const cJSON *root, const char *run)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, run);
    assert_true(cJSON_IsObject(o));
    static const char *keys[] = {"import_kwh",      "export_kwh",     "captured_pct",
                                 "overshoot_events", "rms_w",          "setpoint_changes",
                                 "eeprom_writes",    "throughput_kwh", "final_soc_pct"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, keys[i])));
    fig_t f;
    f.import = cJSON_GetObjectItemCaseSensitive(o, "import_kwh")->valuedouble;
    f.export_ = cJSON_GetObjectItemCaseSensitive(o, "export_kwh")->valuedouble;
    f.x = f.import + f.export_;
    f.captured = cJSON_GetObjectItemCaseSensitive(o, "captured_pct")->valuedouble;
    f.over = cJSON_GetObjectItemCaseSensitive(o, "overshoot_events")->valueint;
    f.rms = cJSON_GetObjectItemCaseSensitive(o, "rms_w")->valuedouble;
    f.changes = (long)cJSON_GetObjectItemCaseSensitive(o, "setpoint_changes")->valuedouble;
    f.eeprom = (long)cJSON_GetObjectItemCaseSensitive(o, "eeprom_writes")->valuedouble;
    f.thru = cJSON_GetObjectItemCaseSensitive(o, "throughput_kwh")->valuedouble;
    f.soc = cJSON_GetObjectItemCaseSensitive(o, "final_soc_pct")->valuedouble;
    return f;
}

typedef struct {
    fig_t ctl, none, ideal, seed;
} day_t;

static day_t s_day_x(const char *profile, bool transients, bool eeprom, const char *const *extra);

static day_t s_day(const char *profile, bool transients, bool eeprom)
{
    return s_day_x(profile, transients, eeprom, NULL);
}

/* The same with more options (extra: NULL-terminated, may be NULL). */
static day_t s_day_x(const char *profile, bool transients, bool eeprom, const char *const *extra)
{
    char *argv[20];
    int argc = 0;
    argv[argc++] = "twin";
    argv[argc++] = "--profile";
    argv[argc++] = (char *)profile;
    argv[argc++] = "-c";
    argv[argc++] = INI;
    argv[argc++] = "--json";
    if (transients) {
        argv[argc++] = "--transients";
        argv[argc++] = "1";
    }
    if (eeprom)
        argv[argc++] = "--eeprom-on";
    for (int i = 0; extra && extra[i] && argc < 19; i++)
        argv[argc++] = (char *)extra[i];
    argv[argc] = NULL;
    char *out = NULL;
    assert_int_equal(s_twin(&out, argc, argv), 0);
    cJSON *root = cJSON_Parse(out);
    if (!root)
        fprintf(stderr, "not JSON: %s\n", out);
    assert_non_null(root);
    day_t d = {s_fig(root, "controller"), s_fig(root, "none"), s_fig(root, "ideal"),
               s_fig(root, "seed")};
    cJSON_Delete(root);
    free(out);
    double sc = d.ctl.x - d.ideal.x, ss = d.seed.x - d.ideal.x;
    fprintf(stderr,
            "%s%s%s: shortfall controller %.3f seed %.3f kWh (%.2f); overshoot %d / %d; "
            "EEPROM writes %ld / %ld\n",
            strrchr(profile, '/') + 1, transients ? " +transients" : "",
            eeprom ? " +eeprom" : "", sc, ss, ss > 0 ? sc / ss : 0, d.ctl.over, d.seed.over,
            d.ctl.eeprom, d.seed.eeprom);
    return d;
}

/* What holds on every day: references are consistent and the controller beats the seed. */
static void s_common(const day_t *d)
{
    assert_true(d->none.x > d->ideal.x);
    assert_true(d->ideal.captured > 99.99 && d->ideal.captured < 100.01);
    assert_true(d->none.eeprom == 0 && d->ideal.eeprom == 0);
    assert_true(d->ctl.soc >= 4.5 && d->ctl.soc <= 100);
    assert_true(d->ctl.thru > 0.5);
    assert_true(d->ctl.captured > d->seed.captured);
}

static void s_targets(const char *profile, bool transients)
{
    day_t d = s_day(profile, transients, false);
    s_common(&d);
    double sc = d.ctl.x - d.ideal.x, ss = d.seed.x - d.ideal.x;
    assert_true(ss > 0);
    /* Overshoot events: at most a quarter of the seed's. */
    assert_true(4 * d.ctl.over <= d.seed.over);
    /* Shortfall: at most a quarter of the seed's (the controller reaches 0.13-0.23,
     * docs/charge-ctl.md). */
    assert_true(sc <= ss / 4.0);
    assert_true(d.ctl.eeprom <= DAILY_BUDGET);
}

static void test_p1_clear(void **state)
{
    s_targets(P1, false);
}

static void test_p1_clear_transients(void **state)
{
    s_targets(P1, true);
}

static void test_p3_overcast(void **state)
{
    s_targets(P3, false);
}

static void test_p3_overcast_transients(void **state)
{
    s_targets(P3, true);
}

static void test_eeprom_on_stays_in_budget(void **state)
{
    const char *days[] = {P1, P3};
    for (int i = 0; i < 2; i++) {
        day_t d = s_day(days[i], false, true);
        /* Old firmware: every setpoint write is persisted. The seed blows the budget on
         * the sunny day; the controller stays within it and still captures most of the
         * ideal battery's benefit. */
        assert_true(d.ctl.eeprom > 0);
        assert_true(d.ctl.eeprom <= DAILY_BUDGET);
        assert_true(d.ctl.captured > 90);
        if (i == 0)
            assert_true(d.seed.eeprom > DAILY_BUDGET);
        /* On the overcast day the controller within the budget still leaves less than the
         * seed without one (0.60 of it); the target of a half is not reached on either day
         * (docs/charge-ctl.md explains why). */
        if (i == 1)
            assert_true(d.ctl.x - d.ideal.x < d.seed.x - d.ideal.x);
    }
}

/* A gateway whose EEPROM budget is a daily count (a token bucket of 1095 a day, 300 deep)
 * with 20 s between writes: the controller then runs its normal law and meets the target
 * with EEPROM writes on, a shortfall at most half the seed's, within 1095 writes a day. */
static void test_eeprom_on_with_a_daily_budget(void **state)
{
    static const char *const extra[] = {"--eeprom-interval", "20", "--eeprom-budget", "1095",
                                        NULL};
    const char *days[] = {P1, P3};
    for (int i = 0; i < 2; i++) {
        for (int tr = 0; tr < 2; tr++) {
            day_t d = s_day_x(days[i], tr, true, extra);
            double sc = d.ctl.x - d.ideal.x, ss = d.seed.x - d.ideal.x;
            assert_true(d.ctl.eeprom > 0);
            assert_true(d.ctl.eeprom <= DAILY_BUDGET);
            assert_true(sc <= ss / 2.0);
        }
    }
}

/* --breakdown puts every simulated step in one situation: the parts add up to the
 * controller's shortfall, and each part is the battery throughput it missed plus twice its
 * wrong-way energy (the ideal battery has none with a zero grid offset). Without the option
 * the JSON keeps its four runs only. */
static void test_breakdown_adds_up(void **state)
{
    const char *days[] = {P1, P3};
    for (int i = 0; i < 2; i++) {
        char *argv[] = {"twin", "--profile", (char *)days[i], "-c", INI, "--json",
                        "--eeprom-on", "--breakdown", NULL};
        char *out = NULL;
        assert_int_equal(s_twin(&out, 8, argv), 0);
        cJSON *root = cJSON_Parse(out);
        assert_non_null(root);
        fig_t c = s_fig(root, "controller"), id = s_fig(root, "ideal");
        const cJSON *bd = cJSON_GetObjectItemCaseSensitive(root, "breakdown");
        assert_true(cJSON_IsObject(bd));
        double hours = 0, sum = 0, missed = 0, wrong = 0;
        for (int k = 0; k < TWIN_BD_N; k++) {
            const cJSON *part = cJSON_GetObjectItemCaseSensitive(bd, twin_bd_name(k));
            assert_true(cJSON_IsObject(part));
            double h = cJSON_GetObjectItemCaseSensitive(part, "hours")->valuedouble;
            double d = cJSON_GetObjectItemCaseSensitive(part, "shortfall_kwh")->valuedouble;
            double m = cJSON_GetObjectItemCaseSensitive(part, "missed_kwh")->valuedouble;
            double w = cJSON_GetObjectItemCaseSensitive(part, "wrong_way_kwh")->valuedouble;
            assert_true(h >= 0 && w >= 0);
            assert_true(fabs(d - (m + 2 * w)) < 0.002);
            hours += h;
            sum += d;
            missed += m;
            wrong += w;
        }
        fprintf(stderr, "%s +eeprom: shortfall %.4f = parts %.4f = missed %.4f + 2 x %.4f\n",
                strrchr(days[i], '/') + 1, c.x - id.x, sum, missed, wrong);
        assert_true(fabs(hours - 24) < 0.01);
        assert_true(fabs(sum - (c.x - id.x)) < 0.002);
        assert_true(wrong > 0); /* the write budget makes some flow the wrong way */
        cJSON_Delete(root);
        free(out);
    }
    char *argv[] = {"twin", "--profile", P3, "-c", INI, "--json", NULL};
    char *out = NULL;
    assert_int_equal(s_twin(&out, 6, argv), 0);
    cJSON *root = cJSON_Parse(out);
    assert_non_null(root);
    assert_null(cJSON_GetObjectItemCaseSensitive(root, "breakdown"));
    cJSON_Delete(root);
    free(out);
}

static void test_bad_usage(void **state)
{
    char *out = NULL;
    char *a1[] = {"twin", "--profile", P1, NULL};
    assert_int_equal(s_twin(&out, 3, a1), 2); /* no -c */
    free(out);
    char *a2[] = {"twin", "--profile", P1, "-c", INI, "--soc", "150", NULL};
    assert_int_equal(s_twin(&out, 7, a2), 2);
    free(out);
    char *a3[] = {"twin", "--profile", "/nonexistent.csv", "-c", INI, NULL};
    assert_int_equal(s_twin(&out, 5, a3), 1);
    free(out);
    char *a4[] = {"twin", "--profile", P1, "-c", INI, "--bogus", NULL};
    assert_int_equal(s_twin(&out, 6, a4), 2);
    free(out);
    char *a5[] = {"twin", "--profile", P1, "-c", INI, "--eeprom-budget", "0", NULL};
    assert_int_equal(s_twin(&out, 7, a5), 2);
    free(out);
    char *a6[] = {"twin", "--profile", P1, "-c", INI, "--eeprom-burst", "x", NULL};
    assert_int_equal(s_twin(&out, 7, a6), 2);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_p1_clear),
        cmocka_unit_test(test_p1_clear_transients),
        cmocka_unit_test(test_p3_overcast),
        cmocka_unit_test(test_p3_overcast_transients),
        cmocka_unit_test(test_eeprom_on_stays_in_budget),
        cmocka_unit_test(test_eeprom_on_with_a_daily_budget),
        cmocka_unit_test(test_breakdown_adds_up),
        cmocka_unit_test(test_bad_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
