/*
 * Event-driven convolution of cumulative spike waves (cortexsnn.plasticity), CPU, OpenMP.
 *
 * Input spikes are first-spike latencies lat[B][C][H][W] (uint8, T = never); the waves are
 * wave[t] = (lat <= t), so the potential of output neuron (f, y, x) at step t is
 *     P[t][f][y][x] = sum over (c, i, j) with lat[c][y+i][x+j] <= t of w[f][c][i][j].
 * For each output position the kernel adds, for every input spike in the receptive field, the
 * row w[:, c, i, j] (F contiguous values, from the transposed weight wt[C][KH][KW][F]) into the
 * increment of its own step, then sums the increments over time: the cost is one dense
 * convolution's worth of work at most (every input spiking) instead of T of them.
 *
 * Modes:
 *   0  potentials  out[B][HO][WO][T][F] (floating)
 *   1  fire        first step with P > threshold, out[B][F][HO][WO] (uint8, T = never)
 *   2  last step   out[B][HO][WO][F] = P[T-1] (floating)
 *   3  fire+value  as 1, and out2[B][F][HO][WO] = P at the first spike (0 if none) (floating)
 * Positions (b, y, x) are independent: a call handles positions [p_begin, p_end) of the flat
 * (b, y, x) index, so that callers can split the work over threads without write conflicts.
 * No OpenMP on purpose: a second OpenMP runtime next to PyTorch's keeps spinning threads that
 * slow down every PyTorch operation that follows (the caller uses a thread pool instead).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Rows of the transposed weight table and of the accumulators are padded to a multiple of 8
   values (FP = padded_features(F)), so that every row operation is whole vectors. */
static int64_t padded_features(int64_t F) { return (F + 7) / 8 * 8; }

#define DEFINE_KERNEL(T_, SUF)                                                                     \
/* The convolution over positions [p_begin, p_end) with a padded table [C][KH][KW][FP] and the     \
   workspace of conv_workspace_##SUF. restrict: the accumulators alias nothing, so the row loops   \
   need no runtime overlap checks; always inlined into both callers (as a plain call it measured   \
   5-17% slower). */                                                                               \
