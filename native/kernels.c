/*
 * Native convolution kernels for resnet-cifar's `native` backend.
 *
 * TensorFlow.js's wasm backend keeps every tensor in its WebAssembly memory;
 * `lib/native_kernels.ts` hands pointers into that memory to these functions
 * through Deno's FFI. Each convolution product (forward, input gradient,
 * filter gradient) becomes im2col/col2im data movement plus one OpenBLAS
 * SGEMM per chunk of images: the GEMM runs at native AVX2/FMA speed on every
 * core, several times what 128-bit WebAssembly SIMD can reach.
 *
 * Layouts are TensorFlow's: activations NHWC, filters [KH, KW, Cin, Cout],
 * so a filter is already the [K, Cout] matrix with K = KH*KW*Cin ordered
 * (kh, kw, cin), and one im2col row of an output pixel uses the same order.
 *
 * Build: `deno task build:native` (cc -O3 -fPIC -shared ... -l:libopenblas.so.0).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

/* From cblas.h; declared here so only OpenBLAS's runtime library is needed. */
enum { CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112 };
void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c,
                 int ldc);

/* One convolution's geometry, as lib/native_kernels.ts packs it (Int32Array). */
typedef struct {
  int32_t n, h, w, c;      /* input NHWC */
  int32_t kh, kw, cout;    /* filter [kh, kw, c, cout] */
  int32_t sh, sw, pt, pl;  /* strides; top and left padding */
  int32_t ho, wo;          /* output height and width */
} conv_t;

/* Bumped whenever a signature or conv_t changes; the loader checks it. */
int32_t rn_abi_version(void) { return 6; }

/*
 * Threads: OpenBLAS is set to one thread, and each convolution splits its
 * images between OpenMP threads instead, each doing its own im2col and GEMM.
 * Two thread pools that both spin-wait (OpenBLAS's and OpenMP's) slowed every
 * call down by half; one pool also parallelises the im2col copies.
 */
void openblas_set_num_threads(int threads);
#include <omp.h>

#define MAX_THREADS 64

/* Each thread's im2col buffer, reused across calls (JavaScript calls from one thread). */
static float *scratch[MAX_THREADS];
static size_t scratch_floats[MAX_THREADS];

static float *scratch_get(size_t floats) {
  const int t = omp_get_thread_num();
  if (floats > scratch_floats[t]) {
    free(scratch[t]);
    scratch[t] = malloc(floats * sizeof(float));
    scratch_floats[t] = scratch[t] == NULL ? 0 : floats;
  }
  return scratch[t];
}

static int threads_ready;

static int threads(void) {
  if (!threads_ready) {
    openblas_set_num_threads(1);
    threads_ready = 1;
  }
  const int t = omp_get_max_threads();
  return t > MAX_THREADS ? MAX_THREADS : t;
}

/*
 * About 2 MiB of im2col rows per chunk and thread: written, then read by the
 * GEMM while still in cache. 8 MiB chunks made the 64-channel convolutions
 * about 1.4x slower here (`tools/conv_bench.ts`).
 */
#define CHUNK_FLOATS ((size_t)1 << 19)

/* Fewer GEMM rows than this per chunk and the GEMM itself slows down. */
#define MIN_CHUNK_ROWS 512

static int chunk_images(const conv_t *g) {
  const size_t pixels = (size_t)g->ho * g->wo;
  size_t per_image = pixels * g->kh * g->kw * g->c;
  size_t images = per_image == 0 ? 1 : CHUNK_FLOATS / per_image;
  const size_t min_images = pixels == 0 ? 1 : (MIN_CHUNK_ROWS + pixels - 1) / pixels;
  if (images < min_images) images = min_images;
  if (images < 1) images = 1;
  if (images > (size_t)g->n) images = g->n;
  return (int)images;
}

/* A 1x1, stride-1, unpadded convolution is a plain GEMM on the input itself. */
static int is_pointwise(const conv_t *g) {
  return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 &&
         g->ho == g->h && g->wo == g->w;
}

/* Images [*first, *last) of thread t out of nthreads: contiguous, near-equal shares. */
static void share(int n, int t, int nthreads, int *first, int *last) {
  *first = (int)((long)n * t / nthreads);
  *last = (int)((long)n * (t + 1) / nthreads);
}

