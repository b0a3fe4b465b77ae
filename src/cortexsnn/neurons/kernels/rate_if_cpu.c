/* Signed, bursting integrate-and-fire neurons of converted networks
 * (cortexsnn.neurons.functional.rate_if): T steps in one pass over memory. Elements are processed
 * in blocks that stay in cache while the block runs through all T steps; within a step the block's
 * elements are independent, so the inner loop vectorises. Per element the float operations are
 * those of the PyTorch loop, in the same order (compiled without FMA contraction):
 *   c = x + bias; v = v + c; s = clamp(floor(v / theta), low, high) with high = max_spikes and
 *   low = signed ? -min(count, max_spikes) : 0; v = v - s * theta; count = count + s;
 *   out = s (or s * theta).
 */
#include <math.h>
#include <stdint.h>

#define BLOCK 2048

void rate_if_forward_f32(const float *x, float *out, float *v, float *count, const float *theta,
                         const float *bias, const float *max_spikes, int64_t steps, int64_t n,
                         int signed_spikes, int weighted, int threads) {
    int64_t blocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t b = 0; b < blocks; ++b) {
        int64_t lo = b * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
        for (int64_t t = 0; t < steps; ++t) {
            const float *xt = x + t * n;
            float *ot = out + t * n;
#pragma omp simd
            for (int64_t i = lo; i < hi; ++i) {
                float c = xt[i] + bias[i];
                float vi = v[i] + c;
                float th = theta[i];
                float top = max_spikes[i];
                float bottom = signed_spikes ? -fminf(count[i], top) : 0.0f;
                float s = floorf(vi / th);
                s = s > top ? top : s;
                s = s < bottom ? bottom : s;
                v[i] = vi - s * th;
                count[i] = count[i] + s;
                ot[i] = weighted ? s * th : s;
            }
        }
    }
}