static inline __attribute__((always_inline))                                                       \
void spike_conv_core_##SUF(const uint8_t *lat, const T_ *restrict table, void *out, void *out2,    \
                           int64_t C, int64_t H, int64_t W, int64_t F, int64_t KH,                 \
                           int64_t KW, int64_t T, int mode, T_ threshold, int64_t p_begin,         \
                           int64_t p_end, T_ *restrict acc, int32_t *restrict first,               \
                           uint8_t *restrict touched) {                                            \
    const int64_t HO = H - KH + 1, WO = W - KW + 1, FP = padded_features(F);                       \
    T_ *run = acc + T * FP, *fval = run + FP;                                                      \
    for (int64_t p = p_begin; p < p_end; ++p) {                                                    \
        const int64_t b = p / (HO * WO), y = (p / WO) % HO, x = p % WO;                            \
        const int64_t steps = (mode == 2) ? 1 : T;                                                 \
        /* an increment row is written by its first input spike (a copy: 0 + w = w) and added to \
           by the others, in input order as before; rows of steps without a spike stay unused */  \
        memset(touched, 0, (size_t)steps);                                                         \
        for (int64_t c = 0; c < C; ++c) {                                                          \
            const uint8_t *plane = lat + ((b * C + c) * H + y) * W + x;                            \
            for (int64_t i = 0; i < KH; ++i) {                                                     \
                for (int64_t j = 0; j < KW; ++j) {                                                 \
                    const int64_t s = plane[i * W + j];                                            \
                    if (s >= T) continue;                                                          \
                    const int64_t row = mode == 2 ? 0 : s;                                         \
                    T_ *dst = acc + row * FP;                                                      \
                    const T_ *src = table + ((c * KH + i) * KW + j) * FP;                          \
                    if (touched[row]) {                                                            \
                        for (int64_t f = 0; f < FP; ++f) dst[f] += src[f];                         \
                    } else {                                                                       \
                        for (int64_t f = 0; f < FP; ++f) dst[f] = src[f];                          \
                        touched[row] = 1;                                                          \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        if (mode == 2) {                                                                           \
            if (!touched[0]) memset(acc, 0, sizeof(T_) * (size_t)F);                               \
            memcpy((T_ *)out + p * F, acc, sizeof(T_) * (size_t)F);                                \
            continue;                                                                              \
        }                                                                                          \
        if (mode == 0) {                                                                           \
            T_ *dst = (T_ *)out + p * T * F;                                                       \
            for (int64_t f = 0; f < F; ++f) run[f] = (T_)0;                                        \
            for (int64_t t = 0; t < T; ++t) {                                                      \
                if (touched[t]) {                                                                  \
                    const T_ *inc = acc + t * FP;                                                  \
                    for (int64_t f = 0; f < F; ++f) run[f] = t ? run[f] + inc[f] : inc[f];         \
                }                                                                                  \
                memcpy(dst + t * F, run, sizeof(T_) * (size_t)F);                                  \
            }                                                                                      \
        } else {                                                                                   \
            /* running potentials over time, all features at once and without branches (the     \
               same sums in the same order as a cumulative sum; a step without input spikes      \
               changes no potential, so only the first step and steps with spikes are visited): \
               the first step above the threshold and the potential there */                      \
            for (int64_t f = 0; f < FP; ++f) { run[f] = (T_)0; first[f] = (int32_t)T; fval[f] = (T_)0; } \
            for (int64_t t = 0; t < T; ++t) {                                                      \
                if (!touched[t]) {                                                                 \
                    if (t > 0) continue;                                                           \
                    for (int64_t f = 0; f < FP; ++f) acc[f] = (T_)0;                               \
                }                                                                                  \
                const T_ *inc = acc + t * FP;                                                      \
                for (int64_t f = 0; f < FP; ++f) {                                                 \
                    const T_ r = run[f] + inc[f];                                                  \
                    const int hit = (r > threshold) & (first[f] == (int32_t)T);                    \
                    run[f] = r;                                                                    \
                    first[f] = hit ? (int32_t)t : first[f];                                        \
                    fval[f] = hit ? r : fval[f];                                                   \
                }                                                                                  \
            }                                                                                      \
            uint8_t *spikes = (uint8_t *)out;                                                      \
            for (int64_t f = 0; f < F; ++f) {                                                      \
                const int64_t o = ((b * F + f) * HO + y) * WO + x;                                 \
                spikes[o] = (uint8_t)first[f];                                                     \
                if (mode == 3) ((T_ *)out2)[o] = fval[f];                                          \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* workspace of the core: accumulators (T + 2 padded rows), first-spike steps, touched flags */    \
static T_ *conv_workspace_##SUF(int64_t F, int64_t T, int32_t **first, uint8_t **touched) {        \
    const int64_t FP = padded_features(F);                                                         \
    *first = (int32_t *)malloc(sizeof(int32_t) * (size_t)FP);                                      \
    *touched = (uint8_t *)malloc((size_t)T);                                                       \
    return (T_ *)malloc(sizeof(T_) * (size_t)(T * FP + 2 * FP));                                   \
}                                                                                                  \
                                                                                                   \
/* padded copy [NK][FP] of a table [NK][F] (zeros in the padding) */                               \
static T_ *padded_table_##SUF(const T_ *wt, int64_t NK, int64_t F) {                               \
    const int64_t FP = padded_features(F);                                                         \
    T_ *table = (T_ *)calloc((size_t)(NK * FP), sizeof(T_));                                       \
    for (int64_t q = 0; q < NK; ++q) memcpy(table + q * FP, wt + q * F, sizeof(T_) * (size_t)F);   \
    return table;                                                                                  \
}                                                                                                  \
                                                                                                   \
void spike_conv_##SUF(const uint8_t *lat, const T_ *wt, void *out, void *out2, int64_t B, int64_t C,\
                      int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW, int64_t T,          \
                      int mode, T_ threshold, int64_t p_begin, int64_t p_end) {                    \
    (void)B;                                                                                       \
    T_ *table = padded_features(F) == F ? (T_ *)wt : padded_table_##SUF(wt, C * KH * KW, F);       \
    int32_t *first;                                                                                \
    uint8_t *touched;                                                                              \
    T_ *acc = conv_workspace_##SUF(F, T, &first, &touched);                                        \
    spike_conv_core_##SUF(lat, table, out, out2, C, H, W, F, KH, KW, T, mode, threshold, p_begin,  \
                          p_end, acc, first, touched);                                             \
    free(acc);                                                                                     \
    free(first);                                                                                   \
    free(touched);                                                                                 \
    if (table != wt) free(table);                                                                  \
}

DEFINE_KERNEL(float, f32)
DEFINE_KERNEL(double, f64)

/* Index of the first maximum of v[0, n) (no NaN in v): the first i with v[i] == max, as the
   scalar scan "if (v[i] > best)" finds it; with AVX2 a vector max pass then a vector search. */
#if defined(__AVX2__)
#include <immintrin.h>
#define FIRST_ARGMAX_VECTOR(T_, LANES, VEC, SUFX)                                                  \
    if (n >= 2 * (LANES)) {                                                                        \
        VEC m = _mm256_loadu_##SUFX(v);                                                            \
        for (i = (LANES); i + (LANES) <= n; i += (LANES)) m = _mm256_max_##SUFX(m, _mm256_loadu_##SUFX(v + i));\
        T_ lanes[LANES];                                                                           \
        _mm256_storeu_##SUFX(lanes, m);                                                            \
        for (int k = 0; k < (LANES); ++k) best = lanes[k] > best ? lanes[k] : best;                \
        for (; i < n; ++i) best = v[i] > best ? v[i] : best;                                       \
        const VEC target = _mm256_set1_##SUFX(best);                                               \
        for (i = 0; i + (LANES) <= n; i += (LANES)) {                                              \
            const int mask = _mm256_movemask_##SUFX(_mm256_cmp_##SUFX(_mm256_loadu_##SUFX(v + i), target, _CMP_EQ_OQ));\
            if (mask) return i + __builtin_ctz((unsigned)mask);                                    \
        }                                                                                          \
        for (; i < n; ++i) if (v[i] == best) return i;                                             \
        return 0;                                                                                  \
    }
#else
#define FIRST_ARGMAX_VECTOR(T_, LANES, VEC, SUFX)
#endif

#define DEFINE_FIRST_ARGMAX(T_, SUF, LANES, VEC, SUFX)                                             \
static int64_t first_argmax_##SUF(const T_ *v, int64_t n) {                                        \
    int64_t i = 0;                                                                                 \
    T_ best = v[0];                                                                                \
    FIRST_ARGMAX_VECTOR(T_, LANES, VEC, SUFX)                                                      \
    int64_t arg = 0;                                                                               \
    for (i = 1; i < n; ++i) if (v[i] > best) { best = v[i]; arg = i; }                             \
    return arg;                                                                                    \
}

DEFINE_FIRST_ARGMAX(float, f32, 8, __m256, ps)
DEFINE_FIRST_ARGMAX(double, f64, 4, __m256d, pd)

/*
 * Winners of STDP for images [b_begin, b_end): pointwise inhibition (optional), then k-WTA.
 *   lat[B][F][H][W] uint8 (T = silent), val: potential at the first spike.
 *   Pointwise inhibition: at each position only the earliest feature (highest potential, then
 *   the first feature) keeps its spike.
 *   k-WTA: score (T - lat) * (val + v), v = T * max(val) over spiking neurons of the image;
 *   k rounds of a global argmax (first index among equal scores; a round without a positive
 *   score ends the search); each winner zeroes its feature map and the (2R+1)^2 square around
 *   it in every feature.
 *   Output: win[B][K][3] (feature, row, column), win_lat[B][K], valid[B][K] (0/1).
 * The scores are computed with the same operations, in the same order and precision, as the
 * PyTorch path (cortexsnn.plasticity.spike_ops.k_winners), so both pick the same winners.
 */
#define DEFINE_WINNERS(T_, SUF)                                                                    \
void stdp_winners_##SUF(const uint8_t *lat, const T_ *val, int64_t B, int64_t F, int64_t H,         \
                        int64_t W, int64_t T, int64_t K, int64_t R, int pointwise, int64_t *win,   \
                        int64_t *win_lat, uint8_t *valid, int64_t b_begin, int64_t b_end) {        \
    (void)B;                                                                                       \
    const int64_t HW = H * W, N = F * HW;                                                          \
    uint8_t *l = (uint8_t *)malloc((size_t)N);                                                     \
    T_ *total = (T_ *)malloc(sizeof(T_) * (size_t)N);                                              \
    int32_t *early = (int32_t *)malloc(sizeof(int32_t) * (size_t)HW);                              \
    int32_t *who = (int32_t *)malloc(sizeof(int32_t) * (size_t)HW);                                \
    T_ *bestv = (T_ *)malloc(sizeof(T_) * (size_t)HW);                                             \
    for (int64_t b = b_begin; b < b_end; ++b) {                                                    \
        const uint8_t *lb = lat + b * N;                                                           \
        const T_ *vb = val + b * N;                                                                \
        memcpy(l, lb, (size_t)N);                                                                  \
        if (pointwise) {  /* feature-major passes over contiguous rows, selects instead of branches */ \
            for (int64_t p = 0; p < HW; ++p) { early[p] = (int32_t)T; who[p] = -1; bestv[p] = (T_)0; } \
            for (int64_t f = 0; f < F; ++f) {                                                      \
                const uint8_t *ls = lb + f * HW;                                                   \
                const T_ *vs = vb + f * HW;                                                        \
                for (int64_t p = 0; p < HW; ++p) {                                                 \
                    const int32_t s = ls[p];                                                       \
                    const int take = (s < early[p]) | ((s == early[p]) & (s < (int32_t)T) & (vs[p] > bestv[p])); \
                    early[p] = take ? s : early[p];                                                \
                    who[p] = take ? (int32_t)f : who[p];                                           \
                    bestv[p] = take ? vs[p] : bestv[p];                                            \
                }                                                                                  \
            }                                                                                      \
            for (int64_t f = 0; f < F; ++f) {                                                      \
                uint8_t *row = l + f * HW;                                                         \
                for (int64_t p = 0; p < HW; ++p) row[p] = who[p] == (int32_t)f ? row[p] : (uint8_t)T; \
            }                                                                                      \
        }                                                                                          \
        T_ vmax = 0;                                                                               \
        for (int64_t i = 0; i < N; ++i)                                                            \
            if (l[i] < T && vb[i] > vmax) vmax = vb[i];                                            \
        const T_ v = vmax * (T_)T;                                                                 \
        for (int64_t i = 0; i < N; ++i)                                                            \
            total[i] = l[i] < T ? (vb[i] + v) * (T_)(T - l[i]) : (T_)0;                            \
        int64_t *wb = win + b * K * 3;                                                             \
        int alive = 1;                                                                             \
        for (int64_t k = 0; k < K; ++k) {                                                          \
            const int64_t arg = first_argmax_##SUF(total, N);                                      \
            const T_ best = total[arg];                                                            \
            const int64_t f = arg / HW, y = (arg % HW) / W, x = arg % W;                           \
            wb[3 * k] = f; wb[3 * k + 1] = y; wb[3 * k + 2] = x;                                   \
            win_lat[b * K + k] = l[arg];                                                           \
            alive = alive && best > 0;                                                             \
            valid[b * K + k] = (uint8_t)alive;                                                     \
            if (!alive) continue;                                                                  \
            memset(total + f * HW, 0, sizeof(T_) * (size_t)HW);                                    \
            if (R > 0) {                                                                           \
                const int64_t y0 = y - R < 0 ? 0 : y - R, y1 = y + R + 1 > H ? H : y + R + 1;      \
                const int64_t x0 = x - R < 0 ? 0 : x - R, x1 = x + R + 1 > W ? W : x + R + 1;      \
                for (int64_t g = 0; g < F; ++g)                                                    \
                    for (int64_t yy = y0; yy < y1; ++yy)                                           \
                        for (int64_t xx = x0; xx < x1; ++xx) total[g * HW + yy * W + xx] = 0;      \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    free(l);                                                                                       \
    free(total);                                                                                   \
    free(early); free(who); free(bestv);                                                           \
}

DEFINE_WINNERS(float, f32)
DEFINE_WINNERS(double, f64)

/*
 * Shared by the sequential loops: the transposed table column of feature f (wt[q][f] = w[f][q]),
 * and one winner's kernel update, with the float operations of apply_stdp_image:
 *   rate = a+ if the input spiked no later than the winner (lat <= wl), else a-
 *   rate *= (w - lower) * (upper - w)      (with the stabiliser)
 *   w = clamp(w + rate, lower, upper)
 * lat: padded input latencies [C][H][W] of the image; (y, x): the winner's position.
 */
#define DEFINE_UPDATE(T_, SUF)                                                                     \
static void table_column_##SUF(const T_ *weight, T_ *wt, int64_t f, int64_t FP, int64_t NK) {      \
    for (int64_t q = 0; q < NK; ++q) wt[q * FP + f] = weight[f * NK + q];                          \
}                                                                                                  \
                                                                                                   \
static void update_kernel_##SUF(T_ *wf, const uint8_t *lat, int64_t C, int64_t H, int64_t W,       \
                                int64_t KH, int64_t KW, int64_t y, int64_t x, int64_t wl, T_ ap,   \
                                T_ an, int stabilizer, T_ lower, T_ upper) {                       \
    for (int64_t c = 0; c < C; ++c)                                                                \
        for (int64_t i = 0; i < KH; ++i)                                                           \
            for (int64_t j = 0; j < KW; ++j) {                                                     \
                const int64_t q = (c * KH + i) * KW + j;                                           \
                const T_ w = wf[q];                                                                \
                T_ rate = (int64_t)lat[(c * H + y + i) * W + x + j] <= wl ? ap : an;               \
                if (stabilizer) {                                                                  \
                    const T_ span = (w - lower) * (upper - w);                                     \
                    rate = rate * span;                                                            \
                }                                                                                  \
                const T_ nw = w + rate;                                                            \
                wf[q] = nw < lower ? lower : (nw > upper ? upper : nw);                            \
            }                                                                                      \
}

DEFINE_UPDATE(float, f32)
DEFINE_UPDATE(double, f64)

/*
 * Sequential STDP of a convolutional layer over images [0, B): the seed's per-image semantics
 * in one call. For each image in order: the thresholded convolution (mode 3 of spike_conv) with
 * the weights as they are, pointwise inhibition (optional) and k-WTA (stdp_winners), then the
 * update of each valid winner's kernel in place (update_kernel), with the same float operations,
 * in the same order and precision, as the PyTorch path (cortexsnn.plasticity.stdp.apply_stdp_image;
 * compiled without contraction into FMAs), so the weights are bit-identical. The winners of an image are distinct features, so their updates do
 * not interact. With clamp_all, the whole weight tensor is clamped after the first image (as
 * the PyTorch path does while the weights may lie outside the bounds). a_plus / a_minus hold
 * one rate per image (float64, rounded to T_ as PyTorch's .to(dtype)). Returns the number of
 * winners. lat: padded input latencies [B][C][H][W]; weight [F][C][KH][KW] (updated).
 */
#define DEFINE_SEQUENTIAL(T_, SUF)                                                                 \
int64_t stdp_sequential_##SUF(const uint8_t *lat, T_ *weight, int64_t B, int64_t C, int64_t H,     \
                              int64_t W, int64_t F, int64_t KH, int64_t KW, int64_t T,             \
                              T_ threshold, int64_t K, int64_t R, int pointwise,                   \
                              const double *a_plus, const double *a_minus, int stabilizer,         \
                              T_ lower, T_ upper, int clamp_all) {                                 \
    const int64_t HO = H - KH + 1, WO = W - KW + 1, NK = C * KH * KW, image = C * H * W;           \
    const int64_t FP = padded_features(F);                                                         \
    T_ *wt = (T_ *)calloc((size_t)(NK * FP), sizeof(T_));  /* transposed, padded: [NK][FP] */      \
    int32_t *first;                                                                                \
    uint8_t *touched;                                                                              \
    T_ *acc = conv_workspace_##SUF(F, T, &first, &touched);                                        \
    uint8_t *out = (uint8_t *)malloc((size_t)(F * HO * WO));                                       \
    T_ *val = (T_ *)malloc(sizeof(T_) * (size_t)(F * HO * WO));                                    \
    int64_t *win = (int64_t *)malloc(sizeof(int64_t) * (size_t)(3 * K + 1));                       \
    int64_t *win_lat = (int64_t *)malloc(sizeof(int64_t) * (size_t)(K + 1));                       \
    uint8_t *valid = (uint8_t *)malloc((size_t)(K + 1));                                           \
    int64_t total = 0;                                                                             \
    for (int64_t f = 0; f < F; ++f) table_column_##SUF(weight, wt, f, FP, NK);                     \
    for (int64_t b = 0; b < B; ++b) {                                                              \
        const uint8_t *lb = lat + b * image;                                                       \
        spike_conv_core_##SUF(lb, wt, out, val, C, H, W, F, KH, KW, T, 3, threshold, 0, HO * WO,   \
                              acc, first, touched);                                                \
        stdp_winners_##SUF(out, val, 1, F, HO, WO, T, K, R, pointwise, win, win_lat, valid, 0, 1);   \
        const T_ ap = (T_)a_plus[b], an = (T_)a_minus[b];                                          \
        for (int64_t k = 0; k < K; ++k) {                                                          \
            if (!valid[k]) continue;                                                               \
            ++total;                                                                               \
            const int64_t f = win[3 * k], y = win[3 * k + 1], x = win[3 * k + 2];                  \
            update_kernel_##SUF(weight + f * NK, lb, C, H, W, KH, KW, y, x, win_lat[k], ap, an,    \
                                stabilizer, lower, upper);                                         \
        }                                                                                          \
        if (clamp_all) {  /* after the first image every weight lies within the bounds */         \
            for (int64_t q = 0; q < F * NK; ++q)                                                   \
                weight[q] = weight[q] < lower ? lower : (weight[q] > upper ? upper : weight[q]);   \
            clamp_all = 0;                                                                         \
            for (int64_t f = 0; f < F; ++f) table_column_##SUF(weight, wt, f, FP, NK);             \
        } else {                                                                                   \
            for (int64_t k = 0; k < K; ++k)                                                        \
                if (valid[k]) table_column_##SUF(weight, wt, win[3 * k], FP, NK);                  \
        }                                                                                          \
    }                                                                                              \
    free(wt); free(out); free(val); free(win); free(win_lat); free(valid);                         \
    free(acc); free(first); free(touched);                                                         \
    return total;                                                                                  \
}

