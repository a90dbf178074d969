/**
 * Native convolution kernels for the wasm backend: the `native` backend.
 *
 * The wasm backend's XNNPACK convolutions run on 128-bit WebAssembly SIMD,
 * without fused multiply-add, and reach about a third of what the same two
 * cores do natively. This module loads `native/build/libresnet_native.so`
 * (built from `native/kernels.c` and `native/onednn.c` by
 * `deno task build:native`, linked to the system's oneDNN and OpenBLAS)
 * through Deno's FFI, and installs kernels that hand it pointers straight
 * into the wasm memory where the tensors live: no copies, and the tensors
 * stay ordinary wasm tensors for every other kernel. The convolutions run on
 * oneDNN's primitives (the strided 3x3 filter gradients on im2col plus
 * OpenBLAS, {@linkcode gemmFilterGradientWins}); the rest on the project's
 * own C kernels.
 *
 * Replaced while native kernels are enabled: `Conv2D`, `FusedConv2D` (bias,
 * linear or ReLU activation), `Conv2DBackpropInput`, `Conv2DBackpropFilter`,
 * and `Sum`/`Mean` over consecutive non-innermost axes (batch-norm
 * statistics, bias gradients). `installNativeKernels()` registers them, in front of
 * the wasm kernels; anything they do not implement (NCHW, dilations, other
 * activations, other dtypes), and everything while they are disabled, goes to
 * those.
 *
 * @module
 */

import type { BackendWasm } from "@tensorflow/tfjs-backend-wasm";
import {
  Add,
  backend_util,
  Conv2D,
  type Conv2DAttrs,
  Conv2DBackpropFilter,
  type Conv2DBackpropFilterAttrs,
  Conv2DBackpropInput,
  type Conv2DBackpropInputAttrs,
  engine,
  FusedConv2D,
  type FusedConv2DAttrs,
  getBackend,
  type GradConfig,
  type KernelFunc,
  Mean,
  PadV2,
  type PadV2Attrs,
  Relu,
  Sum,
  type Tensor,
  type TensorInfo,
  util,
} from "@tensorflow/tfjs-core";
import { overrideGradient, overrideKernel, type Undo, undoAll } from "../acceleration.ts";
import { channelsLastConvInfo, middleReduction } from "../wasm/kernels.ts";

/** Must equal `rn_abi_version()` in `native/kernels.c`. */
const ABI_VERSION = 8;

/** The library `deno task build:native` writes. */
export const NATIVE_LIBRARY_URL = new URL(
  "../../../native/build/libresnet_native.so",
  import.meta.url,
);

