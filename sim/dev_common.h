/* dev_common.h - what the simulated devices (bic_device*.c, npb_device*.c) share: messages,
 * parsing of their --device options, the MFR text registers, quantising a reading to its
 * register, and the EEPROM model: the commit policy of SYSTEM_CONFIG (EEP_OFF, EEP_CONFIG)
 * and the stored values and counts it keeps. Pure functions. */
#ifndef BIC_SIM_DEV_COMMON_H
#define BIC_SIM_DEV_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A message into err (errlen bytes; nothing when err is NULL or errlen 0). */
void dev_msg(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A finite number filling the whole text. 0, or -1 (out untouched). */
int dev_parse_double(const char *s, double *out);

/* An MFR text option: 1..want printable ASCII characters, stored space-padded to want (dst
 * holds want + 1 bytes). 0, or -1 with a message naming key and what is allowed. */
int dev_parse_text(const char *key, const char *value, char *dst, size_t want, char *err,
                   size_t errlen);

/* n data bytes of a text register: the text, space-padded. */
void dev_put_text(uint8_t *data, const char *text, size_t n);

/* v / step rounded to the nearest integer and clamped to lo..hi (NaN gives lo). */
int32_t dev_round_raw(double v, double step, int32_t lo, int32_t hi);

/* What a write to an EEPROM-backed register does under SYSTEM_CONFIG (§11): obeys says
 * whether the register follows EEP_OFF/EEP_CONFIG at all ('*' registers), eep_bits whether
 * the firmware has those bits. */
typedef enum {
    DEV_EEP_NOW = 0, /* persist at once */
    DEV_EEP_DELAYED, /* commit after the EEP_CONFIG delay without changes */
    DEV_EEP_RAM,     /* EEP_OFF: RAM only */
} dev_eep_action_t;
dev_eep_action_t dev_eep_action(uint16_t system_config, bool obeys, bool eep_bits);

/* The delay of a pending commit under SYSTEM_CONFIG, us (0 immediate, 60 s, 600 s), or -1
 * when EEP_OFF is set (pending values stay in RAM only). */
int64_t dev_eep_commit_delay_us(uint16_t system_config);

/* The EEPROM-backed registers of a device, its own arrays of n entries: the values as they
 * read back (ram) and as stored (eep), the persisted writes per register and in all, and the
 * values waiting for a delayed commit. */
typedef struct {
    int n;
    const uint16_t *ram;
    uint16_t *eep;
    uint32_t *writes;
    uint32_t *total;
    bool *pending;
} dev_eep_regs_t;

/* An accepted write of register idx under action (dev_eep_action): stored and counted at
 * once, marked for the delayed commit, or left in RAM. */
void dev_eep_after_write(const dev_eep_regs_t *r, int idx, dev_eep_action_t action);

/* The delayed commit at now_us: once the delay of SYSTEM_CONFIG has passed since
 * last_change_us (the last accepted write), the marked values that differ from the stored
 * ones are stored and counted and the marks cleared; with EEP_OFF set the marks are dropped
 * (the values stay in RAM only). */
void dev_eep_tick(const dev_eep_regs_t *r, uint16_t system_config, int64_t last_change_us,
                  int64_t now_us);

#ifdef __cplusplus
}
#endif

#endif
