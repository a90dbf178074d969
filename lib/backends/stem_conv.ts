/**
 * A conv layer fed by the model's input trains as `tf.conv2d` plus a bias add.
 *
 * The stock Conv2D layer calls tfjs's fused conv op, whose gradient (a
 * `tf.customGrad`) computes the gradient of every input. At the stem that
 * input is the image, and no weight depends on it: every training step ran a
 * full-size input-gradient convolution and threw it away. The unfused op's
 * gradient is computed input by input, only where a weight needs it (the tape
 * prunes the image's). Same weights, same function; inference keeps the fused
 * op, so a trained model predicts exactly as the saved one, which loads as a
 * stock layer.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { overrideLayerCall, type Undo } from "./acceleration.ts";

/** The parts of tfjs's Conv2D layer this uses (not in its public typings). */
interface ConvLayerInternals {
  kernel: tf.LayerVariable;
  bias: tf.LayerVariable | null;
  strides: [number, number];
  padding: "same" | "valid";
  dataFormat: string;
  dilationRate: [number, number];
  activation: { getClassName(): string };
  inboundNodes: { inboundLayers: tf.layers.Layer[] }[];
}

/** Whether every call of the layer takes a model input (an InputLayer's output) directly. */
function readsModelInput(layer: ConvLayerInternals): boolean {
  return layer.inboundNodes.length > 0 &&
    layer.inboundNodes.every((node) =>
      node.inboundLayers.length === 1 && node.inboundLayers[0].getClassName() === "InputLayer"
    );
}

/**
 * Makes every channels-last, linear Conv2D layer that reads a model input train
 * unfused (see the module doc) while `tf.getBackend()` is `backendName`;
 * returns the undo that restores the stock `call`.
 */
export function skipStemInputGradient(backendName: string): Undo {
  return overrideLayerCall<ConvLayerInternals>("Conv2D", (layer, inputs, kwargs) => {
    if (
      !kwargs.training || tf.getBackend() !== backendName ||
      layer.dataFormat !== "channelsLast" || layer.activation.getClassName() !== "linear" ||
      !readsModelInput(layer)
    ) {
      return null;
    }
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
      const y = tf.conv2d(
        x,
        layer.kernel.read() as tf.Tensor4D,
        layer.strides,
        layer.padding,
        "NHWC",
        layer.dilationRate,
      );
      return layer.bias === null ? y : tf.add(y, layer.bias.read());
    });
  });
}
