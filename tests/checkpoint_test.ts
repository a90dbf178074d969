/**
 * lib/train/checkpoint.ts and lib/train/checkpoint_state.ts: a checkpoint is loaded only when
 * its digests, tensors, optimizer slots and state all check out. Each test writes a real
 * checkpoint of a tiny model, damages it on purpose, and asserts the refusal.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/init.ts";
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "../lib/io/safetensors.ts";
import { resnet18 } from "../lib/model.ts";
import { createOptimizer, trainStep } from "../lib/train.ts";
import {
  adamSlotNames,
  type CheckpointState,
  restoreCheckpoint,
  saveCheckpoint,
} from "../lib/train/checkpoint.ts";
import { parseCheckpointState } from "../lib/train/checkpoint_state.ts";
import { makeConfig } from "../lib/train/config.ts";

await initBackend("cpu");

const WIDTH = 2;

const record = (epoch: number) => ({
  epoch,
  trainLoss: 2.3,
  trainAccuracy: 0.1,
  testLoss: 2.3,
  testAccuracy: 0.1,
  seconds: 1,
  imagesPerSecond: 10,
});

const goodState = (): CheckpointState => ({
  epoch: 2,
  rngState: [1, 2, 3, 4],
  history: [record(1), record(2)],
  config: makeConfig({ width: WIDTH, epochs: 3 }),
});

/** A model and an Adam that has taken one step (so it has all its slots). */
async function trainedPair(): Promise<{ model: tf.LayersModel; optimizer: tf.AdamOptimizer }> {
  const model = resnet18({ width: WIDTH, seed: 1 });
  const optimizer = createOptimizer({ learningRate: 0.01 });
  const x = tf.randomUniform([2, 32, 32, 3], 0, 1, "float32", 3) as tf.Tensor4D;
  const y = tf.tensor1d([0, 1], "int32");
  await trainStep(model, optimizer, x, y);
  tf.dispose([x, y]);
  return { model, optimizer };
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Rewrites a checkpoint with `edit` applied and its digests recomputed, as a buggy or hostile
 * writer would: the digests then hold, so what is refused is the content itself.
 */
async function rewrite(
  path: string,
  edit: (tensors: Map<string, NamedArray>, metadata: Record<string, string>) => void,
): Promise<void> {
  const { tensors, metadata } = decodeSafetensors(await Deno.readFile(path));
  edit(tensors, metadata);
  const bytes = (t: NamedArray) =>
    new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const digests = {
    tensors: Object.fromEntries(
      await Promise.all([...tensors].map(async ([n, t]) => [n, await sha256Hex(bytes(t))])),
    ),
    state: await sha256Hex(new TextEncoder().encode(metadata.state)),
    optimizerSlots: await sha256Hex(new TextEncoder().encode(metadata.optimizerSlots)),
  };
  await Deno.writeFile(
    path,
    encodeSafetensors(tensors, { ...metadata, sha256: JSON.stringify(digests) }),
  );
}

/** Saves a good checkpoint, damages it with `damage`, and returns what restoring it threw. */
async function restoreDamaged(
  damage: (path: string) => Promise<void>,
): Promise<{ error: Error; path: string }> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/checkpoint.safetensors`;
  const { model, optimizer } = await trainedPair();
  const fresh = resnet18({ width: WIDTH, seed: 2 });
  const freshOptimizer = createOptimizer({ learningRate: 0.01 });
  try {
    await saveCheckpoint(path, model, optimizer, goodState());
    await damage(path);
    const before = tf.memory().numTensors;
    const error = await restoreCheckpoint(path, fresh, freshOptimizer).then(
      () => assert.fail("the damaged checkpoint was loaded"),
      (e: Error) => e,
    );
    assert.equal(tf.memory().numTensors, before, "a refused checkpoint leaves no tensors behind");
    return { error, path };
  } finally {
    [model, fresh].forEach((m) => m.dispose());
    [optimizer, freshOptimizer].forEach((o) => o.dispose());
    await Deno.remove(dir, { recursive: true });
  }
}

/** Where a tensor's bytes start in the file, from its header. */
async function byteOffsetOf(path: string, name: string): Promise<number> {
  const bytes = await Deno.readFile(path);
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  return 8 + headerLength + header[name].data_offsets[0];
}

Deno.test("restoreCheckpoint() loads what saveCheckpoint() wrote: weights, Adam's slots, state", async () => {
  const dir = await Deno.makeTempDir();
  const { model, optimizer } = await trainedPair();
  const fresh = resnet18({ width: WIDTH, seed: 2 });
  const freshOptimizer = createOptimizer({ learningRate: 0.01 });
  try {
    await saveCheckpoint(`${dir}/c.safetensors`, model, optimizer, goodState());
    const state = await restoreCheckpoint(`${dir}/c.safetensors`, fresh, freshOptimizer);
    assert.deepEqual(state, goodState());
    for (const [i, w] of model.weights.entries()) {
      assert.deepEqual(await fresh.weights[i].read().data(), await w.read().data(), w.name);
    }
    const [saved, loaded] = [await optimizer.getWeights(), await freshOptimizer.getWeights()];
    assert.equal(loaded.length, adamSlotNames(model).length);
    assert.deepEqual(await loaded[0].tensor.data(), await saved[0].tensor.data());
    assert.deepEqual(await loaded.at(-1)!.tensor.data(), await saved.at(-1)!.tensor.data());
    tf.dispose([saved[0].tensor, loaded[0].tensor]);
  } finally {
    [model, fresh].forEach((m) => m.dispose());
    [optimizer, freshOptimizer].forEach((o) => o.dispose());
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("restoreCheckpoint() refuses a flipped bit in a tensor, naming the tensor", async () => {
  const name = "model/layer1.0.conv1/kernel";
  const { error, path } = await restoreDamaged(async (path) => {
    const bytes = await Deno.readFile(path);
    // The exponent's top bit of the first weight (little-endian float32: byte 3, bit 6).
    bytes[(await byteOffsetOf(path, name)) + 3] ^= 0x40;
    await Deno.writeFile(path, bytes);
  });
  assert.match(
    error.message,
    new RegExp(
      `^Checkpoint ${path} is damaged: tensor ${name} does not match the sha256 written with it ` +
        `\\(expected [0-9a-f]{16}\\.\\.\\., found [0-9a-f]{16}\\.\\.\\.\\); it changed after it was ` +
        `written, so it cannot be resumed$`,
    ),
  );
});

Deno.test("restoreCheckpoint() refuses a changed state whose digest no longer matches", async () => {
  const { error } = await restoreDamaged(async (path) => {
    const { tensors, metadata } = decodeSafetensors(await Deno.readFile(path));
    const state = JSON.parse(metadata.state);
    state.epoch = 1;
    state.history = state.history.slice(0, 1);
    await Deno.writeFile(
      path,
      encodeSafetensors(tensors, { ...metadata, state: JSON.stringify(state) }),
    );
  });
  assert.match(error.message, /is damaged: state does not match the sha256 written with it/);
});

Deno.test("restoreCheckpoint() refuses Adam's slot list cut to one entry (the moments would reset)", async () => {
  const { error, path } = await restoreDamaged((path) =>
    rewrite(path, (tensors, metadata) => {
      for (const name of [...tensors.keys()]) {
        if (name.startsWith("optimizer/") && name !== "optimizer/0000") tensors.delete(name);
      }
      metadata.optimizerSlots = JSON.stringify(["iter"]);
    })
  );
  const model = resnet18({ width: WIDTH });
  const slots = adamSlotNames(model).length;
  const weights = model.trainableWeights.length;
  model.dispose();
  assert.equal(
    error.message,
    `Expected ${slots} optimizer slots in ${path} (Adam's step count and 2 moments for each of ` +
      `${weights} weights: iter, conv1/kernel/m, ...) but found 1 slot names and 1 slot tensors`,
  );
});

