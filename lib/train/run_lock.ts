/**
 * One writer per run folder: while a trainer writes a folder it holds an exclusive operating
 * system lock on the folder's `run.lock` (`FsFile.tryLock`), and the file says who it is
 * (process id, host, start time). A second trainer is refused with those details. The
 * operating system drops the lock when its process ends, however it ends, so a `run.lock` left
 * by a process that died (kill -9, a crash) is recognised as stale, because nobody holds its
 * lock, and taken over. (A lock by process id alone could not tell: Deno tasks may not look
 * into `/proc`, or signal another process, without `--allow-all`.)
 *
 * @module
 */
import { writeAll } from "../io/write_all.ts";

/** The lock's file name inside a run folder. */
export const LOCK_FILE = "run.lock";

/** Who holds a lock: what `run.lock` contains. */
export interface LockOwner {
  pid: number;
  /** The host's name where the task may read it, else `unknown`. */
  hostname: string;
  /** ISO 8601. */
  startedAt: string;
}

/** A run folder's lock, held by this process until {@linkcode RunLock.release}. */
export interface RunLock {
  /** The lock file. */
  readonly path: string;
  readonly owner: LockOwner;
  /** Removes `run.lock` and drops the lock (once every holder in this process released it). */
  release(): Promise<void>;
}

/** The folder is locked by another process that is still running. */
export class RunLockError extends Error {
  constructor(readonly lockPath: string, readonly holder: LockOwner | null, message: string) {
    super(message);
    this.name = "RunLockError";
  }
}

/** Options for {@linkcode acquireRunLock}. */
export interface AcquireRunLockOptions {
  /** Told when a stale lock is taken over. @default console.log */
  log?: (line: string) => void;
}

/** A lock this process holds. */
interface HeldLock {
  file: Deno.FsFile;
  owner: LockOwner;
  createdFolder: boolean;
  /** Holders in this process: the command line takes the lock, then train() inside it. */
  count: number;
  onUnload: () => void;
}

// By lock file path: the locks of this process (an OS lock cannot be taken twice by one
// process through two files, so a second taker shares the first one's).
const held = new Map<string, HeldLock>();

/**
 * Takes `runDir`'s lock, creating the folder (and its parents) if needed. Taking a lock this
 * process already holds succeeds (each holder releases it once). On `Deno.exit` (Ctrl-C
 * included, through the trainer's handler) the file is removed even if nobody released it.
 *
 * @param runDir The run folder.
 * @param options Where to say that a stale lock was taken over.
 * @returns The held lock.
 * @throws {RunLockError} naming the holder when another running process holds it.
 *
 * @example
 * ```ts
 * import { acquireRunLock } from "./run_lock.ts";
 * const dir = await Deno.makeTempDir();
 * const lock = await acquireRunLock(dir);
 * console.log(lock.owner.pid === Deno.pid); // true
 * await lock.release();
 * await Deno.remove(dir);
 * ```
 */
export async function acquireRunLock(
  runDir: string,
  options: AcquireRunLockOptions = {},
): Promise<RunLock> {
  const createdFolder = await makeFolder(runDir);
  const path = `${await Deno.realPath(runDir)}/${LOCK_FILE}`;
  const mine = held.get(path);
  if (mine !== undefined) {
    mine.count++;
    return handle(path, mine);
  }
  const file = await lockFile(path, runDir, options.log ?? console.log);
  const owner: LockOwner = {
    pid: Deno.pid,
    hostname: hostname(),
    startedAt: new Date().toISOString(),
  };
  await file.truncate(0);
  await writeAll(file, new TextEncoder().encode(JSON.stringify(owner) + "\n"));
  const lock: HeldLock = { file, owner, createdFolder, count: 1, onUnload: () => unlock(path) };
  globalThis.addEventListener("unload", lock.onUnload);
  held.set(path, lock);
  return handle(path, lock);
}

/** Creates the folder; `true` when it did not exist. */
async function makeFolder(runDir: string): Promise<boolean> {
  const existed = await Deno.stat(runDir).then(() => true, () => false);
  await Deno.mkdir(runDir, { recursive: true });
  return !existed;
}

/** Opens and locks `run.lock`, refusing when a running process holds it. */
async function lockFile(
  path: string,
  runDir: string,
  log: (line: string) => void,
): Promise<Deno.FsFile> {
  for (let tries = 0; tries < 3; tries++) {
    const file = await Deno.open(path, { read: true, write: true, create: true });
    const previous = parseOwner(await Deno.readTextFile(path).catch(() => ""));
    if (!await file.tryLock(true)) {
      file.close();
      throw new RunLockError(
        path,
        previous,
        `${runDir} is in use by another trainer (${describe(previous)}): wait for it to ` +
          `finish or stop it, or choose another --out`,
      );
    }
    // The holder may have removed the file as we opened it; a lock on a removed file is none.
    if (await isStill(file, path)) {
      if (previous !== null) {
        log(
          `Taking over the lock of ${runDir} from ${describe(previous)}: it is no longer running`,
        );
      }
      return file;
    }
    file.close();
  }
  throw new RunLockError(path, null, `Cannot lock ${path}: other trainers keep replacing it`);
}

async function isStill(file: Deno.FsFile, path: string): Promise<boolean> {
  const [opened, named] = [await file.stat(), await Deno.stat(path).catch(() => null)];
  return named !== null && opened.ino === named.ino && opened.dev === named.dev;
}

function describe(owner: LockOwner | null): string {
  return owner === null
    ? "a process that has not said who it is yet"
    : `process ${owner.pid} on host ${owner.hostname}, started ${owner.startedAt}`;
}

/** This host's name, without prompting for a permission the task was not given. */
function hostname(): string {
  if (Deno.permissions.querySync({ name: "sys", kind: "hostname" }).state === "granted") {
    return Deno.hostname();
  }
  const file = "/etc/hostname";
  if (Deno.permissions.querySync({ name: "read", path: file }).state === "granted") {
    try {
      return Deno.readTextFileSync(file).trim() || "unknown";
    } catch { /* not Linux */ }
  }
  return "unknown";
}

function parseOwner(text: string): LockOwner | null {
  try {
    const owner = JSON.parse(text);
    const valid = Number.isSafeInteger(owner?.pid) && typeof owner.hostname === "string" &&
      typeof owner.startedAt === "string";
    return valid ? owner : null;
  } catch {
    return null;
  }
}

/** Removes the file while still holding its lock, then drops the lock. */
function unlock(path: string): void {
  const lock = held.get(path);
  if (lock === undefined) return;
  held.delete(path);
  globalThis.removeEventListener("unload", lock.onUnload);
  Deno.removeSync(path);
  lock.file.close();
}

function handle(path: string, lock: HeldLock): RunLock {
  let released = false;
  return {
    path,
    owner: lock.owner,
    release: async () => {
      if (released) return;
      released = true;
      if (--lock.count > 0) return;
      unlock(path);
      // A folder the lock created and nothing was written to goes with it; Deno.remove
      // without `recursive` refuses a folder that is not empty.
      if (lock.createdFolder) {
        await Deno.remove(path.slice(0, -LOCK_FILE.length - 1)).catch(() => {});
      }
    },
  };
}
