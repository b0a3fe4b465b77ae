/*
 * Fused multi-step IF / LIF / PLIF kernels for the CPU (cortexsnn).
 *
 * One call runs the whole time loop for every neuron: the forward pass writes the spikes and the
 * final membrane potential (and, if asked, the potential before firing H[t]); the backward pass
 * runs the adjoint recurrence in reverse time from H, which it either reads or -- the default --
 * recomputes chunk by chunk from the saved input X and V_init into a small per-thread buffer that
 * stays in cache (S = H >= v_th and V[t-1] follow from H). Recomputing costs a few arithmetic
 * operations and saves a [T, ...] tensor of memory and its traffic. Neurons are processed in
 * chunks, the inner loop over neurons vectorised (omp simd only: no OpenMP runtime). Chunks are
 * shared out dynamically among a few POSIX threads that block, never spin, when done: on a busy
 * machine an OpenMP team's spin-waiting threads cost more than they gain (measured 2-3x slower
 * than one thread at load 12 on 2 cores), and a descheduled thread holds up no static share.
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
 * Any other kind (or charge mode) is refused by the entry points before any work (a status of -1):
 * never a silent stand-in formula. The Python side only passes the kinds of the built-in surrogates
 * (cortexsnn.neurons.surrogate.kernel_kind); a user-defined one runs on the torch backend.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CHUNK 512
#define KNOWN_KIND(kind) ((kind) >= 0 && (kind) <= 4)
#define KNOWN_MODE(mode) ((mode) >= 0 && (mode) <= 2)

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

/* one specialised, vectorised backward loop per surrogate kind */
#define BACKWARD_STEP(T_, EXP, FABS, SQRT, KIND)                                                    \
    switch (KIND) {                                                                                \
    case 0: BACKWARD_ROW(T_, EXP, FABS, SQRT, SG_ATAN) break;                                      \
    case 1: BACKWARD_ROW(T_, EXP, FABS, SQRT, SG_SIGMOID) break;                                   \
    case 2: BACKWARD_ROW(T_, EXP, FABS, SQRT, SG_FAST) break;                                      \
    case 3: BACKWARD_ROW(T_, EXP, FABS, SQRT, SG_GAUSS) break;                                     \
    case 4: BACKWARD_ROW(T_, EXP, FABS, SQRT, SG_TRI) break;                                       \
    default: break; /* unreachable: the entry points refuse unknown kinds (KNOWN_KIND) */           \
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
    case 4: FORWARD_ROW(T_, vc[i] - (vc[i] - vr) / d + xt[i]) break;                               \
    default: break; /* unreachable: the entry points refuse unknown modes (KNOWN_MODE) */           \
    }

#define MAX_THREADS 64

/* ---- a minimal fork-join over chunks: dynamic, blocking (no spinning) ---- */
typedef void (*chunk_fn)(void *args, int64_t chunk, int tid);
typedef struct { chunk_fn fn; void *args; int64_t chunks; atomic_llong next; } job_t;
typedef struct { job_t *job; int tid; } worker_t;

static void *work(void *p) {
    worker_t *w = (worker_t *)p;
    for (;;) {
        const int64_t c = atomic_fetch_add(&w->job->next, 1);
        if (c >= w->job->chunks) break;
        w->job->fn(w->job->args, c, w->tid);
    }
    return NULL;
}

/* Runs fn(args, c, tid) for every chunk c on up to `threads` threads (the caller is thread 0);
   returns how many threads took part (tid < that). */
static int run_chunks(chunk_fn fn, void *args, int64_t chunks, int threads) {
    job_t job = {fn, args, chunks, 0};
    pthread_t ids[MAX_THREADS];
    worker_t workers[MAX_THREADS];
    if (threads > chunks) threads = (int)chunks;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads < 1) threads = 1;
    int started = 1;
    for (int t = 1; t < threads; ++t) {
        workers[t] = (worker_t){&job, t};
        if (pthread_create(&ids[t], NULL, work, &workers[t]) != 0) break;  /* fewer threads */
        started = t + 1;
    }
    workers[0] = (worker_t){&job, 0};
    work(&workers[0]);
    for (int t = 1; t < started; ++t) pthread_join(ids[t], NULL);
    return started;
}

