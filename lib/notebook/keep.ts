/**
 * Tensors a notebook cell keeps for later cells. A cell that creates something later cells use
 * (the trained model) hands it to {@linkcode keepForLaterCells} under a name; when the cell runs
 * again, what it kept the time before is disposed, so re-running any cell leaks nothing and
 * every disposal stays in the cell that created the tensors.
 *
 * @module
 */

/** Anything with a `dispose()`: a model, a tensor, an optimizer. */
export interface Disposable {
  dispose(): void;
}

const kept = new Map<string, Disposable>();

/**
 * Keeps `value` under `name` and disposes what was kept under that name before (by an earlier
 * run of the same cell), unless it is `value` itself.
 *
 * @param name What the value is, unique in the notebook (e.g. `"trained model"`).
 * @param value The value later cells use.
 * @returns `value`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { keepForLaterCells } from "./keep.ts";
 * const first = keepForLaterCells("example", tf.scalar(1));
 * keepForLaterCells("example", tf.scalar(2)); // the cell ran again
 * console.log(first.isDisposed); // true
 * ```
 */
export function keepForLaterCells<T extends Disposable>(name: string, value: T): T {
  const previous = kept.get(name);
  if (previous !== undefined && previous !== value) previous.dispose();
  kept.set(name, value);
  return value;
}
