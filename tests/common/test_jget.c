/*  Tests of the JSON getters, jpath_number and num_parse: good values pass, every bad
    value is refused with a message naming the field and what is allowed.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <string.h>

#include <cmocka.h>

#include "jget.h"

static cJSON *s_doc;

static int setup(void **state)
{
    s_doc = cJSON_Parse("{\"dev\":3,\"current_a\":12.5,\"neg\":-7,\"frac\":2.5,"
                        "\"big\":1e300,\"name\":\"charge-ctl\",\"flag\":true,"
                        "\"numtext\":\"12\",\"nul\":null,\"arr\":[1,2]}");
    return s_doc ? 0 : -1;
}

static int teardown(void **state)
{
    cJSON_Delete(s_doc);
    return 0;
}

static void test_int(void **state)
{
    long v = -1;
    char err[200];
    assert_int_equal(jget_int(s_doc, "dev", 0, 63, &v, err, sizeof err), 0);
    assert_int_equal(v, 3);
    assert_int_equal(jget_int(s_doc, "neg", -10, 0, &v, err, sizeof err), 0);
    assert_int_equal(v, -7);

    v = 99;
    assert_int_equal(jget_int(s_doc, "dev", 4, 63, &v, err, sizeof err), -1);
    assert_int_equal(v, 99); //  untouched on error
    assert_string_equal(err, "'dev' must be an integer between 4 and 63 (got 3)");
    assert_int_equal(jget_int(s_doc, "frac", 0, 63, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "(got 2.5)"));
    assert_int_equal(jget_int(s_doc, "big", 0, 63, &v, err, sizeof err), -1);
    assert_int_equal(jget_int(s_doc, "numtext", 0, 63, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "got a string \"12\""));
    assert_int_equal(jget_int(s_doc, "missing", 0, 63, &v, err, sizeof err), -1);
    assert_string_equal(err, "'missing' must be an integer between 0 and 63 (got nothing)");
    assert_int_equal(jget_int(s_doc, "nul", 0, 63, &v, NULL, 0), -1);

    //  Huge integers at the limits of long are refused, not converted with overflow.
    cJSON *huge = cJSON_Parse("{\"x\":9.3e18,\"y\":-9.3e18}");
    assert_int_equal(jget_int(huge, "x", LONG_MIN, LONG_MAX, &v, err, sizeof err), -1);
    assert_int_equal(jget_int(huge, "y", LONG_MIN, LONG_MAX, &v, err, sizeof err), -1);
    cJSON_Delete(huge);

    cJSON *arr = cJSON_GetObjectItem(s_doc, "arr");
    assert_int_equal(jget_int(arr, "x", 0, 1, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a JSON object"));
    assert_int_equal(jget_int(NULL, "x", 0, 1, &v, err, sizeof err), -1);
}

static void test_num_str_bool(void **state)
{
    double d = 0;
    char err[200];
    assert_int_equal(jget_num(s_doc, "current_a", 0, 198, &d, err, sizeof err), 0);
    assert_true(d == 12.5);
    assert_int_equal(jget_num(s_doc, "current_a", 0, 10, &d, err, sizeof err), -1);
    assert_string_equal(err, "'current_a' must be a number between 0 and 10 (got 12.5)");
    assert_int_equal(jget_num(s_doc, "name", 0, 10, &d, err, sizeof err), -1);
    assert_int_equal(jget_num(s_doc, "flag", 0, 10, &d, err, sizeof err), -1);
    assert_non_null(strstr(err, "(got true)"));

    const char *s = NULL;
    assert_int_equal(jget_str(s_doc, "name", 32, &s, err, sizeof err), 0);
    assert_string_equal(s, "charge-ctl");
    assert_int_equal(jget_str(s_doc, "name", 5, &s, err, sizeof err), -1);
    assert_string_equal(err, "'name' must be a string of at most 5 characters (got 10)");
    assert_int_equal(jget_str(s_doc, "dev", 5, &s, err, sizeof err), -1);

    bool b = false;
    assert_int_equal(jget_bool(s_doc, "flag", &b, err, sizeof err), 0);
    assert_true(b);
    assert_int_equal(jget_bool(s_doc, "dev", &b, err, sizeof err), -1);
    assert_string_equal(err, "'dev' must be true or false (got 3)");
}

static void test_optional(void **state)
{
    long v;
    double d;
    const char *s;
    bool b;
    char err[200];
    assert_int_equal(jget_int_opt(s_doc, "missing", 0, 9, 4, &v, err, sizeof err), 0);
    assert_int_equal(v, 4);
    assert_int_equal(jget_int_opt(s_doc, "nul", 0, 9, 5, &v, err, sizeof err), 0);
    assert_int_equal(v, 5);
    assert_int_equal(jget_int_opt(s_doc, "dev", 0, 9, 4, &v, err, sizeof err), 0);
    assert_int_equal(v, 3);
    //  Present but wrong is still an error.
    assert_int_equal(jget_int_opt(s_doc, "name", 0, 9, 4, &v, err, sizeof err), -1);
    assert_int_equal(jget_num_opt(s_doc, "missing", 0, 9, 1.5, &d, err, sizeof err), 0);
    assert_true(d == 1.5);
    assert_int_equal(jget_num_opt(s_doc, "current_a", 0, 9, 1.5, &d, err, sizeof err), -1);
    assert_int_equal(jget_str_opt(s_doc, "missing", 9, "dflt", &s, err, sizeof err), 0);
    assert_string_equal(s, "dflt");
    assert_int_equal(jget_bool_opt(s_doc, "missing", true, &b, err, sizeof err), 0);
    assert_true(b);
    assert_int_equal(jget_bool_opt(s_doc, "dev", true, &b, err, sizeof err), -1);
}

static void test_num_parse(void **state)
{
    double d = 0;
    assert_int_equal(num_parse("123", &d), 0);
    assert_true(d == 123);
    assert_int_equal(num_parse("  -123.5 \n", &d), 0);
    assert_true(d == -123.5);
    assert_int_equal(num_parse("+.5", &d), 0);
    assert_true(d == 0.5);
    assert_int_equal(num_parse("1e3", &d), 0);
    assert_true(d == 1000);
    assert_int_equal(num_parse("2.5E-1", &d), 0);
    assert_true(d == 0.25);
    assert_int_equal(num_parse("7.", &d), 0);
    assert_true(d == 7);

    d = 42;
    const char *bad[] = {"",     "   ", "abc", "12abc", "1 2", "nan",   "NaN", "inf",   "-Infinity",
                         "0x10", "1e",  "1e+", ".",     "-",   "1e999", "--1", "1.2.3", "0.3Id/0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (num_parse(bad[i], &d) != -1)
            fail_msg("num_parse accepted '%s'", bad[i]);
    assert_true(d == 42);
    assert_int_equal(num_parse(NULL, &d), -1);
}

static void test_utf8_check(void **state)
{
    (void)state;
    size_t at = 99;
    const char *good[] = {
        "", "plain", "K\xC3\xBChl", "\xE2\x82\xAC 5", "\xF0\x9F\x94\x8B", "\xF4\x8F\xBF\xBF"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(jget_utf8_check(good[i], strlen(good[i]), &at), 0);
    /* a stray continuation, a cut sequence, overlong forms, a surrogate, above U+10FFFF,
     * bytes that never occur */
    struct {
        const char *s;
        size_t at;
    } bad[] = {{"ab\x80", 2},       {"x\xC3", 1},        {"\xC0\xAF", 0},
               {"\xE0\x80\xAF", 0}, {"\xED\xA0\x80", 0}, {"\xF4\x90\x80\x80", 0},
               {"ok\xFF", 2},       {"\xE2\x82", 0},     {"\xF0\x8F\xBF\xBF", 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(jget_utf8_check(bad[i].s, strlen(bad[i].s), &at), -1);
        assert_int_equal(at, bad[i].at);
    }
    assert_int_equal(jget_utf8_check("\xFF", 1, NULL), -1);
}

