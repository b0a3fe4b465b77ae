/*
 * Event-driven convolution of cumulative spike waves (cortexsnn.plasticity), CPU.
 *
 * Input spikes are first-spike latencies lat[B][C][H][W] (uint8, T = never); the waves are
 * wave[t] = (lat <= t), so the potential of output neuron (f, y, x) at step t is
 *     P[t][f][y][x] = sum over (c, i, j) with lat[c][y+i][x+j] <= t of w[f][c][i][j].
 * Every kernel sums it the same way: per step, the table rows w[:, c, i, j] (F contiguous values,
 * from the transposed weight wt[C][KH][KW][F]) of the input spikes of that step in (c, i, j)
 * order, the first one copied; then P[t] = P[t-1] + that increment. Each input spike is added
 * once, at its own step, instead of at every step after it, and all kernels give the same bits.
 *
 * spike_conv modes:
 *   0  potentials  out[B][HO][WO][T][F] (floating)
 *   1  fire        first step with P > threshold, out[B][F][HO][WO] (uint8, T = never)
 *   2  last step   out[B][HO][WO][F] = P[T-1] (floating)
 *   3  fire+value  as 1, and out2[B][F][HO][WO] = P at the first spike (0 if none) (floating)
 * Modes 1 and 3 (and spike_fire_pool, stdp_conv_winners) work in time order: nothing after a
 * neuron's first spike matters, so a position stops once its neurons have fired (or, for STDP's
 * pointwise inhibition, after its first step with any spike; see fire_position, first_crossing).
 * Positions (b, y, x) are independent: a call handles positions [p_begin, p_end) of the flat
 * (b, y, x) index, so that callers can split the work over threads without write conflicts.
 * Threads: stdp_conv_winners and spike_fire_pool share their work among the threads of an
 * OpenMP team. The library is built with -fopenmp and loaded after PyTorch, so its libgomp.so.1
 * is PyTorch's own (the loader matches the soname): the team is PyTorch's, whose threads spin for
 * a while after every parallel PyTorch operation, and a team of our own (or a thread pool) would
 * compete with them for the cores. The other kernels are split by the caller's thread pool.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

/* Rows of the transposed weight table and of the accumulators are padded to a multiple of 8
   values (FP = padded_features(F)), so that every row operation is whole vectors. */
static int64_t padded_features(int64_t F) { return (F + 7) / 8 * 8; }

/* 32-byte vectors (8 floats or 4 doubles; unaligned access allowed) and lane masks of the same
   shape, as the comparisons of GCC's vector extensions return them (-1 where true). */
typedef float vec_f32 __attribute__((vector_size(32), aligned(4)));
typedef double vec_f64 __attribute__((vector_size(32), aligned(8)));
typedef int32_t lanes_f32 __attribute__((vector_size(32), aligned(4)));
typedef int64_t lanes_f64 __attribute__((vector_size(32), aligned(8)));

static inline int any_lane(const void *mask) {
#if defined(__AVX__)
    const __m256i m = _mm256_loadu_si256((const __m256i *)mask);
    return !_mm256_testz_si256(m, m);
#else
    uint64_t part[4];
    memcpy(part, mask, 32);
    return (part[0] | part[1] | part[2] | part[3]) != 0;
#endif
}

/* Workspace of the time-ordered kernels (sizes in 8-byte units, enough for either precision). */
typedef struct {
    int32_t *rows, *active, *who;
    uint8_t *image, *field, *plat, *out;
    void *run, *first, *fval, *steps, *pval, *score, *val;
    double w_max;  /* max(0, largest weight) (fire_position's bound) */
} fire_ws;

static void fire_ws_free(fire_ws *w) {
    free(w->rows); free(w->active); free(w->who); free(w->image); free(w->field); free(w->plat); free(w->out);
    free(w->run); free(w->first); free(w->fval); free(w->steps); free(w->pval); free(w->score); free(w->val);
}

/* NK inputs per field, image = C * H * W, T steps, F features (FP padded); HW output positions
   per image for the winners' per-position arrays (0: none). */
static int fire_ws_alloc(fire_ws *w, int64_t NK, int64_t image, int64_t T, int64_t F, int64_t FP, int64_t HW) {
    memset(w, 0, sizeof(*w));
    const size_t fp = (size_t)FP, hw = (size_t)HW + 1;
    w->rows = malloc(4 * (size_t)(NK + 1)); w->active = malloc(4 * fp); w->who = malloc(4 * hw);
    w->image = malloc((size_t)image + 8); w->field = malloc((size_t)NK + 40);
    w->plat = malloc(hw); w->out = malloc((size_t)F * hw);
    w->run = malloc(8 * fp); w->first = malloc(8 * fp); w->fval = malloc(8 * fp); w->steps = malloc(8 * fp * (size_t)T);
    w->pval = malloc(8 * hw); w->score = malloc(8 * hw); w->val = malloc(8 * (size_t)F * hw);
    return w->rows && w->active && w->who && w->image && w->field && w->plat && w->out && w->run && w->first
        && w->fval && w->steps && w->pval && w->score && w->val;
}

/* A copy of one image's latencies [C][H][W] with 8 bytes of slack (for field_latencies). */
static void load_image(fire_ws *w, const uint8_t *lat, int64_t image) {
    memcpy(w->image, lat, (size_t)image);
    memset(w->image + image, 0xFF, 8);
}

/* The latencies of the receptive field at (y, x) in (c, i, j) order: field[(c * KH + i) * KW + j]
   (rows of up to 8 inputs as overlapping 8-byte copies), then 32 bytes that match no step. */
static void field_latencies(fire_ws *w, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t y,
                            int64_t x) {
    const uint8_t *img = w->image;
    uint8_t *field = w->field;
    for (int64_t c = 0; c < C; ++c)
        for (int64_t i = 0; i < KH; ++i) {
            const uint8_t *src = img + (c * H + y + i) * W + x;
            uint8_t *dst = field + (c * KH + i) * KW;
            if (KW <= 8) {
                uint64_t v;
                memcpy(&v, src, 8);
                memcpy(dst, &v, 8);
            } else {
                memcpy(dst, src, (size_t)KW);
            }
        }
    memset(field + C * KH * KW, 0xFF, 32);
}

/* bit k set when p[k] == t, k < 32 */
static inline uint32_t equal_mask32(const uint8_t *p, uint8_t t) {
#if defined(__AVX2__)
    const __m256i v = _mm256_loadu_si256((const __m256i *)p);
    return (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8((char)t)));
