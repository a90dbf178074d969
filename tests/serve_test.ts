/**
 * bin/serve.ts: the routes and flags over HTTP on 127.0.0.1, then the page end to end in
 * headless Chromium (Debian's `chromium`; skipped without it), driven over the Chrome
 * DevTools Protocol: it loads a saved model, classifies a PNG, and must agree with
 * lib/predict.ts on the 32x32 pixels and the probabilities.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backends/init.ts";
import { CIFAR10_CLASSES } from "../lib/data.ts";
import { resnet18 } from "../lib/model.ts";
import { saveModel } from "../lib/io/tfjs_model.ts";
import { encodePng } from "../lib/io/png.ts";
import {
  classifyPixels,
  type ClassProbability,
  decodeImage,
  toCifarPixels,
} from "../lib/predict/classify.ts";

await initBackend("cpu");

const ROOT = new URL("..", import.meta.url);
const CHROMIUM = "/usr/bin/chromium";
const chromiumMissing = !(await Deno.stat(CHROMIUM).then(() => true, () => false));

/** A run folder as `deno task train` leaves it (model/ + config.json), width 4. */
async function makeRun(): Promise<{ dir: string; model: tf.LayersModel }> {
  const dir = await Deno.makeTempDir({ prefix: "serve_test_" });
  const model = resnet18({ width: 4, seed: 11 });
  // An untrained model is nearly uniform; a larger classifier makes the ranking decisive.
  const fc = model.getLayer("fc");
  tf.tidy(() => {
    const [kernel, bias] = fc.getWeights();
    fc.setWeights([kernel.mul(40), bias]);
  });
  await saveModel(model, `${dir}/model`);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ width: 4 }));
  return { dir, model };
}

/** Reads a child's output in the background, keeping it, until the child closes it. */
class Output {
  text = "";
  done: Promise<void>;
  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) this.text += decoder.decode(chunk, { stream: true });
    })();
  }
  /** Resolves with the first match of `pattern`, or rejects after `timeoutMs`. */
  async waitFor(pattern: RegExp, timeoutMs: number, what: string): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const match = this.text.match(pattern);
      if (match) return match;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`Expected ${what} within ${timeoutMs} ms but the output was:\n${this.text}`);
  }
}

