/**
 * Times the native convolution products alone on ResNet-18's layer shapes:
 * forward (with bias and ReLU, as `FusedConv2D`), input gradient and filter
 * gradient, the best of 7 runs after one warm-up, with the GFLOP/s of each.
 * The filter gradient is timed on both implementations the backend has,
 * oneDNN's and im2col plus OpenBLAS SGEMM (kernels.c), side by side, with the
 * one the backend picks for that shape marked (`gemmFilterGradientWins`).
 *
 *   deno task build:native
 *   deno run --allow-read --allow-ffi tools/conv_bench.ts            # widths 64 and 16, batches 64 and 128
 *   deno run --allow-read --allow-ffi tools/conv_bench.ts 16 128     # one width and batch
 *
 * Shapes are the model's: the stem, each stage's 3x3 stride-1 layer, its
 * strided 3x3 entry on the zero-padded input ('valid', as `lib/model.ts`
 * builds it), and its 1x1 stride-2 shortcut.
 *
 * @module
 */
import {
  checkedNative,
  gemmFilterGradientWins,
  loadNativeLibrary,
} from "../lib/backends/native/kernels.ts";

// Through the binding's checks, as the kernels call it: a wrong shape below fails with a
// message instead of overrunning a buffer.
loadNativeLibrary();

/** [input size, in channels, out channels, stride, kernel size, padding] of one layer. */
type Layer = [number, number, number, number, number, number];

/** ResNet-18's distinct convolutions at `width` (the stem's output channels). */
export function resnetLayers(width: number): Layer[] {
  const layers: Layer[] = [[32, 3, width, 1, 3, 1], [32, width, width, 1, 3, 1]];
  for (let stage = 1, size = 32, c = width; stage < 4; stage++, size /= 2, c *= 2) {
    layers.push([size + 2, c, 2 * c, 2, 3, 0], [size, c, 2 * c, 2, 1, 0]);
    layers.push([size / 2, 2 * c, 2 * c, 1, 3, 1]);
  }
  return layers;
}

/** Best of 7 timed runs after one warm-up, in milliseconds. */
function best(run: () => number): number {
  let fastest = Infinity;
  for (let i = 0; i < 8; i++) {
    const start = performance.now();
    const status = run();
    if (status !== 0) throw new Error(`expected status 0 from a native kernel but found ${status}`);
    if (i > 0) fastest = Math.min(fastest, performance.now() - start);
  }
  return fastest;
}

function benchLayer(batch: number, [size, cin, cout, stride, k, pad]: Layer): string {
  const out = Math.floor((size + 2 * pad - k) / stride) + 1;
  const g = Int32Array.of(batch, size, size, cin, k, k, cout, stride, stride, pad, pad, pad, pad);
  const geometry = Int32Array.of(...g, out, out);
  const x = new Float32Array(batch * size * size * cin).fill(0.5);
  const w = new Float32Array(k * k * cin * cout).fill(0.1);
  const bias = new Float32Array(cout).fill(0.1);
  const y = new Float32Array(batch * out * out * cout).fill(0.2);
  const gflop = 2 * batch * out * out * k * k * cin * cout / 1e9;
  const ms = (t: number) =>
    `${t.toFixed(2).padStart(6)} (${(gflop / t * 1e3).toFixed(0).padStart(3)})`;
  const forward = best(() => checkedNative.conv2d(x, w, bias, y, geometry, 1));
  const input = best(() => checkedNative.conv2dBackpropInput(y, w, x, geometry));
  const dnnl = best(() => checkedNative.conv2dBackpropFilter(x, y, w, geometry));
  const gemm = best(() => checkedNative.gemmConv2dBackpropFilter(x, y, w, geometry));
  const picked = gemmFilterGradientWins(geometry) ? "gemm" : "onednn";
  const name = `${size}x${size} ${cin}->${cout} ${k}x${k} s${stride}`;
  return `| ${name.padEnd(24)} | ${ms(forward)} | ${ms(input)} | ${ms(dnnl)} | ${ms(gemm)} | ${
    picked.padEnd(6)
  } |`;
}

const [widths, batches] = Deno.args.length >= 2
  ? [[Number(Deno.args[0])], [Number(Deno.args[1])]]
  : [[64, 16], [64, 128]];
for (const width of widths) {
  for (const batch of batches) {
    console.log(`\nwidth ${width}, batch ${batch}: ms (GFLOP/s), best of 7`);
    console.log(
      "| layer                    | forward (oneDNN) | input grad (oneDNN) | " +
        "filter grad oneDNN | filter grad GEMM | picked |",
    );
    for (const layer of resnetLayers(width)) console.log(benchLayer(batch, layer));
  }
}
