/* Exact Gram matrices of 0/1 spike matrices by AND + POPCNT.
 *
 * A row of the input is stored as `words` 64-bit words ([n][words], bit k of word w is feature
 * 64 w + k), so that G[i][j] = sum_w popcount(row_i[w] & row_j[w]) is the exact number of
 * features where both rows spike: one AND and one POPCNT per 64 features, against 64
 * multiply-adds for a float product.
 *
 * bit_gram fills g[i * n + j] for the rows i in [i0, i1) and every j >= i (the caller mirrors the
 * lower triangle and splits the rows among threads; ctypes releases the GIL). Rows are processed
 * in blocks of ROWS x ROWS pairs over word chunks of WORDS, so that both blocks' words stay in the
 * L2 cache while every pair of the block is counted.
 */
#include <stdint.h>
#include <string.h>

#define ROWS 32
#define WORDS 256

static inline int64_t popc(uint64_t v) { return (int64_t)__builtin_popcountll(v); }

/* 2 x 4 register block of row pairs */
static void block_binary(const uint64_t* bits, int64_t words, int64_t ib, int64_t ie, int64_t jb, int64_t je,
                         int64_t w0, int64_t w1, int64_t acc[ROWS][ROWS]) {
    for (int64_t i = ib; i < ie; i += 2) {
        const int two = (i + 1 < ie);
        const uint64_t* a0 = bits + i * words;
        const uint64_t* a1 = bits + (two ? i + 1 : i) * words;
        for (int64_t j = jb; j < je; j += 4) {
            const uint64_t* b[4];
            int64_t count = je - j < 4 ? je - j : 4;
            for (int k = 0; k < 4; k++) b[k] = bits + (j + (k < count ? k : 0)) * words;
            int64_t s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
            for (int64_t w = w0; w < w1; w++) {
                uint64_t x0 = a0[w], x1 = a1[w];
                uint64_t y0 = b[0][w], y1 = b[1][w], y2 = b[2][w], y3 = b[3][w];
                s00 += popc(x0 & y0); s01 += popc(x0 & y1); s02 += popc(x0 & y2); s03 += popc(x0 & y3);
                s10 += popc(x1 & y0); s11 += popc(x1 & y1); s12 += popc(x1 & y2); s13 += popc(x1 & y3);
            }
            int64_t r0[4] = {s00, s01, s02, s03}, r1[4] = {s10, s11, s12, s13};
            for (int k = 0; k < count; k++) {
                acc[i - ib][j - jb + k] += r0[k];
                if (two) acc[i - ib + 1][j - jb + k] += r1[k];
            }
        }
    }
}

void bit_gram(const uint64_t* bits, int64_t n, int64_t words, int64_t i0, int64_t i1, int64_t* g) {
    static __thread int64_t acc[ROWS][ROWS];
    for (int64_t ib = i0; ib < i1; ib += ROWS) {
        int64_t ie = ib + ROWS < i1 ? ib + ROWS : i1;
        for (int64_t jb = ib; jb < n; jb += ROWS) {
            int64_t je = jb + ROWS < n ? jb + ROWS : n;
            memset(acc, 0, sizeof(acc));
            for (int64_t w0 = 0; w0 < words; w0 += WORDS) {
                int64_t w1 = w0 + WORDS < words ? w0 + WORDS : words;
                block_binary(bits, words, ib, ie, jb, je, w0, w1, acc);
            }
            for (int64_t i = ib; i < ie; i++)
                for (int64_t j = (jb > i ? jb : i); j < je; j++) g[i * n + j] = acc[i - ib][j - jb];
        }
    }
}

/* Scan rows [i0, i1) of a float matrix (row stride `ld` elements) in one pass: pack its 0/1 values
 * into `bits` ([n][words], zero-initialised by the caller), add each row's sum into `sums`, and
 * return what the rows hold: 0 only 0/1 values, 1 integers in [0, 2^24) (their maximum in *top;
 * the packing is then meaningless), 2 anything else (negative, fractional, huge, NaN). */
#define SCAN_BODY(T)                                                                          \
    int kind = 0;                                                                             \
    double best = 0.0;                                                                        \
    for (int64_t i = i0; i < i1; i++) {                                                       \
        const T* row = x + i * ld;                                                            \
        uint64_t* out = bits + i * words;                                                     \
        double total = 0.0;                                                                   \
        for (int64_t w = 0; w * 64 < p; w++) {                                                \
            int64_t end = (w + 1) * 64 < p ? (w + 1) * 64 : p;                                \
            uint64_t word = 0;                                                                \
            int other = 0;                                                                    \
            for (int64_t k = w * 64; k < end; k++) {                                          \
                T v = row[k];                                                                 \
                word |= (uint64_t)(v == (T)1) << (k - w * 64);                                \
                other |= !(v == (T)0 || v == (T)1);                                           \
            }                                                                                 \
            out[w] = word;                                                                    \
            if (other) {                                                                      \
                for (int64_t k = w * 64; k < end; k++) {                                      \
                    double v = (double)row[k];                                                \
                    if (!(v >= 0.0 && v < 16777216.0) || v != (double)(int64_t)v) return 2;   \
                    if (v > best) best = v;                                                   \
                }                                                                             \
                kind = 1;                                                                     \
            }                                                                                 \
            for (int64_t k = w * 64; k < end; k++) total += (double)row[k];                   \
        }                                                                                     \
        sums[i] = (int64_t)total;                                                             \
    }                                                                                         \
    *top = kind ? best : 1.0;                                                                 \
    return kind;

int scan_pack_f32(const float* x, int64_t p, int64_t ld, int64_t i0, int64_t i1, uint64_t* bits, int64_t words,
                  int64_t* sums, double* top) { SCAN_BODY(float) }

int scan_pack_f64(const double* x, int64_t p, int64_t ld, int64_t i0, int64_t i1, uint64_t* bits, int64_t words,
                  int64_t* sums, double* top) { SCAN_BODY(double) }
