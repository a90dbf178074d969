/**
 * lib/train/run_lock.ts: one trainer per run folder. Other trainers are child processes here,
 * since the lock is the operating system's and one process shares its own.
 */
import assert from "node:assert/strict";
import { acquireRunLock, LOCK_FILE, RunLockError } from "../lib/train/run_lock.ts";

const ROOT = new URL("..", import.meta.url);
const LOCK_MODULE = new URL("../lib/train/run_lock.ts", import.meta.url).href;
const COMMAND_MODULE = new URL("../lib/cli/train_command.ts", import.meta.url).href;

/**
 * A process that takes `dir`'s lock, prints `locked`, and then, by `then`: `release` releases
 * it when its stdin closes; `wait` waits to be killed or interrupted (with the trainer's own
 * Ctrl-C handler installed).
 */
async function lockHolder(dir: string, then: "release" | "wait") {
  const code = `
    import { acquireRunLock } from ${JSON.stringify(LOCK_MODULE)};
    import { explainInterrupt } from ${JSON.stringify(COMMAND_MODULE)};
    explainInterrupt();
    const lock = await acquireRunLock(${JSON.stringify(dir)});
    console.log("locked");
    if (${JSON.stringify(then)} === "release") {
      for await (const _ of Deno.stdin.readable) { /* until closed */ }
      await lock.release();
    } else {
      await new Promise((resolve) => setTimeout(resolve, 60_000));
    }
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  assert.equal(new TextDecoder().decode(value).trim(), "locked");
  reader.releaseLock();
  return child;
}

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

Deno.test("acquireRunLock() refuses a second trainer while the first holds the lock, naming it", async () => {
  const dir = await Deno.makeTempDir();
  const child = await lockHolder(dir, "release");
  try {
    const error = await acquireRunLock(dir).then(
      () => assert.fail("took a lock another process holds"),
      (e: Error) => e,
    );
    assert.ok(error instanceof RunLockError);
    assert.equal(error.holder?.pid, child.pid);
    assert.match(
      error.message,
      new RegExp(
        `^${dir} is in use by another trainer \\(process ${child.pid} on host \\S+, started ` +
          `\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\): wait for it to finish or stop it, or choose another --out$`,
      ),
    );
  } finally {
    await child.stdin.close();
    await child.output();
  }
  // Released: the file is gone and the folder can be locked again.
  assert.equal(await exists(`${dir}/${LOCK_FILE}`), false);
  const lock = await acquireRunLock(dir);
  await lock.release();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("acquireRunLock() takes over the lock of a trainer killed with SIGKILL, saying so", async () => {
  const dir = await Deno.makeTempDir();
  const child = await lockHolder(dir, "wait");
  child.kill("SIGKILL");
  await child.output();
  // kill -9 leaves the file; nobody holds its lock any more.
  assert.equal(await exists(`${dir}/${LOCK_FILE}`), true);
  const lines: string[] = [];
  const lock = await acquireRunLock(dir, { log: (line) => lines.push(line) });
  try {
    assert.match(
      lines.join("\n"),
      new RegExp(
        `^Taking over the lock of ${dir} from process ${child.pid} on host \\S+, started \\S+: ` +
          `it is no longer running$`,
      ),
    );
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/${LOCK_FILE}`)).pid, Deno.pid);
  } finally {
    await lock.release();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acquireRunLock() is released when the trainer is interrupted (Ctrl-C, exit 130)", async () => {
  const dir = await Deno.makeTempDir();
  const child = await lockHolder(dir, "wait");
  child.kill("SIGINT");
  const { code, stderr } = await child.output();
  assert.equal(code, 130);
  assert.match(new TextDecoder().decode(stderr), /Interrupted\./);
  assert.equal(await exists(`${dir}/${LOCK_FILE}`), false);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("acquireRunLock() is shared within a process and removes a folder it created if left empty", async () => {
  const parent = await Deno.makeTempDir();
  const dir = `${parent}/new/run`;
  const outer = await acquireRunLock(dir);
  const inner = await acquireRunLock(dir);
  await inner.release();
  assert.equal(await exists(`${dir}/${LOCK_FILE}`), true, "still held by the outer holder");
  await outer.release();
  await outer.release(); // twice is harmless
  assert.equal(await exists(dir), false);
  // A folder that was there stays, and so does one the run wrote to.
  const kept = await acquireRunLock(parent);
  await kept.release();
  assert.equal(await exists(parent), true);
  const written = await acquireRunLock(dir);
  await Deno.writeTextFile(`${dir}/config.json`, "{}");
  await written.release();
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["config.json"]);
  await Deno.remove(parent, { recursive: true });
});
