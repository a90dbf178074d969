/**
 * `deno task serve`'s work: a page that classifies a photo in the browser with a trained run's
 * model, in TensorFlow.js format as `deno task train` saved it. It serves a fixed set of files
 * (nothing else on disk is reachable): the page (`web/`), TensorFlow.js's browser bundle from
 * `node_modules`, the run's `model/` files and `/meta.json` (class names and CIFAR-10's mean/std
 * from `lib/data.ts`, so the page uses the library's constants).
 *
 * What it does not take on trust:
 * - the `Host` header must name the address it listens on (`127.0.0.1:PORT` or
 *   `localhost:PORT`), so a page of another site cannot reach it through DNS rebinding;
 * - every file sent is a regular file directly inside its folder: a symbolic link (say a
 *   `model/weights.bin` pointing at `/etc/passwd`) is refused at startup and on each request;
 * - every response says `X-Content-Type-Options: nosniff` and carries a Content-Security-Policy
 *   under which the page loads only its own scripts, its own inline style (by hash) and the model.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, IMAGE_SIZE } from "../data.ts";
import { packageEntryFolder } from "../io/package_files.ts";
import { DEFAULT_TOP_K, modelFolder } from "../predict/classify.ts";
import type { ServeArgs } from "./serve_args.ts";

const WEB = fileURLToPath(new URL("../../web/", import.meta.url));
const PREDICT = fileURLToPath(new URL("../predict/", import.meta.url));
const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".bin": "application/octet-stream",
};
const TEXT = "text/plain; charset=utf-8";

/** A file the server may send: its path under its folder's real path, and how to name it. */
interface ServedFile {
  /** `<real path of the folder>/<name>`: a path with no symbolic link in it. */
  path: string;
  /** The folder as the user or the code named it, for messages. */
  shown: string;
}

/**
 * Serves the page for the run in `args.model` on 127.0.0.1 until the process is stopped.
 *
 * @param args Checked flags (see `parseServeArgs`).
 * @returns 0 once the server has shut down.
 * @throws {Error} before listening, if the run folder has no model, or a file to serve is
 *   missing or is not a regular file inside its folder (a symbolic link, say).
 */
export async function serveCommand(args: ServeArgs): Promise<number> {
  const model = await modelFolder(args.model);
  const table = await routes(model);
  const policy = await contentSecurityPolicy(await readServed(table.get("/")!));
  const meta = await metaJson(args.model);
  // Filled in before the first request can arrive: nothing awaits between listening and this.
  const hosts = new Set<string>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: args.port,
    onListen: ({ hostname, port }) =>
      console.log(`Serving ${model} at http://${hostname}:${port}/ (Ctrl-C to stop)`),
  }, requestHandler(table, meta, hosts, policy));
  for (const host of allowedHosts(server.addr)) hosts.add(host);
  await server.finished;
  return 0;
}

/**
 * The `Host` values a browser sends for this server: the bound address and `localhost`, with
 * the port (a browser leaves out `:80`). A name that merely resolves here (DNS rebinding) is
 * not among them.
 *
 * @example
 * ```ts
 * import { allowedHosts } from "./serve_command.ts";
 * console.log([...allowedHosts({ hostname: "127.0.0.1", port: 8000 })]);
 * // ["127.0.0.1:8000", "localhost:8000"]
 * ```
 */
export function allowedHosts(addr: { hostname: string; port: number }): Set<string> {
  const names = [addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname, "localhost"];
  const hosts = names.map((name) => `${name}:${addr.port}`);
  if (addr.port === 80) hosts.push(...names);
  return new Set(hosts);
}

/** The TensorFlow.js browser bundle's folder inside the npm package (`dist/`). */
function tfjsBundleFolder(): string {
  return packageEntryFolder("@tensorflow/tfjs");
}

