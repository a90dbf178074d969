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

/** `deno task serve`'s command line (bin/task.ts grants read access to the paths named). */
const SERVE = ["run", "--allow-run", "bin/task.ts", "serve"];

/** `deno task serve` as a child process; resolves once it listens. */
async function startServer(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...SERVE, ...args],
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

/**
 * `deno task serve` run where it should refuse to start: its exit status and stderr. Should it
 * start serving instead, it is stopped after 30 s and the status says so (143).
 */
async function serveRefusal(args: string[]): Promise<{ code: number; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...SERVE, ...args],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Output(child.stderr);
  const timer = setTimeout(() => child.kill("SIGTERM"), 30_000);
  try {
    const { code } = await child.status;
    await stderr.done;
    return { code, stderr: stderr.text };
  } finally {
    clearTimeout(timer);
  }
}

/** A response read off the socket as it came: status, headers, and every byte after them. */
interface RawResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/**
 * One HTTP/1.1 request over a plain TCP connection, with the `Host` header given (fetch sets
 * its own), read until the server closes the connection (at most 64 MiB, within 10 s).
 */
async function rawRequest(
  url: string,
  method: string,
  path: string,
  host: string,
): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const timer = setTimeout(() => conn.close(), 10_000);
  try {
    const request = `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
    await conn.write(new TextEncoder().encode(request));
    const chunks: Uint8Array[] = [];
    let total = 0;
    for await (const chunk of conn.readable) {
      chunks.push(chunk);
      total += chunk.length;
      if (total > 64 * 2 ** 20) throw new Error(`${method} ${path}: response over 64 MiB`);
    }
    const all = new Uint8Array(total);
    chunks.reduce((at, c) => (all.set(c, at), at + c.length), 0);
    const text = new TextDecoder().decode(all);
    const end = text.indexOf("\r\n\r\n");
    const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
    const headers = new Headers();
    for (const line of lines) {
      headers.append(line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1).trim());
    }
    return {
      status: Number(statusLine.split(" ")[1]),
      headers,
      body: all.subarray(new TextEncoder().encode(text.slice(0, end + 4)).length),
    };
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the server or the timer */ }
  }
}

/** Asserts the headers every response must carry, naming the request. */
function assertSecurityHeaders(headers: Headers, what: string): void {
  assert.equal(headers.get("x-content-type-options"), "nosniff", what);
  assert.match(
    headers.get("content-security-policy") ?? "",
    /^default-src 'none'; script-src 'self' 'sha256-[\w+/]+={0,2}'; style-src 'sha256-[\w+/]+={0,2}'; img-src blob:; connect-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'$/,
    what,
  );
}

Deno.test("deno task serve answers only to its own address in the Host header (no DNS rebinding)", async () => {
  const { dir, model } = await makeRun();
  const server = await startServer(["--model", dir, "--port", "0"]);
  try {
    const port = new URL(server.url).port;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`]) {
      const ok = await rawRequest(server.url, "GET", "/model/weights.bin", host);
      assert.equal(ok.status, 200, host);
      assert.deepEqual(ok.body, await Deno.readFile(`${dir}/model/weights.bin`));
    }
    const expected = `expected Host 127.0.0.1:${port} or localhost:${port}`;
    for (
      const host of ["evil.example.com", `evil.example.com:${port}`, "localhost:1", "127.0.0.1"]
    ) {
      const refused = await rawRequest(server.url, "GET", "/model/weights.bin", host);
      assert.equal(refused.status, 421, host);
      assertSecurityHeaders(refused.headers, host);
      assert.equal(
        new TextDecoder().decode(refused.body),
        `Misdirected Request: ${expected} but found ${JSON.stringify(host.toLowerCase())}\n`,
      );
    }
  } finally {
    await server.stop();
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task serve puts nosniff and the Content-Security-Policy on every response", async () => {
  const { dir, model } = await makeRun();
  const server = await startServer(["--model", dir, "--port", "0"]);
  try {
    const cases: [string, RequestInit, number][] = [
      ["/", {}, 200],
      ["/app.js", {}, 200],
      ["/tf.min.js", {}, 200],
      ["/model/weights.bin", {}, 200],
      ["/meta.json", {}, 200],
      ["/nowhere", {}, 404],
      ["/", { method: "POST" }, 405],
    ];
    for (const [path, init, status] of cases) {
      const response = await fetch(new URL(path, server.url), init);
      await response.body?.cancel();
      assert.equal(response.status, status, path);
      assertSecurityHeaders(response.headers, `${init.method ?? "GET"} ${path}`);
    }
  } finally {
    await server.stop();
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task serve answers HEAD with GET's headers, the file's length and no body", async () => {
  const { dir, model } = await makeRun();
  const server = await startServer(["--model", dir, "--port", "0"]);
  try {
    const host = new URL(server.url).host;
    const weights = (await Deno.stat(`${dir}/model/weights.bin`)).size;
    const page = (await Deno.stat(new URL("web/index.html", ROOT))).size;
    const meta = new TextEncoder().encode(
      await (await fetch(new URL("/meta.json", server.url))).text(),
    );
    const cases: [string, number][] = [
      ["/model/weights.bin", weights],
      ["/", page],
      ["/meta.json", meta.length],
    ];
    for (const [path, length] of cases) {
      const get = await rawRequest(server.url, "GET", path, host);
      const head = await rawRequest(server.url, "HEAD", path, host);
      assert.equal(head.status, 200, path);
      assert.equal(head.body.length, 0, `HEAD ${path} sent a body`);
      assert.equal(get.body.length, length, path);
      assert.equal(head.headers.get("content-length"), String(length), path);
      const without = (h: Headers) => [...h].filter(([name]) => name !== "date");
      assert.deepEqual(without(head.headers), without(get.headers), path);
    }
  } finally {
    await server.stop();
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task serve refuses a symbolic link in the model folder, at startup and per request", async () => {
  const { dir, model } = await makeRun();
  model.dispose();
  try {
    const weights = `${dir}/model/weights.bin`;
    const saved = `${dir}/weights.saved`;
    await Deno.rename(weights, saved);
    await Deno.symlink("/etc/passwd", weights);
    const out = await serveRefusal(["--model", dir, "--port", "0"]);
    assert.equal(out.code, 1);
    assert.match(
      out.stderr,
      new RegExp(
        `error: Expected ${dir}/model/weights\\.bin to be a regular file inside ${dir}/model but ` +
          `found a symbolic link to /etc/passwd; deno task serve does not follow links out of the ` +
          `folders it serves\\n`,
      ),
    );

    // Linked in place after startup: refused on the request.
    await Deno.remove(weights);
    await Deno.rename(saved, weights);
    const server = await startServer(["--model", dir, "--port", "0"]);
    try {
      const before = await fetch(new URL("/model/weights.bin", server.url));
      assert.equal(before.status, 200);
      await before.body?.cancel();
      await Deno.remove(weights);
      await Deno.symlink("/etc/passwd", weights);
      const after = await fetch(new URL("/model/weights.bin", server.url));
      assert.equal(after.status, 403);
      assertSecurityHeaders(after.headers, "403");
      assert.equal(
        await after.text(),
        "Forbidden: /model/weights.bin is no longer a regular file in its folder\n",
      );
    } finally {
      await server.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task serve names the flag or folder that is wrong", async () => {
  const run = serveRefusal;
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
  /** Events received, in order (console and log entries, uncaught exceptions). */
  events: { method: string; params: Record<string, unknown> }[] = [];
  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.id === undefined) {
        this.events.push({ method: message.method, params: message.params });
        return;
      }
      const waiter = this.#pending.get(message.id);
      if (waiter === undefined) return;
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

/** What the page gave back, and what it logged on the way. */
interface PageRun {
  /** `expression`'s value, parsed from JSON. */
  value: unknown;
  /** Each probe's value, evaluated after `expression` under the page's own CSP (no eval). */
  probes: unknown[];
  /** Log entries, console errors and uncaught exceptions, as text. */
  messages: string[];
}

/**
 * Opens `url` in headless Chromium, polls `expression` until it is not null, then evaluates
 * each of `probes`; the page's log is recorded from before it starts loading.
 */
async function evaluateInChromium(
  url: string,
  expression: string,
  timeoutMs: number,
  probes: string[] = [],
): Promise<PageRun> {
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
    const page = cdp;
    const { targetId } = await page.send<{ targetId: string }>("Target.createTarget", {
      url: "about:blank",
    });
    const { sessionId } = await page.send<{ sessionId: string }>(
      "Target.attachToTarget",
      { targetId, flatten: true },
    );
    for (const domain of ["Log", "Runtime", "Page"]) {
      await page.send(`${domain}.enable`, {}, sessionId);
    }
    await page.send("Page.navigate", { url }, sessionId);
    const evaluate = async (source: string) => {
      const { result } = await page.send<{ result: { value?: unknown } }>(
        "Runtime.evaluate",
        // Evaluated as the page's own code would be: its CSP applies (no eval).
        {
          expression: source,
          returnByValue: true,
          awaitPromise: true,
          allowUnsafeEvalBlockedByCSP: false,
        },
        sessionId,
      );
      return result.value;
    };
    const messages = () =>
      page.events.flatMap(({ method, params }) => {
        if (method === "Log.entryAdded") {
          const entry = params.entry as { level: string; source: string; text: string };
          return [`${entry.level} (${entry.source}): ${entry.text}`];
        }
        if (method === "Runtime.exceptionThrown") {
          return [`uncaught: ${JSON.stringify(params.exceptionDetails)}`];
        }
        if (method === "Runtime.consoleAPICalled" && params.type === "error") {
          return [`console.error: ${JSON.stringify(params.args)}`];
        }
        return [];
      });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const value = await evaluate(expression);
      if (typeof value === "string" && value !== "null") {
        const results = [];
        for (const probe of probes) results.push(await evaluate(probe));
        return { value: JSON.parse(value), probes: results, messages: messages() };
      }
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
  name:
    "the served page classifies a PNG in headless Chromium as lib/predict.ts does, under its CSP",
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
        const run = await evaluateInChromium(
          `${server.url}?${query}`,
          "JSON.stringify(globalThis.selfCheck ?? null)",
          60_000,
          [
            // The inline <style> applies (allowed by its hash).
            "getComputedStyle(document.body).maxWidth",
            // The photo shown from a blob: URL loads (img-src blob:).
            `new Promise((resolve) => {
              const photo = document.getElementById("photo");
              if (photo.complete) resolve(photo.naturalWidth);
              photo.onload = () => resolve(photo.naturalWidth);
              photo.onerror = () => resolve("blocked");
            })`,
            // A string evaluated as code is refused: no 'unsafe-eval'.
            `(() => { try { eval("1"); return "eval ran"; } catch (e) { return e.name; } })()`,
          ],
        );
        const check = run.value as {
          ok: boolean;
          error?: string;
          backend: string;
          top: ClassProbability[];
          pixels: number[];
        };
        const refused = run.messages.filter((m) => /Content.Security.Policy|uncaught/i.test(m));
        assert.deepEqual(refused, [], `the page ran into its CSP:\n${run.messages.join("\n")}`);
        assert.equal(check.ok, true, check.error);
        assert.deepEqual(run.probes, ["704px", photo.width, "EvalError"]);
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
