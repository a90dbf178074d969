/**
 * How a backend plugs its accelerations into TensorFlow.js: the one extension
 * point between `lib/backends/` and the modules a learner reads.
 *
 * `lib/model.ts` builds stock `tf.layers` and `lib/train.ts` trains with a
 * stock `tf.AdamOptimizer`; neither knows that a backend exists. A backend
 * that computes something faster describes it as an {@linkcode Acceleration}:
 * a name and an `install()` that puts its hooks in place and returns the
 * function that takes every one of them out again. `initBackend()` activates
 * the chosen backend's acceleration and deactivates the previous one, so at
 * most one is installed at a time, and with none installed TensorFlow.js is
 * exactly as its packages ship it.
 *
 * The hooks an acceleration may install, each through one function here that
 * returns its undo (like tfjs's own `registerKernel`/`unregisterKernel`):
 *
 * - {@linkcode overrideKernel}: a kernel of a backend, in front of the one
 *   registered now (which it may call for inputs it does not handle);
 * - {@linkcode overrideGradient}: the gradient of a kernel (gradients are
 *   global in tfjs, so the override checks where it runs);
 * - {@linkcode overrideLayerCall}: how every layer of a tfjs layer class (by
 *   its registered class name) computes, for the layers it accelerates (a
 *   fused batch norm), the stock `call` for the rest;
 * - {@linkcode overrideMethod}: any method of a tfjs class's prototype, such as
 *   `applyGradients` of `tf.AdamOptimizer` (a one-kernel Adam step).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** Takes a hook out again, restoring exactly what was there before it. */
export type Undo = () => void;

/** What a backend adds to TensorFlow.js while it is the active backend. */
export interface Acceleration {
  /** Shown in messages, e.g. `native`. */
  readonly name: string;
  /** Installs every hook; returns the function that removes them all, in reverse order. */
  install(): Undo;
}

let active: { name: string; undo: Undo } | null = null;

/**
 * Makes `acceleration` the installed one: removes the previous one's hooks
 * first, then installs these (`null`: none, stock TensorFlow.js).
 * Activating the one already active does nothing.
 *
 * @example
 * ```ts
 * import { activateAcceleration, activeAcceleration } from "./acceleration.ts";
 * let installed = 0;
 * activateAcceleration({ name: "demo", install: () => (installed++, () => installed--) });
 * activateAcceleration(null);
 * if (installed !== 0 || activeAcceleration() !== null) throw new Error("not removed");
 * ```
 */
export function activateAcceleration(acceleration: Acceleration | null): void {
  if (active?.name === acceleration?.name) return;
  if (active !== null) {
    const { undo } = active;
    active = null;
    undo();
  }
  if (acceleration !== null) {
    active = { name: acceleration.name, undo: acceleration.install() };
  }
}

/** The name of the installed acceleration, or null when TensorFlow.js runs stock. */
export function activeAcceleration(): string | null {
  return active?.name ?? null;
}

/** Runs the undos in reverse order: the first hook installed is the last one removed. */
export function undoAll(undos: Undo[]): Undo {
  return () => {
    for (const undo of undos.reverse()) undo();
  };
}

/**
 * Puts `makeKernel(previous)` in place of the kernel `kernelName` of
 * `backendName`; `previous` is what was registered (undefined if nothing),
 * for the inputs the new kernel hands back. The previous registration's
 * setup function is kept: tfjs runs setup functions only when a backend
 * starts, and a fallback into the stock kernel needs what it bound.
 */
export function overrideKernel(
  kernelName: string,
  backendName: string,
  makeKernel: (previous: tf.KernelConfig | undefined) => tf.KernelFunc,
): Undo {
  const previous = tf.getKernel(kernelName, backendName);
  if (previous !== undefined) tf.unregisterKernel(kernelName, backendName);
  tf.registerKernel({
    kernelName,
    backendName,
    kernelFunc: makeKernel(previous),
    setupFunc: previous?.setupFunc,
    disposeFunc: previous?.disposeFunc,
  });
  return () => {
    tf.unregisterKernel(kernelName, backendName);
    if (previous !== undefined) tf.registerKernel(previous);
  };
}

/**
 * Puts `makeGradient(previous)` in place of the gradient of `kernelName`.
 *
 * @throws {Error} If the kernel has no gradient registered to replace.
 */
export function overrideGradient(
  kernelName: string,
  makeGradient: (previous: tf.GradConfig) => tf.GradConfig["gradFunc"],
): Undo {
  const previous = tf.getGradient(kernelName);
  if (previous === undefined) {
    throw new Error(`Expected a gradient registered for ${kernelName} but found none`);
  }
  tf.registerGradient({ ...previous, gradFunc: makeGradient(previous) });
  return () => tf.registerGradient(previous);
}

/**
 * Replaces `target[name]` (a prototype's method) with `makeMethod(stock)`,
 * where `stock` is the method it replaces; the undo puts `stock` back.
 */
export function overrideMethod<T extends object, K extends keyof T>(
  target: T,
  name: K,
  makeMethod: (stock: T[K]) => T[K],
): Undo {
  const own = Object.prototype.hasOwnProperty.call(target, name);
  const stock = target[name];
  target[name] = makeMethod(stock);
  return () => {
    if (own) target[name] = stock;
    else delete target[name];
  };
}

/**
 * The prototype of the tfjs layer class registered as `className` (e.g.
 * `BatchNormalization`, `Conv2D`): what {@linkcode overrideMethod} patches
 * to change how every layer of that class computes.
 *
 * @throws {Error} If no layer class of that name is registered.
 */
export function layerPrototype(className: string): tf.layers.Layer {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  if (entry === undefined) {
    throw new Error(`Expected a tfjs layer class registered as ${className} but found none`);
  }
  return entry[0].prototype as unknown as tf.layers.Layer;
}

/** A layer's `call` as tfjs invokes it: the layer, its inputs and keyword arguments. */
export type LayerCall<L> = (
  layer: L,
  inputs: tf.Tensor | tf.Tensor[],
  kwargs: { training?: boolean } & Record<string, unknown>,
) => tf.Tensor | tf.Tensor[] | null;

/**
 * Makes every layer of the class registered as `className` compute with
 * `accelerated`; where it returns null (a layer or a moment it does not
 * handle) the stock `call` runs. The undo restores the stock method.
 *
 * @typeParam L The layer's internals the accelerated call reads (its
 *   weights, its settings), which tfjs's public typings do not show.
 */
export function overrideLayerCall<L>(className: string, accelerated: LayerCall<L>): Undo {
  type Call = (
    this: L,
    inputs: tf.Tensor | tf.Tensor[],
    kwargs: Record<string, unknown>,
  ) => tf.Tensor | tf.Tensor[];
  const prototype = layerPrototype(className) as unknown as { call: Call };
  return overrideMethod(prototype, "call", (stock) =>
    function (this: L, inputs, kwargs) {
      return accelerated(this, inputs, kwargs ?? {}) ?? stock.call(this, inputs, kwargs);
    });
}
