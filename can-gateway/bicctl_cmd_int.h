/*
 * bicctl_cmd_int - the command table's entry and the few helpers bicctl_cmd.c shares with the
 * NPB commands (bicctl_npb.c) and with the renderers (bicctl_render.c). Not an API: only
 * bicctlcore's files include it.
 */
#ifndef BICCTL_CMD_INT_H
#define BICCTL_CMD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cJSON.h>

#include "bicctl_cmd.h"

/* K_NPB: an NPB command; bicctl_npb.c builds its requests and renders its replies. */
typedef enum { K_GET, K_SET, K_FIXED, K_OP, K_STATUS, K_DUMP, K_WATCH, K_CAN, K_NPB } kind_t;
typedef enum { V_NONE, V_CENTI, V_IFACE, V_OPTIONAL } valkind_t; /* V_OPTIONAL: bicctl_npb.c */

typedef struct bicctl_cmd cmd_t;
typedef int (*render_fn)(const cmd_t *c, const bicctl_args_t *a, cJSON *const *r, size_t n,
                         FILE *out, char *err, size_t errlen);

struct bicctl_cmd {
    const char *name;
    kind_t kind;
    valkind_t val;
    const char *regs[7]; /* K_GET: registers read; K_SET/K_FIXED: regs[0] is written */
    long fixed_raw;      /* K_FIXED: the raw value written */
    long min, max;       /* V_CENTI: absolute bounds over all variants (x 100) */
    const char *unit;    /* V_CENTI: "V" or "A" */
    const char *op;      /* K_OP: the gateway op */
    bicctl_run_t run;
    render_fn render;
    const char *help;
};

/* bicctl_npb.c's commands (bicctl_npb.h). */
extern const bicctl_cmd_t bicctl_npb_cmds[];
extern const size_t bicctl_npb_ncmds;

/* A request {"v":1,"op":OP,"dev":DEV (when >= 0),"client":...}. */
cJSON *bicctl_i_req(const char *op, const bicctl_args_t *a, int dev);
/* The raw value of register REG in a get reply: 0, or an exit code with a message in err. */
int bicctl_i_slot_raw(const cJSON *reply, const char *reg, long *out, char *err, size_t errlen);
/* A register's engineering value from a get reply, or false (missing or an error). */
bool bicctl_i_val(const cJSON *get, const char *reg, double *out);
/* A [min, max] pair of an info "limits" object as "MIN-MAX UNIT". */
void bicctl_i_range(FILE *out, const cJSON *limits, const char *key, const char *unit);
/* An ok reply as JSON (without the protocol fields). */
void bicctl_i_print_result(const cJSON *reply, FILE *out);

/* ---------------------------------------------------------------- shared by bicctl_cmd.c and
 * bicctl_render.c (the table names the renderers; both read replies the same way) */

#define BICCTL_STATUS_DEVS 68 /* status: the devices (0-67) whose groups it lists */

#define RENDER(name)                                                                               \
    int name(const cmd_t *c, const bicctl_args_t *a, cJSON *const *r, size_t n, FILE *out,         \
             char *err, size_t errlen)
RENDER(bc_r_raw);
RENDER(bc_r_fan);
RENDER(bc_r_type);
RENDER(bc_r_sysstatus);
RENDER(bc_r_fault);
RENDER(bc_r_dump);
RENDER(bc_r_quiet);
RENDER(bc_r_init);
RENDER(bc_r_info);
RENDER(bc_r_devices);
RENDER(bc_r_eeprom);
RENDER(bc_r_status);

/* bicctl_cmd.c: reading replies, printing values and results */
void bc_fmt(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool bc_num(const cJSON *obj, const char *key, double *out);
const char *bc_str(const cJSON *obj, const char *key);
bool bc_true(const cJSON *obj, const char *key);
const cJSON *bc_slot(const cJSON *reply, const char *reg);
int bc_slot_check(const cJSON *reply, const char *reg, char *err, size_t errlen);
int bc_slot_raw(const cJSON *reply, const char *reg, long *out, char *err, size_t errlen);
const char *bc_slot_text(const cJSON *reply, const char *reg, int *rc, char *err, size_t errlen);
void bc_print_result(const cJSON *reply, FILE *out);
void bc_print_json(const cJSON *obj, FILE *out);
void bc_print_pystr(FILE *out, const char *s);
const cJSON *bc_status_device(const bicctl_args_t *a, const cJSON *info, size_t k,
                              bool online_only);

/* bicctl_render.c */
void bc_range(FILE *out, const cJSON *limits, const char *key, const char *unit);
bool bc_val(const cJSON *get, const char *reg, double *out);

#endif