#else
    uint32_t m = 0;
    for (int k = 0; k < 32; ++k) m |= (uint32_t)(p[k] == t) << k;
    return m;
#endif
}

/* bit k set when p[k] < t, k < 32 */
static inline uint32_t below_mask32(const uint8_t *p, uint8_t t) {
#if defined(__AVX2__)
    const __m256i v = _mm256_loadu_si256((const __m256i *)p);
    return (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8((char)(t - 1))), v));
#else
    uint32_t m = 0;
    for (int k = 0; k < 32; ++k) m |= (uint32_t)(p[k] < t) << k;
    return m;
#endif
}

/* The number of input spikes (latency < T) in the field. */
static inline int64_t field_spike_count(const uint8_t *field, int64_t NK, int64_t T) {
    int64_t n = 0;
    for (int64_t k = 0; k < NK; k += 32) {
#if defined(__AVX2__)
        const __m256i v = _mm256_loadu_si256((const __m256i *)(field + k));
        const __m256i below = _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8((char)(T - 1))), v);
        n += __builtin_popcount((uint32_t)_mm256_movemask_epi8(below));
#else
        for (int64_t j = k; j < k + 32; ++j) n += field[j] < T;
#endif
    }
    return n;
}

/* The table offsets (q * FP) of the field's input spikes at step t, in (c, i, j) order. */
static inline int64_t step_rows(const uint8_t *field, int64_t NK, int64_t t, int64_t FP, int32_t *rows) {
    int64_t n = 0;
    for (int64_t k = 0; k < NK; k += 32) {
        uint32_t m = equal_mask32(field + k, (uint8_t)t);
        while (m) {
            const int b = __builtin_ctz(m);
            m &= m - 1;
            rows[n++] = (int32_t)((k + b) * FP);
        }
    }
    return n;
}

/* The potentials (mode 0) or the last step (mode 2) over positions [p_begin, p_end): for each
   position every input spike's table row is added into the increment of its own step, then the
   increments are summed over time (mode 2: one increment). table: padded [C][KH][KW][FP];
   acc: T + 1 padded rows; touched: T flags. */
#define DEFINE_KERNEL(T_, SUF)                                                                     \
static void spike_conv_core_##SUF(const uint8_t *lat, const T_ *restrict table, T_ *restrict out, int64_t C, \
                                int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW, int64_t T, int mode, \
                                int64_t p_begin, int64_t p_end, T_ *restrict acc, uint8_t *restrict touched) { \
    const int64_t HO = H - KH + 1, WO = W - KW + 1, FP = padded_features(F);                       \
    T_ *run = acc + T * FP;                                                                        \
    for (int64_t p = p_begin; p < p_end; ++p) {                                                    \
        const int64_t b = p / (HO * WO), y = (p / WO) % HO, x = p % WO;                            \
        const int64_t steps = (mode == 2) ? 1 : T;                                                 \
        /* an increment row is written by its first input spike (a copy: 0 + w = w) and added to   \
           by the others, in input order; rows of steps without a spike stay unused */             \
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
            memcpy(out + p * F, acc, sizeof(T_) * (size_t)F);                                      \
            continue;                                                                              \
        }                                                                                          \
        T_ *dst = out + p * T * F;                                                                 \
        for (int64_t f = 0; f < F; ++f) run[f] = (T_)0;                                            \
        for (int64_t t = 0; t < T; ++t) {                                                          \
            if (touched[t]) {                                                                      \
                const T_ *inc = acc + t * FP;                                                      \
                for (int64_t f = 0; f < F; ++f) run[f] = t ? run[f] + inc[f] : inc[f];             \
            }                                                                                      \
            memcpy(dst + t * F, run, sizeof(T_) * (size_t)F);                                      \
        }                                                                                          \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* padded copy [NK][FP] of a table [NK][F] (zeros in the padding) */                               \
static T_ *padded_table_##SUF(const T_ *wt, int64_t NK, int64_t F) {                               \
    const int64_t FP = padded_features(F);                                                         \
    T_ *table = (T_ *)calloc((size_t)(NK * FP), sizeof(T_));                                       \
    if (table)                                                                                     \
        for (int64_t q = 0; q < NK; ++q) memcpy(table + q * FP, wt + q * F, sizeof(T_) * (size_t)F); \
    return table;                                                                                  \
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

#define DEFINE_FIRE(T_, SUF, I_)                                                                   \
/* max(0, largest value of the table): bounds what one input spike can add to a potential */       \
static double largest_weight_##SUF(const T_ *table, int64_t n) {                                   \
    double m = 0;                                                                                  \
    for (int64_t k = 0; k < n; ++k) m = (double)table[k] > m ? (double)table[k] : m;               \
    return m;                                                                                      \
}                                                                                                  \
                                                                                                   \
/* One step of fire_position for the M feature vectors blk[0, M): the step's rows summed into M    \
   independent register accumulators (so that the additions of a row overlap), then the running    \
   potentials, first-spike steps and values; waiting[g]: a neuron of vector g can still fire       \
   earlier than first[] holds. */                                                                  \
