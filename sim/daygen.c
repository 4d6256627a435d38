/* daygen: seeded household days at one-second resolution (see daygen.h). */
#include "daygen.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The hourly shape of household activity above the base load: the mean of the two measured
 * days in data/profiles/ (hourly mean load minus 250 W, floored at 20 W), so appliances and
 * background use fall in the hours real households use them. */
static const double s_hour_weight[24] = {
    90,   20,  56,   20,  39,  169, 1370, 2586, 2425, 3070, 3002, 2439,
    1830, 776, 1289, 260, 744, 571, 1505, 2935, 2317, 2679, 1311, 893,
};

/* splitmix64: small, fast, and the same sequence everywhere. */
static uint64_t s_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double s_unit(uint64_t *s)
{
    return (double)(s_next(s) >> 11) / 9007199254740992.0; /* [0, 1) */
}

static double s_uni(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * s_unit(s);
}

static double s_expo(uint64_t *s, double mean)
{
    return -mean * log(1.0 - s_unit(s));
}

static int s_poisson(uint64_t *s, double mean)
{
    /* Knuth's method: the means here are small */
    double l = exp(-mean), p = 1.0;
    int k = 0;
    do {
        k++;
        p *= s_unit(s);
    } while (p > l && k < 1000);
    return k - 1;
}

/* A start second drawn from the hourly activity shape. */
static int s_start(uint64_t *s)
{
    double total = 0;
    for (int h = 0; h < 24; h++)
        total += s_hour_weight[h];
    double x = s_unit(s) * total;
    int h = 0;
    while (h < 23 && x >= s_hour_weight[h]) {
        x -= s_hour_weight[h];
        h++;
    }
    return h * 3600 + (int)s_uni(s, 0, 3600);
}

/* Adds power_w from start for dur seconds, switching on_s on / off_s off (off_s 0: always on).
 * Returns the energy added (Wh). */
static double s_add(float *load, int start, int dur, double power_w, int on_s, int off_s)
{
    double wh = 0;
    for (int k = 0; k < dur; k++) {
        int t = start + k;
        if (t < 0 || t >= DAYGEN_SECONDS)
            break;
        if (off_s > 0 && k % (on_s + off_s) >= on_s)
            continue;
        load[t] += (float)power_w;
        wh += power_w / 3600.0;
    }
    return wh;
}

typedef struct {
    const char *name;
    double mean_count;                /* runs a day in a household of 30 kWh a day */
    double p_lo, p_hi;                /* power (W) */
    double d_lo, d_hi;                /* duration (s) */
    int on_lo, on_hi, off_lo, off_hi; /* cycling (s); off_hi 0 = always on */
} appliance_t;

static const appliance_t s_appliances[] = {
    {"kettle", 4.0, 1800, 3000, 120, 270, 0, 0, 0, 0},
    {"microwave", 2.0, 800, 1300, 60, 360, 15, 30, 10, 20},
    {"oven", 0.6, 2000, 3000, 1800, 3600, 40, 90, 60, 150},
    {"hob", 1.2, 1000, 3500, 600, 2400, 5, 25, 5, 25},
    {"vacuum", 0.4, 1200, 1800, 300, 1200, 0, 0, 0, 0},
    {"hair dryer", 0.6, 1500, 2000, 180, 480, 0, 0, 0, 0},
    {"water heater", 0.3, 2000, 3000, 1800, 5400, 0, 0, 0, 0},
};

