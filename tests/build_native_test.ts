/**
 * tools/build_native.ts: what a failed build tells the reader to install.
 *
 * @module
 */
import assert from "node:assert/strict";
import { missingPackageHint } from "../tools/build_native.ts";

Deno.test("missingPackageHint() names oneDNN's package when its header or library is missing", () => {
  const hint =
    " (oneDNN is missing: on Debian/Ubuntu apt-get install libdnnl-dev; on macOS brew install " +
    "onednn libomp (untested))";
  assert.equal(
    missingPackageHint("native/onednn.c:20:10: fatal error: dnnl.h: No such file or directory"),
    hint,
  );
  assert.equal(
    missingPackageHint("/usr/bin/ld: cannot find -ldnnl: No such file or directory"),
    hint,
  );
});

Deno.test("missingPackageHint() names OpenBLAS's package, and nothing for other errors", () => {
  assert.equal(
    missingPackageHint("/usr/bin/ld: cannot find -l:libopenblas.so.0"),
    " (OpenBLAS is missing: apt-get install libopenblas0)",
  );
  assert.equal(missingPackageHint("native/kernels.c:1:1: error: expected ';'"), "");
});