#define DEFINE_KERNELS(T_, SUF, EXP, FABS, SQRT)                                                    \
typedef struct {                                                                                   \
    const T_ *x, *v_in; int v_bcast; T_ *spikes, *h_out, *v_out; int64_t steps, n; int rule, hard;  \
    T_ d, v_th, v_reset;                                                                           \
    int64_t not_finite[MAX_THREADS];                                                               \
} forward_args_##SUF;                                                                              \
                                                                                                   \
static void forward_chunk_##SUF(void *p, int64_t c, int tid) {                                     \
    forward_args_##SUF *a = (forward_args_##SUF *)p;                                               \
    const T_ *x = a->x, d = a->d, v_th = a->v_th, v_reset = a->v_reset;                            \
    const int64_t steps = a->steps, n = a->n;                                                      \
    const int rule = a->rule, hard = a->hard;                                                      \
    const T_ vr = hard ? v_reset : (T_)0;                                                          \
    const int64_t lo = c * CHUNK, len = (lo + CHUNK <= n) ? CHUNK : n - lo;                        \
    T_ vc[CHUNK];                                                                                  \
    for (int64_t i = 0; i < len; ++i) vc[i] = a->v_in[a->v_bcast ? 0 : lo + i];                    \
    for (int64_t t = 0; t < steps; ++t) {                                                          \
        const T_ *xt = x + t * n + lo;                                                             \
        T_ *st = a->spikes + t * n + lo;                                                           \
        T_ *ht = a->h_out ? a->h_out + t * n + lo : NULL;                                          \
        FORWARD_STEP(T_)                                                                           \
    }                                                                                              \
    /* a NaN or inf input leaves V non-finite for good (a hard reset computes inf * 0 = NaN): */   \
    /* counting the final potentials detects every one at no cost (x - x != 0 for NaN, inf) */     \
    int64_t bad = 0;                                                                               \
    for (int64_t i = 0; i < len; ++i) {                                                            \
        a->v_out[lo + i] = vc[i];                                                                  \
        bad += (vc[i] - vc[i] != (T_)0);                                                           \
    }                                                                                              \
    a->not_finite[tid] += bad;                                                                     \
}                                                                                                  \
                                                                                                   \
/* V_init is v_in ([n], or one value for all if v_bcast); the final V goes to v_out. Returns the  \
   number of neurons whose final potential is not finite (NaN or inf input). */                    \
int64_t lif_forward_##SUF(const T_ *x, T_ *spikes, T_ *h_out, const T_ *v_in, int v_bcast,         \
                          T_ *v_out, int64_t steps, int64_t n, int mode, int div, T_ d, T_ v_th,   \
                          T_ v_reset, int hard, int threads) {                                     \
    if (!KNOWN_MODE(mode)) return -1;                                                              \
    forward_args_##SUF a = {x, v_in, v_bcast, spikes, h_out, v_out, steps, n,                      \
                            mode == 0 ? 0 : 2 * mode - 1 + (div ? 1 : 0), hard, d, v_th, v_reset, {0}}; \
    const int used = run_chunks(forward_chunk_##SUF, &a, (n + CHUNK - 1) / CHUNK, threads);        \
    int64_t not_finite = 0;                                                                        \
    for (int t = 0; t < used; ++t) not_finite += a.not_finite[t];                                  \
    return not_finite;                                                                             \
}                                                                                                  \
                                                                                                   \
typedef struct {                                                                                   \
    const T_ *grad_spikes; int64_t gs_tstride; int gs_bcast;                                       \
    const T_ *h, *x, *v_init; int v_bcast; T_ *workspace; int64_t chunk;                          \
    T_ *grad_x; const T_ *grad_v_in; T_ *grad_v_out; int64_t steps, n;                             \
    int mode, rule, hard, kind, want_grad_d; T_ d, v_th, v_reset, alpha, k, cx, keep;              \
    double grad_d[MAX_THREADS];                                                                    \
} backward_args_##SUF;                                                                             \
                                                                                                   \
