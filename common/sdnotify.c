/*  sdnotify: sd_notify wrappers; no-ops without libsystemd or outside systemd. */
#include "sdnotify.h"

#include <stdarg.h>
#include <stdio.h>

#ifdef BIC_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

static int s_notify(const char *state)
{
#ifdef BIC_HAVE_SYSTEMD
    return sd_notify(0, state);
#else
    (void)state;
    return 0;
#endif
}

int sdnotify_ready(void)
{
    return s_notify("READY=1");
}

int sdnotify_stopping(void)
{
    return s_notify("STOPPING=1");
}

int sdnotify_reloading(void)
{
    return s_notify("RELOADING=1");
}

int sdnotify_watchdog(void)
{
    return s_notify("WATCHDOG=1");
}

int sdnotify_status(const char *fmt, ...)
{
    char buf[256];
    int len = snprintf(buf, sizeof buf, "STATUS=");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, sizeof buf - (size_t)len, fmt, ap);
    va_end(ap);
    return s_notify(buf);
}

int64_t sdnotify_watchdog_interval_us(void)
{
#ifdef BIC_HAVE_SYSTEMD
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0)
        return (int64_t)usec;
#endif
    return 0;
}
