/*
 * The convolutions of the native backend on oneDNN (the library PyTorch's
 * CPU convolutions run on), behind the same pointers-into-the-WASM-heap calls
 * as kernels.c.
 *
 * Activations stay where tfjs keeps them, NHWC, described to oneDNN as user
 * memory with format tag nhwc: oneDNN's JIT kernels for this CPU
 * (brgconv/jit:avx512_core on the AVX-512 build machine, jit:avx2 elsewhere)
 * read and write them in place, no copies. Filters are tfjs's HWIO,
 * [kh, kw, cin, cout]; the primitives pick their own weights layout
 * (format_tag_any) and the filter is reordered into it (the filter gradient
 * back out of it) on each call: with HWIO weights oneDNN 2.6 has only its
 * im2col+GEMM forward (gemm:jit, 2-4x slower here) and reference backward
 * passes (about 1 s a call).
 *
 * Primitives are built once per geometry and kept (JIT code generation costs
 * milliseconds, a step calls each geometry a few times); one engine and one
 * stream serve the process. JavaScript calls from one thread, so one shared
 * scratchpad and one weights buffer serve every primitive.
 *
 * Threads: Debian's libdnnl is built with OpenMP (libgomp), the runtime
 * kernels.c uses: both share one pool of spinning threads.
 */
#include <dnnl.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "resnet_native.h"

/* From cblas.h (as kernels.c): only OpenBLAS's runtime library is needed, for rn_sgemm_gflops. */
void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c,
                 int ldc);

/* Status codes the TypeScript binding turns into messages. */
enum { RN_OK = 0, RN_NO_MEMORY = -1, RN_UNSUPPORTED = -2, RN_FAILED = -3 };

static dnnl_engine_t engine;
static dnnl_stream_t stream;

static int ready(void) {
  if (engine != NULL) return 1;
  rn_threads(); /* OpenBLAS at one thread before any OpenMP work */
  if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) return 0;
  if (dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
    dnnl_engine_destroy(engine);
    engine = NULL;
    return 0;
  }
  return 1;
}

/* A buffer kept across calls, 64-byte aligned, grown when a call needs more. */
typedef struct {
  void *data;
  size_t bytes;
} buffer_t;

static void *buffer_get(buffer_t *b, size_t bytes) {
  if (bytes == 0) bytes = 64;
  if (bytes > b->bytes) {
    free(b->data);
    b->data = aligned_alloc(64, (bytes + 63) / 64 * 64);
    b->bytes = b->data == NULL ? 0 : bytes;
  }
  return b->data;
}

static buffer_t scratchpad, weights_buffer;

/* ------------------------------------------------------------ primitive cache */

enum {
  OP_CONV_FORWARD,
  OP_CONV_BACKWARD_DATA,
  OP_CONV_BACKWARD_WEIGHTS,
};

#define KEY_INTS 18

/* One geometry's primitive, and the reorder between HWIO and its weights layout. */
typedef struct {
  int32_t key[KEY_INTS];
  int used;
  dnnl_primitive_t primitive;
  dnnl_memory_desc_t weights_md; /* the primitive's (convolutions) */
  dnnl_primitive_t reorder;      /* HWIO <-> weights_md, or NULL when they are the same */
  size_t scratchpad_bytes;
} entry_t;

/*
 * ResNet-18 has 11 convolution geometries per batch size (x 3 products, and
 * the last batch of an epoch is smaller); when full, the oldest entry goes.
 */
#define CACHE_SIZE 128
static entry_t cache[CACHE_SIZE];
static int cache_next;

static entry_t *cache_find(const int32_t *key) {
  for (int i = 0; i < CACHE_SIZE; i++) {
    if (cache[i].used && memcmp(cache[i].key, key, sizeof(cache[i].key)) == 0) return &cache[i];
  }
  return NULL;
}

static entry_t *cache_slot(const int32_t *key) {
  entry_t *e = &cache[cache_next];
  cache_next = (cache_next + 1) % CACHE_SIZE;
  if (e->used) {
    dnnl_primitive_destroy(e->primitive);
    if (e->reorder != NULL) dnnl_primitive_destroy(e->reorder);
  }
  memset(e, 0, sizeof(*e));
  memcpy(e->key, key, sizeof(e->key));
  return e;
}

