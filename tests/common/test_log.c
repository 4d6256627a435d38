/*  Tests of the logger: level filtering, the line format on stderr, the trace file from
    [ALL] TraceFilePath, and a trace directory that cannot be written.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"

//  Run FN with stderr captured into BUF.
static void capture_stderr(void (*fn)(void), char *buf, size_t n)
{
    char path[] = "/tmp/bic-test-log-stderr-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    ssize_t len = read(fd, buf, n - 1);
    buf[len > 0 ? len : 0] = '\0';
    close(fd);
    unlink(path);
}

static void s_log_some(void)
{
    log_debug("not shown %d", 1);
    log_info("hello %s", "world");
    log_warn("careful");
    log_error("broken: %d", 42);
}

static void test_stderr_levels_and_format(void **state)
{
    char out[2048];
    log_init("bic-test");
    capture_stderr(s_log_some, out, sizeof out);
    assert_string_equal(out, "bic-test info: hello world\n"
                             "bic-test warn: careful\n"
                             "bic-test error: broken: 42\n");

    log_set_level(BIC_LOG_ERROR);
    assert_false(log_enabled(BIC_LOG_WARN));
    capture_stderr(s_log_some, out, sizeof out);
    assert_string_equal(out, "bic-test error: broken: 42\n");

    log_set_level(BIC_LOG_DEBUG);
    log_set_timestamps(true);
    capture_stderr(s_log_some, out, sizeof out);
    //  "YYYY-MM-DD HH:MM:SS.mmm bic-test debug: not shown 1"
    assert_non_null(strstr(out, " bic-test debug: not shown 1\n"));
    assert_true(out[4] == '-' && out[7] == '-' && out[13] == ':' && out[19] == '.');
    log_init("bic-test");
}

static void s_flood(void)
{
    for (int i = 0; i < 50; i++)
        log_info("device 1: set DIRECTION_CTRL = %d by 'flood-%d'", i % 2, i);
    log_warn("another call site");
    for (int i = 0; i < 30; i++)
        log_debug("debug line %d", i); /* asked for: never held back */
    log_flush_suppressed();
}

/* A flood from one call site: 20 lines, then one line that counts the rest and shows the
 * last; other call sites and debug lines are not held back. */
static void test_flood_is_cut_short(void **state)
{
    char out[16384];
    log_init("bic-test");
    log_set_level(BIC_LOG_DEBUG);
    capture_stderr(s_flood, out, sizeof out);
    log_set_level(BIC_LOG_INFO);
    int lines = 0, sets = 0, debug = 0;
    for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    for (const char *p = out; (p = strstr(p, "info: device 1: set")) != NULL; p++)
        sets++;
    for (const char *p = out; (p = strstr(p, "debug: debug line")) != NULL; p++)
        debug++;
    assert_int_equal(sets, 20);
    assert_int_equal(debug, 30);
    assert_non_null(strstr(out, "bic-test warn: another call site\n"));
    assert_non_null(strstr(out, "bic-test info: 30 more lines like this within 10 s not shown: "
                                "device 1: set DIRECTION_CTRL = 1 by 'flood-49'\n"));
    assert_int_equal(lines, 20 + 1 + 30 + 1);
}

static void test_level_parse(void **state)
{
    log_level_t level = BIC_LOG_ERROR;
    assert_int_equal(log_level_parse("DEBUG", &level), 0);
    assert_int_equal(level, BIC_LOG_DEBUG);
    assert_int_equal(log_level_parse("warning", &level), 0);
    assert_int_equal(level, BIC_LOG_WARN);
    assert_int_equal(log_level_parse("", &level), 0);
    assert_int_equal(level, BIC_LOG_INFO);
    assert_int_equal(log_level_parse("loud", &level), -1);
    assert_int_equal(level, BIC_LOG_INFO);
    assert_string_equal(log_level_name(BIC_LOG_ERROR), "error");
}

static char s_dir[64];

static config_t *config_with(const char *text)
{
    char path[] = "/tmp/bic-test-log-ini-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char err[512];
    config_t *cfg = config_load(path, err, sizeof err);
    unlink(path);
    if (!cfg)
        fail_msg("%s", err);
    return cfg;
}

static void s_log_two(void)
{
    log_info("info line");
    log_warn("warn line");
}

static void test_trace_file_from_config(void **state)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/bic-test-log-XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    char text[256];
    snprintf(text, sizeof text, "[ALL]\nTraceLevel=warn\nTraceFilePath=\"%s\"\n", s_dir);
    config_t *cfg = config_with(text);
    assert_int_equal(log_setup_from_config(cfg, "bic-gw"), 0);
    assert_int_equal(log_get_level(), BIC_LOG_WARN);
    char out[1024];
    capture_stderr(s_log_two, out, sizeof out);
    assert_string_equal(out, "bic-gw warn: warn line\n");
    log_close();

    char path[128];
    snprintf(path, sizeof path, "%s/bic2mqtt.log", s_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[256] = "";
    assert_non_null(fgets(line, sizeof line, f));
    //  The file always carries timestamps; the info line was filtered out.
    assert_non_null(strstr(line, " bic-gw warn: warn line\n"));
    assert_true(line[4] == '-');
    assert_null(fgets(line, sizeof line, f));
    fclose(f);
    unlink(path);
    rmdir(s_dir);
    config_destroy(&cfg);

    //  A directory that does not exist: -1, and stderr logging goes on.
    cfg = config_with("[ALL]\nTraceFilePath=/nonexistent/dir\n");
    assert_int_equal(log_setup_from_config(cfg, "bic-gw"), -1);
    capture_stderr(s_log_two, out, sizeof out);
    assert_non_null(strstr(out, "bic-gw info: info line\n"));
    config_destroy(&cfg);
    log_close();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stderr_levels_and_format),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_flood_is_cut_short),
        cmocka_unit_test(test_trace_file_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
