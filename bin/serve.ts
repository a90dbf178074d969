/**
 * `deno task serve`: a page that classifies a photo in the browser with a trained run's
 * model, in TensorFlow.js format as `deno task train` saved it. Serves a fixed set of
 * files (nothing else on disk is reachable): the page (`web/`), TensorFlow.js's browser
 * bundle from `node_modules`, the run's `model/` files and `/meta.json` (class names and
 * CIFAR-10's mean/std from `lib/data.ts`, so the page uses the library's constants).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { flagError, runMain, UsageError } from "../lib/cli/flags.ts";
import { CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, IMAGE_SIZE } from "../lib/data.ts";
import { DEFAULT_TOP_K, modelFolder } from "../lib/predict/classify.ts";
import { packageEntryFolder } from "../lib/io/package_files.ts";

const USAGE = `Serve a page that classifies photos in the browser with a trained model.

Usage: deno task serve --model <run folder> [--port N]

The page takes a PNG or JPEG by drag-and-drop or file picker, center-crops it to a square,
averages it down to 32x32 (as deno task predict does) and shows the top ${DEFAULT_TOP_K} classes.

  --model DIR    run folder from deno task train (or its model/ folder)   (required)
  --port N       port on 127.0.0.1; 0 picks a free one                    (default 8000)
  --help         this text
`;

const WEB = new URL("../web/", import.meta.url);
const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".bin": "application/octet-stream",
};

/** The TensorFlow.js browser bundle inside the npm package (`dist/tf.min.js`). */
function tfjsBundlePath(): string {
  return packageEntryFolder("@tensorflow/tfjs") + "tf.min.js";
}

/** URL path -> file on disk, for every file the server may send. */
async function routes(model: string): Promise<Map<string, string>> {
  const table = new Map<string, string>([
    ["/", fileURLToPath(new URL("index.html", WEB))],
    ["/app.js", fileURLToPath(new URL("app.js", WEB))],
    ["/preprocess.js", fileURLToPath(new URL("../lib/predict/preprocess.js", import.meta.url))],
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

/** The run's settings, if the folder has a config.json next to model/. */
async function runConfig(run: string): Promise<Record<string, unknown>> {
  try {
    return JSON.parse(await Deno.readTextFile(`${run}/config.json`));
  } catch {
    return {};
  }
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        model: { type: "string" },
        port: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    throw flagError(error);
  }
  const v = parsed.values;
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  if (v.model === undefined) {
    throw new UsageError("--model: expected a run folder (from deno task train) but found none");
  }
  const port = Number(v.port ?? 8000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--port: expected an integer in 0..65535 but found "${v.port}"`);
  }
  const model = await modelFolder(v.model);
  const table = await routes(model);
  const config = await runConfig(v.model);
  const meta = JSON.stringify({
    classes: CIFAR10_CLASSES,
    mean: CIFAR10_MEAN,
    std: CIFAR10_STD,
    imageSize: IMAGE_SIZE,
    topK: DEFAULT_TOP_K,
    width: config.width ?? null,
  });

  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: ({ hostname, port }) =>
      console.log(`Serving ${model} at http://${hostname}:${port}/ (Ctrl-C to stop)`),
  }, async (request) => {
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
  });
  await server.finished;
  return 0;
}

if (import.meta.main) {
  await runMain(main);
}