/*
 * Rows of images [n0, n0 + count): for each output pixel, the receptive field
 * (kh, kw, c), zeros where it falls in the padding. With stride 1 in width,
 * the kw taps of one filter row are one contiguous run of the input.
 */
static void im2col(const float *x, float *col, const conv_t *g, int n0, int count) {
  const size_t c = g->c, k = (size_t)g->kh * g->kw * c;
  for (int n = 0; n < count; n++) {
    const float *image = x + (size_t)(n0 + n) * g->h * g->w * c;
    for (int ho = 0; ho < g->ho; ho++) {
      for (int wo = 0; wo < g->wo; wo++) {
        float *row = col + (((size_t)n * g->ho + ho) * g->wo + wo) * k;
        const int w0 = wo * g->sw - g->pl;
        for (int i = 0; i < g->kh; i++) {
          const int h = ho * g->sh - g->pt + i;
          float *dst = row + (size_t)i * g->kw * c;
          if (h < 0 || h >= g->h) {
            memset(dst, 0, (size_t)g->kw * c * sizeof(float));
            continue;
          }
          const float *src_row = image + (size_t)h * g->w * c;
          if (g->sw == 1 || g->kw == 1) {
            int j0 = w0 < 0 ? -w0 : 0;
            int j1 = w0 + g->kw > g->w ? g->w - w0 : g->kw;
            if (j1 < j0) j1 = j0;
            memset(dst, 0, (size_t)j0 * c * sizeof(float));
            memcpy(dst + (size_t)j0 * c, src_row + (size_t)(w0 + j0) * c,
                   (size_t)(j1 - j0) * c * sizeof(float));
            memset(dst + (size_t)j1 * c, 0, (size_t)(g->kw - j1) * c * sizeof(float));
          } else {
            for (int j = 0; j < g->kw; j++) {
              const int w = w0 + j;
              if (w < 0 || w >= g->w) {
                memset(dst + (size_t)j * c, 0, c * sizeof(float));
              } else {
                memcpy(dst + (size_t)j * c, src_row + (size_t)w * c, c * sizeof(float));
              }
            }
          }
        }
      }
    }
  }
}

/* The adjoint of im2col: adds each row's entries back into dx (zeroed by the caller). */
static void col2im(const float *col, float *dx, const conv_t *g, int n0, int count) {
  const size_t c = g->c, k = (size_t)g->kh * g->kw * c;
  for (int n = 0; n < count; n++) {
    float *image = dx + (size_t)(n0 + n) * g->h * g->w * c;
    for (int ho = 0; ho < g->ho; ho++) {
      for (int wo = 0; wo < g->wo; wo++) {
        const float *row = col + (((size_t)n * g->ho + ho) * g->wo + wo) * k;
        for (int i = 0; i < g->kh; i++) {
          const int h = ho * g->sh - g->pt + i;
          if (h < 0 || h >= g->h) continue;
          for (int j = 0; j < g->kw; j++) {
            const int w = wo * g->sw - g->pl + j;
            if (w < 0 || w >= g->w) continue;
            float *dst = image + ((size_t)h * g->w + w) * c;
            const float *src = row + ((size_t)i * g->kw + j) * c;
            for (size_t ch = 0; ch < c; ch++) dst[ch] += src[ch];
          }
        }
      }
    }
  }
}

/*
 * Direct 3x3 convolutions for the narrow layers.
 *
 * With 16 or 32 channels an im2col row (9 * C floats) feeds only 16 or 32
 * multiply-adds per entry into the GEMM, so im2col's writing and reading of
 * 9x the input dominates: the 16-channel layers ran at about 53 GFLOP/s
 * against 120 and more for the wide ones (`tools/conv_bench.ts`). Here each
 * image is copied once into a zero-bordered buffer and the output is
 * accumulated in registers: 4 output pixels x 16 output channels (8 vectors
 * of 8 floats), one broadcast input value and two filter vectors per step.
 * GCC's vector extensions keep it portable; with -march=native they become
 * AVX2/FMA (or AVX-512) instructions.
 *
 * Covered: kernel 3x3, stride 1, padding 1 on every side (PyTorch's
 * padding=1, TensorFlow's 'same'), Cout a multiple of 16, W a multiple of 4,
 * C at most DIRECT_MAX_C (wider layers are faster as GEMMs).
 */
