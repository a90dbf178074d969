/**
 * `deno task serve`'s work: a page that classifies a photo in the browser with a trained run's
 * model, in TensorFlow.js format as `deno task train` saved it. It serves a fixed set of files
 * (nothing else on disk is reachable): the page (`web/`), TensorFlow.js's browser bundle from
 * `node_modules`, the run's `model/` files and `/meta.json` (class names and CIFAR-10's mean/std
 * from `lib/data.ts`, so the page uses the library's constants).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, IMAGE_SIZE } from "../data.ts";
import { packageEntryFolder } from "../io/package_files.ts";
import { DEFAULT_TOP_K, modelFolder } from "../predict/classify.ts";
import type { ServeArgs } from "./serve_args.ts";

const WEB = new URL("../../web/", import.meta.url);
const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".bin": "application/octet-stream",
};

/**
 * Serves the page for the run in `args.model` on 127.0.0.1 until the process is stopped.
 *
 * @param args Checked flags (see `parseServeArgs`).
 * @returns 0 once the server has shut down.
 * @throws {Error} before listening, if the run folder has no model or a weight file is missing.
 */
export async function serveCommand(args: ServeArgs): Promise<number> {
  const model = await modelFolder(args.model);
  const handler = requestHandler(await routes(model), await metaJson(args.model));
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: args.port,
    onListen: ({ hostname, port }) =>
      console.log(`Serving ${model} at http://${hostname}:${port}/ (Ctrl-C to stop)`),
  }, handler);
  await server.finished;
  return 0;
}

/** The TensorFlow.js browser bundle inside the npm package (`dist/tf.min.js`). */
function tfjsBundlePath(): string {
  return packageEntryFolder("@tensorflow/tfjs") + "tf.min.js";
}

/** URL path -> file on disk, for every file the server may send; each is checked now. */
async function routes(model: string): Promise<Map<string, string>> {
  const table = new Map<string, string>([
    ["/", fileURLToPath(new URL("index.html", WEB))],
    ["/app.js", fileURLToPath(new URL("app.js", WEB))],
    ["/preprocess.js", fileURLToPath(new URL("../predict/preprocess.js", import.meta.url))],
    ["/tf.min.js", tfjsBundlePath()],
    ["/model/model.json", `${model}/model.json`],
  ]);
  const json = JSON.parse(await Deno.readTextFile(`${model}/model.json`)) as {
    weightsManifest?: { paths: string[] }[];
  };
  for (const path of (json.weightsManifest ?? []).flatMap((g) => g.paths)) {
    const name = path.replace(/^\.\//, "");
    if (!/^[\w.-]+$/.test(name) || name.startsWith(".")) {
      throw new Error(
        `Expected weight file names without folders in ${model}/model.json but found "${path}"`,
      );
    }
    table.set(`/model/${name}`, `${model}/${name}`);
  }
  for (const file of table.values()) await Deno.stat(file); // fail now, not on a request
  return table;
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

/** The run's settings, if the folder has a config.json next to model/. */
async function runConfig(run: string): Promise<Record<string, unknown>> {
  try {
    return JSON.parse(await Deno.readTextFile(`${run}/config.json`));
  } catch {
    return {};
  }
}

/** GET and HEAD of the routed files and `/meta.json`; 404 for any other path, 405 for other methods. */
function requestHandler(
  table: ReadonlyMap<string, string>,
  meta: string,
): (request: Request) => Promise<Response> {
  return async (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("Method Not Allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    const path = new URL(request.url).pathname;
    const headers = { "cache-control": "no-cache" };
    if (path === "/meta.json") {
      return new Response(meta, {
        headers: { ...headers, "content-type": CONTENT_TYPES[".json"] },
      });
    }
    const file = table.get(path);
    if (file === undefined) return new Response(`Not Found: ${path}\n`, { status: 404 });
    const extension = file.slice(file.lastIndexOf("."));
    const body = request.method === "HEAD" ? null : (await Deno.open(file)).readable;
    return new Response(body, {
      headers: {
        ...headers,
        "content-type": CONTENT_TYPES[extension] ?? "application/octet-stream",
      },
    });
  };
}