/* Attributes every primitive gets: the caller's scratchpad; ReLU after it when relu. */
static dnnl_primitive_attr_t make_attr(int relu) {
  dnnl_primitive_attr_t attr = NULL;
  if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
  dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
  if (relu) {
    dnnl_post_ops_t ops = NULL;
    dnnl_post_ops_create(&ops);
    dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
    dnnl_primitive_attr_set_post_ops(attr, ops);
    dnnl_post_ops_destroy(ops);
  }
  return attr;
}

/* Creates e->primitive from pd (which it takes), and records its scratchpad size. */
static int finish_entry(entry_t *e, dnnl_primitive_desc_t pd) {
  const dnnl_memory_desc_t *pad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  e->scratchpad_bytes = pad == NULL ? 0 : dnnl_memory_desc_get_size(pad);
  const dnnl_status_t status = dnnl_primitive_create(&e->primitive, pd);
  dnnl_primitive_desc_destroy(pd);
  if (status != dnnl_success) {
    e->used = 0;
    return RN_UNSUPPORTED;
  }
  e->used = 1;
  return RN_OK;
}

/* ------------------------------------------------------------- convolutions */

typedef struct {
  dnnl_memory_desc_t src, weights_hwio, weights_any, bias, dst;
  dnnl_dims_t strides, pad_l, pad_r;
} conv_descs_t;

static void conv_descs(const conv_t *g, conv_descs_t *d) {
  const dnnl_dims_t src = {g->n, g->c, g->h, g->w}, dst = {g->n, g->cout, g->ho, g->wo};
  const dnnl_dims_t weights = {g->cout, g->c, g->kh, g->kw}, bias = {g->cout};
  dnnl_memory_desc_init_by_tag(&d->src, 4, src, dnnl_f32, dnnl_nhwc);
  dnnl_memory_desc_init_by_tag(&d->dst, 4, dst, dnnl_f32, dnnl_nhwc);
  dnnl_memory_desc_init_by_tag(&d->weights_hwio, 4, weights, dnnl_f32, dnnl_hwio);
  dnnl_memory_desc_init_by_tag(&d->weights_any, 4, weights, dnnl_f32, dnnl_format_tag_any);
  dnnl_memory_desc_init_by_tag(&d->bias, 1, bias, dnnl_f32, dnnl_a);
  d->strides[0] = g->sh;
  d->strides[1] = g->sw;
  d->pad_l[0] = g->pt;
  d->pad_l[1] = g->pl;
  d->pad_r[0] = g->pb;
  d->pad_r[1] = g->pr;
}

/* The forward primitive descriptor: the primitive itself, or the hint the backward ones need. */
static dnnl_status_t conv_forward_pd(dnnl_primitive_desc_t *pd, const conv_descs_t *d,
                                     int bias, int relu) {
  dnnl_convolution_desc_t desc;
  dnnl_status_t status = dnnl_convolution_forward_desc_init(
      &desc, dnnl_forward_training, dnnl_convolution_direct, &d->src, &d->weights_any,
      bias ? &d->bias : NULL, &d->dst, d->strides, d->pad_l, d->pad_r);
  if (status != dnnl_success) return status;
  dnnl_primitive_attr_t attr = make_attr(relu);
  status = dnnl_primitive_desc_create(pd, &desc, attr, engine, NULL);
  dnnl_primitive_attr_destroy(attr);
  return status;
}

/*
 * The reorder between tfjs's HWIO filter and the primitive's layout (to it
 * when to_primitive, else back), or none when the layouts are equal.
 */
