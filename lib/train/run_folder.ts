/**
 * A run folder as `train()` leaves it: `config.json` when a run starts, then
 * after every epoch the checkpoint and `history.json`, and at the end the
 * model. Every file is written atomically, so a run killed at any moment
 * leaves only complete files behind (and temporary ones, removed on the next
 * start). A folder is opened for one of three things: a new run (it must be
 * empty or absent), resuming the run in it, or restarting that run (its own
 * files are deleted, and only those); never to overwrite a run, or files that
 * are not a run's, by mistake. While a run writes its folder it holds the
 * folder's lock (`run.lock`, see `run_lock.ts`).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { writeTextFileAtomic } from "../io/atomic.ts";
import { saveModel } from "../io/tfjs_model.ts";
import {
  CHECKPOINT_FILE,
  type CheckpointState,
  type EpochRecord,
  restoreCheckpoint,
  saveCheckpoint,
} from "./checkpoint.ts";
import { ConfigError, makeConfig, type TrainConfig } from "./config.ts";
import { acquireRunLock, LOCK_FILE, type RunLock } from "./run_lock.ts";

/** The run folder's files, by name. */
export const RUN_FILES = Object.freeze({
  config: "config.json",
  history: "history.json",
  checkpoint: CHECKPOINT_FILE,
  model: "model",
  curves: "curves.svg",
  confusion: "confusion.svg",
  perClass: "per_class.svg",
  lock: LOCK_FILE,
});

/** What `model/` holds (see `saveModel`). */
const MODEL_FILES = ["model.json", "weights.bin"];

/** A temporary file of `writeFileAtomic` (`<name>.tmp-<pid>-<8 hex digits>`). */
const TMP_SUFFIX = /\.tmp-\d+-[0-9a-f]{8}$/;

/**
 * What a folder is opened for: `new` (it must be empty or absent), `resume` (it must hold a
 * run with a checkpoint), `restart` (a run's files are deleted first).
 */
export type RunFolderMode = "new" | "resume" | "restart";

/** A run folder that cannot be opened as asked; the message says why and what to do. */
export class RunFolderError extends Error {
  constructor(readonly runDir: string, message: string) {
    super(message);
    this.name = "RunFolderError";
  }
}

/** What {@linkcode prepareRunFolder} removed. */
export interface PreparedRunFolder {
  /** The previous run's files, for `restart`. */
  removedRun: string[];
  /** Temporary files of writes that were interrupted. */
  removedLeftovers: string[];
}

/** Options for {@linkcode openRunFolder}. */
export interface OpenRunFolderOptions {
  /** Told what was removed and when a stale lock is taken over. @default nothing is told */
  log?: (line: string) => void;
}

/**
 * Takes the folder's lock, then {@linkcode prepareRunFolder}: everything a trainer checks before
 * any work. Safe to call again from the same process (the lock is shared, and a prepared folder
 * stays as it is).
 *
 * @returns The lock; the caller releases it when the run is over.
 * @throws {RunFolderError} when the folder cannot be opened as `mode` asks.
 * @throws {RunLockError} when another trainer holds the folder.
 */
