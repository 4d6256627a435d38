/*  log: levelled lines to stderr and optionally to <TraceFilePath>/bic2mqtt.log. */
#include "log.h"
#include "config.h"
#include "monotime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#define LOG_FILE_NAME "bic2mqtt.log"
/* Floods: at most RL_BURST lines per call site (format string) and RL_WINDOW_MS; the rest are
 * counted and reported in one line when the window ends (or at log_flush_suppressed). Debug
 * lines (-v, asked for: every CAN frame) are never held back. */
#define RL_BURST 20
#define RL_WINDOW_MS 10000
#define RL_SLOTS 32

static char s_prog[64] = "";
static log_level_t s_level = BIC_LOG_INFO;
static bool s_timestamps = false;
static FILE *s_file = NULL;

static const char *const s_names[] = {"debug", "info", "warn", "error"};

static struct {
    const char *fmt; /* the call site; NULL: slot free */
    log_level_t level;
    int64_t start; /* window start, monotonic ms */
    unsigned count, dropped;
    char sample[160]; /* the last line not shown */
} s_rl[RL_SLOTS];

void log_init(const char *progname)
{
    snprintf(s_prog, sizeof s_prog, "%s", progname ? progname : "");
    s_level = BIC_LOG_INFO;
    s_timestamps = false;
}

void log_set_level(log_level_t level)
{
    if (level < BIC_LOG_DEBUG)
        level = BIC_LOG_DEBUG;
    if (level > BIC_LOG_ERROR)
        level = BIC_LOG_ERROR;
    s_level = level;
}

log_level_t log_get_level(void)
{
    return s_level;
}

int log_level_parse(const char *text, log_level_t *out)
{
    if (!text)
        return -1;
    if (*text == '\0') {
        *out = BIC_LOG_INFO;
        return 0;
    }
    for (int i = 0; i <= BIC_LOG_ERROR; i++) {
        if (strcasecmp(text, s_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    if (strcasecmp(text, "warning") == 0) {
        *out = BIC_LOG_WARN;
        return 0;
    }
    return -1;
}

const char *log_level_name(log_level_t level)
{
    if (level < BIC_LOG_DEBUG || level > BIC_LOG_ERROR)
        return "?";
    return s_names[level];
}

void log_set_timestamps(bool on)
{
    s_timestamps = on;
}

int log_set_file(const char *dir)
{
    if (s_file) {
        fclose(s_file);
        s_file = NULL;
    }
    if (!dir || *dir == '\0')
        return 0;

    char path[4096];
    int len = snprintf(path, sizeof path, "%s/%s", dir, LOG_FILE_NAME);
    if (len < 0 || (size_t)len >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    s_file = fopen(path, "ae");
    if (!s_file)
        return -1;
    //  Line buffered so a crash loses at most the line being written.
    setvbuf(s_file, NULL, _IOLBF, 0);
    return 0;
}

int log_setup_from_config(const config_t *cfg, const char *progname)
{
    log_init(progname);
    log_level_t level = BIC_LOG_INFO;
    if (log_level_parse(config_str(cfg, "ALL", "TraceLevel"), &level) == 0)
        log_set_level(level);
    log_set_timestamps(config_bool(cfg, "ALL", "LogTimestamps"));
    const char *dir = config_str(cfg, "ALL", "TraceFilePath");
    if (log_set_file(dir) != 0) {
        log_error("cannot open trace file %s/%s: %s", dir, LOG_FILE_NAME, strerror(errno));
        return -1;
    }
    return 0;
}

void log_close(void)
{
    log_flush_suppressed();
    log_set_file(NULL);
}

bool log_enabled(log_level_t level)
{
    return level >= s_level;
}

static void s_emit(FILE *out, const char *stamp, log_level_t level, const char *msg)
{
    fprintf(out, "%s%s%s%s: %s\n", stamp, s_prog, *s_prog ? " " : "", log_level_name(level), msg);
}

static void s_line(log_level_t level, const char *msg);

/* Reports what slot i held back, and frees its count. */
static void s_report(int i)
{
    if (s_rl[i].dropped) {
        char msg[320];
        snprintf(msg, sizeof msg, "%u more line%s like this within %d s not shown: %s",
                 s_rl[i].dropped, s_rl[i].dropped == 1 ? "" : "s", RL_WINDOW_MS / 1000,
                 s_rl[i].sample);
        s_line(s_rl[i].level, msg);
    }
    s_rl[i].dropped = 0;
}

void log_flush_suppressed(void)
{
    for (int i = 0; i < RL_SLOTS; i++)
        if (s_rl[i].fmt)
            s_report(i);
}

/* False when this line is one too many from its call site (counted, reported later). */
static bool s_admit(log_level_t level, const char *fmt, const char *msg)
{
    int64_t now = mono_ms();
    int slot = -1, oldest = 0;
    for (int i = 0; i < RL_SLOTS && slot < 0; i++) {
        if (s_rl[i].fmt == fmt)
            slot = i;
        else if (!s_rl[i].fmt || (s_rl[oldest].fmt && s_rl[i].start < s_rl[oldest].start))
            oldest = i;
    }
    if (slot < 0) {
        slot = oldest;
        if (s_rl[slot].fmt)
            s_report(slot);
        s_rl[slot].fmt = fmt;
        s_rl[slot].start = now;
        s_rl[slot].count = 0;
    } else if (now - s_rl[slot].start >= RL_WINDOW_MS) {
        s_report(slot);
        s_rl[slot].start = now;
        s_rl[slot].count = 0;
    }
    s_rl[slot].level = level;
    if (++s_rl[slot].count <= RL_BURST)
        return true;
    s_rl[slot].dropped++;
    size_t n = strnlen(msg, sizeof s_rl[slot].sample - 1); /* cut to fit */
    memcpy(s_rl[slot].sample, msg, n);
    s_rl[slot].sample[n] = '\0';
    return false;
}

void log_vwrite(log_level_t level, const char *fmt, va_list ap)
{
    if (!log_enabled(level))
        return;

    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (level == BIC_LOG_DEBUG || s_admit(level, fmt, msg))
        s_line(level, msg);
}

static void s_line(log_level_t level, const char *msg)
{
    char stamp[64] = "";
    //  The file always gets timestamps: unlike stderr, nothing adds them later.
    char fstamp[64] = "";
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(fstamp, sizeof fstamp, "%s.%03d ", base, (int)(tv.tv_usec / 1000) % 1000);
    if (s_timestamps)
        snprintf(stamp, sizeof stamp, "%s", fstamp);

    s_emit(stderr, stamp, level, msg);
    if (s_file)
        s_emit(s_file, fstamp, level, msg);
}

void log_write(log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, fmt, ap);
    va_end(ap);
}
