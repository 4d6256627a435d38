/*
 * The gateway's state shared by its files (gateway.c: the loop and the wiring; gw_ops.c: the
 * request handlers; gw_writes.c: the write jobs; gw_telemetry.c, gw_events.c, gw_discover.c,
 * gw_bus.c, gw_safe.c, gw_limits.c, gw_persist.c: one concern each, see README.md): settings,
 * jobs (requests and the gateway's own work in progress), the service struct, and the
 * helpers they share. Not an API: only can-gateway/ includes it.
 */
#ifndef BIC_GW_INTERNAL_H
#define BIC_GW_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>
#include <czmq.h>

#include "bic_plan.h"
#include "bic_proto.h"
#include "bus_sched.h"
#include "can_transport.h"
#include "eeprom_policy.h"
#include "gateway.h"
#include "gw_auth.h"
#include "gw_device.h"
#include "gw_ensure.h"
#include "gw_settings.h"
#include "lease.h"
#include "rx_defer.h"

#define LIMITS_RETRY_US (60 * 1000000LL) /* configured limits not applied: next try */
#define GW_PUB_PERIOD_US (5 * 1000000LL)
#define RECONNECT_MIN_US 500000LL
#define RECONNECT_MAX_US 10000000LL
#define STATE_RETRY_US (30 * 1000000LL)
#define VOLTAGE_MAX_AGE_US (10 * 1000000LL)
#define STOP_MAX_US (3 * 1000000LL)
#define IDENT_RETRY_US (30 * 1000000LL) /* a device refused for its identity is read again */
/* Margin on the manual's 20 ms period against delivery jitter: the device sees two requests
 * closer than they were sent when the first one travelled longer. A reply shows most of such
 * a delay (the start is moved to the reply less the shortest round trip), not the part the
 * reply path itself varies by; this covers that. The 5 ms after a reply needs no margin: it
 * counts from when the gateway read the reply, which is after the device sent it, and the
 * next request's own travel only lengthens the gap the device sees. */
#define PACING_GUARD_US 700
#define SEEN_SLACK_US 200    /* of which not needed once a reply shows when the device saw it */
#define WRITE_GUARD_US 15000 /* more margin after a write, which no reply confirms */
/* With [GATEWAY] BroadcastWrites: how long a group's write waits for the identical writes of
 * the other devices (their requests reach the gateway within a few hundred µs) */
#define BCAST_HOLD_US 3000
#define READ_WINDOW 8    /* reads a job keeps queued at once */
#define JOB_MAX_READS 72 /* an extended scan: 64 BIC and 4 NPB addresses */
#define MAX_JOBS 256
#define TAG_TEL 0 /* job id 0: telemetry and probes */

/* ---------------------------------------------------------------------------------------
   Jobs
   --------------------------------------------------------------------------------------- */

typedef enum { JOB_GET, JOB_ENSURE, JOB_IDENT, JOB_DISCOVER } job_kind_t;
typedef enum { ENS_SET, ENS_SETPOINT, ENS_INIT, ENS_SAFE, ENS_PENDING, ENS_LIMITS } ens_purpose_t;

typedef struct {
    uint8_t addr;
    uint16_t cmd;
    uint8_t flags;
    bool submitted, done;
    bus_result_t r;
} read_slot_t;

typedef struct job {
    struct job *next;
    uint32_t id;
    job_kind_t kind;
    zmsg_t *env;   /* reply envelope; NULL for internal jobs */
    cJSON *req_id; /* echoed "id" */
    uint8_t addr;
    bus_prio_t prio;
    char client[LEASE_NAME_MAX + 1];
    char token[LEASE_TOKEN_LEN + 1]; /* a setpoint that took the lease: its token, for the reply */
    bool waiting;                    /* ensure job waiting for another one on the same device */
    /* reads (GET, IDENT, DISCOVER) */
    int nreads, next_read, reads_left;
    read_slot_t rd[JOB_MAX_READS];
    char names[JOB_MAX_READS][24]; /* GET: the names as asked */
    int discover_phase;
    bool extended;
    /* ensure */
    ens_purpose_t purpose;
    gw_ensure_t *ens; /* the write engine's state */
    bool holder;      /* the client holds the device's lease (eeprom_policy_decide) */
    char mode[12];
    double current_a;
    bool have_current;
    bool preset_asked;       /* an idle setpoint with a preset ... */
    bool preset_applied;     /* ... done as one (else as a plain idle, for preset_skipped) */
    char preset_skipped[96]; /* why not */
    char reason[64];
} job_t;