static void test_jpath(void **state)
{
    cJSON *doc = cJSON_Parse("{\"ENERGY\":{\"Power\":-512.5,\"Text\":\" 17 \",\"Bad\":\"x\"},"
                             "\"a\":{\"b\":[{\"c\":1},{\"c\":2.5}]},\"arr\":[10,[20,30]],"
                             "\"s\":\"nan\",\"t\":true}");
    double d = 0;
    assert_int_equal(jpath_number(doc, "ENERGY.Power", &d), 0);
    assert_true(d == -512.5);
    assert_int_equal(jpath_number(doc, "ENERGY.Text", &d), 0);
    assert_true(d == 17);
    assert_int_equal(jpath_number(doc, "a.b[1].c", &d), 0);
    assert_true(d == 2.5);
    assert_int_equal(jpath_number(doc, "arr[1][0]", &d), 0);
    assert_true(d == 20);

    const char *bad[] = {
        "ENERGY.Bad",  "ENERGY.Missing", "a.b[2].c", "a.b.c", "arr[0].x", "s",    "t",
        "a",           "a..b",           ".a",       "a.",    "a[",       "a[x]", "a[-1]",
        "ENERGY.power"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (jpath_number(doc, bad[i], &d) != -1)
            fail_msg("jpath_number accepted '%s'", bad[i]);
    cJSON_Delete(doc);

    //  The whole document as a number.
    cJSON *plain = cJSON_Parse("42");
    assert_int_equal(jpath_number(plain, "", &d), 0);
    assert_true(d == 42);
    cJSON_Delete(plain);

    assert_int_equal(jpath_valid("a.b[0].c"), 0);
    assert_int_equal(jpath_valid("[0]"), 0);
    assert_int_equal(jpath_valid("a]b"), -1);
    assert_int_equal(jpath_valid(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int),      cmocka_unit_test(test_num_str_bool),
        cmocka_unit_test(test_optional), cmocka_unit_test(test_num_parse),
        cmocka_unit_test(test_jpath),    cmocka_unit_test(test_utf8_check),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
