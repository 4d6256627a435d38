/*  sigflag: signals as flags. SIGINT and SIGTERM ask the loop to stop, SIGHUP asks it to
    reload its config; the handlers only set volatile sig_atomic_t flags and the loop acts
    on them. SIGPIPE is ignored (a closed peer is an error return, not a death).
    czmq's own SIGINT/SIGTERM handling is switched off so these flags stay the only one.
*/
#ifndef BIC_SIGFLAG_H
#define BIC_SIGFLAG_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  Install the handlers (call once in main, before creating sockets). Returns 0 or -1
    (errno set). Calling it again resets the flags. */
int sigflag_install(void);

/*  True once SIGINT or SIGTERM arrived (stays true). */
bool sigflag_stop(void);

/*  The signal number that asked to stop (SIGINT or SIGTERM), 0 if none. */
int sigflag_stop_signal(void);

/*  True when SIGHUP arrived since the last call; clears the flag. */
bool sigflag_reload_take(void);

#ifdef __cplusplus
}
#endif

#endif
