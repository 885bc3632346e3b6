/* What reading a random share of 288-byte columns costs against streaming all of them: the memory
 * question behind the sparse FFN's prefetching (README, "How neurons are chosen").
 *
 * One layer set of SmolLM2-135M's `down` columns (30 layers x 1536 neurons x 288 bytes, 13.3 MB),
 * 24 copies so the last-level cache does not hold them; for each copy a fixed random list of
 * columns (each with probability P) is read in order, one thread, optionally prefetching the
 * column DIST places ahead in the list. Prints the best of 7 passes per copy.
 *
 *   cc -O2 -mavx2 -o /tmp/column-scatter scripts/column-scatter.c
 *   /tmp/column-scatter P DIST HINT     # HINT: 0 = T0, 2 = T2, 3 = NTA
 *   /tmp/column-scatter 1.0 0 0; /tmp/column-scatter 0.5 0 0; /tmp/column-scatter 0.5 16 0
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COL 288
#define NCOL (1536 * 30)
#define COPIES 24

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s P DIST HINT\n", argv[0]);
        return 2;
    }
    double p = atof(argv[1]);
    int dist = atoi(argv[2]), hint = atoi(argv[3]);
    size_t region = (size_t)NCOL * COL;
    uint8_t *buf = aligned_alloc(4096, region * COPIES);
    uint32_t *list = malloc(sizeof(uint32_t) * NCOL * COPIES);
    int *count = malloc(sizeof(int) * COPIES);
    if (!buf || !list || !count) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    memset(buf, 1, region * COPIES);
    srand(1);
    for (int r = 0; r < COPIES; r++) {
        int n = 0;
        for (int i = 0; i < NCOL; i++)
            if (rand() / (double)RAND_MAX < p) list[(size_t)r * NCOL + n++] = i;
        count[r] = n;
    }
    __m256i acc = _mm256_setzero_si256();
    double best = 1e9;
    for (int rep = 0; rep < 7; rep++) {
        double t0 = now();
        for (int r = 0; r < COPIES; r++) {
            const uint8_t *b = buf + (size_t)r * region;
            const uint32_t *l = list + (size_t)r * NCOL;
            int n = count[r];
            for (int k = 0; k < n; k++) {
                const uint8_t *c = b + (size_t)l[k] * COL;
                if (dist && k + dist < n) {
                    const char *q = (const char *)b + (size_t)l[k + dist] * COL;
                    for (int o = 0; o < COL + 63; o += 64) {
                        if (hint == 0) _mm_prefetch(q + o, _MM_HINT_T0);
                        else if (hint == 2) _mm_prefetch(q + o, _MM_HINT_T2);
                        else _mm_prefetch(q + o, _MM_HINT_NTA);
                    }
                }
                for (int o = 0; o + 32 <= COL; o += 32)
                    acc = _mm256_add_epi8(acc, _mm256_loadu_si256((const __m256i *)(c + o)));
            }
        }
        double t = (now() - t0) / COPIES;
        if (t < best) best = t;
    }
    printf("p=%.2f dist=%d hint=%d: %.3f ms per 13.3 MB of columns, %.1f GB/s of columns read%s\n",
           p, dist, hint, best * 1e3, p * region / best / 1e9,
           _mm256_extract_epi8(acc, 0) == 7 ? " " : "");
    return 0;
}
