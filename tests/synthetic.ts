/**
 * Small learnable stand-ins for CIFAR-10 splits, for tests that need data but not the archive:
 * each class is a distinct colour with noise, so a few steps of training can tell them apart.
 */
import type { Split } from "../lib/data.ts";
import { Rng } from "../lib/rng.ts";

const PIXELS = 32 * 32;

/** `count` images, labels cycling 0..9, NHWC uint8. */
export function syntheticSplit(count: number, seed = 1): Split {
  const rng = new Rng(seed);
  const images = new Uint8Array(count * PIXELS * 3);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const label = i % 10;
    labels[i] = label;
    // Class c: channel c % 3 bright, brightness rising with c.
    const base = [40, 40, 40];
    base[label % 3] = 100 + 15 * label;
    for (let p = 0; p < PIXELS; p++) {
      for (let c = 0; c < 3; c++) {
        images[(i * PIXELS + p) * 3 + c] = Math.min(255, base[c] + rng.int(40));
      }
    }
  }
  return { images, labels, count };
}