/** `deno task serve` as a child process; resolves once it listens. */
async function startServer(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-P=serve", "bin/serve.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new Output(child.stdout);
  const stderr = new Output(child.stderr);
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already exited */ }
    await child.status;
    await Promise.all([stdout.done, stderr.done]);
  };
  try {
    const [, url] = await stdout.waitFor(
      /at (http:\/\/127\.0\.0\.1:\d+\/)/,
      30_000,
      "a listen line",
    );
    return { url, stop };
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\nstderr:\n${stderr.text}`);
  }
}

Deno.test("deno task serve sends the page, the bundle, the model and meta.json, and nothing else", async () => {
  const { dir, model } = await makeRun();
  const server = await startServer(["--model", dir, "--port", "0"]);
  try {
    const get = (path: string, init?: RequestInit) => fetch(new URL(path, server.url), init);
    const page = await get("/");
    assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(await page.text(), /<script src="\/tf\.min\.js"><\/script>/);
    const bundle = await get("/tf.min.js");
    assert.equal(bundle.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal(
      await bundle.text(),
      await Deno.readTextFile(new URL("node_modules/@tensorflow/tfjs/dist/tf.min.js", ROOT)),
    );
    const json = await (await get("/model/model.json")).json();
    assert.deepEqual(json.weightsManifest[0].paths, ["./weights.bin"]);
    const weights = new Uint8Array(await (await get("/model/weights.bin")).arrayBuffer());
    assert.deepEqual(weights, await Deno.readFile(`${dir}/model/weights.bin`));
    assert.deepEqual(await (await get("/meta.json")).json(), {
      classes: CIFAR10_CLASSES,
      mean: [0.4914, 0.4822, 0.4465],
      std: [0.2023, 0.1994, 0.201],
      imageSize: 32,
      topK: 3,
      width: 4,
    });
    for (
      const path of ["/deno.json", "/model/../config.json", "/web/app.js", "/%2e%2e/deno.json"]
    ) {
      const response = await get(path);
      assert.equal(response.status, 404, path);
      await response.body?.cancel();
    }
    const post = await get("/", { method: "POST" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
  } finally {
    await server.stop();
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task serve names the flag or folder that is wrong", async () => {
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-P=serve", "bin/serve.ts", ...args],
      cwd: ROOT,
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  };
  const noModel = await run([]);
  assert.equal(noModel.code, 2);
  assert.match(
    noModel.stderr,
    /error: --model: expected a run folder \(from deno task train\) but found none/,
  );
  const badPort = await run(["--model", "x", "--port", "70000"]);
  assert.equal(badPort.code, 2);
  assert.match(
    badPort.stderr,
    /error: --port: expected an integer in 0\.\.65535 but found "70000"/,
  );
  const missing = await run(["--model", "/nonexistent/run"]);
  assert.equal(missing.code, 1);
  assert.match(
    missing.stderr,
    /Expected a run folder with model\/model\.json .* at \/nonexistent\/run but found neither/,
  );
});

/** A minimal Chrome DevTools Protocol client over the browser's websocket. */
class Cdp {
  #socket: WebSocket;
  #next = 1;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      const waiter = this.#pending.get(message.id);
      if (waiter === undefined) return; // an event
      this.#pending.delete(message.id);
      if (message.error) waiter.reject(new Error(`CDP: ${JSON.stringify(message.error)}`));
      else waiter.resolve(message.result);
    };
  }
  static async connect(url: string): Promise<Cdp> {
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error(`Could not open the DevTools websocket ${url}`));
    });
    return new Cdp(socket);
  }
  send<T>(method: string, params: object = {}, sessionId?: string): Promise<T> {
    const id = this.#next++;
    this.#socket.send(JSON.stringify({ id, method, params, sessionId }));
    return new Promise((resolve, reject) =>
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
    );
  }
  async close(): Promise<void> {
    const closed = new Promise((resolve) => (this.#socket.onclose = resolve));
    this.#socket.close();
    await closed;
  }
}

/** Opens `url` in headless Chromium and polls `expression` until it is not null. */
async function evaluateInChromium(
  url: string,
  expression: string,
  timeoutMs: number,
): Promise<unknown> {
  const profile = await Deno.makeTempDir({ prefix: "chromium_profile_" });
  const browser = new Deno.Command(CHROMIUM, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
      `--user-data-dir=${profile}`,
      "--remote-debugging-address=127.0.0.1",
      "--remote-debugging-port=0",
      "about:blank",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Output(browser.stderr);
  let cdp: Cdp | undefined;
  try {
    const [, wsUrl] = await stderr.waitFor(
      /DevTools listening on (ws:\/\/\S+)/,
      30_000,
      "DevTools",
    );
    cdp = await Cdp.connect(wsUrl);
    const { targetId } = await cdp.send<{ targetId: string }>("Target.createTarget", { url });
    const { sessionId } = await cdp.send<{ sessionId: string }>(
      "Target.attachToTarget",
      { targetId, flatten: true },
    );
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const { result } = await cdp.send<{ result: { value?: string } }>(
        "Runtime.evaluate",
        { expression, returnByValue: true },
        sessionId,
      );
      if (result.value !== undefined && result.value !== "null") return JSON.parse(result.value);
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(
      `Expected ${expression} within ${timeoutMs} ms; Chromium said:\n${stderr.text}`,
    );
  } finally {
    await cdp?.close();
    browser.kill("SIGTERM");
    await browser.status;
    await stderr.done;
    await Deno.remove(profile, { recursive: true });
  }
}

/** A non-square test photo (61x45: cropped to 45x45, then averaged with fractional weights). */
function testPhoto(): { rgb: Uint8Array; width: number; height: number } {
  const width = 61;
  const height = 45;
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      rgb[i] = (x * 4 + ((x * 7 + y * 13) % 31)) & 255;
      rgb[i + 1] = (y * 5 + ((x * 11) % 17)) & 255;
      rgb[i + 2] = (128 + 100 * Math.sin(x / 5) * Math.cos(y / 7)) | 0;
    }
  }
  return { rgb, width, height };
}

Deno.test({
  name: "the served page classifies a PNG in headless Chromium as lib/predict.ts does",
  ignore: chromiumMissing,
  async fn() {
    const { dir, model } = await makeRun();
    const photo = testPhoto();
    const png = await encodePng(photo.rgb, photo.width, photo.height);
    const pixels = toCifarPixels(decodeImage(png, "photo.png"));
    const [expected] = await classifyPixels(model, pixels, { k: 3 });
    const server = await startServer(["--model", dir, "--port", "0"]);
    try {
      const dataUrl = `data:image/png;base64,${btoa(String.fromCharCode(...png))}`;
      // cpu: the reference; then the page's own choice (webgl on SwiftShader here).
      for (const backend of ["cpu", ""]) {
        const query = `${backend ? `backend=${backend}&` : ""}test=${encodeURIComponent(dataUrl)}`;
        const check = await evaluateInChromium(
          `${server.url}?${query}`,
          "JSON.stringify(globalThis.selfCheck ?? null)",
          60_000,
        ) as {
          ok: boolean;
          error?: string;
          backend: string;
          top: ClassProbability[];
          pixels: number[];
        };
        assert.equal(check.ok, true, check.error);
        const diff = Math.max(
          ...check.top.map((t, i) => Math.abs(t.probability - expected[i].probability)),
        );
        console.log(
          `page (${check.backend}): ${JSON.stringify(check.top)}; max |difference| ${diff}`,
        );
        assert.deepEqual(
          check.pixels,
          Array.from(pixels),
          "the page's 32x32 input equals predict's",
        );
        assert.equal(check.top[0].className, expected[0].className);
        assert.deepEqual(check.top.map((t) => t.label), expected.map((t) => t.label));
        assert.ok(diff <= 1e-3, `${check.backend}: ${diff}`);
      }
      console.log(`deno (cpu): ${JSON.stringify(expected)}`);
    } finally {
      await server.stop();
      model.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
