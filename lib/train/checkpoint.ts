/**
 * Checkpoints: the model's weights (BatchNorm statistics included), Adam's state, the
 * epoch, the RNG state and the history, in one safetensors file written atomically,
 * so a run killed at any moment resumes from its last complete epoch. A SHA-256 digest of
 * every tensor and of the state is written with them, and a checkpoint is loaded only when
 * every digest, name, shape and state field checks out.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { writeFileAtomic } from "../io/atomic.ts";
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "../io/safetensors.ts";
import { type CheckpointState, parseCheckpointState } from "./checkpoint_state.ts";

export type { CheckpointState, EpochRecord } from "./checkpoint_state.ts";

/** The file name of a run's checkpoint inside its run folder. */
export const CHECKPOINT_FILE = "checkpoint.safetensors";

/** Bumped when the layout changes, so an old file is refused rather than misread. */
const FORMAT_VERSION = "2";

/** The metadata a checkpoint carries; `sha256` holds the digests of the rest. */
interface CheckpointMetadata {
  format: string;
  state: string;
  optimizerSlots: string;
  sha256: string;
}

/** `sha256` as stored: hex digests of each tensor's bytes and of the two metadata texts. */
interface Digests {
  tensors: Record<string, string>;
  state: string;
  optimizerSlots: string;
}

async function toNamedArray(t: tf.Tensor): Promise<NamedArray> {
  const data = await t.data();
  return t.dtype === "int32"
    ? { dtype: "I32", shape: t.shape, data: data as Int32Array }
    : { dtype: "F32", shape: t.shape, data: data as Float32Array };
}

/**
 * The names of Adam's slots for `model`, in the order `getWeights()` gives them: the step
 * count, then the first moment of every trainable weight, then the second. TensorFlow.js names
 * slots after its process-wide variable names (`conv1/kernel_3/m` in a process that built
 * several models); the layer-scoped names here are the same in every process.
 *
 * @example
 * ```ts
 * import { resnet18 } from "../model.ts";
 * import { adamSlotNames } from "./checkpoint.ts";
 * const model = resnet18({ width: 2 });
 * console.log(adamSlotNames(model).slice(0, 2)); // ["iter", "conv1/kernel/m"]
 * model.dispose();
 * ```
 */
export function adamSlotNames(model: tf.LayersModel): string[] {
  const names = model.trainableWeights.map((w) => w.originalName);
  return ["iter", ...names.map((n) => `${n}/m`), ...names.map((n) => `${n}/v`)];
}

const slotKey = (i: number) => `optimizer/${String(i).padStart(4, "0")}`;

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

const bytesOf = (t: NamedArray) =>
  new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

async function computeDigests(
  tensors: Map<string, NamedArray>,
  metadata: Pick<CheckpointMetadata, "state" | "optimizerSlots">,
): Promise<Digests> {
  const digests: Digests = {
    tensors: {},
    state: await sha256Hex(new TextEncoder().encode(metadata.state)),
    optimizerSlots: await sha256Hex(new TextEncoder().encode(metadata.optimizerSlots)),
  };
  for (const [name, t] of tensors) digests.tensors[name] = await sha256Hex(bytesOf(t));
  return digests;
}

/**
 * Writes the checkpoint atomically to `path`.
 *
 * @param path Target file (usually `<run>/checkpoint.safetensors`).
 * @param model Its weights are stored under their layer-scoped names (`layer1.0.conv1/kernel`).
 * @param optimizer The Adam optimiser training `model`, after at least one step: its slots (the
 *   step count and both moments of every trainable weight) are stored in order.
 * @param state Epoch, RNG state, history, config.
 * @throws {Error} when the optimiser's slots are not Adam's for this model.
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
  for (const [i, slot] of slots.entries()) tensors.set(slotKey(i), await toNamedArray(slot.tensor));
  // getWeights() makes a fresh scalar for the iteration count; the rest are live variables.
  if (slots.length > 0) slots[0].tensor.dispose();
  const names = adamSlotNames(model);
  if (slots.length !== names.length) {
    throw new Error(
      `Expected ${names.length} optimizer slots (Adam's step count and 2 moments for each of ` +
        `${model.trainableWeights.length} weights) to save in ${path} but found ${slots.length}`,
    );
  }
  const texts = { state: JSON.stringify(state), optimizerSlots: JSON.stringify(names) };
  const metadata: CheckpointMetadata = {
    format: FORMAT_VERSION,
    ...texts,
    sha256: JSON.stringify(await computeDigests(tensors, texts)),
  };
  await writeFileAtomic(path, encodeSafetensors(tensors, { ...metadata }));
}

/**
 * Reads a checkpoint and loads it into `model` and `optimizer`, which must be built with the
 * same configuration (same width and depth). Nothing is loaded unless everything checks out:
 * the file's structure, every tensor's and the state's digest, the model's weights by name,
 * shape and dtype, Adam's slots by count, name and shape, and every state field.
 *
 * @param options.checkState Called with the stored state before any weight is matched, to
 *   refuse it first (a run saved with another `arch` or `width` then says so, rather than
 *   listing every weight that does not fit). @default no check
 * @returns The stored state, for the trainer to continue from.
 * @throws {Error} naming the file and what did not check out (the tensor, the field, or every
 *   missing, unexpected or mis-shaped weight).
 */
