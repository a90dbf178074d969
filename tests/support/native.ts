/**
 * Whether the native backend can run here: its library built (`deno task test`
 * builds it first) and loadable. Tests of the native backend skip without it.
 *
 * @module
 */
import { loadNativeLibrary } from "../../lib/backends/native/kernels.ts";

/** True when the native library loads in this process. */
export function nativeLoads(): boolean {
  try {
    loadNativeLibrary();
    return true;
  } catch {
    return false;
  }
}
