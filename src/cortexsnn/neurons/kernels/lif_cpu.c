/*
 * Fused multi-step IF / LIF / PLIF kernels for the CPU (cortexsnn).
 *
 * One call runs the whole time loop for every neuron: the forward pass writes the spikes and the
 * final membrane potential (and, if asked, the potential before firing H[t]); the backward pass
 * runs the adjoint recurrence in reverse time from H, which it either reads or -- the default --
 * recomputes chunk by chunk from the saved input X and V_init into a small per-thread buffer that
 * stays in cache (S = H >= v_th and V[t-1] follow from H). Recomputing costs a few arithmetic
 * operations and saves a [T, ...] tensor of memory and its traffic. Neurons are processed in chunks, chunks
 * in parallel with OpenMP, the inner loop over neurons vectorised. The schedule is dynamic: on a
 * busy machine a descheduled thread does not leave its static share of the work waiting.
 *
 * Charge modes (SpikingJelly semantics, vr = v_reset for a hard reset, 0 for a soft one):
 *   0  IF:                     H = V + X
 *   1  LIF, decay_input:       H = V + (X - (V - vr)) * d
 *   2  LIF, not decay_input:   H = V - (V - vr) * d + X
 * where "* d" is "/ tau" when div is set (LIF: d holds tau, divided by exactly as SpikingJelly
 * does, so that spikes agree to the last bit) and a multiplication by d = sigmoid(w) otherwise
 * (PLIF, again as SpikingJelly computes it).
 * Spike S = (H >= v_th). Reset: hard V = H (1 - S) + vr S; soft V = H - v_th S.
 * Surrogate kinds (derivative of S w.r.t. H at u = H - v_th, alpha > 0):
 *   0 ATan       alpha / 2 / (1 + (pi/2 alpha u)^2)
 *   1 Sigmoid    alpha sig(alpha u) (1 - sig(alpha u))
 *   2 FastSigm.  1 / (1 + alpha |u|)^2
 *   3 Gaussian   exp(-u^2 / (2 alpha^2)) / (sqrt(2 pi) alpha)
 *   4 Triangle   alpha max(0, 1 - alpha |u|)
 */
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>

#define CHUNK 512

/* surrogate derivatives at u = H - v_th, one expression per kind (kept out of the inner loop's
   control flow so that every loop is specialised and vectorised) */
#define SG_ATAN(T_, EXP, FABS, SQRT, u, a)    ((a) / (T_)2 / ((T_)1 + ((T_)1.5707963267948966 * (a) * (u)) * ((T_)1.5707963267948966 * (a) * (u))))
#define SG_SIGMOID(T_, EXP, FABS, SQRT, u, a) ((a) * ((T_)1 / ((T_)1 + EXP(-(a) * (u)))) * ((T_)1 - (T_)1 / ((T_)1 + EXP(-(a) * (u)))))
#define SG_FAST(T_, EXP, FABS, SQRT, u, a)    ((T_)1 / (((T_)1 + (a) * FABS(u)) * ((T_)1 + (a) * FABS(u))))
#define SG_GAUSS(T_, EXP, FABS, SQRT, u, a)   (EXP(-(u) * (u) / ((T_)2 * (a) * (a))) / (SQRT((T_)6.283185307179586) * (a)))
#define SG_TRI(T_, EXP, FABS, SQRT, u, a)     (((T_)1 - (a) * FABS(u)) > 0 ? (a) * ((T_)1 - (a) * FABS(u)) : (T_)0)

/* one time step of the adjoint recurrence for the neurons [lo, lo + len) */
#define BACKWARD_ROW(T_, EXP, FABS, SQRT, SG)                                                       \
    _Pragma("omp simd")                                                                            \
    for (int64_t i = 0; i < len; ++i) {                                                            \
        const T_ hv = ht[i];                                                                       \
        const T_ s = hv >= v_th ? (T_)1 : (T_)0;                                                   \
        const T_ sg = SG(T_, EXP, FABS, SQRT, hv - v_th, alpha);                                   \
        const T_ dvdh = hard ? ((T_)1 - s) + keep * (v_reset - hv) * sg : (T_)1 - keep * v_th * sg; \
        const T_ gh = gst[i] * sg + gv[i] * dvdh;                                                  \
        gxt[i] = gh * cx;                                                                          \
        ghr[i] = gh;                                                                               \
        gv[i] = gh * k;                                                                            \
    }