export async function restoreCheckpoint(
  path: string,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  options: { checkState?: (state: CheckpointState) => void } = {},
): Promise<CheckpointState> {
  const { tensors, metadata } = decodeSafetensors(await readCheckpointFile(path), path);
  const checked = checkMetadata(metadata, path);
  await verifyDigests(tensors, checked, path);
  const state = parseCheckpointState(checked.state, path);
  options.checkState?.(state);
  const values = takeModelWeights(model, tensors, path);
  let slotNames: string[];
  try {
    slotNames = checkOptimizerSlots(model, tensors, checked.optimizerSlots, path);
  } catch (error) {
    tf.dispose(values);
    throw error;
  }
  model.setWeights(values);
  tf.dispose(values);
  const slots = slotNames.map((name, i) => {
    const t = tensors.get(slotKey(i))!;
    return { name, tensor: tf.tensor(t.data as Float32Array | Int32Array, t.shape, dtypeOf(t)) };
  });
  await optimizer.setWeights(slots);
  // setWeights() keeps its own references to the moments; ours can go.
  tf.dispose(slots.map((s) => s.tensor));
  if (optimizer instanceof tf.AdamOptimizer) restoreAdamPowers(optimizer);
  return state;
}

/**
 * Sets Adam's beta1^t and beta2^t as its steps compute them. tfjs's `setWeights()` takes them
 * from `pow(beta, t + 1)`, but each step multiplies them by beta in float32, and the two differ
 * in the last bit after some step counts (beta2 = 0.999 after 2 and 5 steps, beta1 = 0.9 after
 * 8): a run resumed from `pow()` drifts from the run it continues.
 */
function restoreAdamPowers(adam: tf.AdamOptimizer): void {
  const state = adam as unknown as {
    accBeta1: tf.Variable;
    accBeta2: tf.Variable;
    beta1: number;
    beta2: number;
  };
  // A float32 product of two float32 values, rounded once: what tf.mul computes.
  const power = (beta: number) => {
    const b = Math.fround(beta);
    let acc = b;
    for (let step = 0; step < adam.iterations; step++) acc = Math.fround(acc * b);
    return acc;
  };
  tf.tidy(() => {
    state.accBeta1.assign(tf.scalar(power(state.beta1)));
    state.accBeta2.assign(tf.scalar(power(state.beta2)));
  });
}

async function readCheckpointFile(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    throw new Error(`Cannot read checkpoint ${path}: ${(error as Error).message}`);
  }
}

const dtypeOf = (t: NamedArray) => t.dtype === "I32" ? "int32" : "float32";

/** The metadata fields this format writes, each present and a string. */
function checkMetadata(metadata: Record<string, string>, path: string): CheckpointMetadata {
  if (metadata.format !== FORMAT_VERSION) {
    throw new Error(
      `Expected checkpoint format ${FORMAT_VERSION} in ${path} but found ${
        metadata.format ?? "none"
      }` + (metadata.format === "1" ? " (written before checkpoints had digests)" : ""),
    );
  }
  for (const field of ["state", "optimizerSlots", "sha256"] as const) {
    if (typeof metadata[field] !== "string") {
      throw new Error(`Expected metadata field ${field} in checkpoint ${path} but found none`);
    }
  }
  return metadata as unknown as CheckpointMetadata;
}

/** Every tensor and both metadata texts against the digests written with them. */
async function verifyDigests(
  tensors: Map<string, NamedArray>,
  metadata: CheckpointMetadata,
  path: string,
): Promise<void> {
  const stored = parseDigests(metadata.sha256, path);
  const actual = await computeDigests(tensors, metadata);
  const damaged = (what: string, expected: string | undefined, found: string | undefined) =>
    new Error(
      `Checkpoint ${path} is damaged: ${what} does not match the sha256 written with it ` +
        `(expected ${expected?.slice(0, 16) ?? "none"}..., found ${
          found?.slice(0, 16) ?? "none"
        }...); it changed after it was written, so it cannot be resumed`,
    );
  const names = new Set([...Object.keys(stored.tensors), ...Object.keys(actual.tensors)]);
  for (const name of names) {
    if (stored.tensors[name] !== actual.tensors[name]) {
      throw damaged(`tensor ${name}`, stored.tensors[name], actual.tensors[name]);
    }
  }
  for (const field of ["state", "optimizerSlots"] as const) {
    if (stored[field] !== actual[field]) throw damaged(field, stored[field], actual[field]);
  }
}

function parseDigests(json: string, path: string): Digests {
  const hex = (v: unknown) => typeof v === "string" && /^[0-9a-f]{64}$/.test(v);
  try {
    const digests = JSON.parse(json);
    const tensors = digests?.tensors;
    if (
      typeof tensors === "object" && tensors !== null && Object.values(tensors).every(hex) &&
      hex(digests.state) && hex(digests.optimizerSlots)
    ) return digests as Digests;
  } catch { /* reported below */ }
  throw new Error(
    `Expected sha256 in checkpoint ${path} to hold hex digests of its tensors and state`,
  );
}

/**
 * Adam's slots: exactly {@linkcode adamSlotNames}, each stored as `optimizer/NNNN` with its
 * weight's shape (the step count an int32 scalar). A list cut short would leave TensorFlow.js
 * to start the missing moments from zero without a word.
 *
 * @returns The slot names, in order.
 */
function checkOptimizerSlots(
  model: tf.LayersModel,
  tensors: Map<string, NamedArray>,
  slotsJson: string,
  path: string,
): string[] {
  const expected = adamSlotNames(model);
  let names: unknown;
  try {
    names = JSON.parse(slotsJson);
  } catch { /* reported below */ }
  const stored = [...tensors.keys()].filter((k) => k.startsWith("optimizer/")).length;
  if (JSON.stringify(names) !== JSON.stringify(expected) || stored !== expected.length) {
    const count = Array.isArray(names) ? names.length : 0;
    throw new Error(
      `Expected ${expected.length} optimizer slots in ${path} (Adam's step count and 2 moments ` +
        `for each of ${model.trainableWeights.length} weights: ${expected[0]}, ${
          expected[1]
        }, ...) ` +
        `but found ${count} slot names and ${stored} slot tensors` +
        (count === expected.length ? " whose names differ" : ""),
    );
  }
  const weights = model.trainableWeights;
  const shapeOf = (i: number) => i === 0 ? [] : weights[(i - 1) % weights.length].shape;
  expected.forEach((name, i) => {
    const t = tensors.get(slotKey(i));
    const dtype = i === 0 ? "I32" : "F32";
    if (t === undefined || t.dtype !== dtype || t.shape.join() !== shapeOf(i).join()) {
      throw new Error(
        `Expected optimizer slot ${i} (${name}) in ${path} to be ${dtype} of shape [${
          shapeOf(i)
        }] but found ${t === undefined ? "none" : `${t.dtype} of shape [${t.shape}]`}`,
      );
    }
  });
  return expected;
}

/**
 * Matches stored tensors (`model/<name>`) to the model's weights by name, shape and dtype
 * (float32).
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
    } else if (t.dtype !== "F32") {
      problems.push(`model/${w.originalName}: expected dtype F32 but found ${t.dtype}`);
    }
  }
  if (problems.length > 0) {
    throw new Error(
      `Checkpoint ${source} does not fit this model (was it trained with another --arch or --width?): ${
        problems.slice(0, 10).join("; ")
      }${problems.length > 10 ? `; and ${problems.length - 10} more` : ""}`,
    );
  }
  return model.weights.map((w) => {
    const t = tensors.get(`model/${w.originalName}`)!;
    return tf.tensor(t.data as Float32Array, t.shape);
  });
}