DEFINE_SEQUENTIAL(float, f32)
DEFINE_SEQUENTIAL(double, f64)

/*
 * Sequential R-STDP of a last-step decision head (the seed's per-image semantics), images in order.
 * Its input: padded latencies lat[B][C][H][W] (T = never). Only whether an input fired (lat < T)
 * matters at the last step, so the last-step potential is P[f][y][x] = sum of w[f][c][i][j] over
 * the fired inputs lat[c][y+i][x+j] < T, added in (c, i, j) order. Per image:
 *   1. P for every feature and position;
 *   2. the decision, with the score of cortexsnn.plasticity.spike_ops.decision_winners in the
 *      same precision: v = T * max(P > 0 ? P : 0); total = P > 0 ? P + v : 0; the winner is the
 *      first maximum of total in (f, y, x) order, valid when total > 0; class = f / per_class;
 *   3. when valid: reward (class == label) uses (reward_plus, reward_minus), punishment the
 *      punish rates; the winner's kernel is updated as apply_stdp_image does (update_kernel with
 *      the decision's step T - 1: a+ where the input fired, else a-).
 *      With clamp_all, the whole tensor is clamped at the first update, as the PyTorch path does
 *      while the weights may lie outside the bounds.
 * Memory, not arithmetic, bounds step 1 (the transposed table [C][KH][KW][F] is megabytes), so
 * the potentials of a chunk of images are computed together, each table row read once per
 * chunk, from the weights at the chunk's start. An image's update changes one feature, so before
 * image i of a chunk is decided, the potentials of the features changed by the images before it
 * are recomputed from the current weights, with the same additions in the same order: every
 * image sees exactly the potentials the one-image-at-a-time loop gives it.
 * decisions[B]: the class, or -1 (silent). Returns the number of updates.
 */
