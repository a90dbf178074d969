/**
 * Checkpoints: the model's weights (BatchNorm statistics included), Adam's state, the
 * epoch, the RNG state and the history, in one safetensors file written atomically,
 * so a run killed at any moment resumes from its last complete epoch.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { writeFileAtomic } from "../io/atomic.ts";
import type { TrainConfig } from "./config.ts";
import type { RngState } from "./rng.ts";
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "../io/safetensors.ts";

/** The file name of a run's checkpoint inside its run folder. */
export const CHECKPOINT_FILE = "checkpoint.safetensors";

/** Bumped when the layout changes, so an old file is refused rather than misread. */
const FORMAT_VERSION = "1";

/** One epoch's figures, as `history.json` records them. */
export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  testLoss: number;
  testAccuracy: number;
  seconds: number;
  imagesPerSecond: number;
}

/** What a checkpoint holds besides tensors. */
export interface CheckpointState {
  /** Epochs completed (1-based count). */
  epoch: number;
  rngState: RngState;
  history: EpochRecord[];
  config: TrainConfig;
}

async function toNamedArray(t: tf.Tensor): Promise<NamedArray> {
  const data = await t.data();
  return t.dtype === "int32"
    ? { dtype: "I32", shape: t.shape, data: data as Int32Array }
    : { dtype: "F32", shape: t.shape, data: data as Float32Array };
}

/**
 * Writes the checkpoint atomically to `path`.
 *
 * @param path Target file (usually `<run>/checkpoint.safetensors`).
 * @param model Its weights are stored under their layer-scoped names (`layer1.0.conv1/kernel`).
 * @param optimizer Its slots (Adam's iteration count and moments) are stored in order.
 * @param state Epoch, RNG state, history, config.
 */
export async function saveCheckpoint(
  path: string,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  state: CheckpointState,
): Promise<void> {
  const tensors = new Map<string, NamedArray>();
  for (const w of model.weights) {
    tensors.set(`model/${w.originalName}`, await toNamedArray(w.read()));
  }
  const slots = await optimizer.getWeights();
  for (const [i, slot] of slots.entries()) {
    tensors.set(`optimizer/${String(i).padStart(4, "0")}`, await toNamedArray(slot.tensor));
  }
  // getWeights() makes a fresh scalar for the iteration count; the rest are live variables.
  if (slots.length > 0) slots[0].tensor.dispose();
  const metadata = {
    format: FORMAT_VERSION,
    state: JSON.stringify(state),
    optimizerSlots: JSON.stringify(slots.map((s) => s.name)),
  };
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/**
 * Reads a checkpoint and loads it into `model` and `optimizer`, which must be built with the
 * same configuration (same width and depth); names and shapes are checked.
 *
 * @returns The stored state, for the trainer to continue from.
 * @throws {Error} naming the file and listing every missing, unexpected or mis-shaped weight.
 */
export async function restoreCheckpoint(
  path: string,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
): Promise<CheckpointState> {
  const { tensors, metadata } = decodeSafetensors(await Deno.readFile(path), path);
  if (metadata.format !== FORMAT_VERSION) {
    throw new Error(
      `Expected checkpoint format ${FORMAT_VERSION} in ${path} but found ${metadata.format}`,
    );
  }
  const state = JSON.parse(metadata.state) as CheckpointState;
  const values = takeModelWeights(model, tensors, path);
  model.setWeights(values);
  tf.dispose(values);
  const slotNames = JSON.parse(metadata.optimizerSlots) as string[];
  const slots = slotNames.map((name, i) => {
    const t = tensors.get(`optimizer/${String(i).padStart(4, "0")}`);
    if (t === undefined) throw new Error(`Expected optimizer slot ${i} (${name}) in ${path}`);
    return { name, tensor: tf.tensor(t.data as Float32Array | Int32Array, t.shape) };
  });
  await optimizer.setWeights(slots);
  // setWeights() keeps its own references to the moments; ours can go.
  tf.dispose(slots.map((s) => s.tensor));
  return state;
}

/**
 * Matches stored tensors (`model/<name>`) to the model's weights by name and shape.
 * @returns New tensors in `model.weights` order; the caller disposes them.
 */
export function takeModelWeights(
  model: tf.LayersModel,
  tensors: Map<string, NamedArray>,
  source: string,
): tf.Tensor[] {
  const problems: string[] = [];
  const expected = new Set(model.weights.map((w) => `model/${w.originalName}`));
  for (const name of tensors.keys()) {
    if (name.startsWith("model/") && !expected.has(name)) problems.push(`unexpected ${name}`);
  }
  for (const w of model.weights) {
    const t = tensors.get(`model/${w.originalName}`);
    if (t === undefined) problems.push(`missing model/${w.originalName}`);
    else if (t.shape.join() !== w.shape.join()) {
      problems.push(`model/${w.originalName}: expected shape [${w.shape}] but found [${t.shape}]`);
    }
  }
  if (problems.length > 0) {
    throw new Error(
      `Checkpoint ${source} does not fit this model (was it trained with another --width?): ${
        problems.slice(0, 10).join("; ")
      }${problems.length > 10 ? `; and ${problems.length - 10} more` : ""}`,
    );
  }
  return model.weights.map((w) => {
    const t = tensors.get(`model/${w.originalName}`)!;
    return tf.tensor(t.data as Float32Array, t.shape);
  });
}
