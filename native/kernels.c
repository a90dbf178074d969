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
int32_t rn_abi_version(void) { return 1; }

/* The im2col buffer is reused across calls (JavaScript calls in one thread). */
static float *scratch;
static size_t scratch_floats;

static float *scratch_get(size_t floats) {
  if (floats > scratch_floats) {
    free(scratch);
    scratch = malloc(floats * sizeof(float));
    scratch_floats = scratch == NULL ? 0 : floats;
  }
  return scratch;
}

/* About 16 MiB of im2col rows per chunk: large GEMMs, a cache-friendly buffer. */
#define CHUNK_FLOATS ((size_t)4 << 20)

static int chunk_images(const conv_t *g) {
  size_t per_image = (size_t)g->ho * g->wo * g->kh * g->kw * g->c;
  size_t images = per_image == 0 ? 1 : CHUNK_FLOATS / per_image;
  if (images < 1) images = 1;
  if (images > (size_t)g->n) images = g->n;
  return (int)images;
}

/* A 1x1, stride-1, unpadded convolution is a plain GEMM on the input itself. */
static int is_pointwise(const conv_t *g) {
  return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 &&
         g->ho == g->h && g->wo == g->w;
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
 * y = conv(x, filter) + bias, then ReLU when relu != 0. bias may be NULL.
 * Returns 0, or -1 when the im2col buffer cannot be allocated.
 */
int32_t rn_conv2d(const float *x, const float *filter, const float *bias, float *y,
                  const conv_t *g, int32_t relu) {
  const int k = g->kh * g->kw * g->c, pixels = g->ho * g->wo;
  const int step = chunk_images(g);
  float *col = is_pointwise(g) ? NULL : scratch_get((size_t)step * pixels * k);
  if (!is_pointwise(g) && col == NULL) return -1;
  for (int n0 = 0; n0 < g->n; n0 += step) {
    const int count = n0 + step > g->n ? g->n - n0 : step;
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

/* dx = the input gradient of conv(x, filter) given dy: dcol = dy * filter^T, then col2im. */
int32_t rn_conv2d_backprop_input(const float *dy, const float *filter, float *dx,
                                 const conv_t *g) {
  const int k = g->kh * g->kw * g->c, pixels = g->ho * g->wo;
  if (is_pointwise(g)) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->n * pixels, g->c, g->cout, 1.0f, dy,
                g->cout, filter, g->cout, 0.0f, dx, g->c);
    return 0;
  }
  const int step = chunk_images(g);
  float *col = scratch_get((size_t)step * pixels * k);
  if (col == NULL) return -1;
  memset(dx, 0, (size_t)g->n * g->h * g->w * g->c * sizeof(float));
  for (int n0 = 0; n0 < g->n; n0 += step) {
    const int count = n0 + step > g->n ? g->n - n0 : step;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, count * pixels, k, g->cout, 1.0f,
                dy + (size_t)n0 * pixels * g->cout, g->cout, filter, g->cout, 0.0f, col, k);
    col2im(col, dx, g, n0, count);
  }
  return 0;
}

/* dfilter = im2col(x)^T * dy, accumulated over chunks of images. */
int32_t rn_conv2d_backprop_filter(const float *x, const float *dy, float *dfilter,
                                  const conv_t *g) {
  const int k = g->kh * g->kw * g->c, pixels = g->ho * g->wo;
  const int step = chunk_images(g);
  float *col = is_pointwise(g) ? NULL : scratch_get((size_t)step * pixels * k);
  if (!is_pointwise(g) && col == NULL) return -1;
  for (int n0 = 0; n0 < g->n; n0 += step) {
    const int count = n0 + step > g->n ? g->n - n0 : step;
    const float *a = x + (size_t)n0 * g->h * g->w * g->c;
    if (col != NULL) {
      im2col(x, col, g, n0, count);
      a = col;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, g->cout, count * pixels, 1.0f, a, k,
                dy + (size_t)n0 * pixels * g->cout, g->cout, n0 == 0 ? 0.0f : 1.0f, dfilter,
                g->cout);
  }
  return 0;
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
