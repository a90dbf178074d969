/*
 * The native backend's own kernels (resnet-cifar's `native` backend).
 *
 * TensorFlow.js's wasm backend keeps every tensor in its WebAssembly memory;
 * `lib/backends/native/kernels.ts` hands pointers into that memory to these
 * functions through Deno's FFI. The convolutions are oneDNN's (onednn.c),
 * except the strided 3x3 filter gradients, which are im2col plus one
 * OpenBLAS SGEMM per chunk of images here. Also here, each measured faster
 * than oneDNN's primitive for it or without one there: batch norm (statistics,
 * normalisation, gradient), ReLU and its gradient, adds, padding, sums, Adam.
 *
 * Layouts are TensorFlow's: activations NHWC, filters [KH, KW, Cin, Cout],
 * so a filter is already the [K, Cout] matrix with K = KH*KW*Cin ordered
 * (kh, kw, cin), and one im2col row of an output pixel uses the same order.
 *
 * Build: `deno task build:native` (tools/build_native.ts has the flags).
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

#include "resnet_native.h"

/* Bumped whenever a signature or conv_t changes; the loader checks it. */
int32_t rn_abi_version(void) { return 8; }

/*
 * Threads: OpenBLAS is set to one thread, and each convolution splits its
 * images between OpenMP threads instead, each doing its own im2col and GEMM
 * (oneDNN runs on the same OpenMP runtime, libgomp, and so the same pool).
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

int rn_threads(void) {
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

/* dfilter (or a partial sum of it) over images [first, last). */
static int conv_filter_part(const float *x, const float *dy, float *dfilter, const conv_t *g,
                            int first, int last) {
  const int k = g->kh * g->kw * g->c, pixels = g->ho * g->wo;
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
 * oneDNN (onednn.c) computes every other convolution product faster; this
 * stays for the strided 3x3 filter gradients from 64 input channels, where
 * oneDNN 2.6's was 10-70 % slower (`tools/conv_bench.ts`).
 */
int32_t rn_gemm_conv2d_backprop_filter(const float *x, const float *dy, float *dfilter,
                                  const conv_t *g) {
  const size_t size = (size_t)g->kh * g->kw * g->c * g->cout;
  const int nthreads = rn_threads() < g->n ? rn_threads() : g->n;
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

/* Threads for one pass over m rows of c values: one below 64K values, where waking them costs more. */
static int pass_threads(int32_t m, int32_t c) {
  return (size_t)m * c > (1 << 16) ? rn_threads() : 1;
}

/*
 * Per-channel sums over rows: sums[0..c) of a, and sums[c..2c) of a * (b - shift)
 * (b = a, shift = 0: the squares), each thread over its own rows into its own
 * partial sums, added after in thread order (the same order on every run).
 */
static int column_sums(const float *a, const float *b, const float *shift, double *sums,
                       int32_t m, int32_t c) {
  const int nthreads = pass_threads(m, c);
  double *partial = calloc((size_t)2 * c * nthreads, sizeof(double));
  if (partial == NULL) return -1;
#pragma omp parallel num_threads(nthreads)
  {
    const int t = omp_get_thread_num();
    int first, last;
    share(m, t, omp_get_num_threads(), &first, &last);
    double *sum = partial + (size_t)2 * c * t, *dot = sum + c;
    for (int r = first; r < last; r++) {
      const float *ra = a + (size_t)r * c, *rb = b + (size_t)r * c;
      for (int ch = 0; ch < c; ch++) {
        sum[ch] += ra[ch];
        dot[ch] += (double)ra[ch] * (rb[ch] - (shift == NULL ? 0.0f : shift[ch]));
      }
    }
  }
  memset(sums, 0, (size_t)2 * c * sizeof(double));
  for (int t = 0; t < nthreads; t++) {
    for (int i = 0; i < 2 * c; i++) sums[i] += partial[(size_t)2 * c * t + i];
  }
  free(partial);
  return 0;
}

/* mean[c] and the biased variance[c] of x's columns (what tf.moments returns). */
void rn_moments(const float *x, float *mean, float *variance, int32_t m, int32_t c) {
  double *sum = malloc((size_t)2 * c * sizeof(double));
  if (sum == NULL || column_sums(x, x, NULL, sum, m, c) != 0) {
    free(sum);
    return;
  }
  const double *squares = sum + c;
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

/*
 * y = (x - mean) / sqrt(variance + epsilon) * gamma + beta, as one multiply-add
 * per element, the rows split over the OpenMP threads; with relu != 0, the ReLU
 * after it in the same pass (rn_relu's max(0, y)). oneDNN's inference batch norm
 * measured no faster.
 */
void rn_batchnorm_forward(const float *x, const float *mean, const float *variance,
                          const float *gamma, const float *beta, float epsilon, float *y,
                          int32_t m, int32_t c, int32_t relu) {
  float *scale = malloc((size_t)2 * c * sizeof(float));
  if (scale == NULL) return;
  float *shift = scale + c;
  for (int ch = 0; ch < c; ch++) {
    const double s = gamma[ch] / sqrt((double)variance[ch] + epsilon);
    scale[ch] = (float)s;
    shift[ch] = (float)(beta[ch] - mean[ch] * s);
  }
#pragma omp parallel for num_threads(pass_threads(m, c)) schedule(static)
  for (int r = 0; r < m; r++) {
    const float *row = x + (size_t)r * c;
    float *out = y + (size_t)r * c;
    if (relu) {
      for (int ch = 0; ch < c; ch++) {
        const float v = row[ch] * scale[ch] + shift[ch];
        out[ch] = v > 0.0f ? v : (v != v ? v : 0.0f);
      }
    } else {
      for (int ch = 0; ch < c; ch++) out[ch] = row[ch] * scale[ch] + shift[ch];
    }
  }
  free(scale);
}

/*
 * Gradients of y = batchnorm(x) with the batch's own mean and variance:
 *   dbeta = sum dy,  dgamma = sum dy * xhat,
 *   dx = gamma * invstd * (dy - dbeta / m - xhat * dgamma / m),
 * the last written as dx = a*dy + b*x + k per channel. With y (the output of a
 * ReLU fused after the batch norm; NULL: none), dy is first masked as rn_relu_grad
 * masks it, into dx, and the passes read it from there (the mask inside the
 * sums' double loop took 8.3 ms on 2M floats, this way 1.5 ms). Returns -1 if
 * out of memory.
 */
void rn_relu_grad(const float *dy, const float *x, float *dx, int32_t n);

int32_t rn_batchnorm_backward(const float *dy, const float *y, const float *x, const float *mean,
                              const float *variance, const float *gamma, float epsilon,
                              float *dx, float *dgamma, float *dbeta, int32_t m, int32_t c) {
  if (y != NULL) {
    rn_relu_grad(dy, y, dx, m * c);
    dy = dx;
  }
  double *sums = malloc((size_t)2 * c * sizeof(double));
  float *coef = malloc((size_t)3 * c * sizeof(float));
  if (sums == NULL || coef == NULL || column_sums(dy, x, mean, sums, m, c) != 0) {
    free(sums);
    free(coef);
    return -1;
  }
  const double *dot = sums + c;
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
#pragma omp parallel for num_threads(pass_threads(m, c)) schedule(static)
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
#pragma omp parallel for num_threads(rn_threads()) if (n > (1 << 16)) schedule(static)
    for (int32_t i = 0; i < n; i++) out[i] = a[i] + b[i];
    return;
  }
  const int32_t rows = n / c;
#pragma omp parallel for num_threads(rn_threads()) if (n > (1 << 16)) schedule(static)
  for (int32_t r = 0; r < rows; r++) {
    const float *row = a + (size_t)r * c;
    float *o = out + (size_t)r * c;
    for (int32_t ch = 0; ch < c; ch++) o[ch] = row[ch] + b[ch];
  }
}

/* relu(a + b) over n values of one shape: a residual block's sum and the ReLU after it, one pass. */
void rn_add_relu(const float *a, const float *b, float *out, int32_t n) {
#pragma omp parallel for num_threads(rn_threads()) if (n > (1 << 16)) schedule(static)
  for (int32_t i = 0; i < n; i++) {
    const float v = a[i] + b[i];
    out[i] = v > 0.0f ? v : (v != v ? v : 0.0f);
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
#pragma omp parallel for num_threads(rn_threads()) if ((size_t)n * ho * row > (1 << 16)) \
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
#pragma omp parallel for num_threads(rn_threads()) if (n > (1 << 16)) schedule(static)
  for (int32_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : (x[i] != x[i] ? x[i] : 0.0f);
}

/* Its gradient, tfjs's dy * step(x): dy where x > 0, 0 where x <= 0, NaN where x is NaN. */
void rn_relu_grad(const float *dy, const float *x, float *dx, int32_t n) {
#pragma omp parallel for num_threads(rn_threads()) if (n > (1 << 16)) schedule(static)
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