static inline __attribute__((always_inline)) void step_vectors_##SUF(                              \
        const T_ *restrict table, const int32_t *rows, int64_t n, T_ *restrict run,                \
        I_ *restrict first, T_ *restrict fval, const int32_t *blk, const int M, vec_##SUF thr,     \
        lanes_##SUF step, int *waiting) {                                                          \
    const int64_t L = 32 / (int64_t)sizeof(T_);                                                    \
    int64_t o[8];                                                                                  \
    vec_##SUF inc[8];                                                                              \
    for (int g = 0; g < M; ++g) { o[g] = (int64_t)blk[g] * L; inc[g] = (vec_##SUF){0}; }           \
    if (n > 0) {                                                                                   \
        for (int g = 0; g < M; ++g) inc[g] = *(const vec_##SUF *)(table + rows[0] + o[g]);         \
        for (int64_t k = 1; k < n; ++k) {                                                          \
            const T_ *row = table + rows[k];                                                       \
            for (int g = 0; g < M; ++g) inc[g] += *(const vec_##SUF *)(row + o[g]);                \
        }                                                                                          \
    }                                                                                              \
    for (int g = 0; g < M; ++g) {                                                                  \
        const vec_##SUF r = *(vec_##SUF *)(run + o[g]) + inc[g];                                   \
        *(vec_##SUF *)(run + o[g]) = r;                                                            \
        lanes_##SUF when = *(lanes_##SUF *)(first + o[g]);                                         \
        const lanes_##SUF hit = (r > thr) & (when > step);  /* earlier than the step held */       \
        when = (when & ~hit) | (step & hit);                                                       \
        *(lanes_##SUF *)(first + o[g]) = when;                                                     \
        const lanes_##SUF old = (lanes_##SUF)*(vec_##SUF *)(fval + o[g]);                          \
        *(vec_##SUF *)(fval + o[g]) = (vec_##SUF)(((lanes_##SUF)r & hit) | (old & ~hit));          \
        const lanes_##SUF left = when > step + 1;  /* a later step can still be earlier */         \
        waiting[g] = any_lane(&left);                                                              \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* One output position, the latencies of its receptive field in w->field (field_latencies): the    \
   first step first[f] with P > threshold (T: none) and the potential fval[f] there (0: none),     \
   for the features [0, FP); the padding lanes (f >= F) count as fired so that their vectors can   \
   be dropped. Steps are summed in order, each from its own input spikes; a vector of features is  \
   dropped once none of its neurons can fire earlier than first[] holds, and the position ends     \
   when none is left. With keep_first, first[] comes from the caller (the earliest spikes of the   \
   other positions of a pooling window) and only earlier spikes replace it. */                     \
static void fire_position_##SUF(const T_ *restrict table, fire_ws *w, int64_t NK, int64_t F, int64_t FP, int64_t T, \
                              T_ threshold, int keep_first) {                                      \
    const int64_t L = 32 / (int64_t)sizeof(T_);                                                    \
    T_ *restrict run = (T_ *)w->run, *restrict fval = (T_ *)w->fval;                               \
    I_ *restrict first = (I_ *)w->first;                                                           \
    int32_t *restrict active = w->active, *restrict rows = w->rows;                                \
    int64_t n_active = 0;                                                                          \
    for (int64_t b = 0; b < FP / L; ++b) active[n_active++] = (int32_t)b;                          \
    for (int64_t f = 0; f < FP; ++f) { run[f] = (T_)0; fval[f] = (T_)0; }                          \
    if (!keep_first) for (int64_t f = 0; f < FP; ++f) first[f] = f < F ? (I_)T : 0;                \
    /* silent for sure: even if every input spike added the largest weight (with room for the      \
       rounding of the sums), no potential could exceed the threshold */                           \
    if ((double)field_spike_count(w->field, NK, T) * w->w_max * (1.0 + 1e-3) <= (double)threshold) return; \
    const vec_##SUF thr = (vec_##SUF){0} + threshold;                                              \
    for (int64_t t = 0; t < T && n_active > 0; ++t) {                                              \
        const int64_t n = step_rows(w->field, NK, t, FP, rows);                                    \
        if (n == 0 && t > 0) continue;  /* no input spike: no potential changes */                 \
        const lanes_##SUF step = (lanes_##SUF){0} + (I_)t;                                         \
        int waiting[8];                                                                            \
        int64_t kept = 0;                                                                          \
        for (int64_t a = 0; a < n_active;) {                                                       \
            const int m = n_active - a >= 8 ? 8 : (n_active - a >= 4 ? 4 : 1);                     \
            if (m == 8)                                                                            \
                step_vectors_##SUF(table, rows, n, run, first, fval, active + a, 8, thr, step, waiting); \
            else if (m == 4)                                                                       \
                step_vectors_##SUF(table, rows, n, run, first, fval, active + a, 4, thr, step, waiting); \
            else                                                                                   \
                step_vectors_##SUF(table, rows, n, run, first, fval, active + a, 1, thr, step, waiting); \
            for (int g = 0; g < m; ++g)  /* keep the vectors with neurons left to fire */          \
                if (waiting[g]) active[kept++] = active[a + g];                                    \
            a += m;                                                                                \
        }                                                                                          \
        n_active = kept;                                                                           \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* One step of first_crossing for the vectors [v0, v0 + M): the step's rows summed in registers,   \
   added to the running potentials; returns whether any lane passed the threshold. */              \
static inline __attribute__((always_inline)) int crossing_step_##SUF(const T_ *restrict table, const int32_t *rows, \
                                                                     int64_t n, T_ *restrict run, int64_t v0, \
                                                                     const int M, vec_##SUF thr) { \
    const int64_t L = 32 / (int64_t)sizeof(T_);                                                    \
    vec_##SUF inc[8];                                                                              \
    for (int g = 0; g < M; ++g) inc[g] = (vec_##SUF){0};                                           \
    if (n > 0) {                                                                                   \
        for (int g = 0; g < M; ++g) inc[g] = *(const vec_##SUF *)(table + rows[0] + (v0 + g) * L); \
        for (int64_t k = 1; k < n; ++k) {                                                          \
            const T_ *row = table + rows[k] + v0 * L;                                              \
            for (int g = 0; g < M; ++g) inc[g] += *(const vec_##SUF *)(row + g * L);               \
        }                                                                                          \
    }                                                                                              \
    lanes_##SUF hit = (lanes_##SUF){0};                                                            \
    for (int g = 0; g < M; ++g) {                                                                  \
        const vec_##SUF r = *(vec_##SUF *)(run + (v0 + g) * L) + inc[g];                           \
        *(vec_##SUF *)(run + (v0 + g) * L) = r;                                                    \
        hit |= r > thr;                                                                            \
    }                                                                                              \
    return any_lane(&hit);                                                                         \
}                                                                                                  \
                                                                                                   \
/* What pointwise inhibition needs of a position (conv_positions): the first step                  \
   t0 at which any feature's potential passes the threshold (T if none), with fval holding the     \
   potentials at t0 of the features above the threshold and 0 elsewhere. The same sums in the      \
   same order as fire_position, without its per-neuron bookkeeping. */                             \
static int64_t first_crossing_##SUF(const T_ *restrict table, fire_ws *w, int64_t NK, int64_t FP, int64_t T, \
                                  T_ threshold) {                                                  \
    const int64_t L = 32 / (int64_t)sizeof(T_), NV = FP / L;                                       \
    T_ *restrict run = (T_ *)w->run, *restrict fval = (T_ *)w->fval;                               \
    int32_t *restrict rows = w->rows;                                                              \
    if ((double)field_spike_count(w->field, NK, T) * w->w_max * (1.0 + 1e-3) <= (double)threshold) return T; \
    for (int64_t f = 0; f < FP; ++f) run[f] = (T_)0;                                               \
    const vec_##SUF thr = (vec_##SUF){0} + threshold;                                              \
    for (int64_t t = 0; t < T; ++t) {                                                              \
        const int64_t n = step_rows(w->field, NK, t, FP, rows);                                    \
        if (n == 0 && t > 0) continue;  /* no input spike: no potential changes */                 \
        int fired = 0;                                                                             \
        int64_t v = 0;                                                                             \
        for (; v + 8 <= NV; v += 8) fired |= crossing_step_##SUF(table, rows, n, run, v, 8, thr);  \
        if (NV - v >= 4) { fired |= crossing_step_##SUF(table, rows, n, run, v, 4, thr); v += 4; } \
        for (; v < NV; ++v) fired |= crossing_step_##SUF(table, rows, n, run, v, 1, thr);          \
        if (!fired) continue;                                                                      \
        for (int64_t u = 0; u < NV; ++u) {                                                         \
            const vec_##SUF r = *(const vec_##SUF *)(run + u * L);                                 \
            const lanes_##SUF hit = r > thr;                                                       \
            *(vec_##SUF *)(fval + u * L) = (vec_##SUF)((lanes_##SUF)r & hit);                      \
        }                                                                                          \
        return t;                                                                                  \
    }                                                                                              \
    return T;                                                                                      \
}                                                                                                  \
                                                                                                   \
/* The field's input spikes of steps [lo, hi) added, in (c, i, j) order, into the increment of     \
   their own step: inc[t * FP ..] (rows [lo, hi) zeroed first: 0 + w = w). Returns the steps with  \
   spikes as bits (with step 0 whenever lo == 0: fire_position always visits it). */               \
static inline __attribute__((always_inline)) uint32_t bin_steps_##SUF(const T_ *restrict table, const uint8_t *field, \
                                                                      int64_t NK, int64_t FP, int64_t lo, int64_t hi, \
                                                                      T_ *restrict inc, const int64_t NV) { \
    const int64_t L = 32 / (int64_t)sizeof(T_);                                                    \
    for (int64_t f = lo * FP; f < hi * FP; ++f) inc[f] = (T_)0;                                    \
    uint32_t used = lo == 0 ? 1 : 0;                                                               \
    for (int64_t k = 0; k < NK; k += 32) {                                                         \
        uint32_t m = below_mask32(field + k, (uint8_t)hi);                                         \
        if (lo > 0) m &= ~below_mask32(field + k, (uint8_t)lo);                                    \
        while (m) {                                                                                \
            const int b = __builtin_ctz(m);                                                        \
            m &= m - 1;                                                                            \
            const int64_t s = field[k + b];                                                        \
            used |= (uint32_t)1 << s;                                                              \
            T_ *dst = inc + s * FP;                                                                \
            const T_ *src = table + (k + b) * FP;                                                  \
            for (int64_t v = 0; v < NV; ++v) *(vec_##SUF *)(dst + v * L) += *(const vec_##SUF *)(src + v * L); \
        }                                                                                          \
    }                                                                                              \
    return used;                                                                                   \
}                                                                                                  \
                                                                                                   \
/* first_crossing for narrow layers (NV <= 4 vectors of features): the input spikes of the field   \
   are added, in (c, i, j) order, into the increment of their own step (w->steps: T increments,    \
   zeroed first: 0 + w = w), then the steps are summed in order until one passes the threshold.    \
   Spikes of the steps after it are not needed: the steps before `guess` (the caller's estimate,   \
   e.g. a neighbour's crossing step) are binned and summed first, the others only when none of     \
   them crosses. For a narrow layer this costs less than finding each step's spikes separately.    \
   Same sums in the same order as first_crossing. */                                               \
static inline __attribute__((always_inline)) int64_t first_crossing_binned_##SUF(                  \
        const T_ *restrict table, fire_ws *w, int64_t NK, int64_t FP, int64_t T, T_ threshold, int64_t guess, \
        const int64_t NV) {                                                                        \
    const int64_t L = 32 / (int64_t)sizeof(T_);                                                    \
    T_ *restrict inc = (T_ *)w->steps, *restrict fval = (T_ *)w->fval;                             \
    const uint8_t *field = w->field;                                                               \
    if ((double)field_spike_count(field, NK, T) * w->w_max * (1.0 + 1e-3) <= (double)threshold) return T; \
    const vec_##SUF thr = (vec_##SUF){0} + threshold;                                              \
    vec_##SUF run[4];                                                                              \
    for (int64_t v = 0; v < NV; ++v) run[v] = (vec_##SUF){0};                                      \
    int64_t lo = 0, hi = guess < 1 ? 1 : (guess > T ? T : guess);                                  \
    while (lo < T) {  /* steps [lo, hi) */                                                         \
        uint32_t used = bin_steps_##SUF(table, field, NK, FP, lo, hi, inc, NV);                    \
        while (used) {                                                                             \
            const int64_t t = __builtin_ctz(used);                                                 \
            used &= used - 1;                                                                      \
            lanes_##SUF hit = (lanes_##SUF){0};                                                    \
            for (int64_t v = 0; v < NV; ++v) {                                                     \
                run[v] = run[v] + *(const vec_##SUF *)(inc + t * FP + v * L);                      \
                hit |= run[v] > thr;                                                               \
            }                                                                                      \
            if (!any_lane(&hit)) continue;                                                         \
            for (int64_t v = 0; v < NV; ++v)                                                       \
                *(vec_##SUF *)(fval + v * L) = (vec_##SUF)((lanes_##SUF)run[v] & (run[v] > thr));  \
            return t;                                                                              \
        }                                                                                          \
        lo = hi;                                                                                   \
        hi = T;                                                                                    \
    }                                                                                              \
    return T;                                                                                      \
}                                                                                                  \
                                                                                                   \
/* fire_position for narrow layers (NV <= 4 vectors of features): the                              \
   field's spikes binned by step as in first_crossing_binned (those before the latest step held    \
   in first[] only), then the steps summed in order, with the same per-neuron rules as             \
   fire_position, until no neuron can fire earlier than first[] holds. */                          \
static inline __attribute__((always_inline)) void fire_position_binned_##SUF(                      \
        const T_ *restrict table, fire_ws *w, int64_t NK, int64_t F, int64_t FP, int64_t T, T_ threshold, \
        int keep_first, const int64_t NV) {                                                        \
    const int64_t L = 32 / (int64_t)sizeof(T_);                                                    \
    T_ *restrict inc = (T_ *)w->steps, *restrict fval = (T_ *)w->fval;                             \
    I_ *restrict first = (I_ *)w->first;                                                           \
    const uint8_t *field = w->field;                                                               \
    for (int64_t f = 0; f < FP; ++f) fval[f] = (T_)0;                                              \
    if (!keep_first) for (int64_t f = 0; f < FP; ++f) first[f] = f < F ? (I_)T : 0;                \
    /* only input spikes before the latest first[] can make a neuron fire earlier than it */       \
    I_ limit = 0;                                                                                  \
    for (int64_t f = 0; f < FP; ++f) limit = first[f] > limit ? first[f] : limit;                  \
    if (limit == 0) return;                                                                        \
    if ((double)field_spike_count(field, NK, limit) * w->w_max * (1.0 + 1e-3) <= (double)threshold) return; \
    uint32_t used = bin_steps_##SUF(table, field, NK, FP, 0, limit, inc, NV);                      \
    const vec_##SUF thr = (vec_##SUF){0} + threshold;                                              \
    vec_##SUF run[4];                                                                              \
    lanes_##SUF when[4];                                                                           \
    for (int64_t v = 0; v < NV; ++v) { run[v] = (vec_##SUF){0}; when[v] = *(const lanes_##SUF *)(first + v * L); } \
    while (used) {                                                                                 \
        const int64_t t = __builtin_ctz(used);                                                     \
        used &= used - 1;                                                                          \
        const lanes_##SUF step = (lanes_##SUF){0} + (I_)t;                                         \
        lanes_##SUF left = (lanes_##SUF){0};                                                       \
        for (int64_t v = 0; v < NV; ++v) {                                                         \
            run[v] = run[v] + *(const vec_##SUF *)(inc + t * FP + v * L);                          \
            const lanes_##SUF hit = (run[v] > thr) & (when[v] > step);                             \
            when[v] = (when[v] & ~hit) | (step & hit);                                             \
            const lanes_##SUF old = (lanes_##SUF)*(vec_##SUF *)(fval + v * L);                     \
            *(vec_##SUF *)(fval + v * L) = (vec_##SUF)(((lanes_##SUF)run[v] & hit) | (old & ~hit)); \
            left |= when[v] > step + 1;                                                            \
        }                                                                                          \
        if (!any_lane(&left)) break;                                                               \
    }                                                                                              \
    for (int64_t v = 0; v < NV; ++v) *(lanes_##SUF *)(first + v * L) = when[v];                    \
}                                                                                                  \
                                                                                                   \
/* fire_position, through fire_position_binned for narrow layers */                                \
static void fire_any_##SUF(const T_ *restrict table, fire_ws *w, int64_t NK, int64_t F, int64_t FP, int64_t T, \
                         T_ threshold, int keep_first) {                                           \
    switch (FP / (32 / (int64_t)sizeof(T_))) {  /* constant vector counts: unrolled */             \
        case 1: fire_position_binned_##SUF(table, w, NK, F, FP, T, threshold, keep_first, 1); break; \
        case 2: fire_position_binned_##SUF(table, w, NK, F, FP, T, threshold, keep_first, 2); break; \
        case 3: fire_position_binned_##SUF(table, w, NK, F, FP, T, threshold, keep_first, 3); break; \
        case 4: fire_position_binned_##SUF(table, w, NK, F, FP, T, threshold, keep_first, 4); break; \
        default: fire_position_##SUF(table, w, NK, F, FP, T, threshold, keep_first); break;        \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* Modes 1 and 3 of spike_conv (first spikes, and the potentials there) for positions              \
   [p_begin, p_end) of the flat (b, y, x) index, in time order. table: padded [NK][FP]. */         \
static void spike_fire_range_##SUF(const uint8_t *lat, const T_ *table, uint8_t *spikes, T_ *values, int64_t C, \
                                 int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW, int64_t T, \
                                 T_ threshold, int64_t p_begin, int64_t p_end, fire_ws *w) {       \
    const int64_t HO = H - KH + 1, WO = W - KW + 1, FP = padded_features(F), image = C * H * W;    \
    const int64_t NK = C * KH * KW;                                                                \
    const T_ *fval = (const T_ *)w->fval;                                                          \
    const I_ *first = (const I_ *)w->first;                                                        \
    int64_t current = -1;                                                                          \
    for (int64_t p = p_begin; p < p_end; ++p) {                                                    \
        const int64_t b = p / (HO * WO), y = (p / WO) % HO, x = p % WO;                            \
        if (b != current) load_image(w, lat + b * image, image);                                   \
        current = b;                                                                               \
        field_latencies(w, C, H, W, KH, KW, y, x);                                                 \
        fire_any_##SUF(table, w, NK, F, FP, T, threshold, 0);                                      \
        for (int64_t f = 0; f < F; ++f) {                                                          \
            const int64_t o = ((b * F + f) * HO + y) * WO + x;                                     \
            spikes[o] = (uint8_t)first[f];                                                         \
            if (values) values[o] = fval[f];                                                       \
        }                                                                                          \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* First spikes followed by spike pooling (window and stride k, floor mode) for pooled positions   \
   [p_begin, p_end) of the flat (b, y, x) index: out[B][F][HO / k][WO / k] is the earliest spike   \
   of each window. The window's positions run one after the other with the earliest spikes so      \
   far as their bar (fire_position's keep_first). */                                               \
static void spike_fire_pool_range_##SUF(const uint8_t *lat, const T_ *table, uint8_t *spikes, int64_t C, \
                                      int64_t H, int64_t W, int64_t F, int64_t KH, int64_t KW, int64_t T, \
                                      T_ threshold, int64_t k, int64_t p_begin, int64_t p_end, fire_ws *w) { \
    const int64_t HO = H - KH + 1, WO = W - KW + 1, HP = HO / k, WP = WO / k;                      \
    const int64_t FP = padded_features(F), image = C * H * W, NK = C * KH * KW;                    \
    I_ *first = (I_ *)w->first;                                                                    \
    int64_t current = -1;                                                                          \
    for (int64_t p = p_begin; p < p_end; ++p) {                                                    \
        const int64_t b = p / (HP * WP), py = (p / WP) % HP, px = p % WP;                          \
        if (b != current) load_image(w, lat + b * image, image);                                   \
        current = b;                                                                               \
        for (int64_t f = 0; f < FP; ++f) first[f] = f < F ? (I_)T : 0;                             \
        for (int64_t dy = 0; dy < k; ++dy)                                                         \
            for (int64_t dx = 0; dx < k; ++dx) {                                                   \
                field_latencies(w, C, H, W, KH, KW, py * k + dy, px * k + dx);                     \
                fire_any_##SUF(table, w, NK, F, FP, T, threshold, 1);                              \
            }                                                                                      \
        for (int64_t f = 0; f < F; ++f) spikes[((b * F + f) * HP + py) * WP + px] = (uint8_t)first[f]; \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* The pointwise winner of every output position of one image (who: feature or -1, plat: its       \
   step, pval: its potential there), a position at a time, each only up to its first step at       \
   which any feature fires (first_crossing; first_crossing_binned for narrow layers). */           \
static void conv_positions_##SUF(const uint8_t *lb, const T_ *table, int64_t C, int64_t H, int64_t W, \
                              int64_t F, int64_t KH, int64_t KW, int64_t T, T_ threshold, fire_ws *w) { \
    const int64_t HO = H - KH + 1, WO = W - KW + 1, FP = padded_features(F);                       \
    const T_ *fval = (const T_ *)w->fval;                                                          \
    T_ *pval = (T_ *)w->pval;                                                                      \
    load_image(w, lb, C * H * W);                                                                  \
    int64_t guess = T;  /* where the previous position crossed, plus a margin: neighbours are alike */ \
    for (int64_t p = 0; p < HO * WO; ++p) {                                                        \
        field_latencies(w, C, H, W, KH, KW, p / WO, p % WO);                                       \
        int64_t t0;                                                                                \
        switch (FP / (32 / (int64_t)sizeof(T_))) {  /* constant vector counts: unrolled */         \
            case 1: t0 = first_crossing_binned_##SUF(table, w, C * KH * KW, FP, T, threshold, guess, 1); break; \
            case 2: t0 = first_crossing_binned_##SUF(table, w, C * KH * KW, FP, T, threshold, guess, 2); break; \
            case 3: t0 = first_crossing_binned_##SUF(table, w, C * KH * KW, FP, T, threshold, guess, 3); break; \
            case 4: t0 = first_crossing_binned_##SUF(table, w, C * KH * KW, FP, T, threshold, guess, 4); break; \
            default: t0 = first_crossing_##SUF(table, w, C * KH * KW, FP, T, threshold); break;    \
        }                                                                                          \
        guess = t0 < T ? t0 + 2 : T;                                                               \
        w->who[p] = -1;                                                                            \
        w->plat[p] = (uint8_t)T;                                                                   \
        pval[p] = 0;                                                                               \
        if (t0 >= T) continue;                                                                     \
        /* every feature that fired did so at t0 (fval > threshold >= 0), the others hold 0: the   \
           earliest feature with the highest potential is the first maximum of fval */             \
        w->who[p] = (int32_t)first_argmax_##SUF(fval, F);                                          \
        pval[p] = fval[w->who[p]];                                                                 \
        w->plat[p] = (uint8_t)t0;                                                                  \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* STDP's winners of one image straight from its input latencies lb [C][H][W]: the same winners    \
   as spike_fire_range (mode 3) followed by stdp_winners with pointwise inhibition, without the    \
   [F][HO][WO] maps. Pointwise inhibition keeps at each position only the features that fire at    \
   its earliest step (the highest potential there, then the first feature), so each position       \
   stops after that step (first_crossing); k-WTA then runs over the positions                      \
   with the scores, order and tie-breaking of stdp_winners (the first maximum in (f, y, x) order). */ \
static void conv_winners_image_##SUF(const uint8_t *lb, const T_ *table, int64_t C, int64_t H, int64_t W, \
                                   int64_t F, int64_t KH, int64_t KW, int64_t T, T_ threshold, int64_t K, \
                                   int64_t R, fire_ws *w, int64_t *win, int64_t *win_lat, uint8_t *valid) { \
    const int64_t HO = H - KH + 1, WO = W - KW + 1, HW = HO * WO;                                  \
    int32_t *who = w->who;                                                                         \
    uint8_t *plat = w->plat;                                                                       \
    T_ *pval = (T_ *)w->pval, *score = (T_ *)w->score;                                             \
    conv_positions_##SUF(lb, table, C, H, W, F, KH, KW, T, threshold, w);                          \
    T_ vmax = 0;                                                                                   \
    for (int64_t p = 0; p < HW; ++p)                                                               \
        if (who[p] >= 0 && pval[p] > vmax) vmax = pval[p];                                         \
    const T_ v = vmax * (T_)T;                                                                     \
    for (int64_t p = 0; p < HW; ++p) score[p] = who[p] >= 0 ? (pval[p] + v) * (T_)(T - plat[p]) : (T_)0; \
    int alive = 1;                                                                                 \
    for (int64_t k = 0; k < K; ++k) {                                                              \
        /* the first maximum over (f, y, x): the neurons inhibited pointwise score 0 */            \
        int64_t arg = -1, key = 0;                                                                 \
        T_ best = 0;                                                                               \
        for (int64_t p = 0; p < HW; ++p) {                                                         \
            if (!(score[p] > 0)) continue;                                                         \
            const int64_t kp = who[p] * HW + p;                                                    \
            if (arg < 0 || score[p] > best || (score[p] == best && kp < key)) { arg = p; best = score[p]; key = kp; } \
        }                                                                                          \
        alive = alive && arg >= 0;                                                                 \
        valid[k] = (uint8_t)alive;                                                                 \
        if (!alive) {  /* as stdp_winners: the argmax of all zeros is neuron (0, 0, 0) */          \
            win[3 * k] = 0; win[3 * k + 1] = 0; win[3 * k + 2] = 0;                                \
            win_lat[k] = who[0] == 0 ? plat[0] : T;                                                \
            continue;                                                                              \
        }                                                                                          \
        const int64_t f = who[arg], y = arg / WO, x = arg % WO;                                    \
        win[3 * k] = f; win[3 * k + 1] = y; win[3 * k + 2] = x;                                    \
        win_lat[k] = plat[arg];                                                                    \
        for (int64_t p = 0; p < HW; ++p) if (who[p] == f) score[p] = 0;                            \
        if (R > 0) {                                                                               \
            const int64_t y0 = y - R < 0 ? 0 : y - R, y1 = y + R + 1 > HO ? HO : y + R + 1;        \
            const int64_t x0 = x - R < 0 ? 0 : x - R, x1 = x + R + 1 > WO ? WO : x + R + 1;        \
            for (int64_t yy = y0; yy < y1; ++yy)                                                   \
                for (int64_t xx = x0; xx < x1; ++xx) score[yy * WO + xx] = 0;                      \
        }                                                                                          \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* The winners of images [b_begin, b_end) (see conv_winners_image; without pointwise inhibition    \
   the maps of spike_fire_range go through stdp_winners). lat: padded latencies [B][C][H][W];      \
   wt: transposed table [NK][F]. Returns 0, or -1 when out of memory. */                           \
int stdp_conv_winners_##SUF(const uint8_t *lat, const T_ *wt, int64_t B, int64_t C, int64_t H, int64_t W, \
                          int64_t F, int64_t KH, int64_t KW, int64_t T, T_ threshold, int64_t K, int64_t R, \
                          int pointwise, int64_t *win, int64_t *win_lat, uint8_t *valid, int64_t b_begin, \
                          int64_t b_end) {                                                         \
    (void)B;                                                                                       \
    const int64_t HO = H - KH + 1, WO = W - KW + 1, NK = C * KH * KW, image = C * H * W;           \
    T_ *table = padded_table_##SUF(wt, NK, F);                                                     \
    const double w_max = table ? largest_weight_##SUF(table, NK * padded_features(F)) : 0;         \
    int ok = table != NULL;                                                                        \
    /* images one at a time to each thread of PyTorch's own OpenMP team (see the top of the file) */ \
    _Pragma("omp parallel if (b_end - b_begin > 1) reduction(&&: ok)")                             \
    {                                                                                              \
        fire_ws w = {0};                                                                           \
        const int mine = table && fire_ws_alloc(&w, NK, image, T, F, padded_features(F), HO * WO); \
        w.w_max = w_max;                                                                           \
        _Pragma("omp for schedule(dynamic, 1)")                                                    \
        for (int64_t b = b_begin; b < b_end; ++b) {                                                \
            if (!mine) continue;                                                                   \
            if (pointwise) {                                                                       \
                conv_winners_image_##SUF(lat + b * image, table, C, H, W, F, KH, KW, T, threshold, K, R, &w, \
                                       win + b * K * 3, win_lat + b * K, valid + b * K);           \
            } else {                                                                               \
                spike_fire_range_##SUF(lat + b * image, table, w.out, (T_ *)w.val, C, H, W, F, KH, KW, T, \
                                     threshold, 0, HO * WO, &w);                                   \
                stdp_winners_##SUF(w.out, (const T_ *)w.val, 1, F, HO, WO, T, K, R, 0, win + b * K * 3, \
                                 win_lat + b * K, valid + b * K, 0, 1);                            \
            }                                                                                      \
        }                                                                                          \
        fire_ws_free(&w);                                                                          \
        ok = mine;                                                                                 \
    }                                                                                              \
    free(table);                                                                                   \
    return ok ? 0 : -1;                                                                            \
}                                                                                                  \
                                                                                                   \
/* Modes (see the top of the file): 0 and 2 through spike_conv_core, 1 and 3 in time order         \
   (spike_fire_range). Returns 0, or -1 when out of memory. */                                     \
int spike_conv_##SUF(const uint8_t *lat, const T_ *wt, void *out, void *out2, int64_t B, int64_t C, int64_t H, \
                   int64_t W, int64_t F, int64_t KH, int64_t KW, int64_t T, int mode, T_ threshold, \
                   int64_t p_begin, int64_t p_end) {                                               \
    (void)B;                                                                                       \
    const int64_t FP = padded_features(F), NK = C * KH * KW;                                       \
    T_ *table = padded_table_##SUF(wt, NK, F);                                                     \
    int ok = table != NULL;                                                                        \
    if (ok && (mode == 1 || mode == 3)) {                                                          \
        fire_ws w = {0};                                                                           \
        ok = fire_ws_alloc(&w, NK, C * H * W, T, F, FP, 0);                                        \
        if (ok) w.w_max = largest_weight_##SUF(table, NK * FP);                                    \
        if (ok)                                                                                    \
            spike_fire_range_##SUF(lat, table, (uint8_t *)out, mode == 3 ? (T_ *)out2 : NULL, C, H, W, F, KH, KW, \
                                 T, threshold, p_begin, p_end, &w);                                \
        fire_ws_free(&w);                                                                          \
    } else if (ok) {                                                                               \
        T_ *acc = (T_ *)malloc(sizeof(T_) * (size_t)((T + 1) * FP));                               \
        uint8_t *touched = (uint8_t *)malloc((size_t)T);                                           \
        ok = acc && touched;                                                                       \
        if (ok) spike_conv_core_##SUF(lat, table, (T_ *)out, C, H, W, F, KH, KW, T, mode, p_begin, p_end, acc, touched); \
        free(acc);                                                                                 \
        free(touched);                                                                             \
    }                                                                                              \
    free(table);                                                                                   \
    return ok ? 0 : -1;                                                                            \
}                                                                                                  \
                                                                                                   \
                                                                                                   \
/* spike_fire_pool_range over pooled positions [p_begin, p_end). Returns 0, or -1 when out of memory. */ \
int spike_fire_pool_##SUF(const uint8_t *lat, const T_ *wt, uint8_t *out, int64_t C, int64_t H, int64_t W, \
                        int64_t F, int64_t KH, int64_t KW, int64_t T, T_ threshold, int64_t k, int64_t p_begin, \
                        int64_t p_end) {                                                           \
    const int64_t FP = padded_features(F), NK = C * KH * KW, piece = 16;                           \
    T_ *table = padded_table_##SUF(wt, NK, F);                                                     \
    const double w_max = table ? largest_weight_##SUF(table, NK * FP) : 0;                         \
    int ok = table != NULL;                                                                        \
    /* pieces of 16 windows to each thread of PyTorch's own OpenMP team (see the top of the file) */ \
    _Pragma("omp parallel if (p_end - p_begin > piece) reduction(&&: ok)")                         \
    {                                                                                              \
        fire_ws w = {0};                                                                           \
        const int mine = table && fire_ws_alloc(&w, NK, C * H * W, T, F, FP, 0);                   \
        w.w_max = w_max;                                                                           \
        _Pragma("omp for schedule(dynamic, 1)")                                                    \
        for (int64_t p = p_begin; p < p_end; p += piece) {                                         \
            if (!mine) continue;                                                                   \
            spike_fire_pool_range_##SUF(lat, table, out, C, H, W, F, KH, KW, T, threshold, k, p,   \
                                      p + piece < p_end ? p + piece : p_end, &w);                  \
        }                                                                                          \
        fire_ws_free(&w);                                                                          \
        ok = mine;                                                                                 \
    }                                                                                              \
    free(table);                                                                                   \
    return ok ? 0 : -1;                                                                            \
}

DEFINE_FIRE(float, f32, int32_t)
DEFINE_FIRE(double, f64, int64_t)

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
 * Batched STDP: the summed change of all valid winners of images [0, B), from the weights as they
 * are (cortexsnn.plasticity.stdp.stdp_delta): per winner and input, rate = a+ (input spiked no
 * later than the winner) or a-, times (w - lower) * (upper - w) with the stabiliser, added into
 * delta[f] in (image, winner) order, as index_add_ does, so the sums are bit-identical.
 * lat: padded input latencies [B][C][H][W]; weight, delta [F][C][KH][KW].
 */
#define DEFINE_DELTA(T_, SUF)                                                                      \
void stdp_delta_##SUF(const uint8_t *lat, const T_ *weight, int64_t B, int64_t C, int64_t H, int64_t W, int64_t KH, \
                    int64_t KW, int64_t K, const int64_t *win, const int64_t *win_lat, const uint8_t *valid, \
                    const double *a_plus, const double *a_minus, int stabilizer, T_ lower, T_ upper, T_ *delta) { \
    const int64_t NK = C * KH * KW, image = C * H * W;                                             \
    for (int64_t b = 0; b < B; ++b) {                                                              \
        const T_ ap = (T_)a_plus[b], an = (T_)a_minus[b];                                          \
        for (int64_t k = 0; k < K; ++k) {                                                          \
            if (!valid[b * K + k]) continue;                                                       \
            const int64_t *wk = win + (b * K + k) * 3, wl = win_lat[b * K + k];                    \
            const T_ *wf = weight + wk[0] * NK;                                                    \
            T_ *df = delta + wk[0] * NK;                                                           \
            for (int64_t c = 0; c < C; ++c)                                                        \
                for (int64_t i = 0; i < KH; ++i) {                                                 \
                    const uint8_t *row = lat + b * image + (c * H + wk[1] + i) * W + wk[2];        \
                    for (int64_t j = 0; j < KW; ++j) {                                             \
                        const int64_t q = (c * KH + i) * KW + j;                                   \
                        T_ rate = (int64_t)row[j] <= wl ? ap : an;                                 \
                        if (stabilizer) rate = rate * ((wf[q] - lower) * (upper - wf[q]));         \
                        df[q] += rate;                                                             \
                    }                                                                              \
                }                                                                                  \
        }                                                                                          \
    }                                                                                              \
}

DEFINE_DELTA(float, f32)
DEFINE_DELTA(double, f64)

/*
 * Sequential STDP of a convolutional layer over images [0, B): Mozafari et al.'s per-image semantics
 * in one call. For each image in order: the winners with the weights as they are
 * (conv_winners_image: the thresholded convolution, pointwise inhibition and k-WTA), then the
 * update of each valid winner's kernel in place (update_kernel), with the same float operations,
 * in the same order and precision, as the PyTorch path (cortexsnn.plasticity.stdp.apply_stdp_image;
 * compiled without contraction into FMAs), so the weights are bit-identical. The winners of an image are distinct features, so their updates do
 * not interact. With clamp_all, the whole weight tensor is clamped after the first image (as
 * the PyTorch path does while the weights may lie outside the bounds). a_plus / a_minus hold
 * one rate per image (float64, rounded to T_ as PyTorch's .to(dtype)). Returns the number of
 * winners (-1 when out of memory). lat: padded input latencies [B][C][H][W]; weight [F][C][KH][KW]
 * (updated).
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
    fire_ws ws = {0};                                                                                  \
    if (!wt || !fire_ws_alloc(&ws, NK, image, T, F, FP, HO * WO)) { free(wt); fire_ws_free(&ws); return -1; } \
    int64_t *win = (int64_t *)malloc(sizeof(int64_t) * (size_t)(3 * K + 1));                       \
    int64_t *win_lat = (int64_t *)malloc(sizeof(int64_t) * (size_t)(K + 1));                       \
    uint8_t *valid = (uint8_t *)malloc((size_t)(K + 1));                                           \
    int64_t total = 0;                                                                             \
    for (int64_t f = 0; f < F; ++f) table_column_##SUF(weight, wt, f, FP, NK);                     \
    ws.w_max = largest_weight_##SUF(weight, F * NK);  /* raised below as the weights change */       \
    for (int64_t b = 0; b < B; ++b) {                                                              \
        const uint8_t *lb = lat + b * image;                                                       \
        if (pointwise) {                                                                           \
            conv_winners_image_##SUF(lb, wt, C, H, W, F, KH, KW, T, threshold, K, R, &ws, win, win_lat, valid); \
        } else {                                                                                   \
            spike_fire_range_##SUF(lb, wt, ws.out, (T_ *)ws.val, C, H, W, F, KH, KW, T, threshold, 0, \
                                   HO * WO, &ws);                                                  \
            stdp_winners_##SUF(ws.out, (const T_ *)ws.val, 1, F, HO, WO, T, K, R, 0, win, win_lat, valid, 0, 1); \
        }                                                                                          \
        const T_ ap = (T_)a_plus[b], an = (T_)a_minus[b];                                          \
        for (int64_t k = 0; k < K; ++k) {                                                          \
            if (!valid[k]) continue;                                                               \
            ++total;                                                                               \
            const int64_t f = win[3 * k], y = win[3 * k + 1], x = win[3 * k + 2];                  \
            update_kernel_##SUF(weight + f * NK, lb, C, H, W, KH, KW, y, x, win_lat[k], ap, an,    \
                                stabilizer, lower, upper);                                         \
            const double top = largest_weight_##SUF(weight + f * NK, NK);                             \
            ws.w_max = top > ws.w_max ? top : ws.w_max;                                            \
        }                                                                                          \
        if (clamp_all) {  /* after the first image every weight lies within the bounds */         \
            for (int64_t q = 0; q < F * NK; ++q)                                                   \
                weight[q] = weight[q] < lower ? lower : (weight[q] > upper ? upper : weight[q]);   \
            clamp_all = 0;                                                                         \
            for (int64_t f = 0; f < F; ++f) table_column_##SUF(weight, wt, f, FP, NK);             \
            ws.w_max = largest_weight_##SUF(weight, F * NK);                                       \
        } else {                                                                                   \
            for (int64_t k = 0; k < K; ++k)                                                        \
                if (valid[k]) table_column_##SUF(weight, wt, win[3 * k], FP, NK);                  \
        }                                                                                          \
    }                                                                                              \
    free(wt); free(win); free(win_lat); free(valid);                                               \
    fire_ws_free(&ws);                                                                             \
    return total;                                                                                  \
}

DEFINE_SEQUENTIAL(float, f32)
DEFINE_SEQUENTIAL(double, f64)

/*
 * Sequential R-STDP of a last-step decision head (Mozafari et al.'s per-image semantics), images in order.
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
