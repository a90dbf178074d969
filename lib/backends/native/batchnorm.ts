/**
 * Batch normalisation in training mode as one fused op, for the `native`
 * backend.
 *
 * TensorFlow.js's BatchNormalization layer trains through `tf.moments`,
 * `tf.batchNorm` and autodiff of both: about 20 full-size elementwise ops per
 * layer between forward and backward (subtract, square, multiply by tiled
 * vectors, divide the mean's gradient by the count...), a fifth of a
 * ResNet-18 step on the wasm backend. The op here computes the same function
 * with three native kernels (`native_kernels.ts`): the batch statistics, the
 * normalisation as one multiply-add per element, and, through
 * `tf.customGrad`, the closed-form gradient with respect to x, gamma and
 * beta (including the paths through the batch mean and variance):
 *
 *   dbeta = sum(dy), dgamma = sum(dy * xhat),
 *   dx = gamma / sqrt(var + eps) * (dy - dbeta / m - xhat * dgamma / m).
 *
 * With `relu`, the op is relu(batchnorm(x)): the forward rectifies in its
 * pass, the backward masks dy in its passes (see `relu_fusion.ts`).
 *
 * {@linkcode fuseBatchNormLayers} makes every batch-norm layer use it while
 * the native backend is active (and normalise with its moving statistics in
 * one native pass in inference), with the ReLU where the layer feeds only a
 * ReLU layer; on other backends the layers run as stock.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  nativeKernelsEnabled,
  RN_BATCH_NORM_BACKWARD,
  RN_BATCH_NORM_FORWARD,
  RN_MOMENTS,
  RN_MOVING_AVERAGES,
} from "./kernels.ts";
import { overrideLayerCall, type Undo } from "../acceleration.ts";
import { feedsOnlyRelu, type LayerOutbound, markRectified } from "./relu_fusion.ts";

/** What a training-mode batch norm returns: the output and the batch statistics it used. */
export interface BatchNormTraining {
  y: tf.Tensor;
  /** Per-channel batch mean, `[C]`. */
  mean: tf.Tensor1D;
  /** Per-channel biased batch variance, `[C]` (what `tf.moments` returns). */
  variance: tf.Tensor1D;
}

/** Options for {@linkcode batchNormTraining}. */
export interface BatchNormTrainingOptions {
  /** Return relu(y) instead of y, the ReLU fused into the same passes. @default false */
  relu?: boolean;
}

/**
 * Normalises x (channels last) with its own batch statistics, then scales by
 * gamma and shifts by beta (and rectifies, with `relu`); differentiable with
 * respect to x, gamma and beta. Runs only on the `native` backend.
 *
 * @throws {Error} If the native backend is not active, or the shapes do not
 *   fit (gamma, beta: one value per channel of x's last axis).
 */
export function batchNormTraining(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  epsilon: number,
  options: BatchNormTrainingOptions = {},
): BatchNormTraining {
  const relu = options.relu ?? false;
  if (!nativeKernelsEnabled()) {
    throw new Error(
      `batchNormTraining() runs only while the native backend is active (initBackend("native"))`,
    );
  }
  const [mean, variance] = tf.engine().runKernel(RN_MOMENTS, { x }, {}) as tf.Tensor1D[];
  const normalise = tf.customGrad((...args: (tf.Tensor | ((saved: tf.Tensor[]) => void))[]) => {
    const [x, gamma, beta] = args as tf.Tensor[];
    const save = args[3] as (saved: tf.Tensor[]) => void;
    const attrs = { epsilon };
    const y = tf.engine().runKernel(
      RN_BATCH_NORM_FORWARD,
      { x, mean, variance, gamma, beta },
      { epsilon, relu },
    ) as tf.Tensor;
    // Kept by the engine until the backward pass; the statistics are
    // constants of this op, not inputs: its gradient already includes them.
    // The rectified output is the ReLU's mask.
    save(relu ? [x, gamma, mean, variance, y] : [x, gamma, mean, variance]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sx, sGamma, sMean, sVariance, sY] = saved;
        const inputs: tf.NamedTensorMap = {
          dy: dy as tf.Tensor,
          x: sx,
          mean: sMean,
          variance: sVariance,
          gamma: sGamma,
        };
        if (sY !== undefined) inputs.relu = sY;
        return tf.engine().runKernel(RN_BATCH_NORM_BACKWARD, inputs, attrs) as tf.Tensor[];
      },
    };
  });
  const y = normalise(x, gamma, beta);
  return { y, mean, variance };
}

/** The parts of tfjs's BatchNormalization layer the fused call uses (not in its public typings). */
interface BatchNormLayerInternals extends LayerOutbound {
  axis: number;
  momentum: number;
  epsilon: number;
  center: boolean;
  scale: boolean;
  gamma: tf.LayerVariable;
  beta: tf.LayerVariable;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
}

/**
 * Makes every `tf.layers.batchNormalization` layer train through
 * {@linkcode batchNormTraining} while the native backend is active (and
 * infer through the same forward kernel), by replacing the layer class's
 * `call`; returns the undo that restores the stock `call`. The weights and
 * what a layer computes do not change: the moving statistics are updated
 * exactly as the stock layer does (`moving -= (moving - batch) * (1 - momentum)`,
 * one `RnMovingAverages` kernel for both). In training, a layer whose output
 * goes only to ReLU layers returns relu(y), marked for them to pass on
 * (`relu_fusion.ts`).
 * Layers the fused kernels cannot run
 * (an axis other than the last, no gamma or beta), and every layer while
 * another backend is active, run the stock `call`.
 */
export function fuseBatchNormLayers(): Undo {
  return overrideLayerCall<BatchNormLayerInternals>("BatchNormalization", (bn, inputs, kwargs) => {
    if (
      !nativeKernelsEnabled() || tf.getBackend() !== "wasm" || bn.axis !== -1 || !bn.center ||
      !bn.scale
    ) {
      return null;
    }
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    if (!kwargs.training) {
      // Inference: the moving statistics, through the same one-pass kernel.
      return tf.engine().runKernel(RN_BATCH_NORM_FORWARD, {
        x,
        mean: bn.movingMean.read(),
        variance: bn.movingVariance.read(),
        gamma: bn.gamma.read(),
        beta: bn.beta.read(),
      }, { epsilon: bn.epsilon }) as tf.Tensor;
    }
    const relu = feedsOnlyRelu(bn);
    const rectify = (y: tf.Tensor) => relu ? markRectified(y) : y;
    return rectify(tf.tidy(() => {
      const { y, mean, variance } = batchNormTraining(
        x,
        bn.gamma.read(),
        bn.beta.read(),
        bn.epsilon,
        { relu },
      );
      const [movingMean, movingVariance] = tf.engine().runKernel(RN_MOVING_AVERAGES, {
        movingMean: bn.movingMean.read(),
        movingVariance: bn.movingVariance.read(),
        mean,
        variance,
      }, { decay: 1 - bn.momentum }) as tf.Tensor[];
      bn.movingMean.write(movingMean);
      bn.movingVariance.write(movingVariance);
      return y;
    }));
  });
}
