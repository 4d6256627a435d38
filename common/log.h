/*  log: the programs' logger. Lines go to stderr (journald and supervisord capture it),
    optionally also appended to <TraceFilePath>/bic2mqtt.log, as
        [timestamp ]PROGNAME LEVEL: message
    Only program code logs; library code returns errors to its caller.
    The logger is process-global state, set up once in main() (not thread-safe to set up
    while other threads log).
*/
#ifndef BIC_LOG_H
#define BIC_LOG_H

#include <stdbool.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

struct config_t;

/*  Named BIC_LOG_* so they do not clash with <syslog.h>'s LOG_DEBUG/LOG_INFO. */
typedef enum {
    BIC_LOG_DEBUG = 0,
    BIC_LOG_INFO = 1,
    BIC_LOG_WARN = 2,
    BIC_LOG_ERROR = 3,
} log_level_t;

/*  Program name prefix (copied; NULL = none). Level info, stderr, no timestamps. */
void log_init(const char *progname);

/*  Set the level below which lines are dropped. */
void log_set_level(log_level_t level);
log_level_t log_get_level(void);

/*  Parse "debug"/"info"/"warn"/"error" (case-insensitive; "warning" too; "" = info).
    Returns 0, or -1 (OUT untouched) when the text is none of these. */
int log_level_parse(const char *text, log_level_t *out);

/*  Name of a level ("debug", "info", "warn", "error"). */
const char *log_level_name(log_level_t level);

/*  Prefix lines with a local-time timestamp (2026-11-30 09:15:02.123). */
void log_set_timestamps(bool on);

/*  Also append lines to DIR/bic2mqtt.log. DIR NULL or "" closes the file. Returns 0, or
    -1 with errno set when the file cannot be opened (stderr logging continues). */
int log_set_file(const char *dir);

/*  [ALL] TraceLevel, TraceFilePath, LogTimestamps, and PROGNAME. Returns 0, or -1 when the
    trace file cannot be opened (logged as an error on stderr; stderr logging continues). */
int log_setup_from_config(const struct config_t *cfg, const char *progname);

/*  Close the trace file (if any), after log_flush_suppressed(). */
void log_close(void);

/*  Floods are cut short: a call site (format string) writes at most 20 lines in 10 s (debug
    lines excepted); the lines beyond are counted and reported in one line ("N more lines
    like this within 10 s not shown: <the last one>") when its next window starts. This
    writes those reports now. */
void log_flush_suppressed(void);

/*  True when a line of LEVEL would be written (to skip costly formatting). */
bool log_enabled(log_level_t level);

void log_write(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vwrite(log_level_t level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define log_debug(...) log_write(BIC_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(BIC_LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(BIC_LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(BIC_LOG_ERROR, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif
