import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  CIFAR10_CLASSES,
  CIFAR10_MEAN,
  IMAGE_BYTES,
  loadCifar10,
  RECORD_BYTES,
} from "../lib/data.ts";
import {
  CIFAR10_ARCHIVE,
  CIFAR10_FOLDER,
  CIFAR10_URL,
  downloadFile,
  type DownloadProgress,
} from "../lib/io/download.ts";

const REAL_ARCHIVE = new URL("../../shared/data/cifar-10-binary.tar.gz", import.meta.url);
const REAL_MD5 = "ef76c885e8d3c62d86803b623b0861a7";
const hasRealArchive = await Deno.stat(REAL_ARCHIVE).then(() => true, () => false);

const md5 = (bytes: Uint8Array) => createHash("md5").update(bytes).digest("hex");
const encoder = new TextEncoder();

/** A loopback server that counts its requests; dispose it to shut it down. */
function serve(handler: () => Response | Promise<Response>) {
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    requests++;
    return handler();
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/${CIFAR10_ARCHIVE}`,
    get requests() {
      return requests;
    },
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/**
 * Announces all of `bytes` in Content-Length but ends the body after `sentBytes`, so the
 * server drops the connection mid-body. (Ending rather than erroring the stream keeps the
 * server from logging the error.)
 */
function truncated(bytes: Uint8Array, sentBytes: number): Response {
  let sent = false;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent) return controller.close();
      sent = true;
      controller.enqueue(bytes.slice(0, sentBytes));
    },
  });
  return new Response(body, { headers: { "content-length": String(bytes.length) } });
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

// A minimal ustar + gzip writer for small synthetic archives (tests/tar_test.ts tests the format).
async function tarGz(files: [string, Uint8Array][]): Promise<Uint8Array<ArrayBuffer>> {
  const parts: Uint8Array[] = [];
  for (const [name, body] of files) {
    const header = new Uint8Array(512);
    const put = (text: string, offset: number) => header.set(encoder.encode(text), offset);
    put(name, 0);
    put("0000644\0", 100);
    put(body.length.toString(8).padStart(11, "0") + "\0", 124);
    put("0", 156);
    put("ustar\u000000", 257);
    put("        ", 148);
    put(header.reduce((sum, byte) => sum + byte, 0).toString(8).padStart(6, "0") + "\0 ", 148);
    parts.push(header, body, new Uint8Array((512 - body.length % 512) % 512));
  }
  parts.push(new Uint8Array(1024));
  const tar = new Blob(parts as Uint8Array<ArrayBuffer>[]).stream();
  return new Uint8Array(
    await new Response(tar.pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
  );
}

/** Batch k has k records labelled k-1; the test batch has 3 records labelled 9. */
function syntheticMembers(): [string, Uint8Array][] {
  const batch = (count: number, label: number) => {
    const bytes = new Uint8Array(count * RECORD_BYTES).fill(label * 20);
    for (let i = 0; i < count; i++) bytes[i * RECORD_BYTES] = label;
    return bytes;
  };
  const members: [string, Uint8Array][] = [
    [`${CIFAR10_FOLDER}/batches.meta.txt`, encoder.encode(CIFAR10_CLASSES.join("\n") + "\n\n")],
    [`${CIFAR10_FOLDER}/readme.html`, encoder.encode("<p>readme</p>")],
  ];
  for (let k = 1; k <= 5; k++) {
    members.push([`${CIFAR10_FOLDER}/data_batch_${k}.bin`, batch(k, k - 1)]);
  }
  members.push([`${CIFAR10_FOLDER}/test_batch.bin`, batch(3, 9)]);
  return members;
}

const SYNTHETIC = await tarGz([
  ...syntheticMembers(),
  [`${CIFAR10_FOLDER}/unexpected.txt`, encoder.encode("not written")],
  ["elsewhere/notes.txt", encoder.encode("not written")],
]);
const SYNTHETIC_MD5 = md5(SYNTHETIC);

Deno.test("downloadFile() streams to the file, reporting progress with the total", async () => {
  const bytes = Uint8Array.from({ length: 1_000_000 }, (_, i) => (i * 31) % 256);
  await using server = serve(() =>
    new Response(bytes, { headers: { "content-length": String(bytes.length) } })
  );
  await withTempDir(async (dir) => {
    const path = join(dir, "sub", "file.bin");
    const progress: DownloadProgress[] = [];
    await downloadFile(server.url, path, { md5: md5(bytes), onProgress: (p) => progress.push(p) });
    assert.deepEqual(await Deno.readFile(path), bytes);
    assert.deepEqual(await listDir(join(dir, "sub")), ["file.bin"]);
    assert.ok(progress.length > 1, `${progress.length} progress reports`);
    assert.ok(progress.every((p) => p.totalBytes === bytes.length));
    assert.ok(progress.every((p, i) => i === 0 || p.receivedBytes > progress[i - 1].receivedBytes));
    assert.equal(progress.at(-1)?.receivedBytes, bytes.length);
  });
});

Deno.test("downloadFile() without a Content-Length reports no total", async () => {
  const bytes = encoder.encode("x".repeat(1000));
  await using _server = serve(() => new Response(new Blob([bytes]).stream()));
  await withTempDir(async (dir) => {
    const progress: DownloadProgress[] = [];
    await downloadFile(_server.url, join(dir, "f"), { onProgress: (p) => progress.push(p) });
    assert.deepEqual(progress.at(-1), { receivedBytes: 1000 });
  });
});

Deno.test("downloadFile() keeps nothing when the download is wrong", async (t) => {
  const bytes = Uint8Array.from({ length: 300_000 }, (_, i) => i % 256);
  const goodMd5 = md5(bytes);
  await withTempDir(async (dir) => {
    const path = join(dir, "file.bin");
    const nothingKept = async () => assert.deepEqual(await listDir(dir), []);

    await t.step("an md5 mismatch", async () => {
      await using server = serve(() => new Response(bytes));
      const wrong = "0".repeat(32);
      await assert.rejects(() => downloadFile(server.url, path, { md5: wrong }), {
        message: `Expected md5 ${wrong} for ${server.url} but found ${goodMd5} ` +
          "(a corrupted or different file; nothing was kept)",
      });
      await nothingKept();
    });
    await t.step("a connection that closes early", async () => {
      await using server = serve(() => truncated(bytes, 100_000));
      await assert.rejects(() => downloadFile(server.url, path, { md5: goodMd5 }), {
        message: new RegExp(
          `^Download of ${server.url} failed after 100000 of 300000 bytes: `,
        ),
      });
      await nothingKept();
    });
    await t.step("flipped bytes", async () => {
      const corrupted = bytes.slice();
      corrupted[12345] ^= 0xff;
      await using server = serve(() => new Response(corrupted));
      await assert.rejects(() => downloadFile(server.url, path, { md5: goodMd5 }), {
        message: new RegExp(
          `^Expected md5 ${goodMd5} for ${server.url} but found ${md5(corrupted)}`,
        ),
      });
      await nothingKept();
    });
    await t.step("an HTTP error", async () => {
      await using server = serve(() =>
        new Response("no", { status: 404, statusText: "Not Found" })
      );
      await assert.rejects(() => downloadFile(server.url, path), {
        message: `Expected HTTP status 200 from ${server.url} but found 404 Not Found`,
      });
      await nothingKept();
    });
    await t.step("a server that cannot be reached", async () => {
      await assert.rejects(() => downloadFile("http://127.0.0.1:1/x.tar.gz", path), {
        message: /^Could not download http:\/\/127\.0\.0\.1:1\/x\.tar\.gz: /,
      });
      await nothingKept();
    });
    await t.step("a bad md5 string", async () => {
      await assert.rejects(() => downloadFile("http://127.0.0.1:1/", path, { md5: "abc" }), {
        name: "TypeError",
        message: 'Expected md5 to be 32 hexadecimal digits but found "abc"',
      });
    });
  });
});

Deno.test("loadCifar10() downloads and extracts once, then reads the cache offline", async () => {
  await using server = serve(() => new Response(SYNTHETIC));
  await withTempDir(async (root) => {
    const messages: string[] = [];
    const load = () =>
      loadCifar10({ source: server.url, md5: SYNTHETIC_MD5, root, log: (m) => messages.push(m) });
    const first = await load();
    assert.equal(server.requests, 1);
    assert.equal(first.train.count, 1 + 2 + 3 + 4 + 5);
    assert.deepEqual([...first.train.labels.subarray(0, 3)], [0, 1, 1]);
    assert.deepEqual([...first.test.labels], [9, 9, 9]);
    assert.equal(first.test.images[2 * IMAGE_BYTES + 5], 180);
    assert.deepEqual(first.classNames, [...CIFAR10_CLASSES]);
    assert.deepEqual(await listDir(root), [CIFAR10_FOLDER, CIFAR10_ARCHIVE]);
    // Only the expected members are written.
    assert.deepEqual(await listDir(join(root, CIFAR10_FOLDER)), [
      "batches.meta.txt",
      "data_batch_1.bin",
      "data_batch_2.bin",
      "data_batch_3.bin",
      "data_batch_4.bin",
      "data_batch_5.bin",
      "readme.html",
      "test_batch.bin",
    ]);
    assert.match(
      messages[0],
      /^Downloading http:\/\/127\.0\.0\.1:\d+\/cifar-10-binary\.tar\.gz to /,
    );

    messages.length = 0;
    const second = await load();
    assert.equal(server.requests, 1, "the second load touched the network");
    assert.deepEqual(second, first);
    assert.match(messages[0], /^Using .*cifar-10-batches-bin \(already downloaded\)$/);

    // Without the extracted folder, the kept (and re-verified) archive is extracted again.
    await Deno.remove(join(root, CIFAR10_FOLDER), { recursive: true });
    assert.deepEqual(await load(), first);
    assert.equal(server.requests, 1);
  });
});

Deno.test("loadCifar10() trusts nothing an interrupted run left behind", async () => {
  await using server = serve(() => new Response(SYNTHETIC));
  await withTempDir(async (root) => {
    // What a run killed mid-download or mid-extraction leaves, plus an archive of the wrong bytes.
    const junk = encoder.encode("half a download");
    await Deno.writeFile(join(root, `${CIFAR10_ARCHIVE}.part`), junk);
    await Deno.writeFile(join(root, CIFAR10_ARCHIVE), junk);
    await Deno.mkdir(join(root, `${CIFAR10_FOLDER}.partial`, CIFAR10_FOLDER), { recursive: true });
    const data = await loadCifar10({ source: server.url, md5: SYNTHETIC_MD5, root });
    assert.equal(server.requests, 1);
    assert.equal(data.train.count, 15);
    assert.deepEqual(await listDir(root), [CIFAR10_FOLDER, CIFAR10_ARCHIVE]);
    assert.deepEqual(await Deno.readFile(join(root, CIFAR10_ARCHIVE)), SYNTHETIC);
  });
});

Deno.test("loadCifar10() leaves no cache after a failed download", async (t) => {
  await withTempDir(async (root) => {
    await t.step(
      "a checksum mismatch; the next load with the right md5 downloads again",
      async () => {
        await using server = serve(() => new Response(SYNTHETIC));
        const wrong = "f".repeat(32);
        await assert.rejects(() => loadCifar10({ source: server.url, md5: wrong, root }), {
          message: new RegExp(
            `^Expected md5 ${wrong} for ${server.url} but found ${SYNTHETIC_MD5}`,
          ),
        });
        assert.deepEqual(await listDir(root), []);
        const data = await loadCifar10({ source: server.url, md5: SYNTHETIC_MD5, root });
        assert.equal(data.test.count, 3);
        assert.equal(server.requests, 2);
        await Deno.remove(root, { recursive: true });
      },
    );
    await t.step("a truncated download", async () => {
      const half = Math.floor(SYNTHETIC.length / 2);
      await using server = serve(() => truncated(SYNTHETIC, half));
      await assert.rejects(
        () => loadCifar10({ source: server.url, md5: SYNTHETIC_MD5, root }),
        { message: new RegExp(`failed after ${half} of ${SYNTHETIC.length} bytes`) },
      );
      assert.deepEqual(await listDir(root), []);
    });
  });
});

Deno.test("loadCifar10() leaves no cache when the archive cannot be extracted", async (t) => {
  await withTempDir(async (dir) => {
    const root = join(dir, "root");
    const cases: [string, [string, Uint8Array][], RegExp][] = [
      [
        "an entry outside the target",
        [...syntheticMembers(), ["../evil", encoder.encode("x")]],
        /^Could not extract .*cifar-10-binary\.tar\.gz: Expected a relative path inside the target folder for the tar entry in the tar header at byte offset \d+ but found "\.\.\/evil" \(a "\.\." segment\)$/,
      ],
      [
        "a missing member",
        syntheticMembers().filter(([name]) => !name.endsWith("test_batch.bin")),
        /^Expected .*cifar-10-binary\.tar\.gz to contain cifar-10-batches-bin\/test_batch\.bin but it is missing$/,
      ],
    ];
    for (const [what, members, message] of cases) {
      await t.step(what, async () => {
        const archive = await tarGz(members);
        await using server = serve(() => new Response(archive));
        await assert.rejects(
          () => loadCifar10({ source: server.url, md5: md5(archive), root }),
          { message },
        );
        // The verified archive may stay; no extracted or partial folder does.
        assert.deepEqual(await listDir(root), [CIFAR10_ARCHIVE]);
        assert.deepEqual(await listDir(dir), ["root"]);
        await Deno.remove(root, { recursive: true });
      });
    }
  });
});

Deno.test("loadCifar10() checks its source", async (t) => {
  await withTempDir(async (dir) => {
    await t.step("a URL of the user's choosing needs an md5", async () => {
      const url = "http://127.0.0.1:1/mirror.tar.gz";
      await assert.rejects(() => loadCifar10({ source: url, root: dir }), {
        message: `Expected an md5 checksum (options.md5) for source ${url}; ` +
          `only ${CIFAR10_URL} has a known one`,
      });
    });
    await t.step("a file that is not a .tar.gz", async () => {
      const path = join(dir, "data.zip");
      await Deno.writeFile(path, new Uint8Array(10));
      await assert.rejects(() => loadCifar10({ source: path }), {
        message: `Expected source ${path} to be a folder or a .tar.gz archive but found a file ` +
          "with another extension",
      });
    });
    await t.step("an incomplete cached folder", async () => {
      const root = join(dir, "cache");
      await Deno.mkdir(join(root, CIFAR10_FOLDER), { recursive: true });
      await assert.rejects(() => loadCifar10({ root }), {
        message: new RegExp(
          `^Expected ${join(root, CIFAR10_FOLDER)} to hold the CIFAR-10 binary files but ` +
            "data_batch_1.bin, .* are missing \\(delete the folder to download it again\\)$",
        ),
      });
    });
  });
});

Deno.test("loadCifar10() reads a local .tar.gz in memory, checking its md5", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "copy.tar.gz");
    await Deno.writeFile(path, SYNTHETIC);
    const root = join(dir, "root");
    const data = await loadCifar10({ source: path, md5: SYNTHETIC_MD5, root });
    assert.equal(data.train.count, 15);
    assert.deepEqual(await listDir(dir), ["copy.tar.gz"], "nothing is written");
    await assert.rejects(() => loadCifar10({ source: path, md5: "0".repeat(32) }), {
      message: `Expected md5 ${"0".repeat(32)} for ${path} but found ${SYNTHETIC_MD5}`,
    });
  });
});

Deno.test({
  name: "loadCifar10() downloads the real archive once: 50000 + 10000 balanced images",
  ignore: !hasRealArchive,
  async fn(t) {
    const size = (await Deno.stat(REAL_ARCHIVE)).size;
    await using server = serve(async () =>
      new Response((await Deno.open(REAL_ARCHIVE)).readable, {
        headers: { "content-length": String(size) },
      })
    );
    await withTempDir(async (root) => {
      const progress: DownloadProgress[] = [];
      const load = () =>
        loadCifar10({
          source: server.url,
          md5: REAL_MD5,
          root,
          onProgress: (p) => progress.push(p),
        });
      const data = await load();

      await t.step("progress reached the Content-Length total", () => {
        assert.ok(progress.length > 10);
        assert.ok(progress.every((p) => p.totalBytes === size));
        assert.equal(progress.at(-1)?.receivedBytes, size);
      });
      await t.step("50000 training and 10000 test images, balanced", () => {
        assert.equal(data.train.count, 50000);
        assert.equal(data.test.count, 10000);
        assert.equal(data.train.images.length, 50000 * IMAGE_BYTES);
        const perClass = (labels: Uint8Array) => {
          const counts = new Array(10).fill(0);
          for (const label of labels) counts[label]++;
          return counts;
        };
        assert.deepEqual(perClass(data.train.labels), new Array(10).fill(5000));
        assert.deepEqual(perClass(data.test.labels), new Array(10).fill(1000));
      });
      await t.step("class names come from batches.meta.txt", () => {
        assert.deepEqual(data.classNames, [...CIFAR10_CLASSES]);
      });
      await t.step("NHWC channel means match the article's mean", () => {
        // A wrong planar -> NHWC reorder would mix the channels' means.
        const sums = [0, 0, 0];
        const { images } = data.train;
        for (let i = 0; i < images.length; i += 3) {
          sums[0] += images[i];
          sums[1] += images[i + 1];
          sums[2] += images[i + 2];
        }
        const means = sums.map((sum) => sum / (images.length / 3) / 255);
        means.forEach((mean, c) => {
          assert.ok(Math.abs(mean - CIFAR10_MEAN[c]) < 0.01, `channel ${c}: ${mean}`);
        });
      });
      await t.step("a second load reads the cache without the network", async () => {
        const again = await load();
        assert.equal(server.requests, 1);
        assert.equal(again.train.count, 50000);
        assert.deepEqual(again.test.labels, data.test.labels);
      });
    });
  },
});