#define DIRECT_MAX_C 32

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));

static inline v8 load8(const float *p) { return *(const v8u *)p; }
static inline void store8(float *p, v8 v) { *(v8u *)p = v; }
static inline v8 splat8(float s) { return (v8){s, s, s, s, s, s, s, s}; }

static int is_direct(const conv_t *g) {
  return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->pt == 1 && g->pl == 1 &&
         g->ho == g->h && g->wo == g->w && g->cout % 16 == 0 && g->w % 4 == 0 &&
         g->c <= DIRECT_MAX_C;
}

/* This thread's (h + 2) x (w + 2) x c buffer with a zero border, or NULL. */
static float *padded_buffer(const conv_t *g) {
  const size_t floats = (size_t)(g->h + 2) * (g->w + 2) * g->c;
  float *padded = scratch_get(floats);
  if (padded != NULL) memset(padded, 0, floats * sizeof(float));
  return padded;
}

/* Copies one image into the buffer's interior; the border stays zero. */
static void pad_image(const float *image, float *padded, const conv_t *g) {
  const size_t c = g->c, pw = (size_t)g->w + 2;
  for (int h = 0; h < g->h; h++) {
    memcpy(padded + ((h + 1) * pw + 1) * c, image + (size_t)h * g->w * c,
           (size_t)g->w * c * sizeof(float));
  }
}

/*
 * -std=c11 makes GCC leave a * b + c as two roundings; these loops want one
 * FMA (clang contracts within an expression by default).
 */
#if defined(__GNUC__) && !defined(__clang__)
#define CONTRACT __attribute__((optimize("fp-contract=fast")))
#else
#define CONTRACT
#endif

/*
 * Keeps two vectors in registers: GCC otherwise folds each reload into the
 * FMAs as a memory operand, which doubled the loads, and loads, not FMAs,
 * set the pace (16-channel forward 3.3-4.2 ms -> 1.9-2.3 ms at batch 64).
 * The constraint names the vector registers of x86 ("x") and AArch64 ("w").
 */
#if defined(__x86_64__) || defined(__i386__)
#define IN_REGISTERS(a, b) __asm__("" : "+x"(a), "+x"(b))
#elif defined(__aarch64__)
#define IN_REGISTERS(a, b) __asm__("" : "+w"(a), "+w"(b))
#else
#define IN_REGISTERS(a, b) ((void)0)
#endif

CONTRACT static void direct_forward_image(const float *padded, const float *filter, const float *bias,
                                 float *out, const conv_t *g, int relu) {
  const int c = g->c, cout = g->cout, pw = g->w + 2;
  for (int ho = 0; ho < g->h; ho++) {
    for (int wo = 0; wo < g->w; wo += 4) {
      for (int cb = 0; cb < cout; cb += 16) {
        v8 acc[4][2];
        const v8 b0 = bias != NULL ? load8(bias + cb) : splat8(0.0f);
        const v8 b1 = bias != NULL ? load8(bias + cb + 8) : splat8(0.0f);
        for (int p = 0; p < 4; p++) {
          acc[p][0] = b0;
          acc[p][1] = b1;
        }
        for (int i = 0; i < 3; i++) {
          for (int j = 0; j < 3; j++) {
            const float *xp = padded + ((size_t)(ho + i) * pw + wo + j) * c;
            const float *wp = filter + (size_t)(i * 3 + j) * c * cout + cb;
            for (int ci = 0; ci < c; ci++) {
              v8 w0 = load8(wp + (size_t)ci * cout), w1 = load8(wp + (size_t)ci * cout + 8);
              IN_REGISTERS(w0, w1);
              for (int p = 0; p < 4; p++) {
                const v8 xv = splat8(xp[p * c + ci]);
                acc[p][0] += xv * w0;
                acc[p][1] += xv * w1;
              }
            }
          }
        }
        float *o = out + ((size_t)ho * g->w + wo) * cout + cb;
        for (int p = 0; p < 4; p++) {
          if (relu) {
            /* As the GEMM path: x > 0 ? x : 0 (the lanes' comparison masks are all ones or zeros). */
            const v8 zero = splat8(0.0f);
            acc[p][0] = (v8)((v8i)acc[p][0] & (acc[p][0] > zero));
            acc[p][1] = (v8)((v8i)acc[p][1] & (acc[p][1] > zero));
          }
          store8(o + (size_t)p * cout, acc[p][0]);
          store8(o + (size_t)p * cout + 8, acc[p][1]);
        }
      }
    }
  }
}

