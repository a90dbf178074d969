/**
 * Reading a photo: decode a PNG or JPEG of any size into RGB (EXIF rotation
 * applied, transparency over white), then turn it into a CIFAR-10 image
 * (center-crop to a square, area-average down to 32x32). Every failure is an
 * {@linkcode ImageError} that names the file.
 *
 * @module
 */
import { decode as decodePngBytes, type DecodedPng } from "fast-png";
import jpeg from "jpeg-js";
import { IMAGE_SIZE } from "../data.ts";
import { cropAndResize } from "./preprocess.js";

/** The largest image decoded, in megapixels (a 12 MP phone photo is 4000x3000). */
export const MAX_MEGAPIXELS = 100;

/** An image after decoding: RGB, row-major, 8 bits a channel. */
export interface RgbImage {
  width: number;
  height: number;
  /** `width * height * 3` bytes. */
  data: Uint8Array;
}

/** A file that could not be read or decoded as an image; the message names the file. */
export class ImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImageError";
  }
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_SIGNATURE = [0xff, 0xd8, 0xff];

function startsWith(bytes: Uint8Array, prefix: number[]): boolean {
  return prefix.every((b, i) => bytes[i] === b);
}

/** A short description of what a non-image file looks like, for error messages. */
function describeBytes(bytes: Uint8Array): string {
  if (bytes.length === 0) return "an empty file";
  const ascii = new TextDecoder().decode(bytes.subarray(0, 4));
  if (ascii.startsWith("GIF8")) return "a GIF image";
  if (ascii === "RIFF") return "a RIFF file (WebP?)";
  if (ascii.startsWith("BM")) return "a BMP image";
  const head = bytes.subarray(0, 8);
  const printable = head.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127));
  if (printable) return `text starting ${JSON.stringify(new TextDecoder().decode(head))}`;
  return `bytes ${Array.from(head, (b) => b.toString(16).padStart(2, "0")).join(" ")}`;
}

/**
 * Decodes a PNG or JPEG (told apart by their signatures, not by the file name) into RGB.
 * Transparent pixels are composited over white, as a page shows them; 16-bit PNGs are
 * rounded to 8 bits; grayscale and palette images are expanded; a JPEG's EXIF orientation
 * is applied, as browsers and photo viewers do.
 *
 * @param bytes The whole file.
 * @param source Where the bytes came from, for error messages.
 * @returns The decoded image.
 * @throws {ImageError} naming `source` when the bytes are neither PNG nor JPEG, or are corrupt.
 *
 * @example
 * ```ts
 * import { decodeImage } from "./classify.ts";
 * import { encodePng } from "../io/png.ts";
 * const image = decodeImage(await encodePng(new Uint8Array([1, 2, 3]), 1, 1), "dot.png");
 * console.log(image.width, image.data); // 1 Uint8Array(3) [1, 2, 3]
 * ```
 */
export function decodeImage(bytes: Uint8Array, source: string): RgbImage {
  if (startsWith(bytes, PNG_SIGNATURE)) return decodePng(bytes, source);
  if (startsWith(bytes, JPEG_SIGNATURE)) return decodeJpeg(bytes, source);
  throw new ImageError(
    `${source}: expected a PNG or JPEG image but found ${describeBytes(bytes)}`,
  );
}

function decodePng(bytes: Uint8Array, source: string): RgbImage {
  // Check the size in the IHDR chunk (bytes 16..23) before decoding allocates for it.
  if (bytes.length >= 24) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const [width, height] = [view.getUint32(16), view.getUint32(20)];
    if (width * height > MAX_MEGAPIXELS * 1e6) {
      throw new ImageError(
        `${source}: expected at most ${MAX_MEGAPIXELS} megapixels but found ${width}x${height}`,
      );
    }
  }
  let png: DecodedPng;
  try {
    png = decodePngBytes(bytes);
  } catch (error) {
    throw new ImageError(`${source}: not a readable PNG (${(error as Error).message})`);
  }
  const { width, height, channels, depth } = png;
  const pixels = width * height;
  let values: ArrayLike<number> = png.data;
  let perPixel = channels;
  if (png.palette !== undefined) {
    // Indexed colour: expand through the palette (fast-png merges tRNS alphas into it).
    const palette = png.palette;
    perPixel = 4;
    const rgba = new Uint8Array(pixels * 4);
    const indices = unpackBits(png.data, depth, width, height);
    for (let i = 0; i < pixels; i++) {
      const entry = palette[indices[i]];
      if (entry === undefined) {
        throw new ImageError(
          `${source}: palette index ${
            indices[i]
          } at pixel ${i} is outside the ${palette.length}-colour palette`,
        );
      }
      rgba.set([entry[0], entry[1], entry[2], entry[3] ?? 255], i * 4);
    }
    values = rgba;
  } else if (depth < 8) {
    values = unpackBits(png.data, depth, width * channels, height).map((v) =>
      Math.round((v * 255) / (2 ** depth - 1))
    );
  }
  const max = depth === 16 ? 65535 : 255;
  return { width, height, data: toRgbOverWhite(values, pixels, perPixel, max) };
}

