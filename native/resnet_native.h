/*
 * What the two C sources of libresnet_native.so share: the convolution
 * geometry the TypeScript binding packs, and the one thread count.
 */
#ifndef RESNET_NATIVE_H
#define RESNET_NATIVE_H
#include <stdint.h>

/* One convolution's geometry, as lib/backends/native/kernels.ts packs it (Int32Array). */
typedef struct {
  int32_t n, h, w, c;      /* input NHWC */
  int32_t kh, kw, cout;    /* filter [kh, kw, c, cout] (HWIO) */
  int32_t sh, sw;          /* strides */
  int32_t pt, pl, pb, pr;  /* padding top, left, bottom, right, as tfjs's padInfo */
  int32_t ho, wo;          /* output height and width */
} conv_t;

/* OpenMP threads for one kernel (OpenBLAS itself is kept at one thread). */
int rn_threads(void);

#endif