/* Adds this image's filter gradient to dfilter; needs c % 4 == 0. */
CONTRACT static void direct_filter_image(const float *padded, const float *dy, float *dfilter,
                                const conv_t *g) {
  const int c = g->c, cout = g->cout, pw = g->w + 2;
  for (int tap = 0; tap < 9; tap++) {
    const int i = tap / 3, j = tap % 3;
    for (int ci = 0; ci < c; ci += 4) {
      for (int cb = 0; cb < cout; cb += 16) {
        v8 acc[4][2];
        for (int q = 0; q < 4; q++) acc[q][0] = acc[q][1] = splat8(0.0f);
        for (int ho = 0; ho < g->h; ho++) {
          const float *xrow = padded + ((size_t)(ho + i) * pw + j) * c + ci;
          const float *drow = dy + (size_t)ho * g->w * cout + cb;
          for (int wo = 0; wo < g->w; wo++) {
            v8 d0 = load8(drow + (size_t)wo * cout), d1 = load8(drow + (size_t)wo * cout + 8);
            IN_REGISTERS(d0, d1);
            const float *xp = xrow + (size_t)wo * c;
            for (int q = 0; q < 4; q++) {
              const v8 xv = splat8(xp[q]);
              acc[q][0] += xv * d0;
              acc[q][1] += xv * d1;
            }
          }
        }
        float *dst = dfilter + ((size_t)tap * c + ci) * cout + cb;
        for (int q = 0; q < 4; q++) {
          store8(dst + (size_t)q * cout, load8(dst + (size_t)q * cout) + acc[q][0]);
          store8(dst + (size_t)q * cout + 8, load8(dst + (size_t)q * cout + 8) + acc[q][1]);
        }
      }
    }
  }
}

/* One thread's share of the forward pass: images [first, last), chunk by chunk. */
static int conv_forward_part(const float *x, const float *filter, const float *bias, float *y,
                             const conv_t *g, int relu, int first, int last) {
  const int k = g->kh * g->kw * g->c, pixels = g->ho * g->wo;
  if (is_direct(g)) {
    if (first >= last) return 0;
    float *padded = padded_buffer(g);
    if (padded == NULL) return -1;
    for (int n = first; n < last; n++) {
      pad_image(x + (size_t)n * g->h * g->w * g->c, padded, g);
      direct_forward_image(padded, filter, bias, y + (size_t)n * pixels * g->cout, g, relu);
    }
    return 0;
  }
  const int step = chunk_images(g);
  float *col = is_pointwise(g) ? NULL : scratch_get((size_t)step * pixels * k);
  if (!is_pointwise(g) && col == NULL) return -1;
  for (int n0 = first; n0 < last; n0 += step) {
    const int count = n0 + step > last ? last - n0 : step;
    const int m = count * pixels;
    const float *a = x + (size_t)n0 * g->h * g->w * g->c;
    if (col != NULL) {
      im2col(x, col, g, n0, count);
      a = col;
    }
    float *out = y + (size_t)n0 * pixels * g->cout;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, g->cout, k, 1.0f, a, k, filter,
                g->cout, 0.0f, out, g->cout);
    if (bias != NULL || relu) {
      for (size_t r = 0; r < (size_t)m; r++) {
        float *o = out + r * g->cout;
        if (bias != NULL) {
          for (int ch = 0; ch < g->cout; ch++) o[ch] += bias[ch];
        }
        if (relu) {
          for (int ch = 0; ch < g->cout; ch++) o[ch] = o[ch] > 0.0f ? o[ch] : 0.0f;
        }
      }
    }
  }
  return 0;
}

