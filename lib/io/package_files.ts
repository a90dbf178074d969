/**
 * Files inside an npm package in `node_modules`: the wasm backend's binaries,
 * TensorFlow.js's browser bundle. Found through the module resolver, not the
 * working directory, so the path is the same under `deno run`, `deno test` and
 * a Jupyter kernel started in `notebooks/`.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/**
 * The folder holding the file that `specifier` (a bare npm specifier of the
 * import map) resolves to, with a trailing slash.
 *
 * @throws {Error} If it resolves to something other than a `file:` URL (no
 *   `"nodeModulesDir": "auto"` in deno.json).
 *
 * @example
 * ```ts
 * import { packageEntryFolder } from "./package_files.ts";
 * console.log(packageEntryFolder("@tensorflow/tfjs").endsWith("/dist/")); // true
 * ```
 */
export function packageEntryFolder(specifier: string): string {
  const entry = import.meta.resolve(specifier);
  if (!entry.startsWith("file:")) {
    throw new Error(
      `Expected ${specifier} to resolve to a file: URL in node_modules but found ${entry}; ` +
        `deno.json needs "nodeModulesDir": "auto"`,
    );
  }
  return fileURLToPath(new URL(".", entry));
}
