// @ts-nocheck: runs in the browser against the global `tf` from /tf.min.js.
/**
 * The page: loads the run's model (`/model/model.json`) and the class names and
 * normalisation (`/meta.json`), takes a photo by drag-and-drop or the file picker, turns it
 * into a 32x32 input exactly as `deno task predict` does (shared `preprocess.js`) and shows
 * the top classes.
 *
 * `?test=<image url>` runs a self-check instead of waiting for a photo: it classifies that
 * image and leaves the result in `window.selfCheck` (and in the page) for a headless browser
 * to read. `?backend=cpu` (or webgl, wasm...) picks the TensorFlow.js backend.
 */
import { cropAndResize, normalizeRgb, topK } from "./preprocess.js";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

/** Decoded RGBA of an image file (EXIF rotation applied; transparency over white). */
async function decodePixels(blob) {
  const bitmap = await createImageBitmap(blob);
  const { width, height } = bitmap;
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.fillStyle = "#fff";
  context.fillRect(0, 0, width, height);
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  return { data: context.getImageData(0, 0, width, height).data, width, height };
}

async function classify(model, meta, blob) {
  const image = await decodePixels(blob);
  const pixels = cropAndResize(image.data, image.width, image.height, 4, meta.imageSize);
  const x = normalizeRgb(pixels, meta.mean, meta.std);
  const probabilities = tf.tidy(() =>
    tf.softmax(model.predict(tf.tensor4d(x, [1, meta.imageSize, meta.imageSize, 3])))
  );
  const values = await probabilities.data();
  probabilities.dispose();
  return { pixels, top: topK(values, meta.classes, meta.topK) };
}

function show(blob, result, imageSize) {
  $("views").hidden = false;
  const photo = $("photo");
  if (photo.src.startsWith("blob:")) URL.revokeObjectURL(photo.src);
  photo.src = URL.createObjectURL(blob);
  const rgba = new Uint8ClampedArray(imageSize * imageSize * 4);
  for (let i = 0; i < imageSize * imageSize; i++) {
    rgba.set(result.pixels.subarray(i * 3, i * 3 + 3), i * 4);
    rgba[i * 4 + 3] = 255;
  }
  $("input").getContext("2d").putImageData(new ImageData(rgba, imageSize, imageSize), 0, 0);
  $("top").replaceChildren(...result.top.map(({ className, probability }) => {
    const row = document.createElement("div");
    row.className = "row";
    const name = document.createElement("span");
    name.textContent = className;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${(100 * probability).toFixed(1)}%`;
    const value = document.createElement("span");
    value.textContent = `${(100 * probability).toFixed(1)}%`;
    row.append(name, bar, value);
    return row;
  }));
}

async function onFile(model, meta, file) {
  if (file === undefined) return;
  setStatus(`Classifying ${file.name}...`);
  try {
    const result = await classify(model, meta, file);
    show(file, result, meta.imageSize);
    setStatus(`${file.name}: ${result.top[0].className}`);
  } catch (error) {
    setStatus(`${file.name}: could not read it as an image (${error.message})`, true);
  }
}

async function selfCheck(model, meta, url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: expected 200 but found ${response.status}`);
  const blob = await response.blob();
  const result = await classify(model, meta, blob);
  show(blob, result, meta.imageSize);
  return { ok: true, backend: tf.getBackend(), top: result.top, pixels: Array.from(result.pixels) };
}

async function main() {
  const backend = params.get("backend");
  if (backend !== null && !(await tf.setBackend(backend))) {
    throw new Error(`tf.setBackend("${backend}") failed`);
  }
  await tf.ready();
  const [meta, model] = await Promise.all([
    fetch("/meta.json").then((r) => r.json()),
    tf.loadLayersModel("/model/model.json"),
  ]);
  setStatus(
    `Model loaded (width ${meta.width ?? "?"}, backend ${tf.getBackend()}). Choose a photo.`,
  );
  const test = params.get("test");
  if (test !== null) {
    globalThis.selfCheck = await selfCheck(model, meta, test);
    setStatus(`Self-check: ${JSON.stringify(globalThis.selfCheck.top)}`);
    return;
  }
  const drop = $("drop");
  $("file").addEventListener("change", (e) => onFile(model, meta, e.target.files[0]));
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    onFile(model, meta, e.dataTransfer.files[0]);
  });
}

main().catch((error) => {
  globalThis.selfCheck = { ok: false, error: String(error?.message ?? error) };
  setStatus(`Error: ${globalThis.selfCheck.error}`, true);
});