static int s_add_appliances(uint64_t *s, float *load, double scale, double *wh)
{
    int n = 0;
    for (size_t a = 0; a < sizeof s_appliances / sizeof s_appliances[0]; a++) {
        const appliance_t *ap = &s_appliances[a];
        int count = s_poisson(s, ap->mean_count * scale);
        for (int i = 0; i < count; i++) {
            int start = s_start(s);
            int dur = (int)s_uni(s, ap->d_lo, ap->d_hi);
            double p = s_uni(s, ap->p_lo, ap->p_hi);
            int on = ap->off_hi ? (int)s_uni(s, ap->on_lo, ap->on_hi) : 0;
            int off = ap->off_hi ? (int)s_uni(s, ap->off_lo, ap->off_hi) : 0;
            if (ap->off_hi && strcmp(ap->name, "oven") == 0) {
                /* the oven heats up without pause first */
                int heat = (int)s_uni(s, 300, 900);
                *wh += s_add(load, start, heat, p, 0, 0);
                start += heat;
                dur -= heat;
            }
            if (strcmp(ap->name, "microwave") == 0 && s_unit(s) < 0.5)
                off = 0; /* half the runs at full power */
            *wh += s_add(load, start, dur, p, on, off);
            n++;
        }
    }
    /* washing machine and dishwasher: heater phases, then the motor or pump */
    int washes = s_poisson(s, 0.6 * scale);
    for (int i = 0; i < washes; i++) {
        int t = s_start(s);
        int heat = (int)s_uni(s, 600, 1200);
        *wh += s_add(load, t, heat, s_uni(s, 1900, 2200), 0, 0);
        *wh += s_add(load, t + heat, 1800, s_uni(s, 200, 500), 20, 10);
        n++;
    }
    int dishes = s_poisson(s, 0.6 * scale);
    for (int i = 0; i < dishes; i++) {
        int t = s_start(s);
        *wh += s_add(load, t, 900, s_uni(s, 1900, 2200), 0, 0);
        *wh += s_add(load, t + 900, 1800, 100, 0, 0);
        *wh += s_add(load, t + 2700, 600, s_uni(s, 1900, 2200), 0, 0);
        n++;
    }
    return n;
}

static void s_pv(uint64_t *s, float *pv, daygen_info_t *info)
{
    double doy = info->day_of_year;
    /* shortest day near 21 December (day 354), 8 h; longest in June, 16 h */
    double len_h = 12.0 - 4.0 * cos(2 * M_PI * (doy + 11) / 365.0);
    double season = 0.5 + 0.5 * (len_h - 8.0) / 8.0; /* the sun's height: 0.5 .. 1.0 */
    double noon = s_uni(s, 12.5, 13.5) * 3600;       /* solar noon on the household clock */
    double rise = noon - len_h * 1800, set = noon + len_h * 1800;
    double peak = info->pv_kwp * 1000 * 0.85 * season;
    info->day_length_h = len_h;

    double r = s_unit(s);
    info->sky = r < 0.30 ? "clear" : r < 0.75 ? "broken" : "overcast";
    bool broken = info->sky[0] == 'b', overcast = info->sky[0] == 'o';
    double haze = s_uni(s, 0.85, 1.0);
    double sun_mean = s_uni(s, 60, 600), cloud_mean = s_uni(s, 20, 300);
    double cloud_tr = s_uni(s, 0.15, 0.5);
    double over_tr = s_uni(s, 0.10, 0.35);
    bool in_cloud = false;
    double next_switch = rise + s_expo(s, sun_mean), tr = 1.0, tr_target = 1.0, ramp = 10;
    int clear_clouds = info->sky[0] == 'c' ? s_poisson(s, 1.5) : 0;
    double cc_at[8], cc_dur[8];
    for (int i = 0; i < clear_clouds && i < 8; i++) {
        cc_at[i] = s_uni(s, rise, set);
        cc_dur[i] = s_uni(s, 30, 240);
    }
    for (int t = 0; t < DAYGEN_SECONDS; t++) {
        if (t < rise || t > set) {
            pv[t] = 0;
            continue;
        }
        double el = sin(M_PI * (t - rise) / (set - rise));
        double clear = peak * pow(el, 1.3) * haze;
        if (broken) {
            if (t >= next_switch) {
                in_cloud = !in_cloud;
                next_switch = t + s_expo(s, in_cloud ? cloud_mean : sun_mean) + 1;
                tr_target = in_cloud ? cloud_tr * s_uni(s, 0.7, 1.3) : 1.0;
                ramp = s_uni(s, 2, 20);
            }
        } else if (overcast) {
            if (t % 60 == 0) {
                over_tr += s_uni(s, -0.02, 0.02);
                over_tr = fmin(fmax(over_tr, 0.08), 0.45);
                tr_target = over_tr;
                if (s_unit(s) < 0.004) /* a brief break in the clouds */
                    tr_target = s_uni(s, 0.5, 0.9);
                ramp = 30;
            }
        } else {
            tr_target = 1.0;
            for (int i = 0; i < clear_clouds && i < 8; i++)
                if (t >= cc_at[i] && t < cc_at[i] + cc_dur[i])
                    tr_target = 0.35;
            ramp = 5;
        }
        /* the transmittance moves toward its target over `ramp` seconds */
        double step = 1.0 / ramp;
        if (tr < tr_target)
            tr = fmin(tr + step, tr_target);
        else if (tr > tr_target)
            tr = fmax(tr - step, tr_target);
        pv[t] = (float)(clear * tr);
    }
}

