/**
 * Carrying weights between our model and the article's PyTorch `ResNet` through a
 * safetensors file of its `state_dict()`. Our layer names are the PyTorch module paths,
 * so only the parameter names and the layouts differ:
 *
 * | ours (TensorFlow.js)              | PyTorch                          | layout                    |
 * | --------------------------------- | -------------------------------- | ------------------------- |
 * | `conv1/kernel` `[kh, kw, in, out]`| `conv1.weight` `[out, in, kh, kw]` | HWIO <-> OIHW           |
 * | `fc/kernel` `[in, out]`           | `fc.weight` `[out, in]`          | transposed                |
 * | `<layer>/bias`                    | `<layer>.bias`                   | same                      |
 * | `bn1/gamma`, `bn1/beta`           | `bn1.weight`, `bn1.bias`         | same                      |
 * | `bn1/moving_mean`, `/moving_variance` | `bn1.running_mean`, `.running_var` | same                |
 * | (none)                            | `bn1.num_batches_tracked` (int64) | skipped on import, 0 on export |
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { writeFileAtomic } from "./atomic.ts";
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "./safetensors.ts";

/** Our parameter name (after the `/`) to PyTorch's (after the last `.`). */
const TORCH_PARAMETER: Record<string, string> = {
  kernel: "weight",
  bias: "bias",
  gamma: "weight",
  beta: "bias",
  moving_mean: "running_mean",
  moving_variance: "running_var",
};

/** A BatchNorm buffer PyTorch saves that has no counterpart here (momentum is fixed). */
const BATCHES_TRACKED = "num_batches_tracked";

/** One of our weights and where it lives in a PyTorch state dict. */
interface WeightMapping {
  /** Our name, `<layer>/<parameter>`. */
  ours: string;
  /** PyTorch's name, `<module path>.<parameter>`. */
  torch: string;
  /** Our shape. */
  shape: number[];
  /** Permutation from our layout to PyTorch's; undefined when they are the same. */
  toTorch?: number[];
}

/** Every weight of `model`, layer by layer as PyTorch's `state_dict()` orders them. */
function mappings(model: tf.LayersModel): WeightMapping[] {
  // The names would map any arch onto some state dict, but only the article's ResNet18 has a
  // PyTorch peer (../shared/peer/article_torch.py) that the tests check the layouts against.
  if (model.name !== "resnet18") {
    throw new Error(
      `Expected the article's resnet18 (the one model with a PyTorch peer to carry weights ` +
        `to and from) but found a model named ${model.name}`,
    );
  }
  // model.weights lists all trainable weights before the BatchNorm statistics; layer order
  // keeps each module's tensors together, as PyTorch does.
  return model.layers.flatMap((layer) => layer.weights).map((w) => {
    const slash = w.originalName.lastIndexOf("/");
    const layer = w.originalName.slice(0, slash);
    const parameter = w.originalName.slice(slash + 1);
    const torchParameter = TORCH_PARAMETER[parameter];
    if (torchParameter === undefined) {
      throw new Error(
        `Expected weights named <layer>/{${Object.keys(TORCH_PARAMETER).join(",")}} ` +
          `but found ${w.originalName}`,
      );
    }
    const shape = w.shape as number[];
    const toTorch = parameter !== "kernel" ? undefined : shape.length === 4
      ? [3, 2, 0, 1] // HWIO -> OIHW
      : shape.length === 2
      ? [1, 0] // [in, out] -> [out, in]
      : undefined;
    return { ours: w.originalName, torch: `${layer}.${torchParameter}`, shape, toTorch };
  });
}

function permuteShape(shape: number[], perm: number[] | undefined): number[] {
  return perm === undefined ? shape : perm.map((p) => shape[p]);
}

/** The permutation that undoes `perm`. */
function inverse(perm: number[]): number[] {
  const out = new Array<number>(perm.length);
  perm.forEach((p, i) => (out[p] = i));
  return out;
}

/**
 * Our model's weights as a PyTorch `state_dict` of the article's `ResNet`: the names
 * `load_state_dict()` expects, PyTorch's layouts, and `num_batches_tracked = 0` for each
 * BatchNorm (PyTorch insists on the key; its value only matters with `momentum=None`).
 *
 * @param model A model built by `resnet18()` (or loaded from one).
 * @returns Tensors in PyTorch's state-dict order for `encodeSafetensors()`.
 *
 * @example
 * ```ts
 * import { resnet18 } from "../model.ts";
 * import { toTorchStateDict } from "./torch_weights.ts";
 * const model = resnet18({ width: 2 });
 * const state = await toTorchStateDict(model);
 * console.log(state.get("conv1.weight")?.shape); // [2, 3, 3, 3]: OIHW
 * model.dispose();
 * ```
 */