/* one time step of the forward recurrence for the neurons [lo, lo + len), H = CHARGE */
#define FORWARD_ROW(T_, CHARGE)                                                                     \
    _Pragma("omp simd")                                                                            \
    for (int64_t i = 0; i < len; ++i) {                                                            \
        const T_ h = CHARGE;                                                                       \
        const T_ s = h >= v_th ? (T_)1 : (T_)0;                                                    \
        if (st) st[i] = s;                                                                         \
        if (ht) ht[i] = h;                                                                         \
        vc[i] = hard ? h * ((T_)1 - s) + v_reset * s : h - v_th * s;                               \
    }

/* one specialised, vectorised loop per charge rule */
#define FORWARD_STEP(T_)                                                                            \
    switch (rule) {                                                                                \
    case 0: FORWARD_ROW(T_, vc[i] + xt[i]) break;                                                  \
    case 1: FORWARD_ROW(T_, vc[i] + (xt[i] - (vc[i] - vr)) * d) break;                             \
    case 2: FORWARD_ROW(T_, vc[i] + (xt[i] - (vc[i] - vr)) / d) break;                             \
    case 3: FORWARD_ROW(T_, vc[i] - (vc[i] - vr) * d + xt[i]) break;                               \
    default: FORWARD_ROW(T_, vc[i] - (vc[i] - vr) / d + xt[i]) break;                              \
    }

#define DEFINE_KERNELS(T_, SUF, EXP, FABS, SQRT)                                                    \
/* Returns the number of neurons whose final potential is not finite (NaN or inf input). */       \
int64_t lif_forward_##SUF(const T_ *x, T_ *spikes, T_ *h_out, T_ *v, int64_t steps, int64_t n,      \
                       int mode, int div, T_ d, T_ v_th, T_ v_reset, int hard, int threads) {       \
    const T_ vr = hard ? v_reset : (T_)0;                                                          \
    const int rule = mode == 0 ? 0 : 2 * mode - 1 + (div ? 1 : 0);                                 \
    const int64_t chunks = (n + CHUNK - 1) / CHUNK;                                                \
    int64_t not_finite = 0;                                                                        \
    _Pragma("omp parallel for schedule(dynamic, 4) num_threads(threads) reduction(+:not_finite)")  \
    for (int64_t c = 0; c < chunks; ++c) {                                                         \
        const int64_t lo = c * CHUNK, len = (lo + CHUNK <= n) ? CHUNK : n - lo;                    \
        T_ vc[CHUNK];                                                                              \
        for (int64_t i = 0; i < len; ++i) vc[i] = v[lo + i];                                       \
        for (int64_t t = 0; t < steps; ++t) {                                                      \
            const T_ *xt = x + t * n + lo;                                                         \
            T_ *st = spikes + t * n + lo;                                                          \
            T_ *ht = h_out ? h_out + t * n + lo : NULL;                                            \
            FORWARD_STEP(T_)                                                                       \
        }                                                                                          \
        /* a NaN or inf input leaves V non-finite for good (a hard reset computes inf * 0 = NaN): */ \
        /* counting the final potentials detects every one at no cost (x - x != 0 for NaN, inf) */ \
        for (int64_t i = 0; i < len; ++i) {                                                        \
            v[lo + i] = vc[i];                                                                     \
            not_finite += (vc[i] - vc[i] != (T_)0);                                                \
        }                                                                                          \
    }                                                                                              \
    return not_finite;                                                                             \
}                                                                                                  \
                                                                                                   \
/* grad_spikes row t starts at t * gs_tstride; gs_bcast: one value per step for all neurons.       \
   grad_v: in = dL/dV[T-1] (if has_grad_v, else zero), out = dL/dV_init. h: the saved H, or NULL   \
   to recompute it from x and v_init ([n]) in chunks of `chunk` neurons, `workspace` holding        \
   steps * chunk values per thread. x and v_init are also needed when want_grad_d (PLIF, never      \
   with div). Returns dL/dd. */                                                                    \
