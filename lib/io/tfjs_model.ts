/**
 * Saving and loading a model in the TensorFlow.js format (`model.json` + `weights.bin`),
 * the files `tf.loadLayersModel()` reads in a browser or here. Deno has no `file://`
 * handler in TensorFlow.js, so this module provides one.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { writeFileAtomic, writeTextFileAtomic } from "./atomic.ts";

const MODEL_JSON = "model.json";
const WEIGHTS_BIN = "weights.bin";

/**
 * Saves `model` into `dir` (created if needed) as `model.json` + `weights.bin`.
 *
 * @example
 * ```ts ignore
 * await saveModel(model, "runs/smoke/model");
 * const again = await loadModel("runs/smoke/model");
 * ```
 */
export async function saveModel(model: tf.LayersModel, dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    const data = artifacts.weightData;
    const weights = data === undefined
      ? new ArrayBuffer(0)
      : Array.isArray(data)
      ? tf.io.concatenateArrayBuffers(data)
      : data;
    // Weights first, so model.json never points at a weights file that is not there yet.
    await writeFileAtomic(`${dir}/${WEIGHTS_BIN}`, new Uint8Array(weights));
    const modelJson = {
      modelTopology: artifacts.modelTopology,
      format: "layers-model",
      generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
      convertedBy: null,
      weightsManifest: [{ paths: [`./${WEIGHTS_BIN}`], weights: artifacts.weightSpecs }],
    };
    await writeTextFileAtomic(`${dir}/${MODEL_JSON}`, JSON.stringify(modelJson));
    return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
  }));
}

/**
 * Loads a model saved by {@linkcode saveModel} (or any single-shard TensorFlow.js layers model).
 * @throws {Error} naming the folder when `model.json` or `weights.bin` is missing or malformed.
 */
export async function loadModel(dir: string): Promise<tf.LayersModel> {
  let json: {
    modelTopology: object;
    weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  };
  try {
    json = JSON.parse(await Deno.readTextFile(`${dir}/${MODEL_JSON}`));
  } catch (error) {
    throw new Error(
      `Expected a TensorFlow.js model at ${dir}/${MODEL_JSON}: ${(error as Error).message}`,
    );
  }
  const specs = json.weightsManifest.flatMap((group) => group.weights);
  const buffers = await Promise.all(
    json.weightsManifest.flatMap((group) => group.paths).map((p) => Deno.readFile(`${dir}/${p}`)),
  );
  const weightData = tf.io.concatenateArrayBuffers(
    buffers.map((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer),
  );
  return await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: specs, weightData }),
  );
}