#define RSTDP_CHUNK 4
#define DEFINE_RSTDP_HEAD(T_, SUF)                                                                 \
typedef T_ vec_##SUF __attribute__((vector_size(32), aligned(sizeof(T_))));                        \
/* dst[0:FP] += sum over a of rows[offsets[a] : offsets[a] + FP], each lane adding in order a =   \
   0, 1, ...; groups of 8 vectors are kept in registers across the rows */                         \
static inline void add_rows_##SUF(T_ *restrict dst, const T_ *restrict rows,                        \
                                  const int64_t *offsets, int64_t count, int64_t FP) {              \
    const int64_t lanes = 32 / (int64_t)sizeof(T_), group = 8 * lanes;                             \
    int64_t f = 0;                                                                                 \
    for (; f + group <= FP; f += group) {                                                          \
        vec_##SUF r[8];                                                                            \
        for (int v = 0; v < 8; ++v) r[v] = *(const vec_##SUF *)(dst + f + v * lanes);              \
        for (int64_t a = 0; a < count; ++a) {                                                      \
            const T_ *src = rows + offsets[a] + f;                                                 \
            for (int v = 0; v < 8; ++v) r[v] += *(const vec_##SUF *)(src + v * lanes);             \
        }                                                                                          \
        for (int v = 0; v < 8; ++v) *(vec_##SUF *)(dst + f + v * lanes) = r[v];                    \
    }                                                                                              \
    for (; f < FP; f += lanes) {                                                                   \
        vec_##SUF r = *(const vec_##SUF *)(dst + f);                                               \
        for (int64_t a = 0; a < count; ++a) r += *(const vec_##SUF *)(rows + offsets[a] + f);      \
        *(vec_##SUF *)(dst + f) = r;                                                               \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
int64_t rstdp_head_sequential_##SUF(const uint8_t *lat, T_ *weight, int64_t B, int64_t C,          \
                                    int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW,       \
                                    int64_t T, int64_t per_class, const int64_t *labels,           \
                                    double reward_plus, double reward_minus, double punish_plus,   \
                                    double punish_minus, int stabilizer, T_ lower, T_ upper,       \
                                    int clamp_all, int64_t *decisions) {                           \
    const int64_t HO = H - KH + 1, WO = W - KW + 1, L = HO * WO, NK = C * KH * KW, image = C * H * W;\
    const int64_t FP = padded_features(F);                                                         \
    T_ *wt = (T_ *)calloc((size_t)(NK * FP), sizeof(T_));  /* transposed, padded: [NK][FP] */      \
    T_ *acc = (T_ *)malloc(sizeof(T_) * (size_t)(RSTDP_CHUNK * L * FP));  /* [n][L][FP] */         \
    uint8_t *changed = (uint8_t *)malloc((size_t)F);                                               \
    int64_t *changed_list = (int64_t *)malloc(sizeof(int64_t) * (size_t)(F + 1));                  \
    int64_t *active = (int64_t *)malloc(sizeof(int64_t) * (size_t)(3 * image + 1));  /* c KH KW, y, x */\
    int64_t *offsets = (int64_t *)malloc(sizeof(int64_t) * (size_t)(KH * KW + 1));                 \
    uint64_t *bits = W <= 64 ? (uint64_t *)malloc(sizeof(uint64_t) * (size_t)H) : NULL;             \
    const uint64_t window = KW >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << KW) - 1);                   \
    T_ *sums = (T_ *)malloc(sizeof(T_) * (size_t)(L + 1));                                         \
    int64_t updates = 0, n_active = 0;                                                             \
    for (int64_t f = 0; f < F; ++f) table_column_##SUF(weight, wt, f, FP, NK);                     \
    for (int64_t s = 0; s < B; s += RSTDP_CHUNK) {                                                 \
        const int64_t n = B - s < RSTDP_CHUNK ? B - s : RSTDP_CHUNK;                               \
        memset(acc, 0, sizeof(T_) * (size_t)(n * L * FP));                                         \
        /* one input channel at a time: its KH x KW table rows stay in L1 while they are added    \
           into every image and position of the chunk, in (i, j) order, in register blocks */      \
        for (int64_t c = 0; c < C; ++c) {                                                          \
            const T_ *rows = wt + c * KH * KW * FP;                                                \
            for (int64_t m = 0; m < n; ++m) {                                                      \
                const uint8_t *plane = lat + (s + m) * image + c * H * W;                          \
                if (bits)  /* the plane's rows as bit masks (x -> bit x) */                        \
                    for (int64_t y = 0; y < H; ++y) {                                              \
                        uint64_t row = 0;                                                          \
                        for (int64_t x = 0; x < W; ++x) row |= (uint64_t)(plane[y * W + x] < T) << x; \
                        bits[y] = row;                                                             \
                    }                                                                              \
                for (int64_t y = 0; y < HO; ++y)                                                   \
                    for (int64_t x = 0; x < WO; ++x) {                                             \
                        int64_t count = 0;                                                         \
                        if (bits) {                                                                \
                            for (int64_t i = 0; i < KH; ++i) {                                     \
                                uint64_t row = (bits[y + i] >> x) & window;                        \
                                while (row) {                                                      \
                                    const int64_t j = __builtin_ctzll(row);                        \
                                    row &= row - 1;                                                \
                                    offsets[count++] = (i * KW + j) * FP;                          \
                                }                                                                  \
                            }                                                                      \
                        } else {                                                                   \
                            for (int64_t i = 0; i < KH; ++i)                                       \
                                for (int64_t j = 0; j < KW; ++j)                                   \
                                    if (plane[(y + i) * W + x + j] < T)                            \
                                        offsets[count++] = (i * KW + j) * FP;                      \
                        }                                                                          \
                        if (count) add_rows_##SUF(acc + (m * L + y * WO + x) * FP, rows, offsets, count, FP);\
                    }                                                                              \
            }                                                                                      \
        }                                                                                          \
        memset(changed, 0, (size_t)F);                                                             \
        int64_t n_changed = 0;                                                                     \
        for (int64_t m = 0; m < n; ++m) {                                                          \
            const int64_t b = s + m;                                                               \
            const uint8_t *in = lat + b * image;                                                   \
            T_ *pot = acc + m * L * FP;                                                            \
            if (n_changed) {  /* the fired inputs of the image in (c, y, x) order */               \
                n_active = 0;                                                                      \
                for (int64_t q = 0; q < image; ++q)                                                \
                    if (in[q] < T) {                                                               \
                        active[3 * n_active] = q / (H * W) * KH * KW;                              \
                        active[3 * n_active + 1] = (q / W) % H;                                    \
                        active[3 * n_active + 2] = q % W;                                          \
                        ++n_active;                                                                \
                    }                                                                              \
            }                                                                                      \
            for (int64_t k = 0; k < n_changed; ++k) {                                              \
                /* per output, the same additions in the same order as the chunk's sums above    \
                   (inputs in (c, i, j) order), from the current weights */                        \
                const int64_t g = changed_list[k];                                                 \
                const T_ *wg = weight + g * NK;                                                    \
                for (int64_t l = 0; l < L; ++l) sums[l] = 0;                                       \
                for (int64_t a = 0; a < n_active; ++a) {                                           \
                    const int64_t yy = active[3 * a + 1], xx = active[3 * a + 2];                  \
                    const int64_t y0 = yy - KH + 1 > 0 ? yy - KH + 1 : 0, y1 = yy < HO - 1 ? yy : HO - 1;\
                    const int64_t x0 = xx - KW + 1 > 0 ? xx - KW + 1 : 0, x1 = xx < WO - 1 ? xx : WO - 1;\
                    const T_ *wc = wg + active[3 * a];                                             \
                    for (int64_t y = y0; y <= y1; ++y)                                             \
                        for (int64_t x = x0; x <= x1; ++x)                                         \
                            sums[y * WO + x] += wc[(yy - y) * KW + xx - x];                        \
                }                                                                                  \
                for (int64_t l = 0; l < L; ++l) pot[l * FP + g] = sums[l];                         \
            }                                                                                      \
            T_ top = 0;                                                                            \
            for (int64_t l = 0; l < L; ++l)                                                        \
                for (int64_t f = 0; f < F; ++f) { const T_ p = pot[l * FP + f]; if (p > top) top = p; }\
            const T_ v = top * (T_)T;                                                              \
            T_ best = 0;                                                                           \
            int64_t win_f = 0, win_l = 0;                                                          \
            for (int64_t f = 0; f < F; ++f)                                                        \
                for (int64_t l = 0; l < L; ++l) {                                                  \
                    const T_ p = pot[l * FP + f];                                                  \
                    const T_ total = p > 0 ? p + v : (T_)0;                                        \
                    if (total > best) { best = total; win_f = f; win_l = l; }                      \
                }                                                                                  \
            if (!(best > 0)) { decisions[b] = -1; continue; }                                      \
            const int64_t cls = win_f / per_class;                                                 \
            decisions[b] = cls;                                                                    \
            const int reward = cls == labels[b];                                                   \
            const T_ ap = (T_)(reward ? reward_plus : punish_plus);                                \
            const T_ an = (T_)(reward ? reward_minus : punish_minus);                              \
            /* a fired input spiked no later than the decision, which is at step T - 1 */          \
            update_kernel_##SUF(weight + win_f * NK, in, C, H, W, KH, KW, win_l / WO, win_l % WO,  \
                                T - 1, ap, an, stabilizer, lower, upper);                          \
            ++updates;                                                                             \
            if (clamp_all) {  /* the row above is final; every other weight is clamped once */     \
                for (int64_t f = 0; f < F; ++f) {                                                  \
                    if (f != win_f)                                                                \
                        for (int64_t q = 0; q < NK; ++q) {                                         \
                            const T_ w = weight[f * NK + q];                                       \
                            weight[f * NK + q] = w < lower ? lower : (w > upper ? upper : w);      \
                        }                                                                          \
                    if (!changed[f]) { changed[f] = 1; changed_list[n_changed++] = f; }            \
                }                                                                                  \
                clamp_all = 0;                                                                     \
            } else if (!changed[win_f]) {                                                          \
                changed[win_f] = 1;                                                                \
                changed_list[n_changed++] = win_f;                                                 \
            }                                                                                      \
        }                                                                                          \
        for (int64_t k = 0; k < n_changed; ++k) {                                                  \
            table_column_##SUF(weight, wt, changed_list[k], FP, NK);                               \
        }                                                                                          \
    }                                                                                              \
    free(wt); free(acc); free(changed); free(changed_list); free(active); free(sums); free(offsets); free(bits);                                      \
    return updates;                                                                                \
}

DEFINE_RSTDP_HEAD(float, f32)
DEFINE_RSTDP_HEAD(double, f64)
