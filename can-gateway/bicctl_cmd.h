/*
 * bicctl_cmd - the command core of bicctl, the command line for bic-can-gateway.
 *
 * Knows every command (the seed's cbic2200.py set plus info, devices, status, eeprom,
 * watch), validates command values, turns a command into the gateway requests of
 * docs/ipc-protocol.md and renders the replies as the seed's plain output or as JSON.
 * Pure: no sockets, no clock, no CAN. The program shell (bicctl.c) sends the requests.
 */
#ifndef BICCTL_CMD_H
#define BICCTL_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cJSON.h>

/* Documented exit codes of bicctl (docs/bicctl.md). */
typedef enum {
    BICCTL_EXIT_OK = 0,
    BICCTL_EXIT_USAGE = 1,     /* usage error, unknown command, bad value (message has the range) */
    BICCTL_EXIT_GATEWAY = 2,   /* gateway not answering, or not speaking protocol v1 */
    BICCTL_EXIT_DEVICE = 3,    /* device offline, bus down, timeout, verify failed, not supported */
    BICCTL_EXIT_REFUSED = 4,   /* refused: out of the device's range, controlled by another client,
                                  daily EEPROM budget spent, configured limits not applied */
    BICCTL_EXIT_UNCHANGED = 5, /* a write found the device already holding the value */
    BICCTL_EXIT_DEFERRED = 6,  /* a write held back by the EEPROM spacing: not on the device yet */
} bicctl_exit_t;

/* How a command is carried out by the shell. */
typedef enum {
    BICCTL_RUN_GATEWAY, /* requests from bicctl_next_request, replies rendered */
    BICCTL_RUN_WATCH,   /* subscribe to the PUB socket, render each message */
    BICCTL_RUN_CAN_UP,  /* local: bring a SocketCAN interface up at 250 kbit/s */
    BICCTL_RUN_CAN_DOWN /* local: take a SocketCAN interface down */
} bicctl_run_t;

typedef struct bicctl_cmd bicctl_cmd_t; /* an entry of the static command table */

/* What the user asked for, after option parsing. */
typedef struct {
    int dev;            /* device number 0-67 (64-67: an NPB), or -1 without --dev */
    const char *client; /* client name sent to the gateway ("bicctl" by default) */
    const char *token;  /* the lease token sent with every request, NULL: none */
    bool json;          /* --json: structured output */
    bool table;         /* --table: faultread as one line per fault (else the seed's) */
    bool has_value;     /* a VALUE argument was given and validated */
    long value;         /* the validated VALUE (V x 100 or A x 100) */
    const char *arg;    /* the VALUE argument as given (interface name for can_up/can_down) */
} bicctl_args_t;

/* The command called NAME, or NULL when there is none. */
const bicctl_cmd_t *bicctl_cmd_find(const char *name);
const char *bicctl_cmd_name(const bicctl_cmd_t *cmd);
bicctl_run_t bicctl_cmd_run(const bicctl_cmd_t *cmd);
/* True when the command's requests may take long on the device (commissioning). */
bool bicctl_cmd_slow(const bicctl_cmd_t *cmd);

/* Print the command list with one line of help each. */
void bicctl_cmd_list(FILE *out);

/* Validate the VALUE argument of CMD (TEXT may be NULL: none given). Fills ARGS->value,
 * has_value and arg. Returns 0, or -1 with a message naming the command, what was wrong
 * and what is allowed. */
int bicctl_cmd_check_value(const bicctl_cmd_t *cmd, const char *text, bicctl_args_t *args,
                           char *err, size_t errlen);

/* The next request of CMD given the N ok replies received so far (REPLIES[0..n-1]), or NULL
 * when the command is complete. The caller owns the returned object. */
cJSON *bicctl_next_request(const bicctl_cmd_t *cmd, const bicctl_args_t *args,
                           cJSON *const *replies, size_t n);

/* Classify a gateway reply. Returns BICCTL_EXIT_OK for an ok reply, otherwise the exit code
 * for its error and a one-line message in MSG (with the allowed range for out_of_range, the
 * holder for lease_held). CMD and ARGS may be NULL. */
int bicctl_reply_check(const bicctl_cmd_t *cmd, const bicctl_args_t *args, const cJSON *reply,
                       char *msg, size_t msglen);

/* Does an error reply, the Nth of the command (1 the first), leave the command going? True
 * for a device's registers in `status` (after the info): that device is shown without them
 * and the exit code says so (bicctl_render), the others as usual. */
bool bicctl_reply_tolerated(const bicctl_cmd_t *cmd, size_t n);

/* Render the N ok replies of a completed command on OUT. Returns BICCTL_EXIT_OK, or an exit
 * code with a message in ERR when a reply lacks what the command needs (a register slot
 * with an error, a device that is offline). Output already written stays written. */
int bicctl_render(const bicctl_cmd_t *cmd, const bicctl_args_t *args, cJSON *const *replies,
                  size_t n, FILE *out, char *err, size_t errlen);

/* Render one PUB message (TOPIC, parsed JSON payload) for `watch`. Returns 1 when a line was
 * printed, 0 when the message is not selected (another device, unknown topic). DEV is the
 * selected device or -1 for all. */
int bicctl_render_pub(const char *topic, const cJSON *msg, int dev, bool json, FILE *out);

/* The outcome of a write command (on, off, charge, discharge, cvset, ...) from its ok reply:
 * one line in LINE ("cvset: VOUT_SET 27.60 V written (device 0)") and the exit code
 * (BICCTL_EXIT_OK written, BICCTL_EXIT_UNCHANGED, BICCTL_EXIT_DEFERRED). Returns -1 when CMD is
 * not a write command. */
int bicctl_write_outcome(const bicctl_cmd_t *cmd, const cJSON *reply, char *line, size_t linelen);

/* Map a gateway error code ("out_of_range", ...) to an exit code. */
int bicctl_exit_for_code(const char *code);

#endif