/*
 * y = conv(x, filter) + bias, then ReLU when relu != 0. bias may be NULL.
 * Returns 0, or -1 when an im2col buffer cannot be allocated.
 */
int32_t rn_conv2d(const float *x, const float *filter, const float *bias, float *y,
                  const conv_t *g, int32_t relu) {
  int status = 0;
  const int nthreads = threads() < g->n ? threads() : g->n;
#pragma omp parallel num_threads(nthreads) reduction(min : status)
  {
    int first, last;
    share(g->n, omp_get_thread_num(), omp_get_num_threads(), &first, &last);
    status = conv_forward_part(x, filter, bias, y, g, relu, first, last);
  }
  return status;
}

static int conv_input_part(const float *dy, const float *filter, float *dx, const conv_t *g,
                           int first, int last) {
  const int k = g->kh * g->kw * g->c, pixels = g->ho * g->wo;
  if (first >= last) return 0;
  if (is_pointwise(g)) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (last - first) * pixels, g->c, g->cout,
                1.0f, dy + (size_t)first * pixels * g->cout, g->cout, filter, g->cout, 0.0f,
                dx + (size_t)first * pixels * g->c, g->c);
    return 0;
  }
  const int step = chunk_images(g);
  float *col = scratch_get((size_t)step * pixels * k);
  if (col == NULL) return -1;
  memset(dx + (size_t)first * g->h * g->w * g->c, 0,
         (size_t)(last - first) * g->h * g->w * g->c * sizeof(float));
  for (int n0 = first; n0 < last; n0 += step) {
    const int count = n0 + step > last ? last - n0 : step;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, count * pixels, k, g->cout, 1.0f,
                dy + (size_t)n0 * pixels * g->cout, g->cout, filter, g->cout, 0.0f, col, k);
    col2im(col, dx, g, n0, count);
  }
  return 0;
}

/*
 * dx = the input gradient of conv(x, filter) given dy.
 *
 * Stride 1 (not pointwise): dx is itself a forward convolution, of dy with
 * the filter rotated by 180 degrees and its channel axes swapped, padded by
 * k - 1 - pad. That runs as im2col + GEMM with K = kh*kw*Cout, where the
 * general route's GEMM has K = Cout alone (16 at width 16) and a col2im
 * scatter after it.
 *
 * Otherwise: dcol = dy * filter^T, then col2im.
 */
int32_t rn_conv2d_backprop_input(const float *dy, const float *filter, float *dx,
                                 const conv_t *g) {
  if (g->sh == 1 && g->sw == 1 && !is_pointwise(g)) {
    const size_t taps = (size_t)g->kh * g->kw;
    float *rotated = malloc(taps * g->c * g->cout * sizeof(float));
    if (rotated == NULL) return -1;
    for (int i = 0; i < g->kh; i++) {
      for (int j = 0; j < g->kw; j++) {
        const float *src = filter + ((size_t)i * g->kw + j) * g->c * g->cout;
        float *dst = rotated + ((size_t)(g->kh - 1 - i) * g->kw + (g->kw - 1 - j)) * g->cout * g->c;
        for (int ci = 0; ci < g->c; ci++) {
          for (int co = 0; co < g->cout; co++) dst[(size_t)co * g->c + ci] = src[(size_t)ci * g->cout + co];
        }
      }
    }
    const conv_t t = {g->n, g->ho, g->wo, g->cout, g->kh, g->kw, g->c, 1, 1,
                      g->kh - 1 - g->pt, g->kw - 1 - g->pl, g->h, g->w};
    const int32_t status = rn_conv2d(dy, rotated, NULL, dx, &t, 0);
    free(rotated);
    return status;
  }
  int status = 0;
  const int nthreads = threads() < g->n ? threads() : g->n;
#pragma omp parallel num_threads(nthreads) reduction(min : status)
  {
    int first, last;
    share(g->n, omp_get_thread_num(), omp_get_num_threads(), &first, &last);
    status = conv_input_part(dy, filter, dx, g, first, last);
  }
  return status;
}