/** URL path -> file on disk, for every file the server may send; each is checked now. */
async function routes(model: string): Promise<Map<string, ServedFile>> {
  const [web, predict, tfjs, weights] = await Promise.all(
    [WEB, PREDICT, tfjsBundleFolder(), model].map(realFolder),
  );
  const table = new Map<string, ServedFile>([
    ["/", await servedFile(web, "index.html")],
    ["/app.js", await servedFile(web, "app.js")],
    ["/preprocess.js", await servedFile(predict, "preprocess.js")],
    ["/tf.min.js", await servedFile(tfjs, "tf.min.js")],
    ["/model/model.json", await servedFile(weights, "model.json")],
  ]);
  const json = JSON.parse(await readServed(table.get("/model/model.json")!)) as {
    weightsManifest?: { paths: string[] }[];
  };
  for (const path of (json.weightsManifest ?? []).flatMap((g) => g.paths)) {
    const name = path.replace(/^\.\//, "");
    if (!/^[\w.-]+$/.test(name) || name.startsWith(".")) {
      throw new Error(
        `Expected weight file names without folders in ${model}/model.json but found "${path}"`,
      );
    }
    table.set(`/model/${name}`, await servedFile(weights, name));
  }
  return table;
}

/** A folder's real path (symbolic links in the path the user gave are theirs to choose). */
async function realFolder(folder: string): Promise<ServedFile> {
  return { path: await Deno.realPath(folder), shown: folder.replace(/\/$/, "") };
}

/** `name` in `folder`, checked now as on every request: a regular file, not a link. */
async function servedFile(folder: ServedFile, name: string): Promise<ServedFile> {
  const file = { path: `${folder.path}/${name}`, shown: `${folder.shown}/${name}` };
  const problem = await servedFileProblem(file);
  if (problem !== null) {
    const why = problem.includes("link")
      ? "; deno task serve does not follow links out of the folders it serves"
      : "";
    throw new Error(
      `Expected ${file.shown} to be a regular file inside ${folder.shown} but found ${problem}${why}`,
    );
  }
  return file;
}

/** Why `file` may not be sent (`a symbolic link to /etc/passwd`), or null if it may. */
async function servedFileProblem(file: ServedFile): Promise<string | null> {
  const info = await Deno.lstat(file.path).catch(() => null);
  if (info === null) return "no such file";
  if (info.isSymlink) {
    const target = await Deno.readLink(file.path).catch(() => "?");
    return `a symbolic link to ${target}`;
  }
  if (!info.isFile) return "something that is not a regular file";
  // The folder itself may have been replaced by a link since startup.
  const real = await Deno.realPath(file.path).catch(() => null);
  if (real !== file.path) return `a file reached through a link (${real})`;
  return null;
}

/**
 * Opens a served file after checking it again, and makes sure the file opened is the one
 * checked (same device and inode), so a link put in its place meanwhile is not followed.
 */
async function openServed(file: ServedFile): Promise<{ file: Deno.FsFile; size: number } | string> {
  const problem = await servedFileProblem(file);
  if (problem !== null) return problem;
  const checked = await Deno.lstat(file.path);
  const opened = await Deno.open(file.path);
  const info = await opened.stat();
  if (info.ino !== checked.ino || info.dev !== checked.dev) {
    opened.close();
    return "a file that changed while it was opened";
  }
  return { file: opened, size: info.size };
}

async function readServed(file: ServedFile): Promise<string> {
  const opened = await openServed(file);
  if (typeof opened === "string") {
    throw new Error(`Expected ${file.shown} to be a regular file but found ${opened}`);
  }
  return await new Response(opened.file.readable).text(); // the stream closes the file
}

/**
 * The page's Content-Security-Policy: nothing is allowed but the page's own scripts, its inline
 * `<script>` and `<style>` (each by its SHA-256, computed from the page as served), images from
 * `blob:` (the photo shown) and requests to this server and to `data:` URLs (`?test=`
 * self-checks). No `eval`: TensorFlow.js's cpu and webgl backends run without it once the
 * page declares the global its bundled regenerator runtime assigns.
 *
 * @param page The HTML of the page.
 * @returns The header's value.
 *
 * @example
 * ```ts
 * import { contentSecurityPolicy } from "./serve_command.ts";
 * const policy = await contentSecurityPolicy("<style>p {}</style>");
 * console.log(policy.split("; ")[1]); // "script-src 'self'"
 * ```
 */
export async function contentSecurityPolicy(page: string): Promise<string> {
  const hashesOf = async (tag: string) => {
    const bodies = [...page.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))];
    return await Promise.all(bodies.map(async ([, body]) => {
      const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body));
      return `'sha256-${btoa(String.fromCharCode(...new Uint8Array(digest)))}'`;
    }));
  };
  const styles = await hashesOf("style");
  return [
    "default-src 'none'",
    ["script-src 'self'", ...await hashesOf("script")].join(" "),
    `style-src ${styles.length > 0 ? styles.join(" ") : "'none'"}`,
    "img-src blob:",
    "connect-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** `/meta.json`: the library's constants the page needs, and the run's width if it says. */
async function metaJson(run: string): Promise<string> {
  const config = await runConfig(run);
  return JSON.stringify({
    classes: CIFAR10_CLASSES,
    mean: CIFAR10_MEAN,
    std: CIFAR10_STD,
    imageSize: IMAGE_SIZE,
    topK: DEFAULT_TOP_K,
    width: config.width ?? null,
  });
}

/** The run's settings, if the folder has a config.json (a regular file) next to model/. */
async function runConfig(run: string): Promise<Record<string, unknown>> {
  try {
    const info = await Deno.lstat(`${run}/config.json`);
    if (!info.isFile) return {};
    return JSON.parse(await Deno.readTextFile(`${run}/config.json`));
  } catch {
    return {};
  }
}

/** Headers every response carries, errors included. */
function securityHeaders(policy: string): Record<string, string> {
  return {
    "x-content-type-options": "nosniff",
    "content-security-policy": policy,
    "cross-origin-resource-policy": "same-origin",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
  };
}

/**
 * GET and HEAD of the routed files and `/meta.json`, for a request whose `Host` is allowed:
 * 421 for another Host, 404 for any other path, 405 for other methods, 403 for a file that is
 * no longer a regular file inside its folder. HEAD sends GET's headers (Content-Length
 * included) and no body.
 */
function requestHandler(
  table: ReadonlyMap<string, ServedFile>,
  meta: string,
  hosts: ReadonlySet<string>,
  policy: string,
): (request: Request) => Promise<Response> {
  const metaBytes = new TextEncoder().encode(meta);
  const headers = securityHeaders(policy);
  return async (request) => {
    const reply = (status: number, text: string, extra: Record<string, string> = {}) =>
      new Response(text, { status, headers: { ...headers, "content-type": TEXT, ...extra } });
    const host = request.headers.get("host")?.toLowerCase() ?? "";
    if (!hosts.has(host)) {
      return reply(
        421,
        `Misdirected Request: expected Host ${[...hosts].join(" or ")} but found ${
          JSON.stringify(host.slice(0, 100))
        }\n`,
      );
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return reply(405, "Method Not Allowed\n", { allow: "GET, HEAD" });
    }
    const head = request.method === "HEAD";
    const path = new URL(request.url).pathname;
    if (path === "/meta.json") {
      return new Response(head ? null : metaBytes, {
        headers: {
          ...headers,
          "content-type": CONTENT_TYPES[".json"],
          "content-length": String(metaBytes.length),
        },
      });
    }
    const served = table.get(path);
    if (served === undefined) return reply(404, `Not Found: ${path}\n`);
    const opened = await openServed(served);
    if (typeof opened === "string") {
      console.error(`Refused ${path}: ${served.shown} is now ${opened}`);
      return reply(403, `Forbidden: ${path} is no longer a regular file in its folder\n`);
    }
    if (head) opened.file.close();
    const extension = served.path.slice(served.path.lastIndexOf("."));
    return new Response(head ? null : opened.file.readable, {
      headers: {
        ...headers,
        "content-type": CONTENT_TYPES[extension] ?? "application/octet-stream",
        "content-length": String(opened.size),
      },
    });
  };
}