export async function toTorchStateDict(
  model: tf.LayersModel,
): Promise<Map<string, NamedArray>> {
  const state = new Map<string, NamedArray>();
  const map = mappings(model);
  const byName = new Map(model.weights.map((w) => [w.originalName, w]));
  const values = tf.tidy(() =>
    map.map((m) => {
      const value = byName.get(m.ours)!.read();
      return m.toTorch === undefined ? value.clone() : tf.transpose(value, m.toTorch);
    })
  );
  // await data(), not dataSync(): the WebGPU backend cannot read synchronously.
  const arrays = await Promise.all(values.map((v) => v.data() as Promise<Float32Array>));
  map.forEach((m, i) => {
    state.set(m.torch, {
      dtype: "F32",
      shape: permuteShape(m.shape, m.toTorch),
      data: arrays[i],
    });
    if (m.ours.endsWith("/moving_variance")) {
      const module = m.torch.slice(0, m.torch.lastIndexOf("."));
      state.set(`${module}.${BATCHES_TRACKED}`, {
        dtype: "I64",
        shape: [],
        data: new BigInt64Array([0n]),
      });
    }
  });
  tf.dispose(values);
  return state;
}

/**
 * Sets our model's weights from a PyTorch `state_dict` of the article's `ResNet`.
 * Every name and shape is checked before anything is set; `num_batches_tracked`
 * buffers are accepted and skipped.
 *
 * @param model A model of the same width and layout (`resnet18({ width })`).
 * @param state The state dict, e.g. `decodeSafetensors(bytes).tensors`.
 * @param source Where the state dict came from, for error messages.
 * @throws {Error} naming `source` and listing every missing, unexpected or misshapen
 *   tensor (a width or `convBias` mismatch shows up here).
 *
 * @example
 * ```ts
 * import { resnet18 } from "../model.ts";
 * import { loadTorchStateDict, toTorchStateDict } from "./torch_weights.ts";
 * const a = resnet18({ width: 2, seed: 1 });
 * const b = resnet18({ width: 2, seed: 2 });
 * loadTorchStateDict(b, await toTorchStateDict(a), "a");
 * console.log(b.getWeights()[0].arraySync()); // equal to a's
 * a.dispose();
 * b.dispose();
 * ```
 */
export function loadTorchStateDict(
  model: tf.LayersModel,
  state: Map<string, NamedArray>,
  source: string,
): void {
  const map = mappings(model);
  const problems: string[] = [];
  const expected = new Set(map.map((m) => m.torch));
  for (const [name, t] of state) {
    if (name.endsWith(`.${BATCHES_TRACKED}`)) continue;
    if (!expected.has(name)) problems.push(`unexpected ${name} [${t.shape}]`);
  }
  for (const m of map) {
    const t = state.get(m.torch);
    const shape = permuteShape(m.shape, m.toTorch);
    if (t === undefined) problems.push(`missing ${m.torch} [${shape}]`);
    else if (t.dtype !== "F32") {
      problems.push(`${m.torch}: expected dtype F32 but found ${t.dtype}`);
    } else if (t.shape.join() !== shape.join()) {
      problems.push(`${m.torch}: expected shape [${shape}] but found [${t.shape}]`);
    }
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 20);
    throw new Error(
      `PyTorch state dict ${source} does not fit this model (another width, or convs without ` +
        `bias?): ${problems.length} problem${problems.length === 1 ? "" : "s"}: ${
          shown.join("; ")
        }${problems.length > shown.length ? `; and ${problems.length - shown.length} more` : ""}`,
    );
  }
  const byName = new Map(map.map((m) => [m.ours, m]));
  const values = tf.tidy(() =>
    model.weights.map((w) => {
      const m = byName.get(w.originalName)!;
      const t = state.get(m.torch)!;
      const value = tf.tensor(t.data as Float32Array, t.shape, "float32");
      return m.toTorch === undefined ? value : tf.transpose(value, inverse(m.toTorch));
    })
  );
  model.setWeights(values);
  tf.dispose(values);
}

/**
 * Writes our model's weights as a PyTorch state-dict safetensors file
 * (`model.load_state_dict(load_file(path))` on the Python side).
 *
 * @param model The model to export.
 * @param path The `.safetensors` file to write (atomically).
 * @param metadata Free-form strings stored in the header (e.g. the width).
 */
export async function exportTorchSafetensors(
  model: tf.LayersModel,
  path: string,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(await toTorchStateDict(model), metadata));
}

/**
 * Reads a PyTorch state-dict safetensors file (`save_file(model.state_dict(), path)`)
 * into our model; see {@linkcode loadTorchStateDict} for what is checked.
 *
 * @param model A model of the same width and layout.
 * @param path The `.safetensors` file.
 * @throws {Error} naming `path` when it cannot be read, decoded or does not fit.
 */
export async function importTorchSafetensors(model: tf.LayersModel, path: string): Promise<void> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(`Cannot read PyTorch weights ${path}: ${(error as Error).message}`);
  }
  loadTorchStateDict(model, decodeSafetensors(bytes, path).tensors, path);
}