export async function openRunFolder(
  runDir: string,
  mode: RunFolderMode,
  options: OpenRunFolderOptions = {},
): Promise<RunLock> {
  const log = options.log ?? (() => {});
  await listFolder(runDir); // a file named as the folder is refused before anything is created
  const lock = await acquireRunLock(runDir, { log });
  try {
    const { removedRun, removedLeftovers } = await prepareRunFolder(runDir, mode);
    if (removedRun.length > 0) {
      log(`Starting over in ${runDir}: removed the previous run's ${list(removedRun)}`);
    }
    if (removedLeftovers.length > 0) {
      log(`Removed temporary files of an interrupted write: ${list(removedLeftovers)}`);
    }
    return lock;
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/**
 * Checks that `runDir` may be opened as `mode` asks, and clears what it should: temporary
 * files of interrupted writes, and for `restart` the run's own files (config, history,
 * checkpoint, model, figures). A folder holding anything else is never cleared. Call it
 * holding the folder's lock.
 *
 * @throws {RunFolderError} naming the folder, what it holds, and the way on (`--resume`,
 *   `--restart`, another `--out`).
 */
export async function prepareRunFolder(
  runDir: string,
  mode: RunFolderMode,
): Promise<PreparedRunFolder> {
  const entries = await listFolder(runDir);
  const leftovers = entries.filter((e) => isLeftover(e));
  const contents = entries.filter((e) => e !== RUN_FILES.lock && !isLeftover(e));
  const problem = await notARun(runDir, entries);
  if (mode === "new" && contents.length > 0) {
    throw notEmpty(runDir, contents, problem === null, entries);
  }
  if (mode === "restart" && contents.length > 0) checkRestartable(runDir, entries, problem);
  if (mode === "resume" && problem !== null) {
    throw new RunFolderError(runDir, `Expected a run to resume in ${runDir} but ${problem}`);
  }
  await removeFiles(runDir, leftovers);
  if (mode === "resume" && !entries.includes(RUN_FILES.checkpoint)) {
    throw new RunFolderError(
      runDir,
      `no checkpoint in ${runDir} yet: the run never completed an epoch; start it again with --restart`,
    );
  }
  const removedRun = mode === "restart" ? await removeRun(runDir, contents) : [];
  return { removedRun, removedLeftovers: leftovers };
}

/** Names in the folder, `model/`'s as `model/<name>`; none when it does not exist. */
async function listFolder(runDir: string): Promise<string[]> {
  const stat = await Deno.stat(runDir).catch(() => null);
  if (stat === null) return [];
  if (!stat.isDirectory) {
    throw new RunFolderError(runDir, `Expected ${runDir} to be a run folder but found a file`);
  }
  const names: string[] = [];
  for await (const entry of Deno.readDir(runDir)) {
    names.push(entry.name);
    if (entry.name === RUN_FILES.model && entry.isDirectory) {
      for await (const inner of Deno.readDir(`${runDir}/${entry.name}`)) {
        names.push(`${RUN_FILES.model}/${inner.name}`);
      }
    }
  }
  return names.sort();
}

/** A temporary file that one of the run's own atomic writes left behind. */
function isLeftover(entry: string): boolean {
  const name = entry.replace(TMP_SUFFIX, "");
  return name !== entry && isRunFile(name);
}

/** One of the files a run writes (`model/` and what it holds included). */
function isRunFile(entry: string): boolean {
  return (Object.values(RUN_FILES) as string[]).includes(entry) ||
    MODEL_FILES.some((f) => entry === `${RUN_FILES.model}/${f}`);
}

/**
 * Why the folder is not a run, or `null` when it is one: a run is a folder whose `config.json`
 * is a valid {@linkcode TrainConfig}, the first file every run writes.
 */
async function notARun(runDir: string, entries: string[]): Promise<string | null> {
  const path = `${runDir}/${RUN_FILES.config}`;
  if (!entries.includes(RUN_FILES.config)) {
    return entries.length === 0 ? "it is empty or absent" : `it has no ${RUN_FILES.config}`;
  }
  try {
    makeConfig(JSON.parse(await Deno.readTextFile(path)));
    return null;
  } catch (error) {
    if (!(error instanceof SyntaxError || error instanceof ConfigError)) throw error;
    return `${path} is not a run's config (${error.message})`;
  }
}

function notEmpty(
  runDir: string,
  contents: string[],
  isRun: boolean,
  entries: string[],
): RunFolderError {
  if (!isRun) {
    return new RunFolderError(
      runDir,
      `Expected ${runDir} to be a new or empty folder but it holds ${list(contents)}, ` +
        `and not a run (no valid ${RUN_FILES.config}): choose another --out`,
    );
  }
  if (!entries.includes(RUN_FILES.checkpoint)) {
    return new RunFolderError(
      runDir,
      `${runDir} holds a run that never completed an epoch (${list(contents)}): ` +
        `start it over with --restart, or choose another --out`,
    );
  }
  return new RunFolderError(
    runDir,
    `${runDir} already holds a run (${list(contents)}): continue it with --resume, ` +
      `or start it over with --restart (which deletes that run's files)`,
  );
}

/** `--restart` clears a run's own files only: the folder must be a run and hold nothing else. */
function checkRestartable(runDir: string, entries: string[], problem: string | null): void {
  if (problem !== null) {
    throw new RunFolderError(
      runDir,
      `--restart deletes only a run's own files, and ${runDir} is not a run (${problem}): ` +
        `choose another --out`,
    );
  }
  const foreign = entries.filter((e) => !isRunFile(e) && !isLeftover(e));
  if (foreign.length > 0) {
    throw new RunFolderError(
      runDir,
      `--restart deletes only a run's own files, and ${runDir} also holds ${list(foreign)}: ` +
        `move them away or choose another --out`,
    );
  }
}

/** Deletes the run's files, `config.json` last (until then the folder is still a run). */
async function removeRun(runDir: string, contents: string[]): Promise<string[]> {
  const order = contents.filter((e) => !e.startsWith(`${RUN_FILES.model}/`))
    .sort((a, b) => Number(a === RUN_FILES.config) - Number(b === RUN_FILES.config));
  for (const name of order) await Deno.remove(`${runDir}/${name}`, { recursive: true });
  return order;
}

async function removeFiles(runDir: string, names: string[]): Promise<void> {
  for (const name of names) await Deno.remove(`${runDir}/${name}`).catch(() => {});
}

/** `a, b, c` or `a, ..., h and 3 more`; the model's files count as one (`model`). */
function list(entries: string[]): string {
  const names = entries.filter((e) => !e.startsWith(`${RUN_FILES.model}/`) || !isRunFile(e));
  const shown = names.slice(0, 8).join(", ");
  return names.length > 8 ? `${shown} and ${names.length - 8} more` : shown;
}

// Fields a resumed run must share with the run it continues; epochs may grow, and backend and
// learning rate may change (a lower rate is the usual cure after a diverged run).
const RESUME_FIXED: (keyof TrainConfig)[] = [
  "arch",
  "batchSize",
  "width",
  "trainLimit",
  "testLimit",
  "seed",
];

/** Creates the folder (and its parents) and writes the run's `config.json`. */
export async function startRunFolder(runDir: string, config: TrainConfig): Promise<void> {
  await Deno.mkdir(runDir, { recursive: true });
  await writeTextFileAtomic(
    `${runDir}/${RUN_FILES.config}`,
    JSON.stringify(config, null, 2) + "\n",
  );
}

/**
 * Loads the folder's checkpoint into `model` and `optimizer`, after checking
 * that `config` may continue the run it was saved by.
 *
 * @returns The saved state: epoch, RNG state, history and the saved config.
 * @throws {Error} If the checkpoint cannot be read or does not check out, a field that must
 *   stay the same changed (naming each, with both values), or `config.epochs` is fewer than the
 *   epochs already trained.
 */
export async function resumeFromRunFolder(
  runDir: string,
  config: TrainConfig,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
): Promise<CheckpointState> {
  // Checked before any weight is loaded: a model of another arch or width would otherwise be
  // refused weight by weight, which does not say why.
  const checkState = (state: CheckpointState) => {
    const changed = RESUME_FIXED.filter((k) => state.config[k] !== config[k]);
    if (changed.length > 0) {
      throw new Error(
        `Cannot resume ${runDir}: ${
          changed.map((k) => `${k} was ${state.config[k]}, now ${config[k]}`).join(", ")
        }`,
      );
    }
    if (config.epochs < state.epoch) {
      throw new Error(
        `Cannot resume ${runDir} with epochs ${config.epochs}: it has already trained ${state.epoch}`,
      );
    }
  };
  return await restoreCheckpoint(`${runDir}/${RUN_FILES.checkpoint}`, model, optimizer, {
    checkState,
  });
}

/** `history.json`, atomically. */
export function saveHistory(runDir: string, history: readonly EpochRecord[]): Promise<void> {
  return writeTextFileAtomic(
    `${runDir}/${RUN_FILES.history}`,
    JSON.stringify(history, null, 2) + "\n",
  );
}

/** After an epoch: the checkpoint, then `history.json` (both atomic). */
export async function saveEpoch(
  runDir: string,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  state: CheckpointState,
): Promise<void> {
  await saveCheckpoint(`${runDir}/${RUN_FILES.checkpoint}`, model, optimizer, state);
  await saveHistory(runDir, state.history);
}

/** At the end: the trained model in TensorFlow.js format, `model/`. */
export function saveFinalModel(runDir: string, model: tf.LayersModel): Promise<void> {
  return saveModel(model, `${runDir}/${RUN_FILES.model}`);
}

export type { EpochRecord };
