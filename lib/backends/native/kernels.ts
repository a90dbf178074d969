/**
 * Native convolution kernels for the wasm backend: the `native` backend.
 *
 * The wasm backend's XNNPACK convolutions run on 128-bit WebAssembly SIMD,
 * without fused multiply-add, and reach about a third of what the same two
 * cores do natively. This module loads `native/build/libresnet_native.so`
 * (built from `native/kernels.c` by `deno task build:native`, linked to the
 * system's OpenBLAS) through Deno's FFI, and installs kernels that hand it
 * pointers straight into the wasm memory where the tensors live: no copies,
 * and the tensors stay ordinary wasm tensors for every other kernel.
 *
 * Replaced while native kernels are enabled: `Conv2D`, `FusedConv2D` (bias,
 * linear or ReLU activation), `Conv2DBackpropInput`, `Conv2DBackpropFilter`,
 * and `Sum`/`Mean` over consecutive non-innermost axes (batch-norm
 * statistics, bias gradients). `wasm_kernels.ts` registers them, in front of
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
const ABI_VERSION = 6;

/** The library `deno task build:native` writes. */
export const NATIVE_LIBRARY_URL = new URL(
  "../../../native/build/libresnet_native.so",
  import.meta.url,
);

/** The library's functions as Deno's FFI declares them (`tools/conv_bench.ts` opens it too). */
export const NATIVE_SYMBOLS = {
  rn_abi_version: { parameters: [], result: "i32" },
  rn_conv2d: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  rn_conv2d_backprop_input: { parameters: ["buffer", "buffer", "buffer", "buffer"], result: "i32" },
  rn_conv2d_backprop_filter: {
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
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "f32", "buffer", "i32", "i32"],
    result: "void",
  },
  rn_batchnorm_backward: {
    parameters: [
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
} as const;

type NativeLibrary = Deno.DynamicLibrary<typeof NATIVE_SYMBOLS>["symbols"];

let library: NativeLibrary | null = null;
let enabled = false;

/**
 * Opens the native library (once per process) and checks its ABI version.
 *
 * @returns A one-line description of what was loaded.
 * @throws {Error} If the library is missing, cannot be opened (no OpenBLAS, no
 *   `--allow-ffi`), or was built from another version of `native/kernels.c`;
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
          `build it with \`deno task build:native\` (needs a C compiler and OpenBLAS: ` +
          `apt-get install gcc libopenblas0)`,
      );
    }
    let opened: Deno.DynamicLibrary<typeof NATIVE_SYMBOLS>;
    try {
      opened = Deno.dlopen(path, NATIVE_SYMBOLS);
    } catch (error) {
      throw new Error(
        `The native backend could not open ${path}: ${(error as Error).message} ` +
          `(it needs --allow-ffi and the system's OpenBLAS runtime, libopenblas.so.0)`,
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
  return `OpenBLAS SGEMM and OpenMP, via FFI (${path})`;
}

/** Whether the native kernels are handling the wasm backend's convolutions now. */
export function nativeKernelsEnabled(): boolean {
  return enabled;
}

// ------------------------------------------------------------------ geometry

/** `conv_t` of kernels.c: 13 int32 fields. */
function packGeometry(info: backend_util.Conv2DInfo): Int32Array {
  return Int32Array.of(
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.filterHeight,
    info.filterWidth,
    info.outChannels,
    info.strideHeight,
    info.strideWidth,
    info.padInfo.top,
    info.padInfo.left,
    info.outHeight,
    info.outWidth,
  );
}

/** What the native kernels implement: NHWC, no dilation, float32. */
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
  return channelsLastConvInfo(xShape, filterShape, attrs);
}

function heap(backend: BackendWasm, info: TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(info) as Float32Array;
}