static void backward_chunk_##SUF(void *p, int64_t c, int tid) {                                    \
    backward_args_##SUF *a = (backward_args_##SUF *)p;                                             \
    const T_ *x = a->x, *h = a->h, *v_init = a->v_init;                                            \
    const T_ d = a->d, v_th = a->v_th, v_reset = a->v_reset, alpha = a->alpha;                     \
    const T_ k = a->k, cx = a->cx, keep = a->keep;                                                 \
    const int64_t steps = a->steps, n = a->n, chunk = a->chunk;                                    \
    const int mode = a->mode, rule = a->rule, hard = a->hard, recompute = h == NULL;               \
    const T_ vr = hard ? v_reset : (T_)0;                                                          \
    const int64_t lo = c * chunk, len = (lo + chunk <= n) ? chunk : n - lo;                        \
    T_ gv[CHUNK], gsrow[CHUNK], ghr[CHUNK], vc[CHUNK];                                             \
    T_ *hbuf = recompute ? a->workspace + (int64_t)tid * steps * chunk : NULL;                     \
    double acc = 0.0;                                                                              \
    if (recompute) {  /* the forward recurrence again, H only, into the thread's buffer */         \
        for (int64_t i = 0; i < len; ++i) vc[i] = v_init[a->v_bcast ? 0 : lo + i];                \
        for (int64_t t = 0; t < steps; ++t) {                                                      \
            const T_ *xt = x + t * n + lo;                                                         \
            T_ *st = NULL, *ht = hbuf + t * len;                                                   \
            FORWARD_STEP(T_)                                                                       \
        }                                                                                          \
    }                                                                                              \
    for (int64_t i = 0; i < len; ++i) gv[i] = a->grad_v_in ? a->grad_v_in[lo + i] : (T_)0;         \
    for (int64_t t = steps - 1; t >= 0; --t) {                                                     \
        const T_ *ht = recompute ? hbuf + t * len : h + t * n + lo;                                \
        /* dL/dS[t]: a row of n, or one value for all neurons (e.g. the gradient of a sum), */     \
        /* spread into an L1-resident row so that the loop stays contiguous */                    \
        const T_ *gst = a->grad_spikes + t * a->gs_tstride + (a->gs_bcast ? 0 : lo);               \
        if (a->gs_bcast) {                                                                         \
            const T_ g0 = gst[0];                                                                  \
            for (int64_t i = 0; i < len; ++i) gsrow[i] = g0;                                       \
            gst = gsrow;                                                                           \
        }                                                                                          \
        T_ *gxt = a->grad_x + t * n + lo;                                                          \
        BACKWARD_STEP(T_, EXP, FABS, SQRT, a->kind)                                                \
        if (a->want_grad_d) {  /* dH[t]/dd = X[t] - (V[t-1] - vr) or -(V[t-1] - vr) */            \
            const T_ *hp = t == 0 ? NULL : recompute ? hbuf + (t - 1) * len : h + (t - 1) * n + lo; \
            const T_ *xt = x + t * n + lo;                                                         \
            _Pragma("omp simd reduction(+:acc)")                                                   \
            for (int64_t i = 0; i < len; ++i) {                                                    \
                T_ vp;                                                                             \
                if (hp) {                                                                          \
                    const T_ sp = hp[i] >= v_th ? (T_)1 : (T_)0;                                   \
                    vp = hard ? hp[i] * ((T_)1 - sp) + v_reset * sp : hp[i] - v_th * sp;           \
                } else {                                                                           \
                    vp = v_init[a->v_bcast ? 0 : lo + i];                                          \
                }                                                                                  \
                acc += (double)(ghr[i] * (mode == 1 ? xt[i] - (vp - vr) : -(vp - vr)));            \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    for (int64_t i = 0; i < len; ++i) a->grad_v_out[lo + i] = gv[i];                               \
    a->grad_d[tid] += acc;                                                                         \
}                                                                                                  \
                                                                                                   \
/* grad_spikes row t starts at t * gs_tstride; gs_bcast: one value per step for all neurons.       \
   grad_v_in = dL/dV[T-1] (NULL: zero); grad_v_out = dL/dV_init ([n]). h: the saved H, or NULL to  \
   recompute it from x and v_init ([n], or one value if v_bcast) in chunks of `chunk` neurons,      \
   `workspace` holding                                                                             \
   steps * chunk values per thread. x and v_init are also needed when want_grad_d (PLIF, never      \
   with div). Writes dL/dd to *grad_d_out (summed per thread in double, then over threads in order). \
   Returns 0, or -1 (nothing computed) for an unknown surrogate kind or charge mode. */             \
int lif_backward_##SUF(const T_ *grad_spikes, int64_t gs_tstride, int gs_bcast,                  \
                          const T_ *h, const T_ *x, const T_ *v_init, int v_bcast, T_ *workspace,  \
                          int64_t chunk, T_ *grad_x, const T_ *grad_v_in, T_ *grad_v_out,          \
                          int64_t steps, int64_t n,                                                \
                          int mode, int div, T_ d, T_ v_th, T_ v_reset, int hard, int detach_reset, \
                          int kind, T_ alpha, int want_grad_d, int threads, double *grad_d_out) {  \
    if (!KNOWN_KIND(kind) || !KNOWN_MODE(mode)) return -1;                                         \
    const T_ rate = div ? (T_)1 / d : d;                /* the leak factor 1 / tau */              \
    if (h != NULL || chunk < 1 || chunk > CHUNK) chunk = CHUNK;                                    \
    backward_args_##SUF a = {                                                                      \
        grad_spikes, gs_tstride, gs_bcast, h, x, v_init, v_bcast, workspace, chunk, grad_x,        \
        grad_v_in, grad_v_out, steps, n, mode, mode == 0 ? 0 : 2 * mode - 1 + (div ? 1 : 0), hard, kind,      \
        want_grad_d, d, v_th, v_reset, alpha,                                                      \
        mode == 0 ? (T_)1 : (T_)1 - rate,               /* k = dH[t]/dV[t-1] */                    \
        mode == 1 ? rate : (T_)1,                       /* cx = dH[t]/dX[t] */                     \
        detach_reset ? (T_)0 : (T_)1, {0}};                                                        \
    const int used = run_chunks(backward_chunk_##SUF, &a, (n + chunk - 1) / chunk, threads);      \
    double grad_d = 0.0;                                                                           \
    for (int t = 0; t < used; ++t) grad_d += a.grad_d[t];                                          \
    *grad_d_out = grad_d;                                                                          \
    return 0;                                                                                      \
}

DEFINE_KERNELS(float, f32, expf, fabsf, sqrtf)
DEFINE_KERNELS(double, f64, exp, fabs, sqrt)

/* ---- a neuron layer over a static input, followed by max pooling (the stem of a ResNet fed a
 * repeated image: conv -> BN -> neuron -> max-pool) ----
 * The input X is the same at every step ([planes, h, w], one plane per (batch, channel)); one
 * plane is processed at a time in a per-thread workspace, so the [T, planes, h, w] spikes are
 * never written to memory: only the pooled spikes [T, planes, oh, ow] and, per output, the
 * position of the window's maximum as a byte (dy * kw + dx, row-major first maximum, as
 * PyTorch's CPU max-pool picks it). The backward pass recomputes H per plane, scatters the
 * pooled gradient into the plane, runs the adjoint recurrence and sums dL/dX over the steps in
 * step order t = 0, 1, ... (as the sum over an expanded input does). */
#define DEFINE_POOL_KERNELS(T_, SUF, EXP, FABS, SQRT)                                               \
typedef struct {                                                                                   \
    const T_ *x; T_ *out; uint8_t *arg; T_ *v_out; T_ *workspace; T_ v_init;                       \
    int64_t steps, planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow;                                   \
    int rule, hard; T_ d, v_th, v_reset;                                                           \
    const T_ *grad_out; T_ *grad_x; int kind, mode; T_ alpha, k, cx, keep;                         \
    int64_t not_finite[MAX_THREADS];                                                               \
} pool_args_##SUF;                                                                                 \
                                                                                                   \
static void pool_plane_##SUF(const pool_args_##SUF *a, const T_ *s, T_ *out, uint8_t *arg) {       \
    for (int64_t oy = 0; oy < a->oh; ++oy) {                                                       \
        const int64_t y0 = oy * a->sh - a->ph;                                                     \
        const int64_t ya = y0 < 0 ? 0 : y0, yb = y0 + a->kh < a->h ? y0 + a->kh : a->h;             \
        for (int64_t ox = 0; ox < a->ow; ++ox) {                                                   \
            const int64_t x0 = ox * a->sw - a->pw;                                                 \
            const int64_t xa = x0 < 0 ? 0 : x0, xb = x0 + a->kw < a->w ? x0 + a->kw : a->w;         \
            T_ best = -(T_)INFINITY;                                                               \
            int64_t where = (ya - y0) * a->kw + (xa - x0);                                         \
            for (int64_t y = ya; y < yb; ++y)                                                      \
                for (int64_t xx = xa; xx < xb; ++xx) {                                             \
                    const T_ v = s[y * a->w + xx];                                                 \
                    if (v > best) { best = v; where = (y - y0) * a->kw + (xx - x0); }              \
                }                                                                                  \
            out[oy * a->ow + ox] = best;                                                           \
            arg[oy * a->ow + ox] = (uint8_t)where;                                                 \
        }                                                                                          \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
static void pool_forward_plane_##SUF(void *p, int64_t c, int tid) {                                \
    pool_args_##SUF *a = (pool_args_##SUF *)p;                                                     \
    const int64_t len = a->h * a->w, olen = a->oh * a->ow, steps = a->steps;                       \
    const T_ d = a->d, v_th = a->v_th, v_reset = a->v_reset;                                       \
    const int rule = a->rule, hard = a->hard;                                                      \
    const T_ vr = hard ? v_reset : (T_)0;                                                          \
    T_ *vc = a->workspace + (int64_t)tid * 2 * len, *st = vc + len, *ht = NULL;                    \
    const T_ *xt = a->x + c * len;                                                                 \
    for (int64_t i = 0; i < len; ++i) vc[i] = a->v_init;                                           \
    for (int64_t t = 0; t < steps; ++t) {                                                          \
        FORWARD_STEP(T_)                                                                           \
        const int64_t o = (t * a->planes + c) * olen;                                              \
        pool_plane_##SUF(a, st, a->out + o, a->arg + o);                                           \
    }                                                                                              \
    int64_t bad = 0;                                                                               \
    for (int64_t i = 0; i < len; ++i) {                                                            \
        a->v_out[c * len + i] = vc[i];                                                             \
        bad += (vc[i] - vc[i] != (T_)0);                                                           \
    }                                                                                              \
    a->not_finite[tid] += bad;                                                                     \
}                                                                                                  \
                                                                                                   \
static void pool_backward_plane_##SUF(void *p, int64_t c, int tid) {                               \
    pool_args_##SUF *a = (pool_args_##SUF *)p;                                                     \
    const int64_t len = a->h * a->w, olen = a->oh * a->ow, steps = a->steps;                       \
    const T_ d = a->d, v_th = a->v_th, v_reset = a->v_reset, alpha = a->alpha;                     \
    const T_ k = a->k, cx = a->cx, keep = a->keep;                                                 \
    const int rule = a->rule, hard = a->hard;                                                      \
    const T_ vr = hard ? v_reset : (T_)0;                                                          \
    T_ *hbuf = a->workspace + (int64_t)tid * (steps + 3) * len;                                    \
    T_ *vc = hbuf + steps * len, *gst = vc + len, *ghr = gst + len, *gv = vc, *st = NULL;          \
    const T_ *xt = a->x + c * len;                                                                 \
    for (int64_t i = 0; i < len; ++i) vc[i] = a->v_init;                                           \
    for (int64_t t = 0; t < steps; ++t) {                                                          \
        T_ *ht = hbuf + t * len;                                                                   \
        FORWARD_STEP(T_)                                                                           \
    }                                                                                              \
    for (int64_t i = 0; i < len; ++i) gv[i] = (T_)0;  /* dL/dV[T-1]: the final state is unused */ \
    for (int64_t t = steps - 1; t >= 0; --t) {                                                     \
        const int64_t o = (t * a->planes + c) * olen;                                              \
        const T_ *go = a->grad_out + o;                                                            \
        const uint8_t *arg = a->arg + o;                                                           \
        for (int64_t i = 0; i < len; ++i) gst[i] = (T_)0;                                          \
        for (int64_t oy = 0; oy < a->oh; ++oy)                                                     \
            for (int64_t ox = 0; ox < a->ow; ++ox) {                                               \
                const int64_t q = oy * a->ow + ox, at = arg[q];                                    \
                const int64_t y = oy * a->sh - a->ph + at / a->kw, xx = ox * a->sw - a->pw + at % a->kw; \
                gst[y * a->w + xx] += go[q];                                                       \
            }                                                                                      \
        const T_ *ht = hbuf + t * len;                                                             \
        T_ *gxt = hbuf + t * len;  /* dL/dX[t] overwrites H[t], read just before in each lane */   \
        BACKWARD_STEP(T_, EXP, FABS, SQRT, a->kind)                                                \
    }                                                                                              \
    T_ *gx = a->grad_x + c * len;                                                                  \
    for (int64_t i = 0; i < len; ++i) gx[i] = hbuf[i];                                             \
    for (int64_t t = 1; t < steps; ++t)                                                            \
        for (int64_t i = 0; i < len; ++i) gx[i] += hbuf[t * len + i];                              \
}                                                                                                  \
                                                                                                   \
