/**
 * Adam's update on the `native` backend: one native kernel per variable.
 *
 * tfjs's `AdamOptimizer.applyGradients` runs about a dozen kernels per
 * variable (multiply, add, square, divide, sqrt...), 62 variables in
 * ResNet-18: several hundred kernel calls per step, each a full pass over the
 * variable. The kernel `RnAdam` does the same float32 arithmetic in the same
 * order in one pass; this function drives it with the optimiser's own state
 * (moments, `beta^t` accumulators, step count), so checkpoints, resuming and
 * the stock path see no difference.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type AdamAttrs, nativeKernelsEnabled, RN_ADAM } from "./kernels.ts";
import { overrideMethod, type Undo } from "../acceleration.ts";

/** The state tfjs's AdamOptimizer keeps (private in its typings). */
interface AdamInternals {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: ({ originalName: string; variable: tf.Variable } | undefined)[];
  accumulatedSecondMoment: ({ originalName: string; variable: tf.Variable } | undefined)[];
  incrementIterations(): void;
}

/** Whether {@linkcode applyAdamNative} can run now: native kernels on, wasm active. */
export function nativeAdamAvailable(): boolean {
  return nativeKernelsEnabled() && tf.getBackend() === "wasm";
}

/**
 * Applies one Adam step exactly as `tf.AdamOptimizer.applyGradients` does,
 * with one `RnAdam` kernel per variable.
 *
 * @param optimizer The optimiser whose state to use and update.
 * @param variableGradients Gradients by variable name, or as `{name, tensor}` pairs.
 * @throws {Error} If the native kernels are not enabled.
 */
export function applyAdamNative(
  optimizer: tf.AdamOptimizer,
  variableGradients: Parameters<tf.AdamOptimizer["applyGradients"]>[0],
): void {
  const adam = optimizer as unknown as AdamInternals;
  const names = Array.isArray(variableGradients)
    ? variableGradients.map((v) => v.name)
    : Object.keys(variableGradients);
  const attrs: AdamAttrs = {
    learningRate: adam.learningRate,
    beta1: adam.beta1,
    beta2: adam.beta2,
    epsilon: adam.epsilon,
  };
  tf.tidy(() => {
    names.forEach((name, i) => {
      const value = tf.engine().registeredVariables[name];
      // Created as the stock optimiser creates them, so its getWeights() and
      // setWeights() (checkpoints) see the same slots.
      adam.accumulatedFirstMoment[i] ??= {
        originalName: `${name}/m`,
        variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
      };
      adam.accumulatedSecondMoment[i] ??= {
        originalName: `${name}/v`,
        variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
      };
      const gradient = Array.isArray(variableGradients)
        ? variableGradients[i].tensor
        : variableGradients[name];
      if (gradient == null) return;
      const m = adam.accumulatedFirstMoment[i]!.variable;
      const v = adam.accumulatedSecondMoment[i]!.variable;
      const [newValue, newM, newV] = tf.engine().runKernel(RN_ADAM, {
        value,
        m,
        v,
        gradient,
        accBeta1: adam.accBeta1,
        accBeta2: adam.accBeta2,
      }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
      m.assign(newM);
      v.assign(newV);
      value.assign(newValue);
    });
    adam.accBeta1.assign(tf.mul(adam.accBeta1, adam.beta1));
    adam.accBeta2.assign(tf.mul(adam.accBeta2, adam.beta2));
  });
  adam.incrementIterations();
}

/**
 * Makes every `tf.AdamOptimizer` (and subclass, such as the trainer's
 * scheduled Adam, whose `applyGradients` calls this one) step through
 * {@linkcode applyAdamNative} while the native backend is active; returns the
 * undo that restores the stock method.
 */
export function accelerateAdam(): Undo {
  return overrideMethod(
    tf.AdamOptimizer.prototype,
    "applyGradients",
    (stock) =>
      function (this: tf.AdamOptimizer, variableGradients) {
        if (nativeAdamAvailable()) applyAdamNative(this, variableGradients);
        else stock.call(this, variableGradients);
      },
  );
}
