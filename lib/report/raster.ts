/**
 * SVG figures as PNG images. Jupyter shows no `image/svg+xml` output of a notebook it does not
 * trust (a fresh clone), and nbconvert 6's HTML export strips an SVG's shapes, while a PNG is
 * shown by every notebook frontend, trusted or not; so the notebook shows each figure as a PNG
 * rasterised from the same SVG the trainer writes.
 *
 * resvg (its WebAssembly build, `@resvg/resvg-wasm`) draws the SVG; it loads no system fonts, so
 * the text is set in DejaVu Sans from the `dejavu-fonts-ttf` package and the PNG has the same
 * pixels on every machine.
 *
 * @module
 */
import { initWasm, Resvg } from "@resvg/resvg-wasm";
import { join } from "node:path";
import { packageEntryFolder } from "../io/package_files.ts";

/** The family resvg uses for `sans-serif`, `system-ui` and text without a family. */
export const FIGURE_FONT_FAMILY = "DejaVu Sans";

/** The font files, in `dejavu-fonts-ttf`'s `ttf/` folder: regular and bold (titles). */
const FONT_FILES = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"];

/**
 * Pixels per SVG user unit unless told otherwise: 2 keeps text sharp on high-density screens
 * when the image is shown at the SVG's own size.
 */
export const DEFAULT_PNG_SCALE = 2;

/** Options of {@linkcode svgToPng}. */
export interface RasterOptions {
  /** Pixels per SVG user unit, a number greater than 0. @default DEFAULT_PNG_SCALE */
  scale?: number;
}

/** resvg's module, started once per process (its `initWasm` refuses a second start). */
let ready: Promise<Uint8Array[]> | null = null;

/** Starts resvg and reads the fonts, once; later calls share the same promise. */
function start(): Promise<Uint8Array[]> {
  ready ??= (async () => {
    const wasmFolder = packageEntryFolder("@resvg/resvg-wasm");
    await initWasm(await Deno.readFile(join(wasmFolder, "index_bg.wasm")));
    // The font package has no entry module: resolve one of its files to find the folder.
    const fontFolder = packageEntryFolder(`dejavu-fonts-ttf/ttf/${FONT_FILES[0]}`);
    return await Promise.all(FONT_FILES.map((file) => Deno.readFile(join(fontFolder, file))));
  })();
  return ready;
}

/**
 * Rasterises an SVG document as a PNG on a white background.
 *
 * Observable Plot's figures rely on what a browser supplies: `fill="currentColor"` (resvg takes
 * it as black, the `color` it starts from), `font-family="system-ui, sans-serif"` (both mapped
 * to {@linkcode FIGURE_FONT_FAMILY}) and a `<style>` whose `:where(...)` rules only set the
 * layout of the `<svg>` element in a page, which a PNG does not need.
 *
 * @param svg A standalone `<svg>` document with a width and a height.
 * @param options The scale.
 * @returns The PNG file's bytes.
 * @throws {RangeError} If `options.scale` is not a number greater than 0.
 * @throws {Error} If resvg cannot parse the SVG (its message says where).
 *
 * @example
 * ```ts
 * import { svgToPng } from "./raster.ts";
 * const png = await svgToPng('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="3"/>');
 * console.log(new DataView(png.buffer, png.byteOffset).getUint32(16)); // 8: width 4, scale 2
 * ```
 */
export async function svgToPng(svg: string, options: RasterOptions = {}): Promise<Uint8Array> {
  const scale = options.scale ?? DEFAULT_PNG_SCALE;
  if (!(Number.isFinite(scale) && scale > 0)) {
    throw new RangeError(`Expected scale to be a number greater than 0 but found ${scale}`);
  }
  const fontBuffers = await start();
  const resvg = new Resvg(svg, {
    background: "white",
    fitTo: { mode: "zoom", value: scale },
    font: {
      fontBuffers,
      defaultFontFamily: FIGURE_FONT_FAMILY,
      sansSerifFamily: FIGURE_FONT_FAMILY,
      defaultFontSize: 10,
    },
  });
  try {
    const image = resvg.render();
    try {
      return image.asPng();
    } finally {
      image.free();
    }
  } finally {
    resvg.free();
  }
}
