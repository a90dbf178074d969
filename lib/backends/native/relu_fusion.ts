/**
 * The ReLU after a batch norm or a residual sum, fused into it, for the
 * `native` backend.
 *
 * `lib/model.ts` writes each ReLU as its own `tf.layers.reLU` layer, after a
 * batch norm (the stem, each block's first) or after a block's `add`. Run as
 * written, every one of them is a full pass over the activations forward, and
 * its gradient another one backward, each a kernel with tfjs's cost per op: at
 * width 16, about a tenth of a profiled training step's kernel time. Fused, the
 * layer before computes relu(y) in its own pass (`batchnorm.ts`:
 * `RnBatchNormForward` with `relu`; here: `RnAddRelu`), a batch norm's
 * backward masks dy in its own passes, and the ReLU layer, whose input
 * already is its output, passes it on as a reshape to the same shape (no
 * copy on the wasm backend).
 *
 * A layer fuses only in training, and only where every layer its output goes
 * to is a plain ReLU layer (no `maxValue`): the graph the model was built as
 * says so. (That graph does not say whether the output is also a model's
 * output: a model that trains on a batch norm's or an add's output and on the
 * ReLU after it would see the rectified one twice. `lib/model.ts` builds no
 * such model; inference, where a feature map may be read out, is not fused.)
 * The ReLU layer passes through only the tensors a fused layer marked, so a
 * ReLU applied to anything else still computes. On other backends all of it
 * runs as stock.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { overrideLayerCall, type Undo, undoAll } from "../acceleration.ts";
import { nativeKernelsEnabled, RN_ADD_RELU, RN_RELU_GRAD } from "./kernels.ts";

/** The part of a tfjs layer's graph (not in its public typings) that says where its output goes. */
export interface LayerOutbound {
  outboundNodes: { outboundLayer: tf.layers.Layer }[];
}

/** Outputs of fused layers: each already is what the ReLU layer after it returns. */
const rectified = new WeakSet<tf.Tensor>();

/** Whether the fused kernels can run now: native kernels on, wasm active. */
export function reluFusionAvailable(): boolean {
  return nativeKernelsEnabled() && tf.getBackend() === "wasm";
}

/** Whether every use of the layer's output, in every model built with it, is a plain ReLU layer. */
export function feedsOnlyRelu(layer: LayerOutbound): boolean {
  return layer.outboundNodes.length > 0 &&
    layer.outboundNodes.every((node) => {
      const next = node.outboundLayer as tf.layers.Layer & { maxValue?: number | null };
      return next.getClassName() === "ReLU" && next.maxValue == null;
    });
}

/** Marks `y` as a ReLU's output already, for the ReLU layer after it to pass on; returns `y`. */
export function markRectified<T extends tf.Tensor>(y: T): T {
  rectified.add(y);
  return y;
}

/**
 * max(0, a + b) in one native pass, differentiable: both gradients are dy
 * where the output is positive, else 0, as the stock add and ReLU give them.
 * Runs only on the `native` backend.
 *
 * @throws {Error} If the native backend is not active.
 */
export function addRelu(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (!reluFusionAvailable()) {
    throw new Error(
      `addRelu() runs only while the native backend is active (initBackend("native"))`,
    );
  }
  const op = tf.customGrad((...args: (tf.Tensor | ((saved: tf.Tensor[]) => void))[]) => {
    const [a, b] = args as tf.Tensor[];
    const save = args[2] as (saved: tf.Tensor[]) => void;
    const y = tf.engine().runKernel(RN_ADD_RELU, { a, b }, {}) as tf.Tensor;
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const dx = tf.engine().runKernel(RN_RELU_GRAD, { dy: dy as tf.Tensor, x: saved[0] }, {});
        // A reshape to the same shape shares dx's data: one pass for both gradients.
        return [dx as tf.Tensor, tf.reshape(dx as tf.Tensor, a.shape)];
      },
    };
  });
  return op(a, b);
}

/**
 * Makes every ReLU layer pass on a fused layer's output, and every Add layer
 * of two inputs of one shape that feeds only ReLU layers add and rectify in
 * one pass in training, while the native backend is active (the batch norm's side is in
 * `fuseBatchNormLayers`); returns the undo that restores the stock calls.
 */
export function fuseReluLayers(): Undo {
  return undoAll([
    overrideLayerCall<unknown>("ReLU", (_relu, inputs) => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      if (!rectified.has(x) || !reluFusionAvailable()) return null;
      return tf.reshape(x, x.shape);
    }),
    overrideLayerCall<LayerOutbound>("Add", (add, inputs, kwargs) => {
      if (
        !kwargs.training || !Array.isArray(inputs) || inputs.length !== 2 ||
        !reluFusionAvailable()
      ) {
        return null;
      }
      const [a, b] = inputs;
      if (
        a.dtype !== "float32" || b.dtype !== "float32" || a.shape.join() !== b.shape.join() ||
        !feedsOnlyRelu(add)
      ) {
        return null;
      }
      return markRectified(addRelu(a, b));
    }),
  ]);
}
