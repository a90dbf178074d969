/**
 * The tasks' permission sets in `deno.json` and `bin/task.ts`, which starts
 * the tasks with read access to the paths their command line names: a probe
 * script runs under each set (as `deno run -P=<task>` does) and reports what
 * `Deno.permissions.query` says, and whether reading outside the grant fails.
 *
 * @module
 */
import assert from "node:assert/strict";
import { namedHosts, namedPaths, taskArgs, TASKS } from "../bin/task.ts";

const ROOT = new URL("..", import.meta.url);

/** What a probe asks about, by a short name. */
const QUERIES: Record<string, Deno.PermissionDescriptor> = {
  "read /etc/passwd": { name: "read", path: "/etc/passwd" },
  "read ..": { name: "read", path: ".." },
  "read ./deno.json": { name: "read", path: "./deno.json" },
  "read ./node_modules": { name: "read", path: "./node_modules" },
  "read ./runs/a": { name: "read", path: "./runs/a" },
  "read ./data/a": { name: "read", path: "./data/a" },
  "read ./web/index.html": { name: "read", path: "./web/index.html" },
  "write ./runs/a": { name: "write", path: "./runs/a" },
  "write ./data/a": { name: "write", path: "./data/a" },
  "write ./lib": { name: "write", path: "./lib" },
  "env HOME": { name: "env", variable: "HOME" },
  "env PATH": { name: "env", variable: "PATH" },
  "env OPENBLAS_CORETYPE": { name: "env", variable: "OPENBLAS_CORETYPE" },
  "env OPENBLAS_L2_SIZE": { name: "env", variable: "OPENBLAS_L2_SIZE" },
  "net www.cs.toronto.edu:443": { name: "net", host: "www.cs.toronto.edu:443" },
  "net 127.0.0.1:8000": { name: "net", host: "127.0.0.1:8000" },
  "net example.com:443": { name: "net", host: "example.com:443" },
  "run sh": { name: "run", command: "sh" },
  "run /usr/bin/python3": { name: "run", command: "/usr/bin/python3" },
  "ffi the library": { name: "ffi", path: "./native/build/libresnet_native.so" },
  "ffi libc": { name: "ffi", path: "/lib/x86_64-linux-gnu/libc.so.6" },
  "sys cpus": { name: "sys", kind: "cpus" },
  "sys hostname": { name: "sys", kind: "hostname" },
};

/** What each task may do, by query: granted, everything else not (the README's table). */
const GRANTED: Record<(typeof TASKS)[number], string[]> = {
  train: [
    "read ./node_modules",
    "read ./runs/a",
    "read ./data/a",
    "write ./runs/a",
    "write ./data/a",
    "net www.cs.toronto.edu:443",
    "ffi the library",
    "sys hostname",
  ],
  // The two OpenBLAS settings, which the bench reports beside its SGEMM figures.
  bench: [
    "read ./node_modules",
    "env OPENBLAS_CORETYPE",
    "env OPENBLAS_L2_SIZE",
    "run /usr/bin/python3",
    "ffi the library",
    "sys cpus",
  ],
  predict: ["read ./node_modules", "read ./runs/a", "ffi the library"],
  serve: ["read ./node_modules", "read ./runs/a", "read ./web/index.html", "net 127.0.0.1:8000"],
  // The depth experiment trains as the trainer does: the same grants.
  "experiment:depth": [
    "read ./node_modules",
    "read ./runs/a",
    "read ./data/a",
    "write ./runs/a",
    "write ./data/a",
    "net www.cs.toronto.edu:443",
    "ffi the library",
    "sys hostname",
  ],
};

/**
 * A probe as a `data:` module: the state of each query, and the error that
 * reading `/etc/passwd` and `$HOME` gives.
 */
function probeModule(): string {
  const source = `
    const queries = ${JSON.stringify(QUERIES)};
    const states = {};
    for (const [name, descriptor] of Object.entries(queries)) {
      states[name] = Deno.permissions.querySync(descriptor).state;
    }
    const attempt = (f) => { try { f(); return "read"; } catch (e) { return e.name; } };
    states["reading /etc/passwd"] = attempt(() => Deno.readTextFileSync("/etc/passwd"));
    states["Deno.env.get('HOME')"] = String(Deno.env.get("HOME"));
    console.log(JSON.stringify(states));
  `;
  return `data:application/javascript,${encodeURIComponent(source)}`;
}