/* dfilter (or a partial sum of it) over images [first, last). */
static int conv_filter_part(const float *x, const float *dy, float *dfilter, const conv_t *g,
                            int first, int last) {
  const int k = g->kh * g->kw * g->c, pixels = g->ho * g->wo;
  if (is_direct(g) && g->c % 4 == 0) {
    memset(dfilter, 0, (size_t)k * g->cout * sizeof(float));
    if (first >= last) return 0;
    float *padded = padded_buffer(g);
    if (padded == NULL) return -1;
    for (int n = first; n < last; n++) {
      pad_image(x + (size_t)n * g->h * g->w * g->c, padded, g);
      direct_filter_image(padded, dy + (size_t)n * pixels * g->cout, dfilter, g);
    }
    return 0;
  }
  const int step = chunk_images(g);
  float *col = is_pointwise(g) ? NULL : scratch_get((size_t)step * pixels * k);
  if (!is_pointwise(g) && col == NULL) return -1;
  if (first >= last) memset(dfilter, 0, (size_t)k * g->cout * sizeof(float));
  for (int n0 = first; n0 < last; n0 += step) {
    const int count = n0 + step > last ? last - n0 : step;
    const float *a = x + (size_t)n0 * g->h * g->w * g->c;
    if (col != NULL) {
      im2col(x, col, g, n0, count);
      a = col;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, g->cout, count * pixels, 1.0f, a, k,
                dy + (size_t)n0 * pixels * g->cout, g->cout, n0 == first ? 0.0f : 1.0f, dfilter,
                g->cout);
  }
  return 0;
}

/*
 * dfilter = im2col(x)^T * dy: each thread sums its images into its own
 * buffer (thread 0 straight into dfilter), then the buffers are added.
 */
int32_t rn_conv2d_backprop_filter(const float *x, const float *dy, float *dfilter,
                                  const conv_t *g) {
  const size_t size = (size_t)g->kh * g->kw * g->c * g->cout;
  const int nthreads = threads() < g->n ? threads() : g->n;
  float *partial = NULL;
  if (nthreads > 1) {
    /* Kept across calls: a fresh multi-megabyte malloc per call is a fresh mmap to fault in. */
    static float *partials;
    static size_t partial_floats;
    const size_t floats = (size_t)(nthreads - 1) * size;
    if (floats > partial_floats) {
      free(partials);
      partials = malloc(floats * sizeof(float));
      partial_floats = partials == NULL ? 0 : floats;
    }
    if (partials == NULL) return -1;
    partial = partials;
  }
  int status = 0;
#pragma omp parallel num_threads(nthreads) reduction(min : status)
  {
    const int t = omp_get_thread_num();
    int first, last;
    share(g->n, t, omp_get_num_threads(), &first, &last);
    status = conv_filter_part(x, dy, t == 0 ? dfilter : partial + (t - 1) * size, g, first, last);
  }
  for (int t = 1; t < nthreads; t++) {
    const float *p = partial + (t - 1) * size;
    for (size_t i = 0; i < size; i++) dfilter[i] += p[i];
  }
  return status;
}

/* out[b, c] = scale * sum over m of x[b, m, c]: batch-norm statistics and bias gradients. */
void rn_sum_middle(const float *x, float *out, int32_t outer, int32_t middle, int32_t inner,
                   float scale) {
  for (int b = 0; b < outer; b++) {
    float *o = out + (size_t)b * inner;
    memset(o, 0, (size_t)inner * sizeof(float));
    const float *xb = x + (size_t)b * middle * inner;
    for (int m = 0; m < middle; m++) {
      const float *row = xb + (size_t)m * inner;
      for (int c = 0; c < inner; c++) o[c] += row[c];
    }
    if (scale != 1.0f) {
      for (int c = 0; c < inner; c++) o[c] *= scale;
    }
  }
}

/*
 * Batch normalisation over the rows of x viewed as [m, c] (NHWC: m = N*H*W),
 * in training mode: batch statistics, and the gradient through them. Sums are
 * accumulated in double, so E[x^2] - E[x]^2 loses nothing that matters.
 */

