/**
 * The dependency rule (STYLE.md 1a): the modules a learner reads import only
 * TensorFlow.js, each other and the file-format modules, never a backend, FFI
 * or WASM internals. Backends plug in through `lib/backends/acceleration.ts`.
 */
import assert from "node:assert/strict";
import { importSpecifiers, reachable, ruleViolations } from "./support/import_graph.ts";

const ROOT = new URL("..", import.meta.url);
const read = (path: string) => Deno.readTextFileSync(new URL(path, ROOT));

/** What a learner reads, and what those modules are made of. */
function learnerModules(): string[] {
  const inFolder = (folder: string) =>
    [...Deno.readDirSync(new URL(folder, ROOT))]
      .filter((e) => e.isFile && e.name.endsWith(".ts"))
      .map((e) => `${folder}${e.name}`);
  return [
    "lib/data.ts",
    "lib/model.ts",
    "lib/train.ts",
    ...inFolder("lib/train/"),
    ...inFolder("lib/io/"),
    "lib/report/figures.ts",
  ];
}

Deno.test("no module a learner reads can reach a backend, FFI or WASM internals", () => {
  assert.deepEqual(ruleViolations(learnerModules(), read), []);
});

Deno.test("the learner modules are the ones the README names, and they exist", () => {
  const modules = learnerModules();
  for (const path of ["lib/data.ts", "lib/model.ts", "lib/train.ts", "lib/train/config.ts"]) {
    assert.ok(modules.includes(path), path);
    assert.ok(read(path).length > 0);
  }
});

Deno.test("ruleViolations() reports a learner module that imports a backend, with the chain", () => {
  const withImport = (path: string, line: string) => (p: string) =>
    p === path ? `${line}\n${read(p)}` : read(p);
  const direct = ruleViolations(
    ["lib/model.ts"],
    withImport("lib/model.ts", 'import { initBackend } from "./backends/init.ts";'),
  );
  assert.ok(
    direct.some((v) => v.includes("lib/model.ts -> lib/backends/init.ts")),
    direct.join("\n"),
  );
  // Through a file-format module, two imports away.
  const indirect = ruleViolations(
    ["lib/data.ts"],
    withImport("lib/io/tar.ts", 'import "../backends/native/kernels.ts";'),
  );
  assert.ok(
    indirect.some((v) =>
      /lib\/data\.ts -> .*lib\/io\/tar\.ts -> lib\/backends\/native\/kernels\.ts/.test(v)
    ),
    indirect.join("\n"),
  );
  // A dynamic import of a backend package counts as well.
  const dynamic = ruleViolations(
    ["lib/train.ts"],
    withImport("lib/train.ts", 'const wasm = await import("@tensorflow/tfjs-backend-wasm");'),
  );
  assert.ok(dynamic.some((v) => v.includes("a TensorFlow.js backend package")), dynamic.join());
});

Deno.test("importSpecifiers() finds static, re-export and dynamic imports, not comments", () => {
  const source = [
    'import * as tf from "@tensorflow/tfjs";',
    'import { a, type B } from "./a.ts";',
    'export { c } from "../c.ts";',
    'export * from "./d.ts";',
    'import "./side_effect.ts";',
    'const e = await import("./e.ts");',
    '// import { x } from "./commented.ts";',
    '/* import "./block.ts"; */',
  ].join("\n");
  assert.deepEqual(importSpecifiers(source), [
    "@tensorflow/tfjs",
    "./a.ts",
    "../c.ts",
    "./d.ts",
    "./side_effect.ts",
    "./e.ts",
  ]);
});

Deno.test("the backends do reach FFI: the rule's checks find what they look for", () => {
  const reached = reachable(["lib/backends/init.ts"], read).map((r) => r.module);
  assert.ok(reached.includes("lib/backends/native/kernels.ts"));
  assert.ok(reached.includes("@tensorflow/tfjs-backend-wasm"));
  assert.notDeepEqual(ruleViolations(["lib/backends/init.ts"], read), []);
});

Deno.test("the README's layout table names every file of lib/, bin/, tools/ and web/", () => {
  const readme = read("README.md");
  const table = readme.slice(readme.indexOf("## Layout"));
  const named = new Set([...table.matchAll(/`([^`]+)`/g)].map((m) => m[1]));
  const files: string[] = [];
  const walk = (folder: string) => {
    for (const entry of Deno.readDirSync(new URL(folder, ROOT))) {
      const path = `${folder}${entry.name}`;
      if (entry.isDirectory) walk(`${path}/`);
      else files.push(path);
    }
  };
  for (const folder of ["lib/", "bin/", "tools/", "web/"]) walk(folder);
  const missing = files.filter((f) => !named.has(f));
  assert.deepEqual(missing, [], `not in the README's layout table: ${missing.join(", ")}`);
  // And nothing the table names is gone.
  const gone = [...named].filter((p) => /^(lib|bin|tools|web)\/.+\.\w+$/.test(p))
    .filter((p) => !files.includes(p));
  assert.deepEqual(gone, [], `in the table but not in the tree: ${gone.join(", ")}`);
});
