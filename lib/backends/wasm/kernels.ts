/**
 * Kernels that let TensorFlow.js's WASM backend train a ResNet, and train it fast.
 *
 * The stock `@tensorflow/tfjs-backend-wasm@4.22.0` has no `Conv2DBackpropFilter`
 * kernel at all, and its `Conv2DBackpropInput` is a naive C loop that dominates
 * a training step. Both gradients are themselves convolutions, so this module
 * rewrites them as compositions of the backend's own XNNPACK `Conv2D` plus
 * data-movement kernels (`Transpose`, `Slice`, `Concat`, `Reshape`, `Fill`).
 * (The `native` backend, `../native/`, installs its own kernels in front of
 * these while it is active; this module knows nothing of it.) It also replaces `Tile`, `Sum` and `Mean`, whose element-by-element copies
 * (a tile; a transpose before reducing) made batch-norm's gradient and
 * statistics a large share of a step, and `Identity`, which copied a tensor
 * where sharing its buffer is enough.
 *
 * Everything else a ResNet training step needs (batch-norm, ReLU, padding,
 * global mean, dense, softmax cross-entropy, Adam) already has a wasm kernel;
 * `tests/wasm_kernels_test.ts` checks each of them, and a whole step, against
 * the cpu backend.
 *
 * @module
 */

import type { BackendWasm } from "@tensorflow/tfjs-backend-wasm";
import {
  backend_util,
  BatchMatMul,
  Concat,
  Conv2D,
  Conv2DBackpropFilter,
  type Conv2DBackpropFilterAttrs,
  Conv2DBackpropInput,
  type Conv2DBackpropInputAttrs,
  Fill,
  getKernel,
  Identity,
  type KernelConfig,
  type KernelFunc,
  Mean,
  Multiply,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  registerKernel,
  Reshape,
  Slice,
  slice_util,
  type SliceAttrs,
  Sum,
  type Tensor,
  type TensorInfo,
  Tile,
  type TileAttrs,
  Transpose,
  unregisterKernel,
  util,
} from "@tensorflow/tfjs-core";

const BACKEND = "wasm";

/**
 * Runs registered wasm kernels directly (below the engine, like the cpu
 * backend's own composite kernels do) and frees every intermediate it made.
 *
 * Calling kernel functions instead of `tf.*` ops keeps the intermediates out of
 * the engine's bookkeeping entirely: nothing is recorded on the gradient tape,
 * nothing counts in `tf.memory().numTensors`, and `dispose()` releases the wasm
 * heap memory by data id.
 */
class KernelScope {
  readonly #backend: BackendWasm;
  readonly #owned: TensorInfo[] = [];

  constructor(backend: BackendWasm) {
    this.#backend = backend;
  }