/* mean[c] and the biased variance[c] of x's columns (what tf.moments returns). */
void rn_moments(const float *x, float *mean, float *variance, int32_t m, int32_t c) {
  double *sum = calloc((size_t)2 * c, sizeof(double));
  if (sum == NULL) return;
  double *squares = sum + c;
  for (int r = 0; r < m; r++) {
    const float *row = x + (size_t)r * c;
    for (int ch = 0; ch < c; ch++) {
      const double v = row[ch];
      sum[ch] += v;
      squares[ch] += v * v;
    }
  }
  for (int ch = 0; ch < c; ch++) {
    const double mu = sum[ch] / m;
    const double var = squares[ch] / m - mu * mu;
    mean[ch] = (float)mu;
    variance[ch] = (float)(var > 0 ? var : 0);
  }
  free(sum);
}

/*
 * The moving statistics' update, as tfjs's layer writes it in float32:
 * out = moving - (moving - batch) * decay, both vectors of one batch norm in one call.
 * (No FMA here: -std=c11 leaves a * b + c as two roundings, as tfjs's kernels do.)
 */
void rn_moving_averages(const float *moving_mean, const float *moving_variance,
                        const float *mean, const float *variance, float *mean_out,
                        float *variance_out, int32_t c, float decay) {
  for (int ch = 0; ch < c; ch++) {
    mean_out[ch] = moving_mean[ch] - (moving_mean[ch] - mean[ch]) * decay;
    variance_out[ch] = moving_variance[ch] - (moving_variance[ch] - variance[ch]) * decay;
  }
}

/* y = (x - mean) / sqrt(variance + epsilon) * gamma + beta, as one multiply-add per element. */
void rn_batchnorm_forward(const float *x, const float *mean, const float *variance,
                          const float *gamma, const float *beta, float epsilon, float *y,
                          int32_t m, int32_t c) {
  float *scale = malloc((size_t)2 * c * sizeof(float));
  if (scale == NULL) return;
  float *shift = scale + c;
  for (int ch = 0; ch < c; ch++) {
    const double s = gamma[ch] / sqrt((double)variance[ch] + epsilon);
    scale[ch] = (float)s;
    shift[ch] = (float)(beta[ch] - mean[ch] * s);
  }
  for (int r = 0; r < m; r++) {
    const float *row = x + (size_t)r * c;
    float *out = y + (size_t)r * c;
    for (int ch = 0; ch < c; ch++) out[ch] = row[ch] * scale[ch] + shift[ch];
  }
  free(scale);
}

/*
 * Gradients of y = batchnorm(x) with the batch's own mean and variance:
 *   dbeta = sum dy,  dgamma = sum dy * xhat,
 *   dx = gamma * invstd * (dy - dbeta / m - xhat * dgamma / m),
 * the last written as dx = a*dy + b*x + k per channel. Returns -1 if out of memory.
 */
int32_t rn_batchnorm_backward(const float *dy, const float *x, const float *mean,
                              const float *variance, const float *gamma, float epsilon,
                              float *dx, float *dgamma, float *dbeta, int32_t m, int32_t c) {
  double *sums = calloc((size_t)2 * c, sizeof(double));
  float *coef = malloc((size_t)3 * c * sizeof(float));
  if (sums == NULL || coef == NULL) {
    free(sums);
    free(coef);
    return -1;
  }
  double *dot = sums + c;
  for (int r = 0; r < m; r++) {
    const float *g = dy + (size_t)r * c, *row = x + (size_t)r * c;
    for (int ch = 0; ch < c; ch++) {
      sums[ch] += g[ch];
      dot[ch] += (double)g[ch] * (row[ch] - mean[ch]);
    }
  }
  float *a = coef, *b = coef + c, *k = coef + 2 * (size_t)c;
  for (int ch = 0; ch < c; ch++) {
    const double invstd = 1.0 / sqrt((double)variance[ch] + epsilon);
    const double dg = dot[ch] * invstd;
    dbeta[ch] = (float)sums[ch];
    dgamma[ch] = (float)dg;
    const double av = gamma[ch] * invstd;
    const double bv = -av * invstd * dg / m;
    a[ch] = (float)av;
    b[ch] = (float)bv;
    k[ch] = (float)(-av * sums[ch] / m - bv * mean[ch]);
  }
  for (int r = 0; r < m; r++) {
    const float *g = dy + (size_t)r * c, *row = x + (size_t)r * c;
    float *out = dx + (size_t)r * c;
    for (int ch = 0; ch < c; ch++) out[ch] = a[ch] * g[ch] + b[ch] * row[ch] + k[ch];
  }
  free(sums);
  free(coef);
  return 0;
}

