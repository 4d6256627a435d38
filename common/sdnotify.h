/*  sdnotify: systemd service notifications (READY, WATCHDOG, STATUS). Thin wrappers over
    libsystemd's sd_notify when built with it (BIC_HAVE_SYSTEMD); otherwise, and when the
    process is not run by systemd (no NOTIFY_SOCKET), they do nothing and return 0.
*/
#ifndef BIC_SDNOTIFY_H
#define BIC_SDNOTIFY_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  READY=1: start-up finished. Returns >=0 (0: not under systemd), <0 on error. */
int sdnotify_ready(void);

/*  STOPPING=1 / RELOADING=1. */
int sdnotify_stopping(void);
int sdnotify_reloading(void);

/*  WATCHDOG=1: call at least every sdnotify_watchdog_interval_us()/2. */
int sdnotify_watchdog(void);

/*  STATUS=<formatted text>, shown by systemctl status. */
int sdnotify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*  The watchdog interval the service manager expects, in us; 0 when the watchdog is off. */
int64_t sdnotify_watchdog_interval_us(void);

#ifdef __cplusplus
}
#endif

#endif