static int weights_reorder(entry_t *e, const conv_descs_t *d, int to_primitive) {
  if (dnnl_memory_desc_equal(&e->weights_md, &d->weights_hwio)) return RN_OK;
  const dnnl_memory_desc_t *from = to_primitive ? &d->weights_hwio : &e->weights_md;
  const dnnl_memory_desc_t *to = to_primitive ? &e->weights_md : &d->weights_hwio;
  dnnl_primitive_desc_t pd;
  dnnl_primitive_attr_t attr = make_attr(0);
  dnnl_status_t status = dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, attr);
  dnnl_primitive_attr_destroy(attr);
  if (status != dnnl_success) return RN_UNSUPPORTED;
  const dnnl_memory_desc_t *pad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  const size_t pad_bytes = pad == NULL ? 0 : dnnl_memory_desc_get_size(pad);
  if (pad_bytes > e->scratchpad_bytes) e->scratchpad_bytes = pad_bytes;
  status = dnnl_primitive_create(&e->reorder, pd);
  dnnl_primitive_desc_destroy(pd);
  return status == dnnl_success ? RN_OK : RN_UNSUPPORTED;
}

static void conv_key(int32_t *key, int op, const conv_t *g, int bias, int relu) {
  memset(key, 0, KEY_INTS * sizeof(int32_t));
  key[0] = op;
  key[1] = bias;
  key[2] = relu;
  memcpy(key + 3, g, sizeof(conv_t));
}

static entry_t *conv_entry(int op, const conv_t *g, int bias, int relu, int *status) {
  int32_t key[KEY_INTS];
  conv_key(key, op, g, bias, relu);
  entry_t *e = cache_find(key);
  if (e != NULL) return e;
  if (!ready()) {
    *status = RN_FAILED;
    return NULL;
  }
  conv_descs_t d;
  conv_descs(g, &d);
  dnnl_primitive_desc_t hint = NULL, pd = NULL;
  *status = RN_UNSUPPORTED;
  if (conv_forward_pd(&hint, &d, op == OP_CONV_FORWARD && bias, op == OP_CONV_FORWARD && relu) !=
      dnnl_success) {
    return NULL;
  }
  dnnl_status_t created = dnnl_success;
  dnnl_query_t weights_query = dnnl_query_weights_md;
  if (op == OP_CONV_FORWARD) {
    pd = hint;
    hint = NULL;
  } else {
    dnnl_convolution_desc_t desc;
    dnnl_primitive_attr_t attr = make_attr(0);
    if (op == OP_CONV_BACKWARD_DATA) {
      created = dnnl_convolution_backward_data_desc_init(&desc, dnnl_convolution_direct, &d.src,
                                                         &d.weights_any, &d.dst, d.strides,
                                                         d.pad_l, d.pad_r);
    } else {
      weights_query = dnnl_query_diff_weights_md;
      created = dnnl_convolution_backward_weights_desc_init(
          &desc, dnnl_convolution_direct, &d.src, &d.weights_any, NULL, &d.dst, d.strides,
          d.pad_l, d.pad_r);
    }
    if (created == dnnl_success) created = dnnl_primitive_desc_create(&pd, &desc, attr, engine, hint);
    dnnl_primitive_attr_destroy(attr);
    dnnl_primitive_desc_destroy(hint);
    if (created != dnnl_success) return NULL;
  }
  e = cache_slot(key);
  e->weights_md = *dnnl_primitive_desc_query_md(pd, weights_query, 0);
  if ((*status = finish_entry(e, pd)) != RN_OK) return NULL;
  if ((*status = weights_reorder(e, &d, op != OP_CONV_BACKWARD_WEIGHTS)) != RN_OK) {
    e->used = 0;
    dnnl_primitive_destroy(e->primitive);
    return NULL;
  }
  return e;
}

/* A memory object over `data` (not owned) with layout md. */
static dnnl_memory_t wrap(const dnnl_memory_desc_t *md, const void *data) {
  dnnl_memory_t m = NULL;
  if (dnnl_memory_create(&m, md, engine, (void *)data) != dnnl_success) return NULL;
  return m;
}

#define MAX_ARGS 10

/* Arguments of one execution: memory objects made for it, destroyed after it. */
typedef struct {
  dnnl_exec_arg_t args[MAX_ARGS];
  int count;
  int failed;
} args_t;