/* x [planes, h, w] (the same at every step), out / arg [steps, planes, oh, ow], v_out [planes,    \
   h, w]; workspace: threads * 2 * h * w values. Returns the count of non-finite final potentials. */ \
int64_t lif_pool_forward_##SUF(const T_ *x, T_ *out, uint8_t *arg, T_ *v_out, T_ *workspace,       \
                               T_ v_init, int64_t steps, int64_t planes, int64_t h, int64_t w,    \
                               int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,          \
                               int64_t pw, int64_t oh, int64_t ow, int mode, int div, T_ d,         \
                               T_ v_th, T_ v_reset, int hard, int threads) {                        \
    if (!KNOWN_MODE(mode)) return -1;                                                              \
    pool_args_##SUF a = {x, out, arg, v_out, workspace, v_init, steps, planes, h, w, kh, kw, sh, sw, \
                         ph, pw, oh, ow, mode == 0 ? 0 : 2 * mode - 1 + (div ? 1 : 0), hard, d,    \
                         v_th, v_reset, NULL, NULL, 0, mode, 0, 0, 0, 0, {0}};                      \
    const int used = run_chunks(pool_forward_plane_##SUF, &a, planes, threads);                    \
    int64_t not_finite = 0;                                                                        \
    for (int t = 0; t < used; ++t) not_finite += a.not_finite[t];                                  \
    return not_finite;                                                                             \
}                                                                                                  \
                                                                                                   \
