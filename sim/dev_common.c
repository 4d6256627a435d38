/* dev_common.c - helpers the simulated devices share (see dev_common.h). */
#include "dev_common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bic_proto.h"

void dev_msg(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int dev_parse_double(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int dev_parse_text(const char *key, const char *value, char *dst, size_t want, char *err,
                   size_t errlen)
{
    size_t n = strlen(value);
    bool ok = n > 0 && n <= want;
    for (size_t i = 0; ok && i < n; i++)
        ok = value[i] >= 0x20 && value[i] < 0x7F;
    if (!ok) {
        if (err && errlen)
            snprintf(err, errlen,
                     "device option %s: '%s' (allowed: 1..%zu printable ASCII characters)", key,
                     value, want);
        return -1;
    }
    /* Space-padded to the register's width, as the MFR fields are. */
    memset(dst, ' ', want);
    memcpy(dst, value, n);
    dst[want] = '\0';
    return 0;
}

void dev_put_text(uint8_t *data, const char *text, size_t n)
{
    size_t len = strlen(text);
    for (size_t i = 0; i < n; i++)
        data[i] = i < len ? (uint8_t)text[i] : ' ';
}

int32_t dev_round_raw(double v, double step, int32_t lo, int32_t hi)
{
    double r = round(v / step);
    if (!(r >= lo))
        return lo;
    if (r > hi)
        return hi;
    return (int32_t)r;
}

dev_eep_action_t dev_eep_action(uint16_t system_config, bool obeys, bool eep_bits)
{
    if (!obeys || !eep_bits)
        return DEV_EEP_NOW;
    bic_sysconfig_t sc;
    bic_sysconfig_decode(system_config, &sc);
    if (sc.eep_off)
        return DEV_EEP_RAM;
    if (sc.eep_config == BIC_EEPCFG_1MIN || sc.eep_config == BIC_EEPCFG_10MIN)
        return DEV_EEP_DELAYED;
    return DEV_EEP_NOW;
}

int64_t dev_eep_commit_delay_us(uint16_t system_config)
{
    bic_sysconfig_t sc;
    bic_sysconfig_decode(system_config, &sc);
    if (sc.eep_off)
        return -1;
    return sc.eep_config == BIC_EEPCFG_1MIN    ? 60000000
           : sc.eep_config == BIC_EEPCFG_10MIN ? 600000000
                                               : 0;
}

static void s_eep_persist(const dev_eep_regs_t *r, int idx)
{
    r->eep[idx] = r->ram[idx];
    r->writes[idx]++;
    (*r->total)++;
    r->pending[idx] = false;
}

void dev_eep_after_write(const dev_eep_regs_t *r, int idx, dev_eep_action_t action)
{
    switch (action) {
    case DEV_EEP_RAM:
        return;
    case DEV_EEP_DELAYED:
        r->pending[idx] = true;
        return;
    default:
        s_eep_persist(r, idx);
    }
}

void dev_eep_tick(const dev_eep_regs_t *r, uint16_t system_config, int64_t last_change_us,
                  int64_t now_us)
{
    bool any = false;
    for (int i = 0; i < r->n; i++)
        any = any || r->pending[i];
    if (!any)
        return;
    int64_t delay_us = dev_eep_commit_delay_us(system_config);
    if (delay_us < 0) {
        /* EEP_OFF set while a commit was waiting: the values stay in RAM only. */
        memset(r->pending, 0, (size_t)r->n * sizeof r->pending[0]);
        return;
    }
    if (now_us - last_change_us < delay_us)
        return;
    for (int i = 0; i < r->n; i++) {
        if (r->pending[i] && r->ram[i] != r->eep[i])
            s_eep_persist(r, i);
        r->pending[i] = false;
    }
}