static void arg(args_t *a, int name, const dnnl_memory_desc_t *md, const void *data) {
  dnnl_memory_t m = wrap(md, data);
  if (m == NULL) {
    a->failed = 1;
    return;
  }
  a->args[a->count].arg = name;
  a->args[a->count].memory = m;
  a->count++;
}

static void args_free(args_t *a) {
  for (int i = 0; i < a->count; i++) dnnl_memory_destroy(a->args[i].memory);
  a->count = 0;
}

/* Runs primitive with a's arguments and the shared scratchpad (when it needs one), then frees them. */
static int execute(dnnl_primitive_t primitive, args_t *a, size_t scratchpad_bytes) {
  if (scratchpad_bytes > 0 && !a->failed) {
    void *pad = buffer_get(&scratchpad, scratchpad_bytes);
    const dnnl_dims_t pad_dims = {(dnnl_dim_t)scratchpad_bytes};
    dnnl_memory_desc_t pad_md;
    dnnl_memory_desc_init_by_tag(&pad_md, 1, pad_dims, dnnl_u8, dnnl_a);
    if (pad == NULL) {
      a->failed = 1;
    } else {
      arg(a, DNNL_ARG_SCRATCHPAD, &pad_md, pad);
    }
  }
  int status = a->failed ? RN_NO_MEMORY : RN_OK;
  if (status == RN_OK &&
      (dnnl_primitive_execute(primitive, stream, a->count, a->args) != dnnl_success ||
       dnnl_stream_wait(stream) != dnnl_success)) {
    status = RN_FAILED;
  }
  args_free(a);
  return status;
}

/* The filter in the primitive's layout: the HWIO one itself, or its reorder into the buffer. */
static const void *weights_in(entry_t *e, const conv_descs_t *d, const float *hwio, int *status) {
  if (e->reorder == NULL) return hwio;
  void *out = buffer_get(&weights_buffer, dnnl_memory_desc_get_size(&e->weights_md));
  if (out == NULL) {
    *status = RN_NO_MEMORY;
    return NULL;
  }
  args_t a = {0};
  arg(&a, DNNL_ARG_FROM, &d->weights_hwio, hwio);
  arg(&a, DNNL_ARG_TO, &e->weights_md, out);
  *status = execute(e->reorder, &a, e->scratchpad_bytes);
  return *status == RN_OK ? out : NULL;
}

/* y = conv(x, filter) + bias (bias may be NULL), then ReLU when relu. Returns a status above. */
int32_t rn_dnnl_conv2d(const float *x, const float *filter, const float *bias, float *y,
                       const conv_t *g, int32_t relu) {
  int status = RN_OK;
  entry_t *e = conv_entry(OP_CONV_FORWARD, g, bias != NULL, relu != 0, &status);
  if (e == NULL) return status;
  conv_descs_t d;
  conv_descs(g, &d);
  const void *weights = weights_in(e, &d, filter, &status);
  if (weights == NULL) return status;
  args_t a = {0};
  arg(&a, DNNL_ARG_SRC, &d.src, x);
  arg(&a, DNNL_ARG_WEIGHTS, &e->weights_md, weights);
  if (bias != NULL) arg(&a, DNNL_ARG_BIAS, &d.bias, bias);
  arg(&a, DNNL_ARG_DST, &d.dst, y);
  return execute(e->primitive, &a, e->scratchpad_bytes);
}

/* dx of conv(x, filter) given dy. */
int32_t rn_dnnl_conv2d_backprop_input(const float *dy, const float *filter, float *dx,
                                      const conv_t *g) {
  int status = RN_OK;
  entry_t *e = conv_entry(OP_CONV_BACKWARD_DATA, g, 0, 0, &status);
  if (e == NULL) return status;
  conv_descs_t d;
  conv_descs(g, &d);
  const void *weights = weights_in(e, &d, filter, &status);
  if (weights == NULL) return status;
  args_t a = {0};
  arg(&a, DNNL_ARG_DIFF_DST, &d.dst, dy);
  arg(&a, DNNL_ARG_WEIGHTS, &e->weights_md, weights);
  arg(&a, DNNL_ARG_DIFF_SRC, &d.src, dx);
  return execute(e->primitive, &a, e->scratchpad_bytes);
}

