/**
 * lib/train/run_folder.ts: a run folder is opened for a new run, to resume, or to restart, and
 * never overwritten by mistake. Folders are made by hand here (no training), each with the
 * fault the test is about.
 */
import assert from "node:assert/strict";
import { makeConfig } from "../lib/train/config.ts";
import {
  openRunFolder,
  prepareRunFolder,
  RunFolderError,
  type RunFolderMode,
} from "../lib/train/run_folder.ts";

const LEFTOVER = ".tmp-4242-0123abcd";

/** A run folder as a finished run leaves it (the checkpoint's bytes are not read here). */
async function writeRun(dir: string, options: { checkpoint?: boolean } = {}): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(makeConfig({ width: 2 })));
  if (options.checkpoint ?? true) {
    await Deno.mkdir(`${dir}/model`);
    await Deno.writeTextFile(`${dir}/history.json`, "[]");
    await Deno.writeFile(`${dir}/checkpoint.safetensors`, new Uint8Array(16));
    await Deno.writeTextFile(`${dir}/model/model.json`, "{}");
    await Deno.writeFile(`${dir}/model/weights.bin`, new Uint8Array(4));
    await Deno.writeTextFile(`${dir}/curves.svg`, "<svg/>");
  }
}

/** Every file under `dir`, with its content, to show that nothing changed. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  const walk = async (folder: string, prefix: string) => {
    for await (const entry of Deno.readDir(folder)) {
      const path = `${folder}/${entry.name}`;
      if (entry.isDirectory) await walk(path, `${prefix}${entry.name}/`);
      else files[`${prefix}${entry.name}`] = await Deno.readTextFile(path);
    }
  };
  await walk(dir, "");
  return files;
}

async function refusal(dir: string, mode: RunFolderMode): Promise<string> {
  const error = await prepareRunFolder(dir, mode).then(
    () => assert.fail(`${mode} was allowed`),
    (e: Error) => e,
  );
  assert.ok(error instanceof RunFolderError, String(error));
  return error.message;
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(`${dir}/run`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("prepareRunFolder() refuses a new run over an existing one, offering --resume and --restart", () =>
  withDir(async (dir) => {
    await writeRun(dir);
    const before = await snapshot(dir);
    assert.equal(
      await refusal(dir, "new"),
      `${dir} already holds a run (checkpoint.safetensors, config.json, curves.svg, history.json, ` +
        `model): continue it with --resume, or start it over with --restart (which deletes that ` +
        `run's files)`,
    );
    assert.deepEqual(await snapshot(dir), before);
  }));

Deno.test("prepareRunFolder() never touches a folder that is not a run (a user's own history.json)", () =>
  withDir(async (dir) => {
    await Deno.mkdir(dir);
    await Deno.writeTextFile(`${dir}/history.json`, "my notes");
    assert.equal(
      await refusal(dir, "new"),
      `Expected ${dir} to be a new or empty folder but it holds history.json, and not a run ` +
        `(no valid config.json): choose another --out`,
    );
    assert.equal(
      await refusal(dir, "restart"),
      `--restart deletes only a run's own files, and ${dir} is not a run (it has no ` +
        `config.json): choose another --out`,
    );
    assert.equal(
      await refusal(dir, "resume"),
      `Expected a run to resume in ${dir} but it has no config.json`,
    );
    // A config.json that is not a run's does not make it one.
    await Deno.writeTextFile(`${dir}/config.json`, '{"width": "wide"}');
    assert.match(
      await refusal(dir, "restart"),
      /is not a run \(.*config\.json is not a run's config \(Expected width to be an integer/,
    );
    assert.deepEqual(await snapshot(dir), {
      "history.json": "my notes",
      "config.json": '{"width": "wide"}',
    });
  }));

Deno.test("prepareRunFolder('restart') deletes only the run's own files, and refuses a run holding others", () =>
  withDir(async (dir) => {
    await writeRun(dir);
    await Deno.writeTextFile(`${dir}/notes.txt`, "mine");
    await Deno.writeTextFile(`${dir}/model/mine.txt`, "mine");
    const before = await snapshot(dir);
    assert.equal(
      await refusal(dir, "restart"),
      `--restart deletes only a run's own files, and ${dir} also holds model/mine.txt, ` +
        `notes.txt: move them away or choose another --out`,
    );
    assert.deepEqual(await snapshot(dir), before);
    await Deno.remove(`${dir}/notes.txt`);
    await Deno.remove(`${dir}/model/mine.txt`);
    const prepared = await prepareRunFolder(dir, "restart");
    assert.deepEqual(prepared.removedRun, [
      "checkpoint.safetensors",
      "curves.svg",
      "history.json",
      "model",
      "config.json",
    ]);
    assert.deepEqual(await snapshot(dir), {});
  }));

Deno.test("prepareRunFolder() removes temporary files of interrupted writes, and only a run's", () =>
  withDir(async (dir) => {
    await writeRun(dir);
    const leftovers = [
      `checkpoint.safetensors${LEFTOVER}`,
      `history.json${LEFTOVER}`,
      `model/weights.bin${LEFTOVER}`,
    ];
    for (const name of leftovers) await Deno.writeTextFile(`${dir}/${name}`, "half");
    const prepared = await prepareRunFolder(dir, "resume");
    assert.deepEqual(prepared.removedLeftovers, leftovers);
    const files = Object.keys(await snapshot(dir));
    assert.deepEqual(files.filter((f) => f.includes(".tmp-")), []);
    // A name that only looks like one is the user's: the folder is then not the run's alone.
    await Deno.writeTextFile(`${dir}/notes.txt${LEFTOVER}`, "mine");
    await prepareRunFolder(dir, "resume");
    assert.equal(await Deno.readTextFile(`${dir}/notes.txt${LEFTOVER}`), "mine");
  }));

Deno.test("prepareRunFolder('resume') of a run killed during its first checkpoint says there is none yet", () =>
  withDir(async (dir) => {
    await writeRun(dir, { checkpoint: false });
    await Deno.writeFile(`${dir}/checkpoint.safetensors${LEFTOVER}`, new Uint8Array(100));
    assert.equal(
      await refusal(dir, "resume"),
      `no checkpoint in ${dir} yet: the run never completed an epoch; start it again with --restart`,
    );
    assert.deepEqual(Object.keys(await snapshot(dir)), ["config.json"], "the leftover is gone");
    assert.equal(
      await refusal(dir, "new"),
      `${dir} holds a run that never completed an epoch (config.json): start it over with ` +
        `--restart, or choose another --out`,
    );
    await prepareRunFolder(dir, "restart");
    await prepareRunFolder(dir, "new");
  }));

Deno.test("openRunFolder() refuses a file named as the folder, and says what a restart removed", async () => {
  const parent = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${parent}/file`, "x");
    await assert.rejects(
      openRunFolder(`${parent}/file`, "new"),
      new RunFolderError(
        `${parent}/file`,
        `Expected ${parent}/file to be a run folder but found a file`,
      ),
    );
    assert.equal(await Deno.readTextFile(`${parent}/file`), "x");
    const dir = `${parent}/run`;
    await writeRun(dir);
    await Deno.writeTextFile(`${dir}/config.json${LEFTOVER}`, "half");
    const lines: string[] = [];
    const lock = await openRunFolder(dir, "restart", { log: (line) => lines.push(line) });
    assert.deepEqual(lines, [
      `Starting over in ${dir}: removed the previous run's checkpoint.safetensors, curves.svg, ` +
      `history.json, model, config.json`,
      `Removed temporary files of an interrupted write: config.json${LEFTOVER}`,
    ]);
    // Opened again by train() in the same process: allowed, and nothing more to do.
    const again = await openRunFolder(dir, "new");
    await again.release();
    await lock.release();
    // A refused open leaves no lock behind.
    await writeRun(dir);
    await assert.rejects(openRunFolder(dir, "new"), RunFolderError);
    assert.equal(await Deno.stat(`${dir}/run.lock`).then(() => true, () => false), false);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});
