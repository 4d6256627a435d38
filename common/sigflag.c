/*  sigflag: SIGINT/SIGTERM/SIGHUP as flags for the main loop; SIGPIPE ignored. */
#include "sigflag.h"

#include <signal.h>
#include <string.h>

#include <czmq.h>

static volatile sig_atomic_t s_stop_signal = 0;
static volatile sig_atomic_t s_reload = 0;

static void s_handler(int sig)
{
    if (sig == SIGHUP)
        s_reload = 1;
    else
        s_stop_signal = sig;
}

int sigflag_install(void)
{
    //  czmq installs its own SIGINT/SIGTERM handler when its first socket is created;
    //  disabling it first keeps ours in place for the life of the process.
    zsys_handler_set(NULL);

    s_stop_signal = 0;
    s_reload = 0;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        sigaction(SIGHUP, &sa, NULL) != 0)
        return -1;

    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGPIPE, &ign, NULL) != 0)
        return -1;
    return 0;
}

bool sigflag_stop(void)
{
    return s_stop_signal != 0;
}

int sigflag_stop_signal(void)
{
    return s_stop_signal;
}

bool sigflag_reload_take(void)
{
    if (!s_reload)
        return false;
    s_reload = 0;
    return true;
}