/** The library's functions as Deno's FFI declares them (`tools/conv_bench.ts` opens it too). */
export const NATIVE_SYMBOLS = {
  rn_abi_version: { parameters: [], result: "i32" },
  rn_dnnl_conv2d: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  rn_dnnl_conv2d_backprop_input: {
    parameters: ["buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  rn_dnnl_conv2d_backprop_filter: {
    parameters: ["buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  rn_gemm_conv2d_backprop_filter: {
    parameters: ["buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  rn_sum_middle: { parameters: ["buffer", "buffer", "i32", "i32", "i32", "f32"], result: "void" },
  rn_moments: { parameters: ["buffer", "buffer", "buffer", "i32", "i32"], result: "void" },
  rn_moving_averages: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer", "i32", "f32"],
    result: "void",
  },
  rn_batchnorm_forward: {
    parameters: [
      ...["buffer", "buffer", "buffer", "buffer", "buffer", "f32", "buffer"],
      ...["i32", "i32", "i32"],
    ],
    result: "void",
  },
  rn_batchnorm_backward: {
    parameters: [
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "f32",
      "buffer",
      "buffer",
      "buffer",
      "i32",
      "i32",
    ],
    result: "i32",
  },
  rn_relu: { parameters: ["buffer", "buffer", "i32"], result: "void" },
  rn_add: { parameters: ["buffer", "buffer", "buffer", "i32", "i32"], result: "void" },
  rn_add_relu: { parameters: ["buffer", "buffer", "buffer", "i32"], result: "void" },
  rn_pad_hw: {
    parameters: [
      ...["buffer", "buffer", "i32", "i32", "i32", "i32"],
      ...["i32", "i32", "i32", "i32", "f32"],
    ],
    result: "void",
  },
  rn_adam: {
    parameters: [
      ...["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
      ...["buffer", "buffer", "buffer", "i32"],
      ...["f32", "f32", "f32", "f32", "f32", "f32"],
    ],
    result: "void",
  },
  rn_relu_grad: { parameters: ["buffer", "buffer", "buffer", "i32"], result: "void" },
  rn_sgemm_gflops: { parameters: ["i32", "i32", "i32", "i32", "i32"], result: "f64" },
} as const;

type NativeLibrary = Deno.DynamicLibrary<typeof NATIVE_SYMBOLS>["symbols"];

let library: NativeLibrary | null = null;
let enabled = false;

/**
 * Opens the native library (once per process) and checks its ABI version.
 *
 * @returns A one-line description of what was loaded.
 * @throws {Error} If the library is missing, cannot be opened (no OpenBLAS or
 *   oneDNN, no `--allow-ffi`), or was built from other versions of `native/`;
 *   the message says which, and the command that fixes it.
 */
export function loadNativeLibrary(): string {
  const path = NATIVE_LIBRARY_URL.pathname;
  if (library === null) {
    try {
      Deno.statSync(path);
    } catch {
      throw new Error(
        `The native backend expected its library at ${path} but found no file there; ` +
          `build it with \`deno task build:native\` (needs a C compiler, OpenBLAS and oneDNN: ` +
          `apt-get install gcc libopenblas0 libdnnl-dev)`,
      );
    }
    let opened: Deno.DynamicLibrary<typeof NATIVE_SYMBOLS>;
    try {
      opened = Deno.dlopen(path, NATIVE_SYMBOLS);
    } catch (error) {
      throw new Error(
        `The native backend could not open ${path}: ${(error as Error).message} ` +
          `(it needs --allow-ffi and the system's OpenBLAS and oneDNN runtimes, ` +
          `libopenblas.so.0 and libdnnl.so)`,
      );
    }
    const found = opened.symbols.rn_abi_version();
    if (found !== ABI_VERSION) {
      opened.close();
      throw new Error(
        `The native library ${path} has ABI version ${found} but this code expects ` +
          `${ABI_VERSION}; rebuild it with \`deno task build:native\``,
      );
    }
    library = opened.symbols;
  }
  return `oneDNN convolutions, OpenBLAS SGEMM and OpenMP, via FFI (${path})`;
}

/** Whether the native kernels are handling the wasm backend's convolutions now. */
export function nativeKernelsEnabled(): boolean {
  return enabled;
}

// ------------------------------------------------------------ checked calls

// The C functions index their buffers by the sizes they are given and check
// nothing, so every call goes through here: each size must be an int32 of its
// range, and each buffer must hold exactly the floats those sizes say (a
// tensor's heap view is exactly its size). A mismatch throws before C runs.

const INT32_MAX = 2 ** 31 - 1;

/** A call's sizes, checked one by one, then its buffers against them. */
class NativeCall {
  constructor(readonly fn: string) {}

  /** `value` as the C side's int32, at least `min`. */
  int(name: string, value: number, min = 0): number {
    if (!Number.isInteger(value) || value < min || value > INT32_MAX) {
      throw new RangeError(
        `native ${this.fn}: expected ${name} to be an integer in [${min}, ${INT32_MAX}] ` +
          `but found ${value}`,
      );
    }
    return value;
  }

  /** A size the C side computes in int32 (e.g. `n * ho`): it must not overflow. */
  product(name: string, value: number): void {
    if (value > INT32_MAX) {
      throw new RangeError(
        `native ${this.fn}: expected ${name} to fit in an int32 but found ${value}`,
      );
    }
  }

  /**
   * The buffer `name` must hold `floats` float32 values (`sizes` says which: "n*h*w*c"),
   * counted in bytes: a view of another element size does not pass.
   */
  floats(name: string, buffer: Float32Array, floats: number, sizes: string): void {
    if (!ArrayBuffer.isView(buffer)) {
      throw new RangeError(
        `native ${this.fn}: expected ${name} to be a Float32Array of ${sizes} = ${floats} ` +
          `floats but found ${buffer === null ? "null" : typeof buffer}`,
      );
    }
    if (buffer.byteLength !== floats * Float32Array.BYTES_PER_ELEMENT) {
      throw new RangeError(
        `native ${this.fn}: expected ${name} to hold ${sizes} = ${floats} floats ` +
          `(${floats * Float32Array.BYTES_PER_ELEMENT} bytes) but found ${buffer.byteLength} bytes`,
      );
    }
  }
}

/** Field names of `conv_t` (kernels.c), in order. */
const CONV_FIELDS = [
  "n",
  "h",
  "w",
  "c",
  "kh",
  "kw",
  "cout",
  "sh",
  "sw",
  "pt",
  "pl",
  "pb",
  "pr",
  "ho",
  "wo",
] as const;

/** A `conv_t` as named numbers. */
type ConvGeometry = Record<typeof CONV_FIELDS[number], number>;

/**
 * Why the native kernels cannot run this geometry safely, or null. The output
 * size must follow from the input, kernel, strides and the four pads (oneDNN
 * refuses anything else, and sizes its reads from them); kernels.c's im2col
 * reads x only inside [0, h) x [0, w), but assumes each window starts within
 * a kernel's reach of the input: padding below the kernel size, and the last
 * output row's window starting inside the input.
 */
function convGeometryProblem(g: ConvGeometry): string | null {
  if (g.pt > g.kh - 1 || g.pl > g.kw - 1) {
    return `padding below the kernel size ${g.kh}x${g.kw} but found top ${g.pt}, left ${g.pl}`;
  }
  const ho = Math.floor((g.h + g.pt + g.pb - g.kh) / g.sh) + 1;
  const wo = Math.floor((g.w + g.pl + g.pr - g.kw) / g.sw) + 1;
  if (ho !== g.ho || wo !== g.wo) {
    return `an output of ${ho}x${wo} from the ${g.h}x${g.w} input, kernel ${g.kh}x${g.kw}, ` +
      `strides ${g.sh}x${g.sw} and padding top ${g.pt}, bottom ${g.pb}, left ${g.pl}, ` +
      `right ${g.pr} but found ${g.ho}x${g.wo}`;
  }
  if ((g.ho - 1) * g.sh - g.pt > g.h - 1 || (g.wo - 1) * g.sw - g.pl > g.w - 1) {
    return `the last output window to start inside the ${g.h}x${g.w} input but found an ` +
      `output of ${g.ho}x${g.wo} at strides ${g.sh}x${g.sw} with padding top ${g.pt}, left ${g.pl}`;
  }
  return null;
}

/** The conv_t in `geometry`, each field checked, and the whole checked for consistency. */
function convGeometry(call: NativeCall, geometry: Int32Array): ConvGeometry {
  if (!(geometry instanceof Int32Array) || geometry.length !== CONV_FIELDS.length) {
    throw new RangeError(
      `native ${call.fn}: expected a geometry of ${CONV_FIELDS.length} int32 fields ` +
        `(${CONV_FIELDS.join(", ")}) but found ${geometry.byteLength} bytes`,
    );
  }
  const g = {} as ConvGeometry;
  CONV_FIELDS.forEach((field, i) => {
    g[field] = call.int(field, geometry[i], field.startsWith("p") ? 0 : 1);
  });
  const problem = convGeometryProblem(g);
  if (problem !== null) {
    throw new RangeError(`native ${call.fn}: expected ${problem}`);
  }
  call.product("kh*kw*c", g.kh * g.kw * g.c);
  call.product("ho*wo", g.ho * g.wo);
  return g;
}

/** x, filter, dy (or y) and dx of one convolution, checked against its geometry. */
function convBuffers(
  call: NativeCall,
  g: ConvGeometry,
  buffers: { x: Float32Array; filter: Float32Array; y: Float32Array },
  names: { x: string; filter: string; y: string },
): void {
  call.floats(names.x, buffers.x, g.n * g.h * g.w * g.c, "n*h*w*c");
  call.floats(names.filter, buffers.filter, g.kh * g.kw * g.c * g.cout, "kh*kw*c*cout");
  call.floats(names.y, buffers.y, g.n * g.ho * g.wo * g.cout, "n*ho*wo*cout");
}

/** The loaded library, or an error saying what to call first. */
function loaded(fn: string): NativeLibrary {
  if (library === null) {
    throw new Error(`native ${fn}: expected loadNativeLibrary() to succeed before any call`);
  }
  return library;
}

/**
 * The native library's functions behind their checks: each checks every size
 * it passes to C against the byte lengths of the buffers it passes with it,
 * and throws a `RangeError` naming the function, the buffer or size, what was
 * expected and what was found, before C runs. The kernels below call only
 * these; the C side trusts them.
 *
 * @example
 * ```ts
 * import { checkedNative, loadNativeLibrary } from "./kernels.ts";
 *
 * try {
 *   loadNativeLibrary();
 *   checkedNative.relu(new Float32Array(4), new Float32Array(4), 2 ** 30);
 * } catch (error) {
 *   // native rn_relu: expected x to hold n = 1073741824 floats (4294967296 bytes) but found 16 bytes
 *   // (or, without the library: how to build it)
 *   console.log((error as Error).message);
 * }
 * ```
 */
export const checkedNative = {
  /**
   * y = conv(x, filter) + bias (bias may be null), ReLU when `relu` is 1 (oneDNN);
   * returns C's status.
   */
  conv2d(
    x: Float32Array,
    filter: Float32Array,
    bias: Float32Array | null,
    y: Float32Array,
    geometry: Int32Array,
    relu: number,
  ): number {
    const call = new NativeCall("rn_dnnl_conv2d");
    const g = convGeometry(call, geometry);
    convBuffers(call, g, { x, filter, y }, { x: "x", filter: "filter", y: "y" });
    if (bias !== null) call.floats("bias", bias, g.cout, "cout");
    call.int("relu", relu);
    return loaded(call.fn).rn_dnnl_conv2d(x, filter, bias, y, geometry, relu);
  },

  /** dx of a convolution given dy (oneDNN); returns C's status. */
  conv2dBackpropInput(
    dy: Float32Array,
    filter: Float32Array,
    dx: Float32Array,
    geometry: Int32Array,
  ): number {
    const call = new NativeCall("rn_dnnl_conv2d_backprop_input");
    const g = convGeometry(call, geometry);
    convBuffers(call, g, { x: dx, filter, y: dy }, { x: "dx", filter: "filter", y: "dy" });
    return loaded(call.fn).rn_dnnl_conv2d_backprop_input(dy, filter, dx, geometry);
  },

  /** dfilter of a convolution given x and dy (oneDNN); returns C's status. */
  conv2dBackpropFilter(
    x: Float32Array,
    dy: Float32Array,
    dfilter: Float32Array,
    geometry: Int32Array,
  ): number {
    const call = new NativeCall("rn_dnnl_conv2d_backprop_filter");
    const g = convGeometry(call, geometry);
    convBuffers(call, g, { x, filter: dfilter, y: dy }, { x: "x", filter: "dfilter", y: "dy" });
    return loaded(call.fn).rn_dnnl_conv2d_backprop_filter(x, dy, dfilter, geometry);
  },

  /** The same dfilter as im2col plus OpenBLAS SGEMM (kernels.c); returns C's status. */
  gemmConv2dBackpropFilter(
    x: Float32Array,
    dy: Float32Array,
    dfilter: Float32Array,
    geometry: Int32Array,
  ): number {
    const call = new NativeCall("rn_gemm_conv2d_backprop_filter");
    const g = convGeometry(call, geometry);
    convBuffers(call, g, { x, filter: dfilter, y: dy }, { x: "x", filter: "dfilter", y: "dy" });
    return loaded(call.fn).rn_gemm_conv2d_backprop_filter(x, dy, dfilter, geometry);
  },

  /**
   * The best GFLOP/s of `repeats` SGEMMs C[m, n] = A[m, k] B[k, n] (after one
   * warm-up) on matrices the C side allocates: `library` 0 is OpenBLAS's
   * `cblas_sgemm` (rows split over the OpenMP threads, as the convolutions
   * call it), 1 is oneDNN's `dnnl_sgemm`. Returns -1 if C cannot allocate them.
   */
  sgemmGflops(m: number, n: number, k: number, library: number, repeats: number): number {
    const call = new NativeCall("rn_sgemm_gflops");
    for (const [name, value] of Object.entries({ m, n, k, repeats })) call.int(name, value, 1);
    if (library !== 0 && library !== 1) {
      throw new RangeError(
        `native ${call.fn}: expected library to be 0 (OpenBLAS) or 1 (oneDNN) but found ${library}`,
      );
    }
    return loaded(call.fn).rn_sgemm_gflops(m, n, k, library, repeats);
  },

  /** out[b, c] = scale * sum over m of x[b, m, c]. */
  sumMiddle(
    x: Float32Array,
    out: Float32Array,
    outer: number,
    middle: number,
    inner: number,
    scale: number,
  ): void {
    const call = new NativeCall("rn_sum_middle");
    for (const [name, value] of Object.entries({ outer, middle, inner })) call.int(name, value);
    call.floats("x", x, outer * middle * inner, "outer*middle*inner");
    call.floats("out", out, outer * inner, "outer*inner");
    loaded(call.fn).rn_sum_middle(x, out, outer, middle, inner, scale);
  },

  /** Per-channel mean and biased variance of x as `[m, c]`. */
  moments(
    x: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    m: number,
    c: number,
  ): void {
    const call = new NativeCall("rn_moments");
    call.int("m", m);
    call.int("c", c);
    call.floats("x", x, m * c, "m*c");
    call.floats("mean", mean, c, "c");
    call.floats("variance", variance, c, "c");
    loaded(call.fn).rn_moments(x, mean, variance, m, c);
  },

  /** Both moving statistics of one batch norm after a batch. */
  movingAverages(
    vectors: {
      movingMean: Float32Array;
      movingVariance: Float32Array;
      mean: Float32Array;
      variance: Float32Array;
      meanOut: Float32Array;
      varianceOut: Float32Array;
    },
    c: number,
    decay: number,
  ): void {
    const call = new NativeCall("rn_moving_averages");
    call.int("c", c);
    for (const [name, vector] of Object.entries(vectors)) call.floats(name, vector, c, "c");
    const v = vectors;
    loaded(call.fn).rn_moving_averages(
      v.movingMean,
      v.movingVariance,
      v.mean,
      v.variance,
      v.meanOut,
      v.varianceOut,
      c,
      decay,
    );
  },

  /**
   * y = (x - mean) / sqrt(variance + epsilon) * gamma + beta over x as `[m, c]`;
   * with `relu`, max(0, y) in the same pass.
   */
  batchNormForward(
    x: Float32Array,
    vectors: {
      mean: Float32Array;
      variance: Float32Array;
      gamma: Float32Array;
      beta: Float32Array;
    },
    epsilon: number,
    y: Float32Array,
    m: number,
    c: number,
    relu = false,
  ): void {
    const call = new NativeCall("rn_batchnorm_forward");
    call.int("m", m);
    call.int("c", c);
    call.floats("x", x, m * c, "m*c");
    call.floats("y", y, m * c, "m*c");
    for (const [name, vector] of Object.entries(vectors)) call.floats(name, vector, c, "c");
    const { mean, variance, gamma, beta } = vectors;
    loaded(call.fn).rn_batchnorm_forward(
      x,
      mean,
      variance,
      gamma,
      beta,
      epsilon,
      y,
      m,
      c,
      relu ? 1 : 0,
    );
  },

  /**
   * dx, dgamma, dbeta of the training-mode batch norm; with `relu` (the output
   * of a ReLU fused after it), of relu(batchnorm(x)). Returns C's status.
   */
  batchNormBackward(
    rows: { dy: Float32Array; x: Float32Array; dx: Float32Array; relu?: Float32Array },
    vectors: {
      mean: Float32Array;
      variance: Float32Array;
      gamma: Float32Array;
      dgamma: Float32Array;
      dbeta: Float32Array;
    },
    epsilon: number,
    m: number,
    c: number,
  ): number {
    const call = new NativeCall("rn_batchnorm_backward");
    call.int("m", m);
    call.int("c", c);
    for (const [name, buffer] of Object.entries(rows)) {
      if (buffer !== undefined) call.floats(name, buffer, m * c, "m*c");
    }
    for (const [name, vector] of Object.entries(vectors)) call.floats(name, vector, c, "c");
    const { dy, x, dx, relu } = rows;
    const { mean, variance, gamma, dgamma, dbeta } = vectors;
    return loaded(call.fn).rn_batchnorm_backward(
      dy,
      relu ?? null,
      x,
      mean,
      variance,
      gamma,
      epsilon,
      dx,
      dgamma,
      dbeta,
      m,
      c,
    );
  },

  /** out = max(0, a + b) over n values. */
  addRelu(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void {
    const call = new NativeCall("rn_add_relu");
    call.int("n", n);
    for (const [name, buffer] of Object.entries({ a, b, out })) call.floats(name, buffer, n, "n");
    loaded(call.fn).rn_add_relu(a, b, out, n);
  },

  /** y = max(0, x) over n values. */
  relu(x: Float32Array, y: Float32Array, n: number): void {
    const call = new NativeCall("rn_relu");
    call.int("n", n);
    call.floats("x", x, n, "n");
    call.floats("y", y, n, "n");
    loaded(call.fn).rn_relu(x, y, n);
  },

  /** dx = dy where x > 0, over n values. */
  reluGrad(dy: Float32Array, x: Float32Array, dx: Float32Array, n: number): void {
    const call = new NativeCall("rn_relu_grad");
    call.int("n", n);
    for (const [name, buffer] of Object.entries({ dy, x, dx })) call.floats(name, buffer, n, "n");
    loaded(call.fn).rn_relu_grad(dy, x, dx, n);
  },

  /** out = a + b over n values; b has n values (c = 0) or c, repeated (c > 0 divides n). */
  add(a: Float32Array, b: Float32Array, out: Float32Array, n: number, c: number): void {
    const call = new NativeCall("rn_add");
    call.int("n", n);
    call.int("c", c);
    if (c > 0 && n % c !== 0) {
      throw new RangeError(`native ${call.fn}: expected c = ${c} to divide n = ${n}`);
    }
    call.floats("a", a, n, "n");
    call.floats("out", out, n, "n");
    call.floats("b", b, c === 0 ? n : c, c === 0 ? "n" : "c");
    loaded(call.fn).rn_add(a, b, out, n, c);
  },

  /** y = x with its height and width padded by `value`, NHWC. */
  padHw(
    x: Float32Array,
    y: Float32Array,
    shape: { n: number; h: number; w: number; c: number },
    pads: { top: number; bottom: number; left: number; right: number },
    value: number,
  ): void {
    const call = new NativeCall("rn_pad_hw");
    for (const [name, size] of Object.entries({ ...shape, ...pads })) call.int(name, size);
    const { n, h, w, c } = shape;
    const { top, bottom, left, right } = pads;
    const ho = h + top + bottom, wo = w + left + right;
    call.int("h+top+bottom", ho);
    call.int("w+left+right", wo);
    call.product("n*(h+top+bottom)", n * ho);
    call.floats("x", x, n * h * w * c, "n*h*w*c");
    call.floats("y", y, n * ho * wo * c, "n*(h+top+bottom)*(w+left+right)*c");
    loaded(call.fn).rn_pad_hw(x, y, n, h, w, c, top, bottom, left, right, value);
  },

  /** One Adam step of n values; acc1 and acc2 hold beta1^t and beta2^t. */
  adam(
    buffers: {
      value: Float32Array;
      m: Float32Array;
      v: Float32Array;
      gradient: Float32Array;
      valueOut: Float32Array;
      mOut: Float32Array;
      vOut: Float32Array;
    },
    powers: { accBeta1: Float32Array; accBeta2: Float32Array },
    n: number,
    a: AdamAttrs,
  ): void {
    const call = new NativeCall("rn_adam");
    call.int("n", n);
    for (const [name, buffer] of Object.entries(buffers)) call.floats(name, buffer, n, "n");
    for (const [name, scalar] of Object.entries(powers)) call.floats(name, scalar, 1, "1");
    const b = buffers;
    loaded(call.fn).rn_adam(
      b.value,
      b.m,
      b.v,
      b.gradient,
      powers.accBeta1,
      powers.accBeta2,
      b.valueOut,
      b.mOut,
      b.vOut,
      n,
      a.learningRate,
      a.beta1,
      a.beta2,
      a.epsilon,
      // As tfjs does: 1 - beta in double, then the float32 scalar it multiplies by.
      Math.fround(1 - a.beta1),
      Math.fround(1 - a.beta2),
    );
  },
};

// ------------------------------------------------------------------ geometry

/**
 * Whether im2col plus OpenBLAS computes this filter gradient faster than
 * oneDNN: strided 3x3 (or larger) kernels from 64 input channels up, where
 * oneDNN 2.6's backward-weights kernel ran 10-70 % slower on the build
 * machine (`tools/conv_bench.ts`: ResNet-18's stage-entry convolutions at
 * widths 16 and 64, batches 64 and 128; at 32 channels the two tied); oneDNN
 * was faster for every other product and shape.
 *
 * @param geometry A packed `conv_t`.
 */
export function gemmFilterGradientWins(geometry: Int32Array): boolean {
  const g = Object.fromEntries(CONV_FIELDS.map((f, i) => [f, geometry[i]])) as ConvGeometry;
  return g.kh * g.kw > 1 && (g.sh > 1 || g.sw > 1) && g.c >= 64;
}

/** A convolution's `conv_t` fields. */
function convFields(info: backend_util.Conv2DInfo): ConvGeometry {
  return {
    n: info.batchSize,
    h: info.inHeight,
    w: info.inWidth,
    c: info.inChannels,
    kh: info.filterHeight,
    kw: info.filterWidth,
    cout: info.outChannels,
    sh: info.strideHeight,
    sw: info.strideWidth,
    pt: info.padInfo.top,
    pl: info.padInfo.left,
    pb: info.padInfo.bottom,
    pr: info.padInfo.right,
    ho: info.outHeight,
    wo: info.outWidth,
  };
}

/** `conv_t` of native/resnet_native.h: 15 int32 fields. */
function packGeometry(info: backend_util.Conv2DInfo): Int32Array {
  const fields = convFields(info);
  return Int32Array.from(CONV_FIELDS, (field) => fields[field]);
}

/**
 * A convolution's packed `conv_t` as the checked calls take it (tfjs's
 * strides, output size and the four pads of its `padInfo`), or null for a
 * geometry the native kernels do not run (padding as wide as the kernel).
 *
 * @param info What `backend_util.computeConv2DInfo` returns, channels last.
 */
export function packConvGeometry(info: backend_util.Conv2DInfo): Int32Array | null {
  return convGeometryProblem(convFields(info)) === null ? packGeometry(info) : null;
}

/** What the native kernels implement: NHWC, no dilation, float32, padding below the kernel size. */
function nativeConvInfo(
  xShape: number[],
  filterShape: number[],
  attrs: {
    strides: [number, number] | number;
    pad: Conv2DAttrs["pad"];
    dimRoundingMode?: Conv2DAttrs["dimRoundingMode"];
    dataFormat?: string;
    dilations?: [number, number] | number;
  },
  dtypes: string[],
): backend_util.Conv2DInfo | null {
  if (!enabled || library === null) return null;
  if ((attrs.dataFormat ?? "NHWC") !== "NHWC") return null;
  if (dtypes.some((d) => d !== "float32")) return null;
  const dilations = attrs.dilations ?? 1;
  const [dh, dw] = typeof dilations === "number" ? [dilations, dilations] : dilations;
  if (dh !== 1 || dw !== 1) return null;
  const info = channelsLastConvInfo(xShape, filterShape, attrs);
  // Explicit padding as wide as the kernel, say: the wasm kernels handle it.
  return convGeometryProblem(convFields(info)) === null ? info : null;
}

function heap(backend: BackendWasm, info: TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(info) as Float32Array;
}

/** What the C side's convolution statuses mean (native/onednn.c's RN_* codes). */
const CONV_STATUS: Record<number, string> = {
  [-1]: "could not allocate its buffers",
  [-2]: "oneDNN has no primitive for it",
  [-3]: "oneDNN failed to run it",
};

function check(status: number, kernelName: string, info: backend_util.Conv2DInfo): void {
  if (status !== 0) {
    throw new Error(
      `native ${kernelName}: expected status 0 but found ${status} ` +
        `(${CONV_STATUS[status] ?? "unknown status"}) for input [${info.inShape}], ` +
        `filter [${info.filterShape}], strides ${info.strideHeight}x${info.strideWidth}`,
    );
  }
}

// ------------------------------------------------------------------- kernels

/** Conv2D is FusedConv2D without bias or activation (fusedConv2DNative is hoisted). */
const conv2DNative: NativeKernelFunc = (args) =>
  fusedConv2DNative({ ...args, attrs: { ...args.attrs, activation: "linear" } });

function fusedConv2DNative(args: Parameters<KernelFunc>[0]): TensorInfo | null {
  const { x, filter, bias, preluActivationWeights } = args.inputs as {
    x: TensorInfo;
    filter: TensorInfo;
    bias?: TensorInfo;
    preluActivationWeights?: TensorInfo;
  };
  const attrs = args.attrs as unknown as FusedConv2DAttrs;
  const dtypes = [x.dtype, filter.dtype, ...(bias ? [bias.dtype] : [])];
  const info = nativeConvInfo(x.shape, filter.shape, attrs, dtypes);
  const supported = info !== null && preluActivationWeights === undefined &&
    (attrs.activation === "linear" || attrs.activation === "relu") &&
    (bias === undefined || util.sizeFromShape(bias.shape) === info.outChannels);
  if (!supported) return null;
  const backend = args.backend as BackendWasm;
  const out = backend.makeOutput(info.outShape, "float32");
  const status = checkedNative.conv2d(
    heap(backend, x),
    heap(backend, filter),
    bias === undefined ? null : heap(backend, bias),
    heap(backend, out),
    packGeometry(info),
    attrs.activation === "relu" ? 1 : 0,
  );
  check(status, FusedConv2D, info);
  return out;
}

/**
 * A convolution gradient in native code: `dy` with the other input (the
 * filter for dx, x for dW) into an output of the gradient's shape, or null
 * for what the native kernels do not implement.
 */
function convGradientNative(
  kernelName: string,
  geometry: (args: Parameters<KernelFunc>[0]) => {
    dy: TensorInfo;
    other: TensorInfo;
    info: backend_util.Conv2DInfo | null;
  },
  outputShape: (info: backend_util.Conv2DInfo) => number[],
  run: (
    dy: Float32Array,
    other: Float32Array,
    out: Float32Array,
    geometry: Int32Array,
  ) => number,
): NativeKernelFunc {
  return (args) => {
    const { dy, other, info } = geometry(args);
    if (info === null || dy.shape.join() !== info.outShape.join()) return null;
    const backend = args.backend as BackendWasm;
    const out = backend.makeOutput(outputShape(info), "float32");
    check(
      run(heap(backend, dy), heap(backend, other), heap(backend, out), packGeometry(info)),
      kernelName,
      info,
    );
    return out;
  };
}

const conv2DBackpropInputNative = convGradientNative(
  Conv2DBackpropInput,
  (args) => {
    const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
    const attrs = args.attrs as unknown as Conv2DBackpropInputAttrs;
    const info = nativeConvInfo(attrs.inputShape, filter.shape, attrs, [dy.dtype, filter.dtype]);
    return { dy, other: filter, info };
  },
  (info) => info.inShape,
  (dy, filter, dx, geometry) => checkedNative.conv2dBackpropInput(dy, filter, dx, geometry),
);

const conv2DBackpropFilterNative = convGradientNative(
  Conv2DBackpropFilter,
  (args) => {
    const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
    const attrs = args.attrs as unknown as Conv2DBackpropFilterAttrs;
    const info = nativeConvInfo(x.shape, attrs.filterShape, attrs, [x.dtype, dy.dtype]);
    return { dy, other: x, info };
  },
  (info) => info.filterShape,
  // The C side takes x first.
  (dy, x, dw, geometry) =>
    gemmFilterGradientWins(geometry)
      ? checkedNative.gemmConv2dBackpropFilter(x, dy, dw, geometry)
      : checkedNative.conv2dBackpropFilter(x, dy, dw, geometry),
);

/** `Sum`/`Mean` of a {@linkcode middleReduction}: one pass over x in native code. */
function reductionNative(kernelName: typeof Sum | typeof Mean): NativeKernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
    const plan = enabled ? middleReduction(x, axis, keepDims) : null;
    if (plan === null) return null;
    const backend = args.backend as BackendWasm;
    const out = backend.makeOutput(plan.outShape, "float32");
    checkedNative.sumMiddle(
      heap(backend, x),
      heap(backend, out),
      plan.outer,
      plan.middle,
      plan.inner,
      kernelName === Mean ? 1 / plan.middle : 1,
    );
    return out;
  };
}

// ---------------------------------------------------------------- batch norm

/** Kernel names of the fused training-mode batch norm (see `batchnorm.ts`). */
export const RN_MOMENTS = "RnMoments";
/**
 * A batch norm's moving mean and variance after one training batch,
 * `moving - (moving - batch) * decay` (the stock layer's six kernels, in one).
 */
export const RN_MOVING_AVERAGES = "RnMovingAverages";
/**
 * y = (x - mean) / sqrt(variance + epsilon) * gamma + beta, channels last;
 * with the attribute `relu: true`, max(0, y) in the same pass.
 */
export const RN_BATCH_NORM_FORWARD = "RnBatchNormForward";
/**
 * dx, dgamma, dbeta of the forward, through the batch statistics; with the
 * input `relu` (the forward's output with `relu: true`), of max(0, y): dy
 * masked as ReLU's gradient masks it, in the same passes.
 */
export const RN_BATCH_NORM_BACKWARD = "RnBatchNormBackward";

/** x as `[rows, channels]`: channels are the last axis (NHWC). */
function rowsAndChannels(kernelName: string, x: TensorInfo): [number, number] {
  if (!enabled || library === null) {
    throw new Error(
      `${kernelName} runs only while the native kernels are enabled (initBackend("native"))`,
    );
  }
  if (x.dtype !== "float32" || x.shape.length < 2) {
    throw new Error(
      `${kernelName}: expected a float32 tensor of rank >= 2 but found ${x.dtype} [${x.shape}]`,
    );
  }
  const channels = x.shape[x.shape.length - 1];
  return [util.sizeFromShape(x.shape) / channels, channels];
}

function checkVector(kernelName: string, name: string, info: TensorInfo, channels: number): void {
  if (info.dtype !== "float32" || util.sizeFromShape(info.shape) !== channels) {
    throw new Error(
      `${kernelName}: expected ${name} to be float32 with ${channels} values (one per channel) ` +
        `but found ${info.dtype} [${info.shape}]`,
    );
  }
}

const momentsNative: KernelFunc = (args) => {
  const { x } = args.inputs as { x: TensorInfo };
  const [rows, channels] = rowsAndChannels(RN_MOMENTS, x);
  const backend = args.backend as BackendWasm;
  const mean = backend.makeOutput([channels], "float32");
  const variance = backend.makeOutput([channels], "float32");
  checkedNative.moments(
    heap(backend, x),
    heap(backend, mean),
    heap(backend, variance),
    rows,
    channels,
  );
  return [mean, variance];
};

const movingAveragesNative: KernelFunc = (args) => {
  const { movingMean, movingVariance, mean, variance } = args.inputs as Record<string, TensorInfo>;
  const { decay } = args.attrs as { decay: number };
  const channels = util.sizeFromShape(movingMean.shape);
  for (const [name, info] of Object.entries({ movingMean, movingVariance, mean, variance })) {
    checkVector(RN_MOVING_AVERAGES, name, info, channels);
  }
  const backend = args.backend as BackendWasm;
  const meanOut = backend.makeOutput(movingMean.shape, "float32");
  const varianceOut = backend.makeOutput(movingVariance.shape, "float32");
  checkedNative.movingAverages(
    {
      movingMean: heap(backend, movingMean),
      movingVariance: heap(backend, movingVariance),
      mean: heap(backend, mean),
      variance: heap(backend, variance),
      meanOut: heap(backend, meanOut),
      varianceOut: heap(backend, varianceOut),
    },
    channels,
    // The stock layer multiplies by decay as a float32 scalar tensor.
    Math.fround(decay),
  );
  return [meanOut, varianceOut];
};

const batchNormForwardNative: KernelFunc = (args) => {
  const { x, mean, variance, gamma, beta } = args.inputs as Record<string, TensorInfo>;
  const { epsilon, relu } = args.attrs as { epsilon: number; relu?: boolean };
  const [rows, channels] = rowsAndChannels(RN_BATCH_NORM_FORWARD, x);
  for (const [name, info] of Object.entries({ mean, variance, gamma, beta })) {
    checkVector(RN_BATCH_NORM_FORWARD, name, info, channels);
  }
  const backend = args.backend as BackendWasm;
  const y = backend.makeOutput(x.shape, "float32");
  checkedNative.batchNormForward(
    heap(backend, x),
    {
      mean: heap(backend, mean),
      variance: heap(backend, variance),
      gamma: heap(backend, gamma),
      beta: heap(backend, beta),
    },
    epsilon,
    heap(backend, y),
    rows,
    channels,
    relu === true,
  );
  return y;
};

const batchNormBackwardNative: KernelFunc = (args) => {
  const { dy, x, mean, variance, gamma } = args.inputs as Record<string, TensorInfo>;
  const { relu } = args.inputs as { relu?: TensorInfo };
  const { epsilon } = args.attrs as { epsilon: number };
  const [rows, channels] = rowsAndChannels(RN_BATCH_NORM_BACKWARD, x);
  for (const [name, info] of Object.entries({ dy, relu })) {
    if (info !== undefined && info.shape.join() !== x.shape.join()) {
      throw new Error(
        `${RN_BATCH_NORM_BACKWARD}: expected ${name} of shape [${x.shape}] but found [${info.shape}]`,
      );
    }
  }
  for (const [name, info] of Object.entries({ mean, variance, gamma })) {
    checkVector(RN_BATCH_NORM_BACKWARD, name, info, channels);
  }
  const backend = args.backend as BackendWasm;
  const dx = backend.makeOutput(x.shape, "float32");
  const dgamma = backend.makeOutput([channels], "float32");
  const dbeta = backend.makeOutput([channels], "float32");
  const status = checkedNative.batchNormBackward(
    {
      dy: heap(backend, dy),
      x: heap(backend, x),
      dx: heap(backend, dx),
      relu: relu === undefined ? undefined : heap(backend, relu),
    },
    {
      mean: heap(backend, mean),
      variance: heap(backend, variance),
      gamma: heap(backend, gamma),
      dgamma: heap(backend, dgamma),
      dbeta: heap(backend, dbeta),
    },
    epsilon,
    rows,
    channels,
  );
  if (status !== 0) throw new Error(`${RN_BATCH_NORM_BACKWARD}: out of memory`);
  return [dx, dgamma, dbeta];
};

// ---------------------------------------------------------------------- relu

/** dy where x > 0, else 0 (NaN where x is NaN): the gradient of ReLU in one pass. */
export const RN_RELU_GRAD = "RnReluGrad";

/** max(0, a + b) of two float32 tensors of one shape: a residual sum and its ReLU in one pass. */
export const RN_ADD_RELU = "RnAddRelu";

/** tfjs's XNNPACK ReLU waits on its thread pool; one native pass is cheaper. */
const reluNative: NativeKernelFunc = (args) => {
  const { x } = args.inputs as { x: TensorInfo };
  if (!enabled || library === null || x.dtype !== "float32") return null;
  const backend = args.backend as BackendWasm;
  const y = backend.makeOutput(x.shape, "float32");
  checkedNative.relu(heap(backend, x), heap(backend, y), util.sizeFromShape(x.shape));
  return y;
};

// ------------------------------------------------------------- add and pad

/** float32 a + b of one shape, or b one value per channel of a (either way round). */
const addNative: NativeKernelFunc = (args) => {
  let { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  if (!enabled || library === null || a.dtype !== "float32" || b.dtype !== "float32") return null;
  const same = a.shape.join() === b.shape.join();
  // A bias: b's shape is [C] (or [1, ..., 1, C]) and a's last axis is C.
  const isChannels = (full: TensorInfo, vector: TensorInfo) =>
    full.shape.length >= vector.shape.length && vector.shape.length >= 1 &&
    vector.shape.slice(0, -1).every((d) => d === 1) &&
    vector.shape.at(-1) === full.shape.at(-1) &&
    util.sizeFromShape(full.shape) > util.sizeFromShape(vector.shape);
  if (!same && isChannels(b, a)) [a, b] = [b, a];
  if (!same && !isChannels(a, b)) return null;
  const backend = args.backend as BackendWasm;
  const out = backend.makeOutput(a.shape, "float32");
  const n = util.sizeFromShape(a.shape);
  checkedNative.add(
    heap(backend, a),
    heap(backend, b),
    heap(backend, out),
    n,
    same ? 0 : a.shape.at(-1)!,
  );
  return out;
};

/** Padding of an NHWC tensor's height and width only (ZeroPadding2D), float32. */
const padNative: NativeKernelFunc = (args) => {
  const { x } = args.inputs as { x: TensorInfo };
  const { paddings, constantValue } = args.attrs as unknown as PadV2Attrs;
  if (!enabled || library === null || x.dtype !== "float32" || x.shape.length !== 4) return null;
  const [[n0, n1], [top, bottom], [left, right], [c0, c1]] = paddings;
  if (n0 !== 0 || n1 !== 0 || c0 !== 0 || c1 !== 0) return null;
  if (Math.min(top, bottom, left, right) < 0) return null;
  const [n, h, w, c] = x.shape;
  const backend = args.backend as BackendWasm;
  const y = backend.makeOutput([n, h + top + bottom, w + left + right, c], "float32");
  checkedNative.padHw(
    heap(backend, x),
    heap(backend, y),
    { n, h, w, c },
    { top, bottom, left, right },
    constantValue,
  );
  return y;
};

const addReluNative: KernelFunc = (args) => {
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  if (!enabled || library === null) {
    throw new Error(
      `${RN_ADD_RELU} runs only while the native kernels are enabled (initBackend("native"))`,
    );
  }
  if (a.dtype !== "float32" || b.dtype !== "float32" || a.shape.join() !== b.shape.join()) {
    throw new Error(
      `${RN_ADD_RELU}: expected float32 a and b of one shape but found ` +
        `${a.dtype} [${a.shape}] and ${b.dtype} [${b.shape}]`,
    );
  }
  const backend = args.backend as BackendWasm;
  const out = backend.makeOutput(a.shape, "float32");
  checkedNative.addRelu(
    heap(backend, a),
    heap(backend, b),
    heap(backend, out),
    util.sizeFromShape(a.shape),
  );
  return out;
};

const reluGradNative: KernelFunc = (args) => {
  const { dy, x } = args.inputs as { dy: TensorInfo; x: TensorInfo };
  if (!enabled || library === null) {
    throw new Error(
      `${RN_RELU_GRAD} runs only while the native kernels are enabled (initBackend("native"))`,
    );
  }
  if (dy.dtype !== "float32" || x.dtype !== "float32" || dy.shape.join() !== x.shape.join()) {
    throw new Error(
      `${RN_RELU_GRAD}: expected float32 dy and x of one shape but found ` +
        `${dy.dtype} [${dy.shape}] and ${x.dtype} [${x.shape}]`,
    );
  }
  const backend = args.backend as BackendWasm;
  const dx = backend.makeOutput(x.shape, "float32");
  checkedNative.reluGrad(
    heap(backend, dy),
    heap(backend, x),
    heap(backend, dx),
    util.sizeFromShape(x.shape),
  );
  return dx;
};

/**
 * The ReLU gradient as one native kernel, where the stock one, `dy * cast(step(x))`,
 * runs three. Gradients are global in tfjs, not per backend, so it checks where it runs.
 */
function reluGradient(stock: GradConfig): GradConfig["gradFunc"] {
  return (dy, saved, attrs) => {
    const [x] = saved;
    if (!enabled || getBackend() !== "wasm") return stock.gradFunc(dy, saved, attrs);
    return {
      x: () => engine().runKernel(RN_RELU_GRAD, { dy: dy as Tensor, x }, {}) as Tensor,
    };
  };
}

// ---------------------------------------------------------------------- adam

/** One Adam step of one variable: new value, first and second moments (see `native_adam.ts`). */
export const RN_ADAM = "RnAdam";

/** Adam's hyperparameters as the kernel takes them. */
export interface AdamAttrs {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
}

const adamNative: KernelFunc = (args) => {
  const { value, m, v, gradient, accBeta1, accBeta2 } = args.inputs as Record<string, TensorInfo>;
  const a = args.attrs as unknown as AdamAttrs;
  if (!enabled || library === null) {
    throw new Error(
      `${RN_ADAM} runs only while the native kernels are enabled (initBackend("native"))`,
    );
  }
  for (const [name, info] of Object.entries({ m, v, gradient })) {
    if (info.dtype !== "float32" || info.shape.join() !== value.shape.join()) {
      throw new Error(
        `${RN_ADAM}: expected ${name} to be float32 of shape [${value.shape}] but found ` +
          `${info.dtype} [${info.shape}]`,
      );
    }
  }
  const backend = args.backend as BackendWasm;
  const outputs = [0, 1, 2].map(() => backend.makeOutput(value.shape, "float32"));
  checkedNative.adam(
    {
      value: heap(backend, value),
      m: heap(backend, m),
      v: heap(backend, v),
      gradient: heap(backend, gradient),
      valueOut: heap(backend, outputs[0]),
      mOut: heap(backend, outputs[1]),
      vOut: heap(backend, outputs[2]),
    },
    { accBeta1: heap(backend, accBeta1), accBeta2: heap(backend, accBeta2) },
    util.sizeFromShape(value.shape),
    a,
  );
  return outputs;
};

// ------------------------------------------------------------------- exports

/**
 * A native kernel: its output, or null when it is disabled or does not
 * implement these inputs (NCHW, dilations, other activations or dtypes), so
 * the caller runs the wasm kernel instead.
 */
export type NativeKernelFunc = (args: Parameters<KernelFunc>[0]) => TensorInfo | null;

/** Kernels of the wasm backend that a native kernel goes in front of (null: the wasm one runs). */
const REPLACEMENTS: ReadonlyMap<string, NativeKernelFunc> = new Map([
  [Conv2D, conv2DNative],
  [FusedConv2D, fusedConv2DNative],
  [Conv2DBackpropInput, conv2DBackpropInputNative],
  [Conv2DBackpropFilter, conv2DBackpropFilterNative],
  [Sum, reductionNative(Sum)],
  [Mean, reductionNative(Mean)],
  [Relu, reluNative],
  [Add, addNative],
  [PadV2, padNative],
]);

/**
 * Kernels only the native backend has: batch norm's (`batchnorm.ts`), ReLU's
 * gradient, the residual sum with its ReLU (`relu_fusion.ts`), Adam's step.
 */
const NATIVE_ONLY: readonly [string, KernelFunc][] = [
  [RN_MOMENTS, momentsNative],
  [RN_MOVING_AVERAGES, movingAveragesNative],
  [RN_BATCH_NORM_FORWARD, batchNormForwardNative],
  [RN_BATCH_NORM_BACKWARD, batchNormBackwardNative],
  [RN_RELU_GRAD, reluGradNative],
  [RN_ADD_RELU, addReluNative],
  [RN_ADAM, adamNative],
];

/**
 * Registers the native kernels on the wasm backend: each replacement in front
 * of the wasm kernel registered now (which runs for the inputs it does not
 * implement: NCHW, dilations, other activations or dtypes), the native-only
 * kernels, and the one-kernel ReLU gradient. Returns the undo that restores
 * the wasm backend's own kernels and the stock gradient.
 *
 * @throws {Error} If {@linkcode loadNativeLibrary} has not succeeded.
 */
export function installNativeKernels(): Undo {
  if (library === null) {
    throw new Error("Expected loadNativeLibrary() to succeed before installing native kernels");
  }
  const undos: Undo[] = [];
  for (const [kernelName, native] of REPLACEMENTS) {
    undos.push(overrideKernel(kernelName, "wasm", (previous) => {
      if (previous === undefined) {
        throw new Error(`Expected a wasm kernel ${kernelName} for the native one to fall back to`);
      }
      return (args) => native(args) ?? previous.kernelFunc(args);
    }));
  }
  for (const [kernelName, kernelFunc] of NATIVE_ONLY) {
    undos.push(overrideKernel(kernelName, "wasm", () => kernelFunc));
  }
  undos.push(overrideGradient(Relu, reluGradient));
  enabled = true;
  undos.push(() => enabled = false);
  return undoAll(undos);
}
