/**
 * The import graph of the project's own modules, for the dependency rule in
 * `tests/architecture_test.ts`: which files a module can reach through its
 * imports (static, `export ... from`, and dynamic `import("...")` with a
 * literal), and by which chain.
 *
 * @module
 */
import { dirname, join, normalize, relative } from "node:path";

/** Reads a module's source by its path relative to the repository root. */
export type ReadSource = (path: string) => string;

const IMPORT = /(?:^|[^\w.$])(?:import|export)\s*(?:[\w*{}\s,$]+\s*from\s*)?["']([^"']+)["']/g;
const DYNAMIC = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** The specifiers a source imports, in order, bare and relative alike; comments are skipped. */
export function importSpecifiers(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");
  const found: string[] = [];
  for (const pattern of [IMPORT, DYNAMIC]) {
    for (const match of code.matchAll(pattern)) found.push(match[1]);
  }
  return found;
}

/** One module reached, and the chain of imports from the entry that reached it. */
export interface Reached {
  /** A repository-relative path, or a bare specifier such as `@tensorflow/tfjs-backend-wasm`. */
  module: string;
  chain: string[];
}

/**
 * Every module reachable from `entries` (repository-relative paths), with the
 * first chain found to each (breadth first, so the shortest).
 */
export function reachable(entries: string[], read: ReadSource): Reached[] {
  const seen = new Map<string, string[]>();
  const queue: Reached[] = entries.map((entry) => ({ module: entry, chain: [entry] }));
  while (queue.length > 0) {
    const { module, chain } = queue.shift()!;
    if (seen.has(module)) continue;
    seen.set(module, chain);
    if (!module.startsWith("lib/") && !module.startsWith("web/")) continue; // a package
    for (const specifier of importSpecifiers(read(module))) {
      const next = specifier.startsWith(".")
        ? relative(".", normalize(join(dirname(module), specifier)))
        : specifier;
      if (!seen.has(next)) queue.push({ module: next, chain: [...chain, next] });
    }
  }
  return [...seen].map(([module, chain]) => ({ module, chain }));
}

/** What a module a learner reads must never reach. */
export interface Forbidden {
  /** Why, in a few words: "a backend module", "Deno.dlopen (FFI)". */
  reason: string;
  test: (module: string, read: ReadSource) => boolean;
}

/** The dependency rule of STYLE.md 1a: no backend, no FFI, no WASM internals. */
export const LEARNER_RULE: readonly Forbidden[] = [
  { reason: "a backend module (lib/backends/)", test: (m) => m.startsWith("lib/backends/") },
  {
    reason: "a TensorFlow.js backend package",
    test: (m) => /^(npm:)?@tensorflow\/tfjs-backend-/.test(m),
  },
  {
    reason: "Deno.dlopen (FFI)",
    test: (m, read) => m.startsWith("lib/") && /\bDeno\.dlopen\b/.test(read(m)),
  },
  {
    reason: "WebAssembly internals",
    test: (m, read) => m.startsWith("lib/") && /\bWebAssembly\.|node:worker_threads/.test(read(m)),
  },
];

/** One break of the rule: the module reached, why it is forbidden, and the chain that reached it. */
export function ruleViolations(
  entries: string[],
  read: ReadSource,
  rule: readonly Forbidden[] = LEARNER_RULE,
): string[] {
  const violations: string[] = [];
  for (const { module, chain } of reachable(entries, read)) {
    for (const forbidden of rule) {
      if (forbidden.test(module, read)) {
        violations.push(`${chain[0]} reaches ${forbidden.reason}: ${chain.join(" -> ")}`);
      }
    }
  }
  return violations;
}