struct gateway {
    settings_t set;
    can_transport_t *tp;
    int lock_fd;    /* holds the adapter's flock while the transport is open */
    rx_defer_t rxd; /* when the adapter is read (an slcan adapter's acks wake no one) */
    bus_sched_t *sched;
    zsock_t *router, *pub;
    /* the ROUTER's ZMQ_FD is edge-triggered: ZMQ_EVENTS is due after the descriptor signalled
     * and after a send on the socket (either may take the signal of a waiting message) */
    bool router_check;
    int router_fd;         /* its ZMQ_FD, fixed for the socket's life */
    gw_auth_t *auth;       /* CURVE client allow-list (NULL: none configured) */
    int64_t auth_log_at;   /* refusals are logged at most once a second ... */
    unsigned auth_quiet;   /* ... and the ones not logged counted */
    lease_table_t *leases; /* one control lease per device */
    gw_dev_t *dev[GW_DEV_MAX];
    eeprom_policy_t *eep[GW_DEV_MAX];
    job_t *jobs;
    int njobs;
    uint32_t next_job_id;
    int64_t start_us;
    int64_t reconnect_at, backoff_us;
    uint64_t reconnects;
    char bus_error[256];
    int64_t next_tel, next_gw;
    char state_path[512];
    char lease_path[512];
    char lease_saved[GW_DEV_MAX][LEASE_NAME_MAX + 1];        /* holders in the lease file */
    char lease_saved_token[GW_DEV_MAX][LEASE_TOKEN_LEN + 1]; /* and their tokens */
    int64_t token_log_at; /* bad_token refusals are logged at most once a second ... */
    unsigned token_quiet; /* ... and the ones not logged counted */
    bool state_dirty;
    int64_t state_retry_at;
    char state_error[256];
    uint64_t state_failures;
    bool stopping;
    int64_t stop_deadline;
    bool stopped;
    int64_t foreign_noted; /* another CAN master's last request when last logged (0: none) */
};

int gw_dev_count(const gateway_t *gw, int *only);
cJSON *gw_devices_json(gateway_t *gw);
eeprom_policy_t *gw_eep(gateway_t *gw, uint8_t addr);
void gw_eeprom_budget_json(cJSON *o, const eeprom_policy_t *eep, int64_t now);
job_t *gw_ensure_job_new(gateway_t *gw, zmsg_t **env, const cJSON *id, uint8_t addr,
                         ens_purpose_t purpose, eeprom_writer_t by, bool holder);
cJSON *gw_event(const gw_dev_t *d, const char *name);
const bic_family_t *gw_fam(void);
void gw_job_add_idle(job_t *j, const gw_dev_t *d, bool min_state);
void gw_job_add_plan(job_t *j, const gw_dev_t *d, bic_plan_mode_t mode, uint16_t current_raw);
/* An idle setpoint's preset on the BIC d: the standby plan of the direction (charge, else
 * discharge) at current_raw as the job's targets (gw_safe.c). */
void gw_job_add_standby(gateway_t *gw, job_t *j, const gw_dev_t *d, bool charge,
                        uint16_t current_raw, int64_t now);
void gw_job_add_read(job_t *j, uint8_t addr, uint16_t cmd, uint8_t flags);
void gw_job_add_target(job_t *j, uint16_t cmd, uint16_t value, uint16_t mask, bool tolerate,
                       const char *label);
job_t *gw_job_new(gateway_t *gw, job_kind_t kind, zmsg_t **env, const cJSON *id);
void gw_job_start(gateway_t *gw, job_t *j, int64_t now);
lease_t *gw_lease(gateway_t *gw, int addr);
cJSON *gw_lease_json(gateway_t *gw, int addr, int64_t now);
double gw_lease_left_s(gateway_t *gw, int addr, int64_t now);
void gw_lease_persist(gateway_t *gw, int64_t now);
/* A new lease token: LEASE_TOKEN_LEN hex digits of getrandom() into out (+1 for the NUL).
 * 0, or -1 when the kernel gives no random bytes. */