function check(status: number, kernelName: string, info: backend_util.Conv2DInfo): void {
  if (status !== 0) {
    throw new Error(
      `native ${kernelName}: could not allocate the im2col buffer for input ` +
        `[${info.inShape}] and filter [${info.filterShape}] (status ${status})`,
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
  const status = library!.rn_conv2d(
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
  (dy, filter, dx, geometry) => library!.rn_conv2d_backprop_input(dy, filter, dx, geometry),
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
  (dy, x, dw, geometry) => library!.rn_conv2d_backprop_filter(x, dy, dw, geometry),
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
    library!.rn_sum_middle(
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
/** y = (x - mean) / sqrt(variance + epsilon) * gamma + beta, channels last. */
export const RN_BATCH_NORM_FORWARD = "RnBatchNormForward";
/** dx, dgamma, dbeta of the forward, through the batch statistics. */
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
  library!.rn_moments(
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
  library!.rn_moving_averages(
    heap(backend, movingMean),
    heap(backend, movingVariance),
    heap(backend, mean),
    heap(backend, variance),
    heap(backend, meanOut),
    heap(backend, varianceOut),
    channels,
    // The stock layer multiplies by decay as a float32 scalar tensor.
    Math.fround(decay),
  );
  return [meanOut, varianceOut];
};

const batchNormForwardNative: KernelFunc = (args) => {
  const { x, mean, variance, gamma, beta } = args.inputs as Record<string, TensorInfo>;
  const { epsilon } = args.attrs as { epsilon: number };
  const [rows, channels] = rowsAndChannels(RN_BATCH_NORM_FORWARD, x);
  for (const [name, info] of Object.entries({ mean, variance, gamma, beta })) {
    checkVector(RN_BATCH_NORM_FORWARD, name, info, channels);
  }
  const backend = args.backend as BackendWasm;
  const y = backend.makeOutput(x.shape, "float32");
  library!.rn_batchnorm_forward(
    heap(backend, x),
    heap(backend, mean),
    heap(backend, variance),
    heap(backend, gamma),
    heap(backend, beta),
    epsilon,
    heap(backend, y),
    rows,
    channels,
  );
  return y;
};

const batchNormBackwardNative: KernelFunc = (args) => {
  const { dy, x, mean, variance, gamma } = args.inputs as Record<string, TensorInfo>;
  const { epsilon } = args.attrs as { epsilon: number };
  const [rows, channels] = rowsAndChannels(RN_BATCH_NORM_BACKWARD, x);
  if (dy.shape.join() !== x.shape.join()) {
    throw new Error(
      `${RN_BATCH_NORM_BACKWARD}: expected dy of shape [${x.shape}] but found [${dy.shape}]`,
    );
  }
  for (const [name, info] of Object.entries({ mean, variance, gamma })) {
    checkVector(RN_BATCH_NORM_BACKWARD, name, info, channels);
  }
  const backend = args.backend as BackendWasm;
  const dx = backend.makeOutput(x.shape, "float32");
  const dgamma = backend.makeOutput([channels], "float32");
  const dbeta = backend.makeOutput([channels], "float32");
  const status = library!.rn_batchnorm_backward(
    heap(backend, dy),
    heap(backend, x),
    heap(backend, mean),
    heap(backend, variance),
    heap(backend, gamma),
    epsilon,
    heap(backend, dx),
    heap(backend, dgamma),
    heap(backend, dbeta),
    rows,
    channels,
  );
  if (status !== 0) throw new Error(`${RN_BATCH_NORM_BACKWARD}: out of memory`);
  return [dx, dgamma, dbeta];
};

// ---------------------------------------------------------------------- relu

/** dy where x > 0, else 0 (NaN where x is NaN): the gradient of ReLU in one pass. */
export const RN_RELU_GRAD = "RnReluGrad";

/** tfjs's XNNPACK ReLU waits on its thread pool; one native pass is cheaper. */
const reluNative: NativeKernelFunc = (args) => {
  const { x } = args.inputs as { x: TensorInfo };
  if (!enabled || library === null || x.dtype !== "float32") return null;
  const backend = args.backend as BackendWasm;
  const y = backend.makeOutput(x.shape, "float32");
  library.rn_relu(heap(backend, x), heap(backend, y), util.sizeFromShape(x.shape));
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
  library.rn_add(
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
  library.rn_pad_hw(
    heap(backend, x),
    heap(backend, y),
    n,
    h,
    w,
    c,
    top,
    bottom,
    left,
    right,
    constantValue,
  );
  return y;
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
  library.rn_relu_grad(
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
  library.rn_adam(
    heap(backend, value),
    heap(backend, m),
    heap(backend, v),
    heap(backend, gradient),
    heap(backend, accBeta1),
    heap(backend, accBeta2),
    heap(backend, outputs[0]),
    heap(backend, outputs[1]),
    heap(backend, outputs[2]),
    util.sizeFromShape(value.shape),
    a.learningRate,
    a.beta1,
    a.beta2,
    a.epsilon,
    // As tfjs does: 1 - beta in double, then the float32 scalar it multiplies by.
    Math.fround(1 - a.beta1),
    Math.fround(1 - a.beta2),
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

/** Kernels only the native backend has: batch norm's (`batchnorm.ts`), ReLU's gradient, Adam's step. */
const NATIVE_ONLY: readonly [string, KernelFunc][] = [
  [RN_MOMENTS, momentsNative],
  [RN_MOVING_AVERAGES, movingAveragesNative],
  [RN_BATCH_NORM_FORWARD, batchNormForwardNative],
  [RN_BATCH_NORM_BACKWARD, batchNormBackwardNative],
  [RN_RELU_GRAD, reluGradNative],
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