  /** Runs `kernelName` on the wasm backend; the result is freed by `dispose()`. */
  run(kernelName: string, inputs: NamedTensorInfoMap, attrs: NamedAttrMap): TensorInfo {
    const kernel = getKernel(kernelName, BACKEND);
    if (kernel === undefined) {
      throw new Error(`Expected kernel '${kernelName}' to be registered for backend 'wasm'`);
    }
    const out = kernel.kernelFunc({ inputs, attrs, backend: this.#backend });
    if (Array.isArray(out)) {
      throw new Error(`Expected kernel '${kernelName}' to return one tensor but got ${out.length}`);
    }
    this.#owned.push(out);
    return out;
  }

  /**
   * `x[begin : begin + size]`, copied run by run on the wasm heap.
   *
   * The stock wasm `Slice` first copies the whole input out of the heap
   * (`readSync`), which made slicing a 3x3x512x512 filter tap by tap cost
   * more than the convolution that used it.
   */
  slice(x: TensorInfo, begin: number[], size: number[]): TensorInfo {
    // Axes after `inner` are taken whole, so each (outer index) is one
    // contiguous run of `runLength` elements in both x and the output.
    let inner = x.shape.length - 1;
    while (inner > 0 && begin[inner] === 0 && size[inner] === x.shape[inner]) inner--;
    const strides = util.computeStrides(x.shape);
    const runLength = size[inner] * (inner + 1 < x.shape.length ? strides[inner] : 1);
    const runOffsets: number[] = [];
    const visit = (axis: number, offset: number) => {
      if (axis === inner) {
        runOffsets.push(offset + begin[inner] * (strides[inner] ?? 1));
        return;
      }
      for (let i = 0; i < size[axis]; i++) {
        visit(axis + 1, offset + (begin[axis] + i) * strides[axis]);
      }
    };
    visit(0, 0);
    return this.#copyRuns(x, size, runOffsets, runLength);
  }

  /** Rows `rows` of `x` viewed as `[x.shape[0], rest]`, in that order: `[rows.length, ...rest]`. */
  gatherRows(x: TensorInfo, rows: number[]): TensorInfo {
    const rowLength = util.sizeFromShape(x.shape.slice(1));
    const offsets = rows.map((row) => row * rowLength);
    return this.#copyRuns(x, [rows.length, ...x.shape.slice(1)], offsets, rowLength);
  }

  #copyRuns(x: TensorInfo, shape: number[], offsets: number[], runLength: number): TensorInfo {
    const out = this.#backend.makeOutput(shape, x.dtype);
    this.#owned.push(out);
    // Views are taken after makeOutput: allocating may grow the wasm memory,
    // which detaches views made earlier.
    const source = this.#backend.typedArrayFromHeap(x);
    const target = this.#backend.typedArrayFromHeap(out);
    offsets.forEach((offset, i) =>
      target.set(source.subarray(offset, offset + runLength), i * runLength)
    );
    return out;
  }

  /** Hands `info` to the caller: `dispose()` will no longer free it. */
  keep(info: TensorInfo): TensorInfo {
    const i = this.#owned.indexOf(info);
    if (i >= 0) this.#owned.splice(i, 1);
    return info;
  }

  /** Frees every intermediate not handed out with `keep()`. */
  dispose(): void {
    // Reshape results share their input's buffer and hold a reference count on
    // it, so each owned info is released exactly once, whatever it aliases.
    for (const info of this.#owned) this.#backend.disposeData(info.dataId);
    this.#owned.length = 0;
  }
}

/** Runs `body` with a fresh scope and frees all intermediates except the result. */
function withScope(backend: object, body: (scope: KernelScope) => TensorInfo): TensorInfo {
  const scope = new KernelScope(backend as BackendWasm);
  try {
    return scope.keep(body(scope));
  } finally {
    scope.dispose();
  }
}

/** Explicit NHWC padding: `[[0, 0], [top, bottom], [left, right], [0, 0]]`. */
type Pads4D = [[number, number], [number, number], [number, number], [number, number]];

function explicitPads(top: number, bottom: number, left: number, right: number): Pads4D {
  return [[0, 0], [top, bottom], [left, right], [0, 0]];
}

/**
 * Rejects the attributes the compositions below do not implement, naming the
 * kernel, the attribute, what was expected and what was found.
 */
function checkAttrs(kernelName: string, attrs: NamedAttrMap): void {
  const dataFormat = attrs.dataFormat ?? "NHWC";
  if (dataFormat !== "NHWC") {
    throw new Error(
      `wasm ${kernelName}: expected dataFormat 'NHWC' but found '${String(dataFormat)}' ` +
        `(the wasm Conv2D it is built on supports channels-last only)`,
    );
  }
  // tfjs's conv2d gradient already refuses dilations > 1, and these kernels'
  // attrs carry none; a caller that passes them anyway gets a precise error
  // instead of a silently wrong gradient.
  const dilations = attrs.dilations;
  if (dilations !== undefined && dilations !== null) {
    const [dh, dw] = typeof dilations === "number" ? [dilations, dilations] : dilations as number[];
    if (dh !== 1 || dw !== 1) {
      throw new Error(
        `wasm ${kernelName}: expected dilations 1 but found [${dh}, ${dw}]; ` +
          `dilated convolutions have no gradient kernel`,
      );
    }
  }
}

function requireInput(
  kernelName: string,
  inputs: NamedTensorInfoMap,
  name: string,
): TensorInfo {
  const info = inputs[name];
  if (info === undefined) {
    throw new Error(`wasm ${kernelName}: expected an input named '${name}' but found none`);
  }
  return info;
}

function checkFloat32(kernelName: string, name: string, info: TensorInfo): void {
  if (info.dtype !== "float32") {
    throw new Error(
      `wasm ${kernelName}: expected ${name} of dtype float32 but found ${info.dtype}`,
    );
  }
}

/** A conv gradient kernel's two float32 inputs by name, after its attributes are checked. */
function gradientInputs(
  kernelName: string,
  inputs: NamedTensorInfoMap,
  attrs: NamedAttrMap | undefined,
  names: [string, string],
): [TensorInfo, TensorInfo] {
  const [first, second] = names.map((name) => requireInput(kernelName, inputs, name));
  checkAttrs(kernelName, attrs ?? {});
  names.forEach((name, i) => checkFloat32(kernelName, name, [first, second][i]));
  return [first, second];
}

/**
 * The geometry of an NHWC, undilated 2-D convolution of `xShape` by
 * `filterShape` (`[kh, kw, Cin, Cout]`): what the wasm and the native
 * convolution kernels all compute their loops from.
 */
export function channelsLastConvInfo(
  xShape: readonly number[],
  filterShape: readonly number[],
  attrs: {
    strides: [number, number] | number;
    pad: Conv2DBackpropInputAttrs["pad"];
    dimRoundingMode?: Conv2DBackpropInputAttrs["dimRoundingMode"];
  },
): backend_util.Conv2DInfo {
  return backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    "channelsLast",
  );
}

/**
 * dW[i, j, ci, co] = sum over n, p, q of xPadded[n, p*s + i, q*s + j, ci] * dy[n, p, q, co].
 *
 * Read with batch and channel axes swapped, that sum is a stride-1 convolution of
 * x (as `[Cin, H, W, N]`) with dy (as a `[Ho, Wo, N, Cout]` filter) dilated by the
 * forward stride; its `[Cin, kh, kw, Cout]` output transposes back to the
 * filter layout.
 */
const conv2DBackpropFilterWasm: KernelFunc = ({ inputs, backend, attrs }) => {
  const [x, dy] = gradientInputs(Conv2DBackpropFilter, inputs, attrs, ["x", "dy"]);
  const a = attrs as unknown as Conv2DBackpropFilterAttrs;
  const info = channelsLastConvInfo(x.shape, a.filterShape, a);
  const { batchSize, inHeight, inWidth, inChannels, strideHeight, strideWidth } = info;
  const { filterHeight, filterWidth, outHeight, outWidth, padInfo } = info;
  if (dy.shape.join() !== info.outShape.join()) {
    throw new Error(
      `wasm ${Conv2DBackpropFilter}: expected dy of shape [${info.outShape}] but found [${dy.shape}]`,
    );
  }
  return withScope(backend, (scope) => {
    // Rows of (padded) x that the last output row reaches; rows past it get
    // no gradient, so they are cropped (when they exist) or padded (when the
    // padding supplies them), making the conv output exactly kh x kw.
    const usedHeight = (outHeight - 1) * strideHeight + filterHeight;
    const usedWidth = (outWidth - 1) * strideWidth + filterWidth;
    const padBottom = usedHeight - inHeight - padInfo.top;
    const padRight = usedWidth - inWidth - padInfo.left;
    let xs = x;
    if (padBottom < 0 || padRight < 0) {
      xs = scope.slice(x, [0, 0, 0, 0], [
        batchSize,
        inHeight + Math.min(padBottom, 0),
        inWidth + Math.min(padRight, 0),
        inChannels,
      ]);
    }
    const xT = scope.run(Transpose, { x: xs }, { perm: [3, 1, 2, 0] }); // [Cin, H, W, N]
    const dyT = scope.run(Transpose, { x: dy }, { perm: [1, 2, 0, 3] }); // [Ho, Wo, N, Cout]
    const dW = scope.run(Conv2D, { x: xT, filter: dyT }, {
      strides: [1, 1],
      dilations: [strideHeight, strideWidth],
      pad: explicitPads(
        padInfo.top,
        Math.max(padBottom, 0),
        padInfo.left,
        Math.max(padRight, 0),
      ),
      dataFormat: "NHWC",
    }); // [Cin, kh, kw, Cout]
    return scope.run(Transpose, { x: dW }, { perm: [1, 2, 0, 3] }); // [kh, kw, Cin, Cout]
  });
};

/**
 * dx[h] = sum over (p, i) with p*s + i = h + padTop of dy[p] * W[i] (per axis;
 * channels contract through the filter's Cout axis).
 *
 * The textbook route dilates dy with stride - 1 zeros and correlates it with
 * the rotated filter, but at stride 2 three quarters of its multiply-adds hit
 * those zeros. Instead, split the padded output rows by residue r = (h + padTop)
 * mod s: rows of one residue only meet taps i = r, r + s, ..., so each residue
 * is a stride-1 correlation of the undilated dy with a sub-filter, and the
 * residues together cost what the forward convolution costs. The residue
 * outputs are interleaved by concatenating along the channel axis (columns)
 * and the width axis (rows) and reshaping, which needs no transpose.
 * At stride 1 there is one residue and this is the plain full correlation.
 */
const conv2DBackpropInputWasm: KernelFunc = ({ inputs, backend, attrs }) => {
  const [dy, filter] = gradientInputs(Conv2DBackpropInput, inputs, attrs, ["dy", "filter"]);
  const a = attrs as unknown as Conv2DBackpropInputAttrs;
  const info = channelsLastConvInfo(a.inputShape, filter.shape, a);
  if (dy.shape.join() !== info.outShape.join()) {
    throw new Error(
      `wasm ${Conv2DBackpropInput}: expected dy of shape [${info.outShape}] but found [${dy.shape}]`,
    );
  }
  const { batchSize, inHeight, inWidth, inChannels, strideHeight, strideWidth } = info;
  const rows = residuePlan(
    inHeight,
    info.padInfo.top,
    info.filterHeight,
    strideHeight,
    info.outHeight,
  );
  const cols = residuePlan(
    inWidth,
    info.padInfo.left,
    info.filterWidth,
    strideWidth,
    info.outWidth,
  );
  return withScope(backend, (scope) => {
    const taps = swapInOut(scope, filter); // [kh * kw, Cout, Cin]
    const zeros = (shape: number[]) => scope.run(Fill, {}, { shape, value: 0, dtype: "float32" });
    const rowBlocks: TensorInfo[] = [];
    for (const row of rows.residues) {
      if (row.taps.length === 0) {
        rowBlocks.push(zeros([batchSize, rows.count, cols.count * strideWidth, inChannels]));
        continue;
      }
      const colBlocks: TensorInfo[] = [];
      for (const col of cols.residues) {
        colBlocks.push(
          col.taps.length === 0
            ? zeros([batchSize, rows.count, cols.count, inChannels])
            : residueCorrelation(scope, dy, taps, info.filterWidth, row, col, rows, cols),
        );
      }
      // [N, U, V, sw * Cin] is [N, U, V * sw, Cin] in memory: columns interleave.
      const joined = colBlocks.length === 1
        ? colBlocks[0]
        : scope.run(Concat, inputsOf(colBlocks), { axis: 3 });
      rowBlocks.push(scope.run(Reshape, { x: joined }, {
        shape: [batchSize, rows.count, cols.count * strideWidth, inChannels],
      }));
    }
    // [N, U, sh * W', Cin] is [N, U * sh, W', Cin] in memory: rows interleave.
    const joined = rowBlocks.length === 1
      ? rowBlocks[0]
      : scope.run(Concat, inputsOf(rowBlocks), { axis: 2 });
    const full = scope.run(Reshape, { x: joined }, {
      shape: [batchSize, rows.count * strideHeight, cols.count * strideWidth, inChannels],
    });
    if (
      rows.crop === 0 && cols.crop === 0 && full.shape[1] === inHeight && full.shape[2] === inWidth
    ) {
      return full;
    }
    return scope.slice(full, [0, rows.crop, cols.crop, 0], [
      batchSize,
      inHeight,
      inWidth,
      inChannels,
    ]);
  });
};

/** The filter taps one output residue meets along one axis, and its dy padding. */
interface Residue {
  /** Filter indices r + s*(ka - 1), ..., r + s, r: the sub-filter, already reversed. */
  taps: number[];
  /** dy padding before the correlation; negative means crop that many rows. */
  padBefore: number;
}

/** How one spatial axis of Conv2DBackpropInput splits into stride residues. */
interface ResiduePlan {
  residues: Residue[];
  /** Output rows per residue (U): padded rows u0 * s ... u1 * s + s - 1 are computed. */
  count: number;
  /** dy padding after the correlation, shared by all residues; negative crops. */
  padAfter: number;
  /** Leading computed rows that fall into the forward padding and are cut off. */
  crop: number;
}

/**
 * Plans one axis: dx rows h = 0 .. size - 1 sit at padded rows h + padBefore,
 * i.e. at u * stride + r for u in [u0, u1]. Residue r sums dy[u - a] * W[r + s*a]
 * over a < ka; as a correlation with the reversed sub-filter starting at output
 * u0, dy needs ka - 1 - u0 rows of padding before and u1 + 1 - dySize after.
 */
function residuePlan(
  size: number,
  padBefore: number,
  filterSize: number,
  stride: number,
  dySize: number,
): ResiduePlan {
  const u0 = Math.floor(padBefore / stride);
  const u1 = Math.floor((padBefore + size - 1) / stride);
  const residues: Residue[] = [];
  for (let r = 0; r < stride; r++) {
    const taps: number[] = [];
    for (let i = r; i < filterSize; i += stride) taps.unshift(i);
    residues.push({ taps, padBefore: taps.length - 1 - u0 });
  }
  return { residues, count: u1 - u0 + 1, padAfter: u1 + 1 - dySize, crop: padBefore - u0 * stride };
}

/** `[kh, kw, Cin, Cout]` filter to `[kh * kw, Cout, Cin]`: in/out swapped per tap. */
function swapInOut(scope: KernelScope, filter: TensorInfo): TensorInfo {
  const [kh, kw, inChannels, outChannels] = filter.shape;
  const flat = scope.run(Reshape, { x: filter }, { shape: [kh * kw, inChannels, outChannels] });
  return scope.run(Transpose, { x: flat }, { perm: [0, 2, 1] });
}

/**
 * One residue's share of dx: the stride-1 correlation of dy with the reversed
 * sub-filter, `[N, U, V, Cin]`. The sub-filter is gathered tap by tap as whole
 * `[Cout, Cin]` blocks, because the wasm `Reverse`, `StridedSlice` and
 * `GatherV2` kernels copy element by element and cost more than the
 * convolution on 512-channel filters.
 */
function residueCorrelation(
  scope: KernelScope,
  dy: TensorInfo,
  taps: TensorInfo,
  filterWidth: number,
  row: Residue,
  col: Residue,
  rows: ResiduePlan,
  cols: ResiduePlan,
): TensorInfo {
  const [, outChannels, inChannels] = taps.shape;
  const tapRows = row.taps.flatMap((i) => col.taps.map((j) => i * filterWidth + j));
  const picked = scope.gatherRows(taps, tapRows);
  const subFilter = scope.run(Reshape, { x: picked }, {
    shape: [row.taps.length, col.taps.length, outChannels, inChannels],
  });
  const source = cropDy(scope, dy, row.padBefore, rows.padAfter, col.padBefore, cols.padAfter);
  return scope.run(Conv2D, { x: source, filter: subFilter }, {
    strides: [1, 1],
    dilations: [1, 1],
    pad: explicitPads(
      Math.max(row.padBefore, 0),
      Math.max(rows.padAfter, 0),
      Math.max(col.padBefore, 0),
      Math.max(cols.padAfter, 0),
    ),
    dataFormat: "NHWC",
  });
}

/** Applies the negative parts of the dy paddings as a crop (rare: pad > filter). */
function cropDy(
  scope: KernelScope,
  dy: TensorInfo,
  top: number,
  bottom: number,
  left: number,
  right: number,
): TensorInfo {
  if (top >= 0 && bottom >= 0 && left >= 0 && right >= 0) return dy;
  const [batch, height, width, channels] = dy.shape;
  const cropTop = Math.max(-top, 0);
  const cropLeft = Math.max(-left, 0);
  return scope.slice(dy, [0, cropTop, cropLeft, 0], [
    batch,
    height - cropTop - Math.max(-bottom, 0),
    width - cropLeft - Math.max(-right, 0),
    channels,
  ]);
}

/**
 * Kernel inputs for Concat, which (unlike other kernels) takes its tensors as
 * an array; the engine's `runKernel(Concat, tensors)` passes it the same way.
 */
function inputsOf(infos: TensorInfo[]): NamedTensorInfoMap {
  return infos as unknown as NamedTensorInfoMap;
}

/** XNNPACK's binary operators broadcast over at most this many dimensions. */
const MAX_BROADCAST_RANK = 6;

/**
 * `Tile` as a broadcasting multiply by ones: out[k, j] = x[j] * 1 along each
 * tiled axis viewed as `[reps, size]`.
 *
 * tfjs's FusedBatchNorm gradient tiles a `[1, 1, 1, C]` vector to the full
 * activation shape, and the stock wasm Tile copies element by element: at
 * ResNet-18 width 64, batch 64 it took 420 ms per call, 20 calls per step.
 * XNNPACK's broadcasting multiply writes the same values (x * 1 is exact,
 * -0 and NaN included) about 25 times faster. Shapes it cannot express, and
 * dtypes other than float32/int32, go to the stock kernel.
 */
const tileWasm: KernelFunc = (args) => {
  const x = requireInput(Tile, args.inputs, "x");
  const { reps } = args.attrs as unknown as TileAttrs;
  const plan = broadcastPlan(x.shape, reps);
  if (plan === null || (x.dtype !== "float32" && x.dtype !== "int32")) {
    return stockKernel(Tile).kernelFunc(args);
  }
  return withScope(args.backend, (scope) => {
    const view = scope.run(Reshape, { x }, { shape: plan.xShape });
    const ones = scope.run(Fill, {}, { shape: plan.onesShape, value: 1, dtype: x.dtype });
    const tiled = scope.run(Multiply, { a: view, b: ones }, {});
    return scope.run(Reshape, { x: tiled }, { shape: x.shape.map((d, i) => d * reps[i]) });
  });
};

/**
 * Shapes whose broadcast product is `tile(x, reps)`: each axis becomes
 * `[reps, size]` (x contributes `[1, size]`, the ones `[reps, 1]`), and runs of
 * axes of the same kind merge, so the usual `[1, 1, 1, C]` to `[N, H, W, C]`
 * needs just `[1, C]` times `[N*H*W, 1]`. Null when the product would need more
 * than {@linkcode MAX_BROADCAST_RANK} axes or is empty.
 */
function broadcastPlan(
  shape: number[],
  reps: number[],
): { xShape: number[]; onesShape: number[] } | null {
  if (reps.length !== shape.length || reps.some((r) => r < 1) || shape.some((d) => d < 1)) {
    return null;
  }
  const xShape: number[] = [];
  const onesShape: number[] = [];
  let last: "x" | "ones" | null = null;
  const push = (kind: "x" | "ones", size: number) => {
    if (size === 1) return;
    const grown = kind === "x" ? xShape : onesShape;
    if (kind === last) {
      grown[grown.length - 1] *= size;
    } else {
      xShape.push(kind === "x" ? size : 1);
      onesShape.push(kind === "ones" ? size : 1);
      last = kind;
    }
  };
  shape.forEach((size, i) => {
    push("ones", reps[i]);
    push("x", size);
  });
  if (xShape.length === 0) return { xShape: [1], onesShape: [1] };
  return xShape.length <= MAX_BROADCAST_RANK ? { xShape, onesShape } : null;
}

/** A Sum/Mean as `[outer, middle, inner] -> [outer, inner]`, and its output shape. */
export interface MiddleReduction {
  outer: number;
  middle: number;
  inner: number;
  outShape: number[];
}

/**
 * How a float32 `Sum`/`Mean` over `axis` reduces one block of consecutive
 * axes that has axes after it (batch-norm's N, H, W of NHWC; a bias
 * gradient), or null when it is not that shape (other dtypes, scattered or
 * innermost axes, empty tensors). The wasm and the native reductions share it.
 */
export function middleReduction(
  x: TensorInfo,
  axis: number | number[],
  keepDims: boolean,
): MiddleReduction | null {
  const axes = [...new Set(util.parseAxisParam(axis, x.shape))].sort((a, b) => a - b);
  const first = axes[0];
  const last = axes[axes.length - 1];
  const consecutive = axes.length > 0 && last - first + 1 === axes.length;
  const outer = util.sizeFromShape(x.shape.slice(0, first));
  const middle = util.sizeFromShape(x.shape.slice(first, last + 1));
  const inner = util.sizeFromShape(x.shape.slice(last + 1));
  if (!consecutive || x.dtype !== "float32" || inner === 1 || outer * middle * inner === 0) {
    return null;
  }
  const outShape = keepDims
    ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
    : x.shape.filter((_, i) => !axes.includes(i));
  return { outer, middle, inner, outShape };
}

/**
 * `Sum` and `Mean` over a block of consecutive axes that are not the innermost
 * ones, such as batch-norm's reductions over N, H, W of an NHWC tensor, as a
 * matrix-vector product: x viewed as `[B, M, C]` (M the reduced axes),
 * transposed, times a `[M, 1]` vector of ones (or of 1/M for the mean).
 *
 * The stock kernels first transpose the reduced axes innermost, an
 * element-by-element copy of the whole tensor; the product reads x once and
 * was 3x faster on a `[64, 32, 32, 64]` activation. Reductions the stock
 * kernels do without a transpose (innermost axes) or that this cannot express
 * (non-consecutive axes, other dtypes) go to the stock kernel.
 */
function reductionWasm(kernelName: typeof Sum | typeof Mean): KernelFunc {
  return (args) => {
    const x = requireInput(kernelName, args.inputs, "x");
    const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
    const plan = middleReduction(x, axis, keepDims);
    if (plan === null) return stockKernel(kernelName).kernelFunc(args);
    const { outer, middle, inner, outShape } = plan;
    return withScope(args.backend, (scope) => {
      const view = scope.run(Reshape, { x }, { shape: [outer, middle, inner] });
      const weight = kernelName === Mean ? 1 / middle : 1;
      const weights = scope.run(Fill, {}, {
        shape: [1, middle, 1],
        value: weight,
        dtype: "float32",
      });
      const product = scope.run(BatchMatMul, { a: view, b: weights }, {
        transposeA: true,
        transposeB: false,
      }); // [B, C, 1]
      return scope.run(Reshape, { x: product }, { shape: outShape });
    });
  };
}

/**
 * `Slice` as contiguous runs copied on the wasm heap ({@linkcode KernelScope.slice}).
 *
 * The stock kernel reads the whole input out of the heap first; as the
 * gradient of every `ZeroPadding2D` (cropping the padding off dy) it cost
 * more than the padding itself. Other dtypes and empty slices go to it.
 */
const sliceWasm: KernelFunc = (args) => {
  const x = requireInput(Slice, args.inputs, "x");
  const { begin, size } = args.attrs as unknown as SliceAttrs;
  const [begins, sizes] = slice_util.parseSliceParams(x as unknown as Tensor, begin, size);
  if (
    (x.dtype !== "float32" && x.dtype !== "int32") || x.shape.length === 0 ||
    sizes.some((d) => d === 0)
  ) {
    return stockKernel(Slice).kernelFunc(args);
  }
  return withScope(args.backend, (scope) => scope.slice(x, begins, sizes));
};

/**
 * `Identity` as a second reference to the same buffer, as the cpu backend does.
 *
 * The stock wasm kernel copies the tensor; tfjs calls it for every `clone` and
 * gradient pass-through, over 100 times per ResNet-18 step (a 4M-element copy
 * took 1.4 ms alone and up to 4 ms inside a step). Kernels never write into a
 * buffer after making it, so sharing one is safe,
 * and the backend's reference count (which `Reshape` already relies on) frees it
 * once both tensors are gone.
 */
const identityWasm: KernelFunc = (args) => {
  const x = requireInput(Identity, args.inputs, "x");
  if (x.dtype === "string") return stockKernel(Identity).kernelFunc(args);
  (args.backend as BackendWasm).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

/** The stock kernels this module replaced, for the inputs a replacement hands back. */
const stockKernels = new Map<string, KernelConfig>();

function stockKernel(kernelName: string): KernelConfig {
  const stock = stockKernels.get(kernelName);
  if (stock === undefined) {
    throw new Error(`Expected the stock wasm '${kernelName}' kernel to be saved but found none`);
  }
  return stock;
}

/** The kernels installed already: the stock ones they replaced are in `stockKernels`. */
const installed = new Set<string>();

/** The kernels this module installs on the wasm backend. */
const REPLACEMENTS: readonly { kernelName: string; kernelFunc: KernelFunc }[] = [
  { kernelName: Conv2DBackpropFilter, kernelFunc: conv2DBackpropFilterWasm },
  { kernelName: Conv2DBackpropInput, kernelFunc: conv2DBackpropInputWasm },
  { kernelName: Tile, kernelFunc: tileWasm },
  { kernelName: Sum, kernelFunc: reductionWasm(Sum) },
  { kernelName: Mean, kernelFunc: reductionWasm(Mean) },
  { kernelName: Identity, kernelFunc: identityWasm },
  { kernelName: Slice, kernelFunc: sliceWasm },
];

/**
 * Installs fast `Conv2DBackpropFilter`, `Conv2DBackpropInput`, `Tile`, `Sum`,
 * `Mean`, `Identity` and `Slice` kernels on the `wasm` backend, replacing the
 * stock ones (missing, naive, copying element by element, copying at all, and
 * copying element by element); inputs the faster paths do not cover still go
 * to the stock kernels.
 *
 * Call it after importing `@tensorflow/tfjs-backend-wasm` (which registers the
 * stock kernels), before or after `tf.setBackend("wasm")`. Safe to call any
 * number of times: a kernel this function installed once is left alone
 * (whatever an acceleration has put in front of it since), and the stock
 * registration is unregistered first, so tfjs does not warn about a duplicate.
 *
 * The convolution gradients support NHWC, any strides, and `pad` as `"valid"`,
 * `"same"`, a number or explicit per-side padding; they throw for `NCHW` or
 * dilations other than 1.
 *
 * @throws {Error} If the wasm backend's own kernels are not registered yet.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-wasm";
 * import * as tf from "@tensorflow/tfjs";
 * import { registerWasmTrainingKernels } from "./kernels.ts";
 *
 * registerWasmTrainingKernels();
 * registerWasmTrainingKernels(); // idempotent
 * if (tf.getKernel("Conv2DBackpropFilter", "wasm") === undefined) {
 *   throw new Error("kernel not registered");
 * }
 * ```
 */
export function registerWasmTrainingKernels(): void {
  if (getKernel(Conv2D, BACKEND) === undefined) {
    throw new Error(
      "Expected the wasm backend's kernels to be registered but Conv2D is missing; " +
        'import "@tensorflow/tfjs-backend-wasm" before calling registerWasmTrainingKernels()',
    );
  }
  for (const { kernelName, kernelFunc } of REPLACEMENTS) {
    if (installed.has(kernelName)) continue;
    installed.add(kernelName);
    const current = getKernel(kernelName, BACKEND);
    if (current !== undefined) {
      stockKernels.set(kernelName, current);
      unregisterKernel(kernelName, BACKEND);
    }
    // The stock setup binds the kernel's wasm function, which the fallback
    // path calls: tfjs runs setup functions when the backend starts, and only
    // for kernels registered at that moment, so ours must carry it.
    registerKernel({ kernelName, backendName: BACKEND, kernelFunc, setupFunc: current?.setupFunc });
  }
}