/** Runs `deno <args>` from the repository root; its stdout as JSON. */
async function probe(args: string[]): Promise<Record<string, string>> {
  const out = await new Deno.Command(Deno.execPath(), { args, cwd: ROOT }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

for (const task of TASKS) {
  Deno.test(`deno.json's "${task}" permission set grants only what deno task ${task} needs`, async () => {
    const states = await probe([
      "run",
      "--no-prompt",
      "--config=deno.json",
      `-P=${task}`,
      probeModule(),
    ]);
    const granted = Object.keys(QUERIES).filter((name) => states[name] === "granted");
    assert.deepEqual(granted, GRANTED[task]);
    assert.equal(states["reading /etc/passwd"], "NotCapable");
    // Ignored, not prompted for: no variable is read, none is asked for on a terminal.
    assert.equal(states["env HOME"], "denied");
    assert.equal(states["Deno.env.get('HOME')"], "undefined");
  });
}

Deno.test("namedPaths() takes arguments and flag values, not flags, numbers or URLs", () => {
  const args = [
    "--width",
    "16",
    "--lr=1e-3",
    "--data",
    "https://example.com/c.tar.gz",
    "--out=runs/x",
    "--test-time-flip",
    "photo.jpg",
    "/home/me/Pictures/cat.jpg",
  ];
  assert.deepEqual(namedPaths(args), ["runs/x", "photo.jpg", "/home/me/Pictures/cat.jpg"]);
});

Deno.test("taskArgs() grants reading the paths named, and nothing else outside the set", async () => {
  const dir = await Deno.makeTempDir({ prefix: "permissions_test_" });
  try {
    const photo = `${dir}/cat.png`;
    const args = taskArgs("predict", ["--model", "runs/smoke", photo]);
    // Run the probe where the entry point would be.
    const script = args.findIndex((arg) => arg.endsWith("/bin/predict.ts"));
    assert.ok(script > 0, `no entry point in ${args}`);
    const queries = { ...QUERIES, "read the photo": { name: "read", path: photo } };
    const source = `
      const states = {};
      for (const [name, d] of Object.entries(${JSON.stringify(queries)})) {
        states[name] = Deno.permissions.querySync(d).state;
      }
      console.log(JSON.stringify(states));
    `;
    const module = `data:application/javascript,${encodeURIComponent(source)}`;
    const states = await probe([...args.slice(0, script), module]);
    const granted = Object.keys(queries).filter((name) => states[name] === "granted");
    assert.deepEqual(granted, [...GRANTED.predict, "read the photo"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("taskArgs() refuses a path with a comma, which --allow-read would split", () => {
  assert.throws(
    () => taskArgs("train", ["--data", "a,b.tar.gz"]),
    /deno task train: expected paths without commas \(Deno's --allow-read splits at them\) but found "a,b\.tar\.gz"; rename it/,
  );
});

Deno.test("deno task train, bench, predict, serve and experiment:depth start through bin/task.ts", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  for (const task of TASKS) {
    assert.match(config.tasks[task], new RegExp(`deno run --allow-run bin/task\\.ts ${task}$`));
  }
  // A task's entry point is named for it, ":" written "_".
  const depth = taskArgs("experiment:depth", ["--epochs", "1"]);
  assert.ok(depth.at(-3)?.endsWith("/bin/experiment_depth.ts"), depth.join(" "));
  assert.ok(depth.includes("-P=experiment:depth"));
});

Deno.test("taskArgs() grants connecting to the host of a URL the user names, and no other", () => {
  const args = ["--data", "http://127.0.0.1:8123/cifar-10-binary.tar.gz", "--md5", "0".repeat(32)];
  assert.deepEqual(namedHosts(args), ["127.0.0.1:8123"]);
  assert.deepEqual(namedHosts(["--data=https://mirror.example/c.tar.gz"]), ["mirror.example"]);
  assert.deepEqual(namedHosts(["--data", "../shared/c.tar.gz", "--width", "8"]), []);
  const net = taskArgs("train", args).filter((a) => a.startsWith("--allow-net="));
  assert.deepEqual(net, ["--allow-net=www.cs.toronto.edu,127.0.0.1:8123"]);
  // Without a URL the permission set's own grant stands alone.
  assert.deepEqual(
    taskArgs("train", ["--width", "8"]).filter((a) => a.startsWith("--allow-net")),
    [],
  );
});

Deno.test("deno task train --data URL connects to that host (a loopback server)", async () => {
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    requests++;
    return new Response("not an archive", { status: 404 });
  });
  try {
    const url = `http://127.0.0.1:${server.addr.port}/cifar-10-binary.tar.gz`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-run",
        "bin/task.ts",
        "train",
        ...["--data", url, "--md5", "0".repeat(32), "--width", "8", "--epochs", "1"],
        ...["--out", `runs/never-${crypto.randomUUID().slice(0, 8)}`],
      ],
      cwd: new URL("..", import.meta.url),
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.notEqual(out.code, 0);
    assert.equal(requests, 1, `the trainer reached the server once: ${stderr}`);
    assert.match(stderr, /404/);
    assert.doesNotMatch(stderr, /may not connect/);
  } finally {
    await server.shutdown();
  }
});
