/*
 * Fuzz harness: the ini loader (common/config.h) with the checks programs run on a loaded
 * file (the gateway's endpoint and device rules, the meter settings).
 *
 * The input is the file's content, served from an anonymous in-memory file (memfd) so that
 * nothing is written to disk. A refused file must come with an error message; a loaded one
 * is read back through every key of the schema, the id lists and the Cap2V table.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "config_schema.h"
#include "gateway.h"
#include "meter.h"

static int s_fd = -1;
static char s_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    s_fd = memfd_create("bic2mqtt.ini", 0);
    if (s_fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(s_path, sizeof s_path, "/proc/self/fd/%d", s_fd);
    return 0;
}

static void s_read_back(const config_t *cfg)
{
    for (size_t i = 0; i < config_schema_count; i++) {
        const config_key_t *k = &config_schema[i];
        char key[128];
        size_t n = 0;
        for (const char *p = k->key; *p && n + 2 < sizeof key; p++)
            key[n++] = *p == '#' ? '1' : *p; /* 1: within every number's range */
        key[n] = '\0';
        (void)config_str(cfg, k->section, "%s", key);
        (void)config_has(cfg, k->section, "%s", key);
        (void)config_line(cfg, k->section, "%s", key);
        if (k->type == CT_INT)
            (void)config_int(cfg, k->section, "%s", key);
        else if (k->type == CT_FLOAT)
            (void)config_float(cfg, k->section, "%s", key);
        else if (k->type == CT_BOOL)
            (void)config_bool(cfg, k->section, "%s", key);
    }
    int ids[CONFIG_MAX_IDS];
    size_t nid = config_ids(cfg, "DEVICE", ids, CONFIG_MAX_IDS);
    for (size_t i = 0; i < nid && i < CONFIG_MAX_IDS; i++)
        if (ids[i] < 0 || ids[i] >= CONFIG_MAX_IDS || (i > 0 && ids[i] <= ids[i - 1])) {
            fprintf(stderr, "config_ids gave %d at %zu\n", ids[i], i);
            abort();
        }
    nid = config_ids(cfg, "CHARGE_CONTROL", ids, CONFIG_MAX_IDS);
    for (size_t i = 0; i < nid && i < CONFIG_MAX_IDS; i++) {
        meter_cfg_t m;
        char err[512];
        (void)meter_cfg_from_config(cfg, ids[i], &m, err, sizeof err);
    }
    double pct[CONFIG_MAX_CAP2V], volts[CONFIG_MAX_CAP2V];
    size_t nc = config_cap2v(cfg, pct, volts, CONFIG_MAX_CAP2V);
    for (size_t i = 1; i < nc && i < CONFIG_MAX_CAP2V; i++)
        if (!(pct[i] > pct[i - 1]) || !(volts[i] >= volts[i - 1])) {
            fprintf(stderr, "Cap2V table not ascending at %zu\n", i);
            abort();
        }
    for (size_t i = 0; i < config_warning_count(cfg); i++)
        if (!config_warning(cfg, i)) {
            fprintf(stderr, "warning %zu is NULL\n", i);
            abort();
        }
    char err[512];
    (void)gateway_check_config(cfg, err, sizeof err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ftruncate(s_fd, 0) != 0 || pwrite(s_fd, data, size, 0) != (ssize_t)size) {
        perror("memfd");
        abort();
    }
    char err[4096];
    err[0] = '\0';
    config_t *cfg = config_load(s_path, err, sizeof err);
    if (!cfg) {
        if (!err[0]) {
            fprintf(stderr, "config_load refused the file without a message\n");
            abort();
        }
        return 0;
    }
    s_read_back(cfg);
    config_destroy(&cfg);
    if (cfg) {
        fprintf(stderr, "config_destroy left the pointer set\n");
        abort();
    }
    return 0;
}