Deno.test("restoreCheckpoint() refuses renamed or reshaped optimizer slots", async () => {
  const renamed = await restoreDamaged((path) =>
    rewrite(path, (_, metadata) => {
      const names = JSON.parse(metadata.optimizerSlots);
      [names[1], names[2]] = [names[2], names[1]];
      metadata.optimizerSlots = JSON.stringify(names);
    })
  );
  assert.match(renamed.error.message, /slot names and \d+ slot tensors whose names differ$/);
  const reshaped = await restoreDamaged((path) =>
    rewrite(path, (tensors) => {
      tensors.set("optimizer/0001", { dtype: "F32", shape: [1], data: new Float32Array(1) });
    })
  );
  assert.match(
    reshaped.error.message,
    /Expected optimizer slot 1 \(conv1\/kernel\/m\) in .* to be F32 of shape \[3,3,3,2\] but found F32 of shape \[1\]$/,
  );
});

Deno.test('restoreCheckpoint() refuses a state of the wrong types ("history": "oops") or a short history', async () => {
  const oops = await restoreDamaged((path) =>
    rewrite(path, (_, metadata) => {
      metadata.state = JSON.stringify({ ...JSON.parse(metadata.state), history: "oops" });
    })
  );
  assert.equal(
    oops.error.message,
    `Expected "history" in the state of ${oops.path} to be an array of 2 epoch record(s) but found "oops"`,
  );
  const short = await restoreDamaged((path) =>
    rewrite(path, (_, metadata) => {
      const state = JSON.parse(metadata.state);
      metadata.state = JSON.stringify({ ...state, history: state.history.slice(0, 1) });
    })
  );
  assert.equal(
    short.error.message,
    `Expected "history" in the state of ${short.path} to be an array of 2 epoch record(s) but found 1 record(s)`,
  );
});