void daygen_day(uint64_t seed, int index, float *load, float *pv, daygen_info_t *out)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + (uint64_t)index * 0xD1B54A32D192ED03ull + 1;
    daygen_info_t info;
    memset(&info, 0, sizeof info);
    info.day_of_year = (int)s_uni(&s, 0, 365);
    info.pv_kwp = s_uni(&s, 2.0, 8.0);
    info.base_w = s_uni(&s, 100, 400);
    double target_kwh = s_uni(&s, 6, 40);
    double scale = target_kwh / 30.0;

    memset(load, 0, DAYGEN_SECONDS * sizeof *load);
    /* base load and the fridge's compressor */
    double fridge_w = s_uni(&s, 80, 150);
    int on = (int)s_uni(&s, 600, 1200), off = (int)s_uni(&s, 1200, 2400);
    int phase = (int)s_uni(&s, 0, on + off);
    for (int t = 0; t < DAYGEN_SECONDS; t++) {
        load[t] = (float)info.base_w;
        if ((t + phase) % (on + off) < on)
            load[t] += (float)fridge_w;
    }
    double app_wh = 0;
    info.appliances = s_add_appliances(&s, load, scale, &app_wh);
    /* background use (lights, screens, cooking small): the rest of the day's energy by the
     * hourly shape, a new level every 1-5 minutes */
    double base_wh = 0;
    for (int t = 0; t < DAYGEN_SECONDS; t++)
        base_wh += load[t] / 3600.0;
    double rest_wh = target_kwh * 1000 - base_wh;
    if (rest_wh < 1000)
        rest_wh = 1000;
    double wsum = 0;
    for (int h = 0; h < 24; h++)
        wsum += s_hour_weight[h];
    int t = 0;
    while (t < DAYGEN_SECONDS) {
        int len = (int)s_uni(&s, 60, 300);
        int h = t / 3600;
        double level = rest_wh * s_hour_weight[h] / wsum * s_uni(&s, 0.5, 1.5); /* W */
        for (int k = 0; k < len && t < DAYGEN_SECONDS; k++, t++)
            load[t] += (float)level;
    }
    s_pv(&s, pv, &info);
    for (int k = 0; k < DAYGEN_SECONDS; k++) {
        info.load_kwh += load[k] / 3.6e6;
        info.pv_kwh += pv[k] / 3.6e6;
        if (load[k] > info.load_max_w)
            info.load_max_w = load[k];
        if (pv[k] > info.pv_max_w)
            info.pv_max_w = pv[k];
    }
    if (out)
        *out = info;
}

char *daygen_csv(uint64_t seed, int index, size_t *len, daygen_info_t *info)
{
    float *load = malloc(DAYGEN_SECONDS * sizeof *load);
    float *pv = malloc(DAYGEN_SECONDS * sizeof *pv);
    size_t cap = 64 + (size_t)DAYGEN_SECONDS * 26;
    char *text = malloc(cap);
    if (!load || !pv || !text) {
        free(load);
        free(pv);
        free(text);
        return NULL;
    }
    daygen_day(seed, index, load, pv, info);
    size_t n = (size_t)snprintf(text, cap, "t_s,load_w,pv_w\n");
    double last_l = -1, last_p = -1;
    for (int t = 0; t < DAYGEN_SECONDS; t++) {
        double l = round(load[t] * 10) / 10, p = round(pv[t] * 10) / 10;
        if (t > 0 && t < DAYGEN_SECONDS - 2 && fabs(l - last_l) < 0.5 && fabs(p - last_p) < 0.5)
            continue;
        n += (size_t)snprintf(text + n, cap - n, "%d,%.1f,%.1f\n", t, l, p);
        last_l = l;
        last_p = p;
    }
    free(load);
    free(pv);
    if (len)
        *len = n;
    return text;
}