/*
 * Elementwise a + b, where b is either the same size as a (residual sums and
 * gradient accumulation) or one value per channel (a bias), repeated every
 * c values. tfjs's wasm Add took about 3 ms for 2M floats here.
 */
void rn_add(const float *a, const float *b, float *out, int32_t n, int32_t c) {
  if (c == 0) {
#pragma omp parallel for num_threads(threads()) if (n > (1 << 16)) schedule(static)
    for (int32_t i = 0; i < n; i++) out[i] = a[i] + b[i];
    return;
  }
  const int32_t rows = n / c;
#pragma omp parallel for num_threads(threads()) if (n > (1 << 16)) schedule(static)
  for (int32_t r = 0; r < rows; r++) {
    const float *row = a + (size_t)r * c;
    float *o = out + (size_t)r * c;
    for (int32_t ch = 0; ch < c; ch++) o[ch] = row[ch] + b[ch];
  }
}

/*
 * Pads the height and width of an NHWC tensor with `value` (ZeroPadding2D):
 * whole output rows at a time, the input row copied into the middle.
 */
void rn_pad_hw(const float *x, float *y, int32_t n, int32_t h, int32_t w, int32_t c,
               int32_t top, int32_t bottom, int32_t left, int32_t right, float value) {
  const int32_t ho = h + top + bottom, wo = w + left + right;
  const size_t row = (size_t)wo * c;
#pragma omp parallel for num_threads(threads()) if ((size_t)n * ho * row > (1 << 16)) \
    schedule(static)
  for (int32_t nr = 0; nr < n * ho; nr++) {
    const int32_t b = nr / ho, r = nr % ho - top;
    float *out = y + (size_t)nr * row;
    if (r < 0 || r >= h) {
      for (size_t i = 0; i < row; i++) out[i] = value;
      continue;
    }
    for (size_t i = 0; i < (size_t)left * c; i++) out[i] = value;
    memcpy(out + (size_t)left * c, x + ((size_t)b * h + r) * w * c, (size_t)w * c * sizeof(float));
    for (size_t i = (size_t)(left + w) * c; i < row; i++) out[i] = value;
  }
}

/* ReLU as tfjs's cpu backend computes it, Math.max(0, x): NaN passes, -0 becomes 0. */
void rn_relu(const float *x, float *y, int32_t n) {
  for (int32_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : (x[i] != x[i] ? x[i] : 0.0f);
}

/* Its gradient, tfjs's dy * step(x): dy where x > 0, 0 where x <= 0, NaN where x is NaN. */
void rn_relu_grad(const float *dy, const float *x, float *dx, int32_t n) {
  for (int32_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : (x[i] != x[i] ? x[i] : 0.0f);
}

/*
 * One Adam step for one variable, as tfjs's AdamOptimizer computes it (same
 * operations, same order, in float32), in one pass instead of about a dozen
 * kernels: m' = b1 m + (1 - b1) g, v' = b2 v + (1 - b2) g^2,
 * value' = value - lr * (m' / (1 - b1^t)) / (sqrt(v' / (1 - b2^t)) + eps).
 * acc1 and acc2 point at tfjs's float32 b1^t and b2^t.
 */
void rn_adam(const float *value, const float *m, const float *v, const float *g,
             const float *acc1, const float *acc2, float *value_out, float *m_out,
             float *v_out, int32_t n, float lr, float beta1, float beta2, float epsilon,
             float one_minus_beta1, float one_minus_beta2) {
  const float bias1 = 1.0f - *acc1, bias2 = 1.0f - *acc2;
  for (int32_t i = 0; i < n; i++) {
    const float nm = m[i] * beta1 + g[i] * one_minus_beta1;
    const float nv = v[i] * beta2 + (g[i] * g[i]) * one_minus_beta2;
    m_out[i] = nm;
    v_out[i] = nv;
    value_out[i] = (nm / bias1) / (sqrtf(nv / bias2) + epsilon) * -lr + value[i];
  }
}
