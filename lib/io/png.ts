/**
 * CIFAR-10 images as PNG files and data URLs, to show them inline in a notebook or an SVG, or
 * to save one as a file to classify. fast-png does the encoding (8-bit RGB, zlib by fflate);
 * this module checks the sizes and fixes the layout to CIFAR-10's.
 *
 * @module
 */
import { encode } from "fast-png";

/** Bytes per RGB pixel. */
const RGB_CHANNELS = 3;

/**
 * Encodes an RGB image (row-major, 3 bytes a pixel: CIFAR-10's NHWC layout) as PNG.
 *
 * @param rgb `width * height * 3` bytes.
 * @param width Pixels per row, an integer greater than 0.
 * @param height Rows, an integer greater than 0.
 * @returns The PNG file's bytes.
 * @throws {RangeError} If `rgb` does not hold `width * height * 3` bytes, or a size is not an
 *   integer greater than 0 (the promise rejects).
 *
 * @example
 * ```ts
 * import { encodePng } from "./png.ts";
 * const png = await encodePng(new Uint8Array(2 * 2 * 3).fill(255), 2, 2);
 * console.log(png[1] === 0x50); // "P" of the PNG signature
 * ```
 */
export function encodePng(rgb: Uint8Array, width: number, height: number): Promise<Uint8Array> {
  // A promise, as callers await it; an error rejects it rather than throwing at the call.
  return new Promise((resolve) => resolve(encodeRgb(rgb, width, height)));
}

function encodeRgb(rgb: Uint8Array, width: number, height: number): Uint8Array {
  if (rgb.length !== width * height * RGB_CHANNELS) {
    throw new RangeError(
      `Expected ${
        width * height * RGB_CHANNELS
      } bytes for a ${width}x${height} RGB image but found ${rgb.length}`,
    );
  }
  for (const [name, size] of [["width", width], ["height", height]] as const) {
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(`Expected ${name} to be an integer greater than 0 but found ${size}`);
    }
  }
  return encode({ width, height, data: rgb, channels: RGB_CHANNELS, depth: 8 });
}

/** `data:image/png;base64,...` for an RGB image, to put in an `<img>` or an SVG `<image>`. */
export async function pngDataUrl(rgb: Uint8Array, width: number, height: number): Promise<string> {
  const png = await encodePng(rgb, width, height);
  let binary = "";
  for (let i = 0; i < png.length; i += 0x8000) {
    binary += String.fromCharCode(...png.subarray(i, i + 0x8000));
  }
  return `data:image/png;base64,${btoa(binary)}`;
}