Deno.test("restoreCheckpoint() refuses overlapping data offsets (safetensors data is contiguous)", async () => {
  const { error, path } = await restoreDamaged(async (path) => {
    const bytes = await Deno.readFile(path);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
    const header = JSON.parse(text);
    // The second tensor made to start 4 bytes early, over the end of the first, same length.
    const [first, second] = Object.keys(header).filter((k) => k !== "__metadata__")
      .sort((a, b) => header[a].data_offsets[0] - header[b].data_offsets[0]);
    const [begin, end] = header[second].data_offsets;
    header[second].data_offsets = [begin - 4, end - 4];
    const json = JSON.stringify(header).padEnd(headerLength, " ");
    assert.equal(json.length, headerLength, first);
    bytes.set(new TextEncoder().encode(json), 8);
    await Deno.writeFile(path, bytes);
  });
  assert.match(
    error.message,
    new RegExp(
      `^Expected \\S+ in ${path} to start at data byte \\d+, where \\S+ ends, but found \\d+ \\(overlapping; safetensors data must be contiguous\\)$`,
    ),
  );
});

Deno.test("restoreCheckpoint() names the file it cannot read, and refuses an older format", async () => {
  const model = resnet18({ width: WIDTH });
  const optimizer = createOptimizer({ learningRate: 0.01 });
  try {
    await assert.rejects(
      restoreCheckpoint("/nonexistent/checkpoint.safetensors", model, optimizer),
      /^Error: Cannot read checkpoint \/nonexistent\/checkpoint\.safetensors: /,
    );
  } finally {
    model.dispose();
    optimizer.dispose();
  }
  const { error, path } = await restoreDamaged((path) =>
    rewrite(path, (_, metadata) => void (metadata.format = "1"))
  );
  assert.equal(
    error.message,
    `Expected checkpoint format 2 in ${path} but found 1 (written before checkpoints had digests)`,
  );
});

Deno.test("parseCheckpointState() checks every field's type and range", () => {
  const good = goodState();
  assert.deepEqual(parseCheckpointState(JSON.stringify(good), "c"), good);
  const cases: [unknown, string][] = [
    [null, "Expected the state in c to be an object but found null"],
    [
      { ...good, epoch: "2" },
      'Expected "epoch" in the state of c to be an integer >= 1 but found "2"',
    ],
    [
      { ...good, rngState: [1, 2, 3] },
      'Expected "rngState" in the state of c to be 4 integers in 0..2^32-1 but found [1,2,3]',
    ],
    [
      { ...good, history: [record(1), record(3)] },
      'Expected record 1 of "history" in the state of c to be epoch 2\'s figures (finite numbers) but its epoch is 3',
    ],
    [
      { ...good, history: [record(1), { ...record(2), testLoss: null }] },
      'Expected record 1 of "history" in the state of c to be epoch 2\'s figures (finite numbers) but its testLoss is null',
    ],
    [
      { ...good, config: { ...good.config, width: 0 } },
      'Expected "config" in the state of c to be a valid training config: ' +
      "Expected width to be an integer in 1..1024 but found 0 (1024 is 16x the article's width: " +
      "2.9 billion weights, 34 GB with Adam's state)",
    ],
    [
      { ...good, config: "x" },
      'Expected "config" in the state of c to be a training config but found "x"',
    ],
  ];
  for (const [state, message] of cases) {
    assert.throws(() => parseCheckpointState(JSON.stringify(state), "c"), { message });
  }
  assert.throws(
    () => parseCheckpointState("{", "c"),
    /^Error: Expected the state in c to be JSON: /,
  );
});
