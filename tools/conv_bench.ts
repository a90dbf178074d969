/**
 * Times the native convolution kernels alone, per layer shape of ResNet-18 at
 * batch 64: forward, input gradient, filter gradient (the best of 7 runs
 * after one warm-up), and the GFLOP/s of the forward pass.
 *
 *   deno task build:native
 *   deno run --allow-read --allow-ffi tools/conv_bench.ts '[[32,64,64,1],[16,16,32,2]]'
 *
 * Each shape is [input size, in channels, out channels, stride] of a 3x3
 * convolution padded by 1; the default list is the article's (width 64)
 * stage convolutions. This is what chose `CHUNK_FLOATS` in native/kernels.c.
 *
 * @module
 */
import { checkedNative, loadNativeLibrary } from "../lib/backends/native/kernels.ts";

// Through the binding's checks, as the kernels call it: a wrong shape below fails with a
// message instead of overrunning a buffer.
loadNativeLibrary();

const shapes: [number, number, number, number][] = Deno.args.length > 0
  ? JSON.parse(Deno.args[0])
  : [[32, 64, 64, 1], [32, 64, 128, 2], [16, 128, 128, 1], [8, 256, 256, 1], [4, 512, 512, 1]];
const batch = 64;

/** Best of 7 timed runs after one warm-up, in milliseconds. */
function best(run: () => number): number {
  run();
  let fastest = Infinity;
  for (let i = 0; i < 7; i++) {
    const start = performance.now();
    if (run() !== 0) throw new Error("a native kernel reported an allocation failure");
    fastest = Math.min(fastest, performance.now() - start);
  }
  return fastest;
}

for (const [size, cin, cout, stride] of shapes) {
  const out = Math.ceil(size / stride);
  const g = Int32Array.of(batch, size, size, cin, 3, 3, cout, stride, stride, 1, 1, out, out);
  const x = new Float32Array(batch * size * size * cin).fill(0.5);
  const w = new Float32Array(9 * cin * cout).fill(0.1);
  const y = new Float32Array(batch * out * out * cout).fill(0.2);
  const gflop = 2 * batch * out * out * 9 * cin * cout / 1e9;
  const forward = best(() => checkedNative.conv2d(x, w, null, y, g, 0));
  const input = best(() => checkedNative.conv2dBackpropInput(y, w, x, g));
  const filter = best(() => checkedNative.conv2dBackpropFilter(x, y, w, g));
  console.log(
    `${size}x${size} ${cin}->${cout} stride ${stride}: forward ${forward.toFixed(1)} ms ` +
      `(${(gflop / forward * 1e3).toFixed(0)} GFLOP/s), input gradient ${input.toFixed(1)} ms, ` +
      `filter gradient ${filter.toFixed(1)} ms`,
  );
}
