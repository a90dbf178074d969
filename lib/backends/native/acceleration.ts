/**
 * What the `native` backend plugs into TensorFlow.js while it is active
 * (see `../acceleration.ts`): its kernels on the wasm backend
 * (`kernels.ts`), batch norm as one fused op (`batchnorm.ts`), the ReLU
 * after a batch norm or a residual sum fused into it (`relu_fusion.ts`), Adam's step
 * as one kernel per variable (`adam.ts`), and the stem conv trained without
 * the image's gradient (`../stem_conv.ts`).
 *
 * @module
 */
import { type Acceleration, undoAll } from "../acceleration.ts";
import { skipStemInputGradient } from "../stem_conv.ts";
import { accelerateAdam } from "./adam.ts";
import { fuseBatchNormLayers } from "./batchnorm.ts";
import { installNativeKernels } from "./kernels.ts";
import { fuseReluLayers } from "./relu_fusion.ts";

/** The native backend's acceleration; install it with `activateAcceleration()`. */
export const NATIVE_ACCELERATION: Acceleration = {
  name: "native",
  install: () =>
    undoAll([
      installNativeKernels(),
      fuseBatchNormLayers(),
      fuseReluLayers(),
      accelerateAdam(),
      skipStemInputGradient("wasm"),
    ]),
};
