/**
 * What a PNG or JPEG says about itself before it is decoded: its size, channels and bit depth
 * (PNG's IHDR chunk, JPEG's SOF segment, read here rather than by the decoders), and what
 * decoding it would cost. {@linkcode checkImageHeader} refuses, before anything is allocated,
 * an image over the pixel or memory budget, and one whose file is too small to hold the image
 * its header declares (a truncated file, or a header that lies to make the decoder allocate).
 *
 * @module
 */
import { constants as zlib, inflateSync } from "node:zlib";

/**
 * The largest image decoded, in megapixels: a 48 MP phone photo (8000x6000) and a 61 MP
 * camera's (9504x6336) fit; a 100 MP medium-format one just does.
 */
export const MAX_MEGAPIXELS = 100;

/**
 * The most memory one image's decoding may take: the buffers the decoder and this module
 * allocate for it, added up from the header (see {@linkcode ImageHeader.decodeBytes}). 1 GiB
 * lets a 48 MP phone JPEG through in any chroma subsampling (4:2:0: 618 MiB; 4:4:4: 961 MiB)
 * and a 48 MP 8-bit RGBA PNG (870 MiB), and refuses a 10000x10000 16-bit RGBA PNG (3338 MiB)
 * and a 9000x9000 JPEG (4:2:0: 1044 MiB).
 * jpeg-js keeps one typed array per 8x8 block, so a JPEG's resident memory is about twice its
 * count (1.2 GB measured for a 48 MP 4:2:0 photo).
 */
export const MAX_DECODE_BYTES = 1024 * 2 ** 20;

/** A file that could not be read or decoded as an image; the message names the file. */
export class ImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImageError";
  }
}

