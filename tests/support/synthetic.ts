/**
 * Small learnable stand-ins for CIFAR-10 splits, for tests that need data but not the archive:
 * each class is a distinct colour with pixel noise, so a few steps of training can tell them apart.
 */
import type { Split } from "../../lib/data.ts";
import { Rng } from "../../lib/train/rng.ts";

const PIXELS = 32 * 32;

// Ten well-separated colours, one per class.
const PALETTE = [
  [230, 30, 30],
  [30, 230, 30],
  [30, 30, 230],
  [230, 230, 30],
  [230, 30, 230],
  [30, 230, 230],
  [128, 128, 128],
  [230, 128, 30],
  [20, 20, 20],
  [240, 240, 240],
];

/** `count` images, labels cycling 0..9, NHWC uint8. */
export function syntheticSplit(count: number, seed = 1): Split {
  const rng = new Rng(seed);
  const images = new Uint8Array(count * PIXELS * 3);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const label = i % 10;
    labels[i] = label;
    const base = PALETTE[label];
    for (let p = 0; p < PIXELS; p++) {
      for (let c = 0; c < 3; c++) {
        images[(i * PIXELS + p) * 3 + c] = Math.max(0, Math.min(255, base[c] - 20 + rng.int(40)));
      }
    }
  }
  return { images, labels, count };
}
