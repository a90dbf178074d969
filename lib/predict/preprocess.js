// @ts-check
/**
 * How a photo of any size becomes a CIFAR-10 input, and how logits become a ranked list:
 * plain JavaScript with no imports, so the browser page loads it as it is (no build step)
 * and `lib/predict.ts` imports the very same functions, which makes the page and
 * `deno task predict` agree to the last bit on the pixels they feed the model.
 *
 * @module
 */

/**
 * Center-crops an image to a square (the largest that fits, centered; an odd leftover
 * pixel goes to the right or bottom) and scales that square to `size` x `size` by area
 * averaging: each output pixel is the mean of the source area it covers, with source
 * pixels cut by the output grid counted by the fraction that falls inside. So a photo is
 * not squashed, every source pixel contributes (no aliasing when shrinking a large photo),
 * and a `size` x `size` input comes back unchanged.
 *
 * @param {ArrayLike<number>} pixels Row-major pixels, `channels` bytes each, 0..255.
 * @param {number} width Source width in pixels.
 * @param {number} height Source height in pixels.
 * @param {number} channels Bytes per source pixel, 3 (RGB) or 4 (RGBA; alpha is ignored).
 * @param {number} size Output side in pixels (32 for CIFAR-10).
 * @returns {Uint8Array} `size * size * 3` bytes, RGB, row-major (NHWC without the N).
 * @throws {RangeError} If a dimension is not a positive integer, `channels` is not 3 or 4,
 *   or `pixels` is not `width * height * channels` long.
 *
 * @example
 * ```ts
 * import { cropAndResize } from "./preprocess.js";
 * // A 4x2 image, left half black, right half white: the centered 2x2 square is one of each.
 * const rgb = new Uint8Array(4 * 2 * 3);
 * for (const x of [2, 3]) for (const y of [0, 1]) rgb.fill(255, (y * 4 + x) * 3, (y * 4 + x) * 3 + 3);
 * const out = cropAndResize(rgb, 4, 2, 3, 1);
 * if (out[0] !== 128) throw new Error(`expected the mean 127.5 rounded, found ${out[0]}`);
 * ```
 */
export function cropAndResize(pixels, width, height, channels, size) {
  for (const [name, value] of [["width", width], ["height", height], ["size", size]]) {
    if (!Number.isInteger(value) || /** @type {number} */ (value) < 1) {
      throw new RangeError(`Expected ${name} to be an integer >= 1 but found ${value}`);
    }
  }
  if (channels !== 3 && channels !== 4) {
    throw new RangeError(`Expected channels to be 3 or 4 but found ${channels}`);
  }
  if (pixels.length !== width * height * channels) {
    throw new RangeError(
      `Expected ${width * height * channels} bytes for a ${width}x${height} image with ` +
        `${channels} channels but found ${pixels.length}`,
    );
  }
  const side = Math.min(width, height);
  const xs = areaWeights(Math.floor((width - side) / 2), side, size);
  const ys = areaWeights(Math.floor((height - side) / 2), side, size);
  const out = new Uint8Array(size * size * 3);
  const sum = new Float64Array(3);
  for (let oy = 0; oy < size; oy++) {
    for (let ox = 0; ox < size; ox++) {
      sum.fill(0);
      for (const [sy, wy] of ys[oy]) {
        for (const [sx, wx] of xs[ox]) {
          const w = wy * wx;
          const at = (sy * width + sx) * channels;
          sum[0] += w * pixels[at];
          sum[1] += w * pixels[at + 1];
          sum[2] += w * pixels[at + 2];
        }
      }
      const o = (oy * size + ox) * 3;
      for (let c = 0; c < 3; c++) out[o + c] = Math.min(255, Math.max(0, Math.round(sum[c])));
    }
  }
  return out;
}

/**
 * For each of `size` output cells along one axis, the source indices it overlaps and the
 * share of the cell each covers (the shares of a cell add up to 1).
 *
 * @param {number} start First source index of the crop.
 * @param {number} side Source pixels in the crop.
 * @param {number} size Output cells.
 * @returns {[number, number][][]}
 */
function areaWeights(start, side, size) {
  const scale = side / size; // source pixels per output cell
  /** @type {[number, number][][]} */
  const cells = [];
  for (let o = 0; o < size; o++) {
    const from = o * scale;
    const to = (o + 1) * scale;
    /** @type {[number, number][]} */
    const cell = [];
    for (let s = Math.floor(from); s < Math.min(side, Math.ceil(to)); s++) {
      const overlap = Math.min(to, s + 1) - Math.max(from, s);
      if (overlap > 0) cell.push([start + s, overlap / scale]);
    }
    cells.push(cell);
  }
  return cells;
}

/**
 * ToTensor then Normalize: `(v / 255 - mean[c]) / std[c]` for every byte of an RGB image.
 *
 * @param {Uint8Array} rgb Row-major RGB bytes.
 * @param {readonly number[]} mean Per-channel mean on the 0..1 scale.
 * @param {readonly number[]} std Per-channel standard deviation on the 0..1 scale.
 * @returns {Float32Array} The normalised values, same layout as `rgb`.
 *
 * @example
 * ```ts
 * import { normalizeRgb } from "./preprocess.js";
 * const out = normalizeRgb(new Uint8Array([255, 0, 0]), [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]);
 * if (out[0] !== 1 || out[1] !== -1) throw new Error("bad normalisation");
 * ```
 */
export function normalizeRgb(rgb, mean, std) {
  const out = new Float32Array(rgb.length);
  for (let i = 0; i < rgb.length; i++) out[i] = (rgb[i] / 255 - mean[i % 3]) / std[i % 3];
  return out;
}

/**
 * @typedef {object} ClassProbability
 * @property {number} label Class index, 0..classNames.length - 1.
 * @property {string} className The class's name.
 * @property {number} probability Softmax probability, 0..1.
 */

/**
 * The `k` most probable classes, most probable first (ties keep label order).
 *
 * @param {ArrayLike<number>} probabilities One probability per class.
 * @param {readonly string[]} classNames Names by label.
 * @param {number} k How many to return (at most the number of classes).
 * @returns {ClassProbability[]}
 * @throws {RangeError} If `classNames` does not name every class or `k` is not an integer >= 1.
 *
 * @example
 * ```ts
 * import { topK } from "./preprocess.js";
 * const top = topK([0.1, 0.7, 0.2], ["a", "b", "c"], 2);
 * if (top.map((t) => t.className).join() !== "b,c") throw new Error("bad order");
 * ```
 */
export function topK(probabilities, classNames, k) {
  if (classNames.length !== probabilities.length) {
    throw new RangeError(
      `Expected ${probabilities.length} class names (one per probability) but found ${classNames.length}`,
    );
  }
  if (!Number.isInteger(k) || k < 1) {
    throw new RangeError(`Expected k to be an integer >= 1 but found ${k}`);
  }
  return Array.from(probabilities, (probability, label) => ({
    label,
    className: classNames[label],
    probability,
  }))
    .sort((a, b) => b.probability - a.probability || a.label - b.label)
    .slice(0, k);
}
