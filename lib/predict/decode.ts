/**
 * Reading a photo: read a file (regular files only, at most {@linkcode MAX_FILE_BYTES}),
 * check its header against the pixel and memory budgets (`image_header.ts`), decode a PNG or
 * JPEG of any size into RGB (EXIF rotation applied, transparency over white), then turn it
 * into a CIFAR-10 image (center-crop to a square, area-average down to 32x32). Every failure
 * is an {@linkcode ImageError} that names the file.
 *
 * @module
 */
import { decode as decodePngBytes, type DecodedPng } from "fast-png";
import jpeg from "jpeg-js";
import { IMAGE_SIZE } from "../data.ts";
import {
  checkImageHeader,
  hasSignature,
  ImageError,
  MAX_DECODE_BYTES,
  MAX_MEGAPIXELS,
} from "./image_header.ts";
import { cropAndResize } from "./preprocess.js";

export { checkImageHeader, type ImageHeader } from "./image_header.ts";
export { ImageError, MAX_DECODE_BYTES, MAX_MEGAPIXELS };

/**
 * The largest file read, checked before reading: 64 MiB is over twice a 48 MP phone JPEG
 * (10 to 25 MB) and holds a PNG of a 24 MP photo; the file stays in memory while it decodes,
 * and a 32x32 classifier gains nothing from more.
 */
export const MAX_FILE_BYTES = 64 * 2 ** 20;

/** An image after decoding: RGB, row-major, 8 bits a channel. */
export interface RgbImage {
  width: number;
  height: number;
  /** `width * height * 3` bytes. */
  data: Uint8Array;
}

/** What a path that is not a regular file is, for error messages. */
function describeKind(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a folder";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isFifo) return "a FIFO (named pipe)";
  if (info.isSocket) return "a socket";
  return "something that is not a regular file";
}

/**
 * Reads an image file whole, after checking that it is a regular file (so a device such as
 * `/dev/zero` is not read and a FIFO does not block) of at most {@linkcode MAX_FILE_BYTES}.
 * The checks are made on the path before opening it and again on the opened file, and the
 * read stops at the cap even if the file grows meanwhile.
 *
 * @param path The file; a symbolic link is followed to its target, which must be a regular file.
 * @returns The file's bytes.
 * @throws {ImageError} naming `path` and what it found instead.
 *
 * @example
 * ```ts
 * import { readImageFile } from "./decode.ts";
 * await readImageFile("/dev/zero").catch((e) => console.log(e.message));
 * // /dev/zero: expected an image file but found a character device
 * ```
 */
export async function readImageFile(path: string): Promise<Uint8Array> {
  let file: Deno.FsFile | undefined;
  try {
    checkFileInfo(path, await Deno.stat(path));
    file = await Deno.open(path);
    const info = await file.stat(); // the file opened, in case the path changed meanwhile
    checkFileInfo(path, info);
    return await readAtMost(file, path, info.size);
  } catch (error) {
    if (error instanceof ImageError) throw error;
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ? `not allowed to read it (${(error as Error).message})`
      : (error as Error).message;
    throw new ImageError(`${path}: cannot read (${reason})`);
  } finally {
    file?.close();
  }
}

function checkFileInfo(path: string, info: Deno.FileInfo): void {
  if (!info.isFile) {
    throw new ImageError(`${path}: expected an image file but found ${describeKind(info)}`);
  }
  if (info.size > MAX_FILE_BYTES) {
    throw new ImageError(
      `${path}: expected a file of at most ${MAX_FILE_BYTES / 2 ** 20} MiB (${MAX_FILE_BYTES} ` +
        `bytes) but found ${info.size} bytes; shrink the image first`,
    );
  }
}

/** Reads `expected` bytes, refusing a file that has grown past the cap since it was checked. */
async function readAtMost(file: Deno.FsFile, path: string, expected: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(Math.min(expected, MAX_FILE_BYTES) + 1);
  let filled = 0;
  // Each pass reads at least one byte or ends; the buffer bounds the number of passes.
  while (filled < buffer.length) {
    const n = await file.read(buffer.subarray(filled));
    if (n === null || n === 0) break;
    filled += n;
  }
  if (filled > MAX_FILE_BYTES) {
    throw new ImageError(
      `${path}: expected a file of at most ${MAX_FILE_BYTES / 2 ** 20} MiB but it grew past that ` +
        `while being read`,
    );
  }
  return buffer.subarray(0, filled);
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
 * Decodes a PNG or JPEG (told apart by their signatures, not by the file name) into RGB,
 * after {@linkcode checkImageHeader} has checked its size and what decoding it costs.
 * Transparent pixels are composited over white, as a page shows them; 16-bit PNGs are
 * rounded to 8 bits; grayscale and palette images are expanded; a JPEG's EXIF orientation
 * is applied, as browsers and photo viewers do.
 *
 * @param bytes The whole file.
 * @param source Where the bytes came from, for error messages.
 * @returns The decoded image.
 * @throws {ImageError} naming `source` when the bytes are neither PNG nor JPEG, are corrupt,
 *   or declare an image over the pixel or memory budget.
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
  const format = hasSignature(bytes, "PNG") ? "PNG" : hasSignature(bytes, "JPEG") ? "JPEG" : null;
  if (format !== null) checkImageHeader(bytes, source);
  if (format === "PNG") return decodePng(bytes, source);
  if (format === "JPEG") return decodeJpeg(bytes, source);
  throw new ImageError(
    `${source}: expected a PNG or JPEG image but found ${describeBytes(bytes)}`,
  );
}

function decodePng(bytes: Uint8Array, source: string): RgbImage {
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
      // The header check has refused what is over these; they hold even if jpeg-js reads a
      // frame header the check did not.
      maxResolutionInMP: MAX_MEGAPIXELS,
      maxMemoryUsageInMB: MAX_DECODE_BYTES / 2 ** 20,
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