/** Sub-byte samples (1, 2 or 4 bits, rows padded to whole bytes) as one number each. */
function unpackBits(
  data: ArrayLike<number>,
  depth: number,
  samplesPerRow: number,
  rows: number,
): Uint8Array {
  if (depth >= 8) return Uint8Array.from(data);
  const out = new Uint8Array(samplesPerRow * rows);
  const rowBytes = Math.ceil((samplesPerRow * depth) / 8);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < samplesPerRow; x++) {
      const bit = x * depth;
      const byte = data[y * rowBytes + (bit >> 3)];
      out[y * samplesPerRow + x] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

/** Gray, gray+alpha, RGB or RGBA samples (0..max) to 8-bit RGB, alpha composited over white. */
function toRgbOverWhite(
  values: ArrayLike<number>,
  pixels: number,
  channels: number,
  max: number,
): Uint8Array {
  const rgb = new Uint8Array(pixels * 3);
  const hasAlpha = channels === 2 || channels === 4;
  const colours = hasAlpha ? channels - 1 : channels;
  for (let i = 0; i < pixels; i++) {
    const at = i * channels;
    const alpha = hasAlpha ? values[at + colours] / max : 1;
    for (let c = 0; c < 3; c++) {
      const v = values[at + (colours === 1 ? 0 : c)] / max;
      rgb[i * 3 + c] = Math.round(255 * (v * alpha + (1 - alpha)));
    }
  }
  return rgb;
}

function decodeJpeg(bytes: Uint8Array, source: string): RgbImage {
  let decoded: { width: number; height: number; data: Uint8Array; exifBuffer?: Uint8Array };
  try {
    decoded = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      maxResolutionInMP: MAX_MEGAPIXELS,
    });
  } catch (error) {
    const message = typeof error === "string" ? error : (error as Error).message;
    throw new ImageError(`${source}: not a readable JPEG (${message})`);
  }
  const image = { width: decoded.width, height: decoded.height, data: decoded.data };
  return orient(image, exifOrientation(decoded.exifBuffer));
}

/**
 * The EXIF orientation tag (1..8; 1 = upright) from the payload of a JPEG's APP1 segment
 * after `Exif\0`, or 1 when there is none or it cannot be read.
 */
export function exifOrientation(exif: Uint8Array | undefined): number {
  if (exif === undefined) return 1;
  const tiff = exif[0] === 0 ? exif.subarray(1) : exif; // `Exif\0\0`: one more zero
  if (tiff.length < 8) return 1;
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  const little = tiff[0] === 0x49 && tiff[1] === 0x49; // "II"; "MM" is big-endian
  if (!little && !(tiff[0] === 0x4d && tiff[1] === 0x4d)) return 1;
  const ifd = view.getUint32(4, little);
  if (ifd + 2 > tiff.length) return 1;
  const entries = view.getUint16(ifd, little);
  for (let i = 0; i < entries; i++) {
    const at = ifd + 2 + i * 12;
    if (at + 12 > tiff.length) return 1;
    if (view.getUint16(at, little) === 0x0112) {
      const value = view.getUint16(at + 8, little);
      return value >= 1 && value <= 8 ? value : 1;
    }
  }
  return 1;
}

/**
 * Rotates/mirrors an image so that EXIF `orientation` (1..8) becomes upright.
 *
 * @example
 * ```ts
 * import { orient } from "./classify.ts";
 * // Orientation 6: the camera was turned 90 degrees clockwise; turn the pixels back.
 * const turned = orient({ width: 2, height: 1, data: new Uint8Array([1, 1, 1, 2, 2, 2]) }, 6);
 * console.log(turned.width, turned.height, turned.data); // 1 2 Uint8Array(6) [1, 1, 1, 2, 2, 2]
 * ```
 */
export function orient(image: RgbImage, orientation: number): RgbImage {
  if (orientation === 1) return image;
  const { width: w, height: h, data } = image;
  const swap = orientation >= 5;
  const outWidth = swap ? h : w;
  const outHeight = swap ? w : h;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      // Where output (x, y) comes from in the stored image.
      const [sx, sy] = [
        [x, y],
        [w - 1 - x, y],
        [w - 1 - x, h - 1 - y],
        [x, h - 1 - y],
        [y, x],
        [y, h - 1 - x],
        [w - 1 - y, h - 1 - x],
        [w - 1 - y, x],
      ][orientation - 1];
      out.set(data.subarray((sy * w + sx) * 3, (sy * w + sx) * 3 + 3), (y * outWidth + x) * 3);
    }
  }
  return { width: outWidth, height: outHeight, data: out };
}

/**
 * Turns a decoded image of any size into one CIFAR-10 input: center-crop to a square,
 * area-average down (or up) to 32x32 and round to bytes, as the training images are.
 *
 * @returns `32 * 32 * 3` bytes, NHWC for one image.
 */
export function toCifarPixels(image: RgbImage): Uint8Array {
  return cropAndResize(image.data, image.width, image.height, 3, IMAGE_SIZE);
}