/* dfilter (HWIO) of conv(x, filter) given x and dy. */
int32_t rn_dnnl_conv2d_backprop_filter(const float *x, const float *dy, float *dfilter,
                                       const conv_t *g) {
  int status = RN_OK;
  entry_t *e = conv_entry(OP_CONV_BACKWARD_WEIGHTS, g, 0, 0, &status);
  if (e == NULL) return status;
  conv_descs_t d;
  conv_descs(g, &d);
  void *blocked = dfilter;
  if (e->reorder != NULL) {
    blocked = buffer_get(&weights_buffer, dnnl_memory_desc_get_size(&e->weights_md));
    if (blocked == NULL) return RN_NO_MEMORY;
  }
  args_t a = {0};
  arg(&a, DNNL_ARG_SRC, &d.src, x);
  arg(&a, DNNL_ARG_DIFF_DST, &d.dst, dy);
  arg(&a, DNNL_ARG_DIFF_WEIGHTS, &e->weights_md, blocked);
  status = execute(e->primitive, &a, e->scratchpad_bytes);
  if (status != RN_OK || e->reorder == NULL) return status;
  arg(&a, DNNL_ARG_FROM, &e->weights_md, blocked);
  arg(&a, DNNL_ARG_TO, &d.weights_hwio, dfilter);
  return execute(e->reorder, &a, e->scratchpad_bytes);
}

/* ------------------------------------------------------------------ SGEMM */

/* One SGEMM per thread on its rows of A, as kernels.c's convolutions call OpenBLAS. */
static void openblas_rows(int32_t m, int32_t n, int32_t k, const float *a, const float *b,
                          float *c) {
#pragma omp parallel num_threads(rn_threads())
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int first = (int)((long)m * t / nt), last = (int)((long)m * (t + 1) / nt);
    if (last > first) {
      cblas_sgemm(101, 111, 111, last - first, n, k, 1.0f, a + (size_t)first * k, k, b, n, 0.0f,
                  c + (size_t)first * n, n);
    }
  }
}

/*
 * The best GFLOP/s of `repeats` row-major C = A B with A m x k and B k x n,
 * after one warm-up, on all OpenMP threads: library 0 is OpenBLAS's
 * cblas_sgemm (the rows split over the threads, as the convolutions call it),
 * 1 is oneDNN's dnnl_sgemm (its own OpenMP threading). -1 when the matrices
 * cannot be allocated, the library is neither, or a call fails.
 */
double rn_sgemm_gflops(int32_t m, int32_t n, int32_t k, int32_t library, int32_t repeats) {
  if (m < 1 || n < 1 || k < 1 || repeats < 1 || (library != 0 && library != 1)) return -1;
  rn_threads();
  float *a = aligned_alloc(64, ((size_t)m * k * sizeof(float) + 63) / 64 * 64);
  float *b = aligned_alloc(64, ((size_t)k * n * sizeof(float) + 63) / 64 * 64);
  float *c = aligned_alloc(64, ((size_t)m * n * sizeof(float) + 63) / 64 * 64);
  double best = -1;
  if (a != NULL && b != NULL && c != NULL) {
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.125f;
    for (size_t i = 0; i < (size_t)k * n; i++) b[i] = (float)(i % 5) * 0.25f;
    double fastest = 1e300;
    for (int r = 0; r <= repeats; r++) {
      const double start = omp_get_wtime();
      if (library == 0) {
        openblas_rows(m, n, k, a, b, c);
      } else if (dnnl_sgemm('N', 'N', m, n, k, 1.0f, a, k, b, n, 0.0f, c, n) != dnnl_success) {
        fastest = -1;
        break;
      }
      const double seconds = omp_get_wtime() - start;
      if (r > 0 && seconds < fastest) fastest = seconds; /* r == 0: the warm-up */
    }
    if (fastest > 0) best = 2.0 * m * n * k / fastest / 1e9;
  }
  free(a);
  free(b);
  free(c);
  return best;
}
