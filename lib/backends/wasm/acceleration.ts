/**
 * What the `wasm` backend plugs into TensorFlow.js while it is active (see
 * `../acceleration.ts`): the stem conv trained without the image's gradient
 * (`../stem_conv.ts`). Its training kernels (`kernels.ts`) are not part of it:
 * they are registered once when the backend starts, as tfjs backends register
 * their kernels, since without them the wasm backend cannot train at all.
 *
 * @module
 */
import type { Acceleration } from "../acceleration.ts";
import { skipStemInputGradient } from "../stem_conv.ts";

/** The wasm backend's acceleration; install it with `activateAcceleration()`. */
export const WASM_ACCELERATION: Acceleration = {
  name: "wasm",
  install: () => skipStemInputGradient("wasm"),
};
