/* dev_common.h - what the simulated devices (bic_device*.c, npb_device*.c) share: messages,
 * parsing of their --device options, the MFR text registers, quantising a reading to its
 * register, and the EEPROM commit policy of SYSTEM_CONFIG (EEP_OFF, EEP_CONFIG). Pure
 * functions. */
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

#ifdef __cplusplus
}
#endif

#endif