/* grad_out [steps, planes, oh, ow] (contiguous), arg from the forward pass; grad_x [planes, h, w] \
   = dL/dX summed over the steps; workspace: threads * (steps + 3) * h * w values. Returns 0, or -1 \
   (nothing computed) for an unknown surrogate kind or charge mode. */                             \
int lif_pool_backward_##SUF(const T_ *grad_out, const uint8_t *arg, const T_ *x, T_ *grad_x,       \
                             T_ *workspace, T_ v_init, int64_t steps, int64_t planes, int64_t h,    \
                             int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, \
                             int64_t pw, int64_t oh, int64_t ow, int mode, int div, T_ d, T_ v_th,  \
                             T_ v_reset, int hard, int detach_reset, int kind, T_ alpha,            \
                             int threads) {                                                        \
    if (!KNOWN_KIND(kind) || !KNOWN_MODE(mode)) return -1;                                         \
    const T_ rate = div ? (T_)1 / d : d;                                                           \
    pool_args_##SUF a = {x, NULL, (uint8_t *)arg, NULL, workspace, v_init, steps, planes, h, w, kh, \
                         kw, sh, sw, ph, pw, oh, ow, mode == 0 ? 0 : 2 * mode - 1 + (div ? 1 : 0),  \
                         hard, d, v_th, v_reset, grad_out, grad_x, kind, mode, alpha,               \
                         mode == 0 ? (T_)1 : (T_)1 - rate, mode == 1 ? rate : (T_)1,                \
                         detach_reset ? (T_)0 : (T_)1, {0}};                                        \
    run_chunks(pool_backward_plane_##SUF, &a, planes, threads);                                    \
    return 0;                                                                                      \
}

DEFINE_POOL_KERNELS(float, f32, expf, fabsf, sqrtf)
DEFINE_POOL_KERNELS(double, f64, exp, fabs, sqrt)
