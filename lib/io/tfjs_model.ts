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

/** What `model.json` must hold for {@linkcode loadModel}. */
interface ModelJson {
  modelTopology: object;
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

/** Bytes per element of the dtypes a weights manifest may list. */
const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1 };

/**
 * Loads a model saved by {@linkcode saveModel} (or any single-shard TensorFlow.js layers model).
 * The weight files must hold exactly the bytes `model.json`'s manifest lists, and every error,
 * TensorFlow.js's own included, names the folder.
 *
 * @throws {Error} naming the folder when `model.json` or a weights file is missing or
 *   malformed, or the two do not agree.
 */
export async function loadModel(dir: string): Promise<tf.LayersModel> {
  const json = await readModelJson(dir);
  const specs = json.weightsManifest.flatMap((group) => group.weights);
  const paths = json.weightsManifest.flatMap((group) => group.paths);
  const buffers = await Promise.all(paths.map((p) =>
    Deno.readFile(`${dir}/${p}`).catch((error) => {
      throw new Error(`Cannot read ${dir}/${p}, which ${MODEL_JSON} lists: ${error.message}`);
    })
  ));
  const weightData = tf.io.concatenateArrayBuffers(
    buffers.map((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer),
  );
  const expectedBytes = specs.reduce((sum, w) => sum + weightBytes(w, dir), 0);
  if (weightData.byteLength !== expectedBytes) {
    throw new Error(
      `Expected the weights in ${dir} (${paths.join(", ")}) to hold ${expectedBytes} bytes, ` +
        `as ${MODEL_JSON} lists, but found ${weightData.byteLength}: the two files do not belong together`,
    );
  }
  try {
    return await tf.loadLayersModel(
      tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: specs, weightData }),
    );
  } catch (error) {
    throw new Error(
      `Cannot build the TensorFlow.js model in ${dir} from ${MODEL_JSON}: ${
        (error as Error).message
      }`,
    );
  }
}

async function readModelJson(dir: string): Promise<ModelJson> {
  let json: ModelJson;
  try {
    json = JSON.parse(await Deno.readTextFile(`${dir}/${MODEL_JSON}`));
  } catch (error) {
    throw new Error(
      `Expected a TensorFlow.js model at ${dir}/${MODEL_JSON}: ${(error as Error).message}`,
    );
  }
  const manifest = json?.weightsManifest;
  const valid = typeof json?.modelTopology === "object" && json.modelTopology !== null &&
    Array.isArray(manifest) &&
    manifest.every((g) =>
      Array.isArray(g?.paths) && g.paths.every((p: unknown) => typeof p === "string") &&
      Array.isArray(g.weights)
    );
  if (!valid) {
    throw new Error(
      `Expected ${dir}/${MODEL_JSON} to hold a modelTopology and a weightsManifest of paths and weights`,
    );
  }
  return json;
}

/** The bytes one manifest entry takes in the weights file. */
function weightBytes(spec: tf.io.WeightsManifestEntry, dir: string): number {
  const shape = spec?.shape;
  const bytes = Object.hasOwn(DTYPE_BYTES, spec?.dtype) ? DTYPE_BYTES[spec.dtype] : undefined;
  if (
    bytes === undefined || spec.quantization !== undefined || !Array.isArray(shape) ||
    !shape.every((d) => Number.isSafeInteger(d) && d >= 0)
  ) {
    throw new Error(
      `Expected ${dir}/${MODEL_JSON}'s weight ${spec?.name} to have a float32, int32 or bool ` +
        `dtype and a shape of integers but found ${JSON.stringify(spec).slice(0, 80)}`,
    );
  }
  return shape.reduce((a, b) => a * b, bytes);
}