int gw_lease_token_new(char *out);
cJSON *gw_limits_state_json(const gateway_t *gw, const gw_dev_t *d);
void gw_publish_event(gateway_t *gw, const gw_dev_t *d, cJSON *e);
double gw_raw_value(const gw_dev_t *d, uint16_t cmd, int32_t raw);
cJSON *gw_reply_error(const cJSON *id, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
cJSON *gw_reply_error_obj(cJSON *reply);
cJSON *gw_reply_ok(const cJSON *id);
void gw_send_reply(gateway_t *gw, zmsg_t **env, cJSON *reply);

void gw_cache_raw(gw_dev_t *d, uint16_t cmd, int32_t raw, int64_t now);
void gw_dev_failed(gateway_t *gw, gw_dev_t *d);
bool gw_job_ensure_busy(gateway_t *gw, const job_t *self);
/* Whether the gateway knows register cmd of d now (gw_dev_known: read within a telemetry
 * period and a half, nothing since that makes it unknown); its value into *raw. */
bool gw_known(gateway_t *gw, const gw_dev_t *d, uint16_t cmd, int64_t now, int32_t *raw);
void gw_job_ensure_pump(gateway_t *gw, job_t *j, int64_t now);
void gw_job_ensure_on_result(gateway_t *gw, job_t *j, const bus_result_t *r, int64_t now);
void gw_job_free(gateway_t *gw, job_t *j);
void gw_limits_result(gateway_t *gw, job_t *j, const char *err_msg, int64_t now);
cJSON *gw_outcomes_json(gateway_t *gw, const job_t *j, const gw_dev_t *d, int64_t now);
void gw_policy_why(gateway_t *gw, const gw_dev_t *d, const gwe_target_t *t, bool holder,
                   int64_t now, char *why, size_t whylen, char *remedy, size_t remlen);
const char *gw_reg_name(uint16_t cmd);
void gw_save_state(gateway_t *gw, int64_t now);
int gw_submit(gateway_t *gw, bus_prio_t prio, uint8_t addr, uint16_t cmd, bool write, uint16_t raw,
              uint8_t flags, uint64_t tag);
uint64_t gw_tag(uint32_t job, int idx);
int64_t gw_wall(void);

/* gateway.c: devices, EEPROM policies, jobs, bus results to their jobs */
gw_dev_t *gw_dev_add(gateway_t *gw, uint8_t addr);
void gw_eep_configure(const gateway_t *gw, eeprom_policy_t *e, int64_t now);
void gw_job_pump_reads(gateway_t *gw, job_t *j);
void gw_dispatch_results(gateway_t *gw, int64_t now);

/* gw_events.c */
void gw_publish(gateway_t *gw, const char *topic, cJSON *body);
void gw_publish_health(gateway_t *gw, int64_t now);

/* gw_telemetry.c */
void gw_cache_result(gw_dev_t *d, uint16_t cmd, const bus_result_t *r, int64_t now);
void gw_ram_check_start(gateway_t *gw, gw_dev_t *d, int64_t now);
void gw_tel_cycle(gateway_t *gw, int64_t now);
void gw_tel_result(gateway_t *gw, const bus_result_t *r, int64_t now);

/* gw_discover.c */
void gw_set_online(gateway_t *gw, gw_dev_t *d, bool online, const char *reason);
void gw_ident_start(gateway_t *gw, gw_dev_t *d, int64_t now);
void gw_ident_finish(gateway_t *gw, job_t *j, int64_t now);
void gw_discover_step(gateway_t *gw, job_t *j, int64_t now);

/* gw_bus.c */
int gw_bus_open(gateway_t *gw, int64_t now);
void gw_bus_reconnect(gateway_t *gw, int64_t now);
void gw_bus_io(gateway_t *gw, int64_t now);
/* Sets the bus scheduler's broadcast set from the configuration, the devices and the leases
 * at now (gw_bcast.c). */
void gw_bcast_update(gateway_t *gw, int64_t now);
/* Whether an idle setpoint's preset is applied to the BIC d now (gw_bcast.c): [GATEWAY]
 * IdleState is not min and d is in the broadcast set (brought up to date first). False with
 * the reason in why when it is done as a plain idle. */
bool gw_bcast_preset_applies(gateway_t *gw, const gw_dev_t *d, int64_t now, char *why,
                             size_t whylen);
void gw_adapter_unlock(gateway_t *gw);

/* gw_safe.c */
void gw_safe_state_dev(gateway_t *gw, gw_dev_t *d, const char *reason, int64_t now);
void gw_safe_state_all(gateway_t *gw, const char *reason, int64_t now);
void gw_lease_check_lapse(gateway_t *gw, int64_t now);

/* gw_limits.c */
void gw_limits_apply(gateway_t *gw, gw_dev_t *d, int64_t now);
void gw_limits_retry(gateway_t *gw, int64_t now);

/* gw_persist.c */
int gw_persist_load(gateway_t *gw, int64_t now, char *err, size_t errlen);
void gw_lease_restore(gateway_t *gw, int64_t now);

/* Answers one request (the routing envelope with its body as the last frame; takes msg). */
void gw_handle_request(gateway_t *gw, zmsg_t *msg, int64_t now);

#endif