double lif_backward_##SUF(const T_ *grad_spikes, int64_t gs_tstride, int gs_bcast,                  \
                          const T_ *h, const T_ *x, const T_ *v_init, T_ *workspace, int64_t chunk, \
                          T_ *grad_x, T_ *grad_v, int has_grad_v, int64_t steps, int64_t n,        \
                          int mode, int div, T_ d, T_ v_th, T_ v_reset, int hard, int detach_reset, \
                          int kind, T_ alpha, int want_grad_d, int threads) {                      \
    const T_ vr = hard ? v_reset : (T_)0;                                                          \
    const int rule = mode == 0 ? 0 : 2 * mode - 1 + (div ? 1 : 0);                                 \
    const T_ rate = div ? (T_)1 / d : d;                /* the leak factor 1 / tau */              \
    const T_ k = mode == 0 ? (T_)1 : (T_)1 - rate;      /* dH[t]/dV[t-1] */                        \
    const T_ cx = mode == 1 ? rate : (T_)1;             /* dH[t]/dX[t]   */                        \
    const T_ keep = detach_reset ? (T_)0 : (T_)1;                                                  \
    const int recompute = h == NULL;                                                               \
    if (!recompute || chunk < 1 || chunk > CHUNK) chunk = CHUNK;                                   \
    const int64_t chunks = (n + chunk - 1) / chunk;                                                \
    double grad_d = 0.0;                                                                           \
    _Pragma("omp parallel for schedule(dynamic, 4) num_threads(threads) reduction(+:grad_d)")      \
    for (int64_t c = 0; c < chunks; ++c) {                                                         \
        const int64_t lo = c * chunk, len = (lo + chunk <= n) ? chunk : n - lo;                    \
        T_ gv[CHUNK], gsrow[CHUNK], ghr[CHUNK], vc[CHUNK];                                         \
        T_ *hbuf = recompute ? workspace + (int64_t)omp_get_thread_num() * steps * chunk : NULL;   \
        double acc = 0.0;                                                                          \
        if (recompute) {  /* the forward recurrence again, H only, into the thread's buffer */     \
            for (int64_t i = 0; i < len; ++i) vc[i] = v_init[lo + i];                              \
            for (int64_t t = 0; t < steps; ++t) {                                                  \
                const T_ *xt = x + t * n + lo;                                                     \
                T_ *st = NULL, *ht = hbuf + t * len;                                               \
                FORWARD_STEP(T_)                                                                   \
            }                                                                                      \
        }                                                                                          \
        for (int64_t i = 0; i < len; ++i) gv[i] = has_grad_v ? grad_v[lo + i] : (T_)0;             \
        for (int64_t t = steps - 1; t >= 0; --t) {                                                 \
            const T_ *ht = recompute ? hbuf + t * len : h + t * n + lo;                            \
            /* dL/dS[t]: a row of n, or one value for all neurons (e.g. the gradient of a sum), */ \
            /* spread into an L1-resident row so that the loop stays contiguous */                \
            const T_ *gst = grad_spikes + t * gs_tstride + (gs_bcast ? 0 : lo);                    \
            if (gs_bcast) {                                                                        \
                const T_ g0 = gst[0];                                                              \
                for (int64_t i = 0; i < len; ++i) gsrow[i] = g0;                                   \
                gst = gsrow;                                                                       \
            }                                                                                      \
            T_ *gxt = grad_x + t * n + lo;                                                         \
            switch (kind) {                                                                        \
            case 0: BACKWARD_ROW(T_, EXP, FABS, SQRT, SG_ATAN) break;                              \
            case 1: BACKWARD_ROW(T_, EXP, FABS, SQRT, SG_SIGMOID) break;                           \
            case 2: BACKWARD_ROW(T_, EXP, FABS, SQRT, SG_FAST) break;                              \
            case 3: BACKWARD_ROW(T_, EXP, FABS, SQRT, SG_GAUSS) break;                             \
            default: BACKWARD_ROW(T_, EXP, FABS, SQRT, SG_TRI) break;                              \
            }                                                                                      \
            if (want_grad_d) {  /* dH[t]/dd = X[t] - (V[t-1] - vr) or -(V[t-1] - vr) */           \
                const T_ *hp = t == 0 ? NULL : recompute ? hbuf + (t - 1) * len : h + (t - 1) * n + lo; \
                const T_ *xt = x + t * n + lo;                                                     \
                _Pragma("omp simd reduction(+:acc)")                                               \
                for (int64_t i = 0; i < len; ++i) {                                                \
                    T_ vp;                                                                         \
                    if (hp) {                                                                      \
                        const T_ sp = hp[i] >= v_th ? (T_)1 : (T_)0;                               \
                        vp = hard ? hp[i] * ((T_)1 - sp) + v_reset * sp : hp[i] - v_th * sp;       \
                    } else {                                                                       \
                        vp = v_init[lo + i];                                                       \
                    }                                                                              \
                    acc += (double)(ghr[i] * (mode == 1 ? xt[i] - (vp - vr) : -(vp - vr)));        \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int64_t i = 0; i < len; ++i) grad_v[lo + i] = gv[i];                                  \
        grad_d += acc;                                                                             \
    }                                                                                              \
    return grad_d;                                                                                 \
}

DEFINE_KERNELS(float, f32, expf, fabsf, sqrtf)
DEFINE_KERNELS(double, f64, exp, fabs, sqrt)