/** An image's header, as far as decoding it goes. */
export interface ImageHeader {
  format: "PNG" | "JPEG";
  width: number;
  height: number;
  /** What is stored per pixel, for messages: `16-bit RGBA` (PNG), `4:2:0` (JPEG). */
  layout: string;
  /** Bytes the decoders allocate for this image, counted from the header. */
  decodeBytes: number;
  /** The fewest bytes of image data (PNG: compressed IDAT; JPEG: SOF to the end) it can have. */
  minDataBytes: number;
  /** The bytes of image data the file has. */
  dataBytes: number;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_SIGNATURE = [0xff, 0xd8, 0xff];

/** Deflate codes a run of 258 bytes in 2 bits at best, so it never shrinks data more than 1032:1. */
const MAX_DEFLATE_RATIO = 1032;

/** Whether `bytes` starts with the PNG (or, for `"JPEG"`, the JPEG) signature. */
export function hasSignature(bytes: Uint8Array, format: "PNG" | "JPEG"): boolean {
  const prefix = format === "PNG" ? PNG_SIGNATURE : JPEG_SIGNATURE;
  return prefix.every((b, i) => bytes[i] === b);
}

/**
 * Checks what a PNG's or JPEG's header declares against the budgets, before decoding:
 * a width and height of at least 1, at most {@linkcode MAX_MEGAPIXELS}, at most
 * {@linkcode MAX_DECODE_BYTES} to decode, and a file large enough for that many pixels (a
 * JPEG codes every 8x8 block in at least 1 bit; deflate packs at most 1032 bytes into 1). For
 * a PNG it also inflates the image data once with its declared size as the limit, so a
 * stream that inflates to more (a zip bomb under a small header) is refused.
 *
 * @param bytes The whole file; it must start with a PNG or JPEG signature.
 * @param source Where the bytes came from, for error messages.
 * @returns The header, within the budgets.
 * @throws {ImageError} naming `source`, what was expected and what was found.
 *
 * @example
 * ```ts
 * import { checkImageHeader } from "./image_header.ts";
 * import { encodePng } from "../io/png.ts";
 * const header = checkImageHeader(await encodePng(new Uint8Array(12), 2, 2), "dots.png");
 * console.log(header.width, header.layout); // 2 "8-bit RGB"
 * ```
 */
export function checkImageHeader(bytes: Uint8Array, source: string): ImageHeader {
  if (!hasSignature(bytes, "PNG") && !hasSignature(bytes, "JPEG")) {
    throw new ImageError(`${source}: expected a PNG or JPEG signature at byte 0`);
  }
  const header = hasSignature(bytes, "PNG") ? pngHeader(bytes, source) : jpegHeader(bytes, source);
  const { format, width, height } = header;
  const size = `${width}x${height}`;
  if (width < 1 || height < 1) {
    throw new ImageError(
      `${source}: expected a width and height of at least 1 in the ${format} header but found ${size}`,
    );
  }
  if (width * height > MAX_MEGAPIXELS * 1e6) {
    throw new ImageError(
      `${source}: expected at most ${MAX_MEGAPIXELS} megapixels but found ${size}`,
    );
  }
  if (header.dataBytes < header.minDataBytes) {
    throw new ImageError(
      `${source}: not a readable ${format} (a ${size} ${format} needs at least ` +
        `${header.minDataBytes} bytes of image data but the file has ${header.dataBytes}: ` +
        `it is cut short, or its header claims a larger image than it holds)`,
    );
  }
  if (header.decodeBytes > MAX_DECODE_BYTES) {
    throw new ImageError(
      `${source}: expected an image that decodes in at most ${mib(MAX_DECODE_BYTES)} but found ` +
        `a ${size} ${header.layout} ${format}, which needs ${mib(header.decodeBytes)}`,
    );
  }
  if (format === "PNG") checkPngInflatedSize(bytes, source, header);
  return header;
}

function mib(bytes: number): string {
  return `${Math.ceil(bytes / 2 ** 20)} MiB`;
}

// ------------------------------------------------------------------ PNG

/** Channels and allowed bit depths per PNG colour type (PNG spec, 11.2.2). */
const PNG_COLOUR_TYPES: Record<number, { name: string; channels: number; depths: number[] }> = {
  0: { name: "gray", channels: 1, depths: [1, 2, 4, 8, 16] },
  2: { name: "RGB", channels: 3, depths: [8, 16] },
  3: { name: "palette", channels: 1, depths: [1, 2, 4, 8] },
  4: { name: "gray+alpha", channels: 2, depths: [8, 16] },
  6: { name: "RGBA", channels: 4, depths: [8, 16] },
};

/** The IHDR chunk: 4 bytes length, "IHDR", 13 bytes of fields, 4 bytes CRC, after the signature. */
const IHDR_END = 8 + 8 + 13 + 4;

type PngHeader = ImageHeader & { rawBytes: number };

function pngHeader(bytes: Uint8Array, source: string): PngHeader {
  const fail = (why: string) => new ImageError(`${source}: not a readable PNG (${why})`);
  if (bytes.length < IHDR_END) {
    throw fail(
      `expected the ${IHDR_END}-byte signature and IHDR chunk but the file has ${bytes.length} bytes`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = new TextDecoder().decode(bytes.subarray(12, 16));
  if (type !== "IHDR") throw fail(`expected the IHDR chunk at byte 8 but found "${type}"`);
  const [width, height] = [view.getUint32(16), view.getUint32(20)];
  const [depth, colourType, interlace] = [bytes[24], bytes[25], bytes[28]];
  const colour = PNG_COLOUR_TYPES[colourType];
  if (colour === undefined) {
    throw fail(`expected colour type 0, 2, 3, 4 or 6 at byte 25 but found ${colourType}`);
  }
  if (!colour.depths.includes(depth)) {
    const allowed = `${colour.depths.slice(0, -1).join(", ")} or ${colour.depths.at(-1)}`;
    throw fail(
      `expected a bit depth of ${allowed} for ${colour.name} at byte 24 but found ${depth}`,
    );
  }
  if (interlace !== 0 && interlace !== 1) {
    throw fail(`expected interlace method 0 or 1 at byte 28 but found ${interlace}`);
  }
  const bitsPerPixel = colour.channels * depth;
  const rawBytes = interlace === 1
    ? adam7Passes(width, height).reduce((sum, [w, h]) => sum + scanlineBytes(w, h, bitsPerPixel), 0)
    : scanlineBytes(width, height, bitsPerPixel);
  const pixels = width * height;
  const samples = height * Math.ceil((width * bitsPerPixel) / 8);
  // fast-png: the inflated stream in chunks and joined (2x), and the unfiltered samples; here:
  // the one bounded inflate, palette or sub-byte expansion, and the RGB result.
  const expansion = colourType === 3 ? pixels * 5 : depth < 8 ? pixels * 2 : 0;
  return {
    format: "PNG",
    width,
    height,
    layout: colourType === 3 ? `${depth}-bit palette` : `${depth}-bit ${colour.name}`,
    decodeBytes: 3 * rawBytes + samples + expansion + pixels * 3,
    minDataBytes: Math.ceil(rawBytes / MAX_DEFLATE_RATIO),
    dataBytes: idatBytes(bytes),
    rawBytes,
  };
}

/** Bytes of filtered scanlines (one filter byte per row) for a `width` x `height` pass. */
function scanlineBytes(width: number, height: number, bitsPerPixel: number): number {
  return width === 0 || height === 0 ? 0 : height * (1 + Math.ceil((width * bitsPerPixel) / 8));
}

/** The sizes of Adam7's seven passes (PNG spec, 8.2). */
function adam7Passes(width: number, height: number): [number, number][] {
  // [first column, first row, column step, row step] of each pass.
  const passes = [
    [0, 0, 8, 8],
    [4, 0, 8, 8],
    [0, 4, 4, 8],
    [2, 0, 4, 4],
    [0, 2, 2, 4],
    [1, 0, 2, 2],
    [0, 1, 1, 2],
  ];
  return passes.map(([x0, y0, dx, dy]) => [
    Math.ceil(Math.max(0, width - x0) / dx),
    Math.ceil(Math.max(0, height - y0) / dy),
  ]);
}

/** The IDAT chunks' data, as far as the file goes. */
function idatChunks(bytes: Uint8Array): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: Uint8Array[] = [];
  // Every step moves on by at least the 12 bytes of a chunk's length, type and CRC.
  for (let at = 8; at + 8 <= bytes.length; at += 12 + view.getUint32(at)) {
    const start = at + 8;
    const type = String.fromCharCode(...bytes.subarray(at + 4, start));
    if (type === "IDAT") chunks.push(bytes.subarray(start, start + view.getUint32(at)));
    if (type === "IEND") break;
  }
  return chunks;
}

function idatBytes(bytes: Uint8Array): number {
  return idatChunks(bytes).reduce((sum, c) => sum + c.length, 0);
}

/**
 * Inflates the image data with the header's size as the limit. A stream cut short is left for
 * the decoder to report; one that inflates to more than the header allows is refused here.
 */
function checkPngInflatedSize(bytes: Uint8Array, source: string, header: ImageHeader): void {
  const { rawBytes } = header as PngHeader;
  const chunks = idatChunks(bytes);
  const stream = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  chunks.reduce((at, c) => (stream.set(c, at), at + c.length), 0);
  try {
    inflateSync(stream, { maxOutputLength: Math.max(1, rawBytes), finishFlush: zlib.Z_SYNC_FLUSH });
  } catch (error) {
    if ((error as { code?: string }).code !== "ERR_BUFFER_TOO_LARGE") return;
    throw new ImageError(
      `${source}: not a readable PNG (expected its image data to inflate to ${rawBytes} bytes, ` +
        `as a ${header.width}x${header.height} ${header.layout} image needs, but it inflates to more)`,
    );
  }
}

// ------------------------------------------------------------------ JPEG

/** The frame header (SOF) of a JPEG: size and each component's sampling factors. */
interface JpegFrame {
  /** Byte offset of the SOF marker. */
  offset: number;
  width: number;
  height: number;
  components: { h: number; v: number }[];
}

/** SOF0..2 (baseline, extended, progressive Huffman) are what jpeg-js decodes. */
const DECODED_SOF = [0xc0, 0xc1, 0xc2];
/** The other SOF markers: lossless, hierarchical, arithmetic coding. */
const OTHER_SOF = [0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf];

function jpegHeader(bytes: Uint8Array, source: string): ImageHeader {
  const frame = jpegFrame(bytes, source);
  const { width, height, components } = frame;
  const maxH = Math.max(...components.map((c) => c.h));
  const maxV = Math.max(...components.map((c) => c.v));
  // What jpeg-js allocates (and counts against maxMemoryUsageInMB): per component, an Int32Array
  // of 64 per block of the MCU grid and a byte per sample of its lines; then the image at
  // `components` bytes a pixel, and the RGB result.
  const mcusPerLine = Math.ceil(width / 8 / maxH);
  const mcusPerColumn = Math.ceil(height / 8 / maxV);
  let decodeBytes = width * height * (components.length + 3);
  let minBits = 0;
  for (const { h, v } of components) {
    decodeBytes += mcusPerLine * h * mcusPerColumn * v * 256;
    const blocksPerLine = Math.ceil((Math.ceil(width / 8) * h) / maxH);
    const blocksPerColumn = Math.ceil((Math.ceil(height / 8) * v) / maxV);
    decodeBytes += blocksPerLine * 8 * blocksPerColumn * 8;
    // Every block of every component starts with a Huffman-coded DC value: at least 1 bit.
    minBits += Math.ceil(Math.ceil((width * h) / maxH) / 8) *
      Math.ceil(Math.ceil((height * v) / maxV) / 8);
  }
  return {
    format: "JPEG",
    width,
    height,
    layout: jpegLayout(components),
    decodeBytes,
    minDataBytes: Math.ceil(minBits / 8),
    dataBytes: bytes.length - frame.offset,
  };
}

/** `gray`, `4:2:0` (YCbCr with chroma at half width and height), or the sampling factors. */
function jpegLayout(components: { h: number; v: number }[]): string {
  if (components.length === 1) return "gray";
  const sampling = components.map((c) => `${c.h}x${c.v}`).join(",");
  const chroma: Record<string, string> = {
    "1x1,1x1,1x1": "4:4:4",
    "2x1,1x1,1x1": "4:2:2",
    "2x2,1x1,1x1": "4:2:0",
    "1x2,1x1,1x1": "4:4:0",
    "4x1,1x1,1x1": "4:1:1",
  };
  return chroma[sampling] ?? `${components.length}-component (sampling ${sampling})`;
}

/**
 * Walks the marker segments from the start of the file to the first frame header (SOF), as a
 * decoder does; garbage between segments is skipped up to the next 0xFF, as tolerant decoders do.
 */
function jpegFrame(bytes: Uint8Array, source: string): JpegFrame {
  const fail = (why: string) => new ImageError(`${source}: not a readable JPEG (${why})`);
  const u16 = (at: number) => (bytes[at] << 8) | bytes[at + 1];
  let at = 2;
  while (at + 1 < bytes.length) {
    if (bytes[at] !== 0xff) {
      const next = bytes.indexOf(0xff, at + 1);
      if (next < 0) break;
      at = next;
      continue;
    }
    const marker = bytes[at + 1];
    if (marker === 0xff) { // fill byte
      at += 1;
      continue;
    }
    if (marker <= 0x01 || (marker >= 0xd0 && marker <= 0xd8)) { // no length
      at += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) {
      throw fail(
        `expected a frame header (SOF marker) before byte ${at} but found ${
          marker === 0xd9 ? "the end of the image" : "a scan"
        }`,
      );
    }
    if (OTHER_SOF.includes(marker)) {
      throw fail(
        `expected a baseline or progressive JPEG (SOF0, SOF1 or SOF2) but found SOF${
          marker - 0xc0
        } at byte ${at} (lossless, hierarchical or arithmetic-coded)`,
      );
    }
    if (DECODED_SOF.includes(marker)) return sofSegment(bytes, at, fail);
    if (at + 4 > bytes.length) break;
    at += 2 + u16(at + 2);
  }
  throw fail(`expected a frame header (SOF marker) but the file ends at byte ${bytes.length}`);
}

function sofSegment(bytes: Uint8Array, at: number, fail: (why: string) => ImageError): JpegFrame {
  const u16 = (i: number) => (bytes[i] << 8) | bytes[i + 1];
  const count = at + 10 <= bytes.length ? bytes[at + 9] : 0;
  const end = at + 10 + 3 * count;
  if (end > bytes.length) {
    throw fail(
      `expected a ${
        end - at
      }-byte frame header at byte ${at} but the file ends at byte ${bytes.length}`,
    );
  }
  const components = Array.from({ length: count }, (_, i) => {
    const sampling = bytes[at + 11 + 3 * i];
    return { h: sampling >> 4, v: sampling & 15 };
  });
  const bad = components.findIndex(({ h, v }) => h < 1 || h > 4 || v < 1 || v > 4);
  if (count === 0 || count > 4 || bad >= 0) {
    throw fail(
      bad < 0
        ? `expected 1 to 4 components in the frame header at byte ${at} but found ${count}`
        : `expected sampling factors 1..4 for component ${bad + 1} at byte ${at} but found ` +
          `${components[bad].h}x${components[bad].v}`,
    );
  }
  return { offset: at, height: u16(at + 5), width: u16(at + 7), components };
}
