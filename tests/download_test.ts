import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  type Cifar10,
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
import {
  sameBytes,
  standardBatch,
  standardMembers,
  tarGz,
  type TarMember,
} from "./support/cifar10_fixture.ts";

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

const SYNTHETIC = await tarGz([
  ...standardMembers(),
  { name: `${CIFAR10_FOLDER}/unexpected.txt`, body: encoder.encode("not written") },
  { name: "elsewhere/notes.txt", body: encoder.encode("not written") },
]);
const SYNTHETIC_MD5 = md5(SYNTHETIC);

/** The CIFAR-10 members with `name`'s replaced (`member` null: left out). */
function membersWith(name: string, member: Partial<TarMember> | null): TarMember[] {
  const path = `${CIFAR10_FOLDER}/${name}`;
  return standardMembers().flatMap((m) =>
    m.name !== path ? [m] : member === null ? [] : [{ ...m, ...member }]
  );
}

/** Byte offset of member `index`'s header in the tar stream of `members`. */
function headerOffset(members: TarMember[], index: number): number {
  return members.slice(0, index).reduce(
    (at, m) => at + 512 + Math.ceil((m.body?.length ?? 0) / 512) * 512,
    0,
  );
}

/** The data set as the standard members hold it, for comparisons. */
function assertStandardData(data: Cifar10): void {
  assert.equal(data.train.count, 50000);
  assert.equal(data.test.count, 10000);
  assert.deepEqual([...data.train.labels.subarray(0, 3)], [0, 1, 2]);
  assert.deepEqual([...data.train.labels.subarray(10000, 10003)], [1, 2, 3]);
  assert.deepEqual([...data.test.labels.subarray(0, 3)], [5, 6, 7]);
  assert.equal(data.test.images[2 * IMAGE_BYTES + 5], 102);
  assert.deepEqual(data.classNames, [...CIFAR10_CLASSES]);
}

function assertSameData(a: Cifar10, b: Cifar10): void {
  assert.deepEqual(a.classNames, b.classNames);
  for (const split of ["train", "test"] as const) {
    assert.equal(a[split].count, b[split].count);
    assert.ok(sameBytes(a[split].images, b[split].images), `${split} images differ`);
    assert.ok(sameBytes(a[split].labels, b[split].labels), `${split} labels differ`);
  }
}

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
        message:
          /^Could not download http:\/\/127\.0\.0\.1:1\/x\.tar\.gz: .*\. Offline\? Pass a local copy: --data <cifar-10-binary\.tar\.gz or extracted folder>$/,
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
    assertStandardData(first);
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
    assertSameData(second, first);
    assert.match(messages[0], /^Using .*cifar-10-batches-bin \(already downloaded\)$/);

    // Without the extracted folder, the kept (and re-verified) archive is extracted again.
    await Deno.remove(join(root, CIFAR10_FOLDER), { recursive: true });
    assertSameData(await load(), first);
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
    assert.equal(data.train.count, 50000);
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
        assert.equal(data.test.count, 10000);
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
    const cases: [string, TarMember[], RegExp][] = [
      [
        "an entry outside the target",
        [...standardMembers(), { name: "../evil", body: encoder.encode("x") }],
        /^Could not extract .*cifar-10-binary\.tar\.gz: Expected a relative path inside the target folder for the tar entry in the tar header at byte offset \d+ but found "\.\.\/evil" \(a "\.\." segment\)$/,
      ],
      [
        "a missing member",
        membersWith("test_batch.bin", null),
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

/** Writes `archive` into `dir` as `name` and returns its path. */
async function localArchive(dir: string, archive: Uint8Array, name = "cifar.tar.gz") {
  const path = join(dir, name);
  await Deno.writeFile(path, archive);
  return path;
}

const BATCH = "exactly 30730000 bytes (10000 records of 3073 bytes)";

Deno.test("loadCifar10() refuses a member of the wrong size from its tar header, before inflating it", async (t) => {
  await withTempDir(async (dir) => {
    // data_batch_1.bin is member 1, after batches.meta.txt (one header and one block of body).
    const offset = 1024;
    const header = (size: number) =>
      `its tar header at byte offset ${offset} declares ${size} bytes`;
    // Each body is cut after 1 MiB: reading any of it would fail as "ended early" instead.
    const cut = new Uint8Array(1 << 20);
    const cases: [string, number, string][] = [
      [
        "a zip bomb: 704,000 records (2.16 GB)",
        704_000 * RECORD_BYTES,
        `${header(704_000 * RECORD_BYTES)} (704000 records)`,
      ],
      ["9,999 records", 9_999 * RECORD_BYTES, `${header(9_999 * RECORD_BYTES)} (9999 records)`],
      ["1,000 records", 1_000 * RECORD_BYTES, `${header(1_000 * RECORD_BYTES)} (1000 records)`],
      ["2^52 bytes", 2 ** 52, header(2 ** 52)],
    ];
    for (const [what, declaredSize, found] of cases) {
      await t.step(what, async () => {
        const members = membersWith("data_batch_1.bin", { body: cut, declaredSize });
        assert.equal(headerOffset(members, 1), offset);
        const path = await localArchive(dir, await tarGz(members, false));
        await assert.rejects(() => loadCifar10({ source: path }), {
          message: `Could not read ${path}: Expected ${CIFAR10_FOLDER}/data_batch_1.bin to be ` +
            `${BATCH} but ${found}`,
        });
      });
    }
    await t.step("a batches.meta.txt over its cap", async () => {
      const members = membersWith("batches.meta.txt", { body: new Uint8Array(70_000) });
      const path = await localArchive(dir, await tarGz(members));
      await assert.rejects(() => loadCifar10({ source: path }), {
        message: `Could not read ${path}: Expected ${CIFAR10_FOLDER}/batches.meta.txt to be at ` +
          "most 65536 bytes but its tar header at byte offset 0 declares 70000 bytes",
      });
    });
    await t.step("the zip bomb as a download: nothing is extracted", async () => {
      const bomb = await tarGz(
        membersWith("data_batch_1.bin", { body: cut, declaredSize: 704_000 * RECORD_BYTES }),
        false,
      );
      await using server = serve(() => new Response(bomb));
      const root = join(dir, "root");
      const archive = join(root, CIFAR10_ARCHIVE);
      await assert.rejects(() => loadCifar10({ source: server.url, md5: md5(bomb), root }), {
        message:
          `Could not extract ${archive}: Expected ${CIFAR10_FOLDER}/data_batch_1.bin to be ` +
          `${BATCH} but ${header(704_000 * RECORD_BYTES)} (704000 records)`,
      });
      assert.deepEqual(await listDir(root), [CIFAR10_ARCHIVE]);
    });
  });
});

Deno.test("loadCifar10() reads no more tar data than CIFAR-10 holds", async () => {
  await withTempDir(async (dir) => {
    // A member that is not kept, declaring 1 GB: skipping it would inflate 1 GB.
    const members = [
      { name: `${CIFAR10_FOLDER}/filler.bin`, body: new Uint8Array(1 << 20), declaredSize: 1e9 },
      ...standardMembers(),
    ];
    const path = await localArchive(dir, await tarGz(members, false));
    const maxBytes = 6 * 30_730_000 + 16 * 2 ** 20;
    await assert.rejects(() => loadCifar10({ source: path }), {
      message: `Could not read ${path}: Expected at most ${maxBytes} bytes of tar data but the ` +
        `entry "${CIFAR10_FOLDER}/filler.bin" (header at byte offset 0) declares 1000000000 ` +
        `bytes, which would end at byte offset ${512 + 1e9}`,
    });
  });
});

Deno.test("loadCifar10() says a .tar.gz is truncated, empty, not gzip or corrupted", async (t) => {
  await withTempDir(async (dir) => {
    const again = "download or copy it again";
    await t.step("truncated", async () => {
      const cut = Math.floor(SYNTHETIC.length / 2);
      const path = await localArchive(dir, SYNTHETIC.subarray(0, cut));
      await assert.rejects(() => loadCifar10({ source: path }), {
        message: `Could not read ${path}: Expected the gzip stream to go on but it ends after ` +
          `${cut} bytes (a truncated file: ${again})`,
      });
    });
    await t.step("empty", async () => {
      const path = await localArchive(dir, new Uint8Array(0));
      await assert.rejects(() => loadCifar10({ source: path }), {
        message: `Could not read ${path}: Expected gzip data but found an empty file (0 bytes)`,
      });
    });
    await t.step("a plain tar named .tar.gz", async () => {
      const path = await localArchive(dir, encoder.encode(`${CIFAR10_FOLDER}/batches.meta.txt`));
      await assert.rejects(() => loadCifar10({ source: path }), {
        message: `Could not read ${path}: Expected gzip data (starting with bytes 1f 8b) but ` +
          "found bytes 63 69 66 61 (not a gzip file)",
      });
    });
    await t.step("a flipped bit in the checksum", async () => {
      const corrupted = SYNTHETIC.slice();
      corrupted[corrupted.length - 6] ^= 1; // the CRC-32 of the last gzip member
      const path = await localArchive(dir, corrupted);
      await assert.rejects(() => loadCifar10({ source: path }), {
        message: `Could not read ${path}: Expected the gzip checksum to match the inflated data ` +
          `but it does not (a corrupted file: ${again})`,
      });
    });
  });
});

Deno.test("loadCifar10() refuses an archive holding a member twice, naming it", async () => {
  await withTempDir(async (dir) => {
    const members = standardMembers();
    const second = { name: `./${CIFAR10_FOLDER}/data_batch_2.bin`, body: standardBatch(0) };
    const path = await localArchive(dir, await tarGz([...members, second]));
    await assert.rejects(() => loadCifar10({ source: path }), {
      message: `Could not read ${path}: Expected each path once in the archive but found ` +
        `"${CIFAR10_FOLDER}/data_batch_2.bin" again in the tar header at byte offset ` +
        `${headerOffset([...members, second], members.length)} (first in the tar header at ` +
        `byte offset ${headerOffset(members, 2)})`,
    });
  });
});

/** The standard batch `k` with the label of record `record` set to `label`. */
function withLabel(k: number, record: number, label: number): Uint8Array {
  const bytes = standardBatch(k).slice();
  bytes[record * RECORD_BYTES] = label;
  return bytes;
}

Deno.test("loadCifar10() parses a download before it becomes the cache", async () => {
  // A good tar structure, the right md5, and a label 10 in record 5 of data_batch_3.bin.
  const archive = await tarGz(membersWith("data_batch_3.bin", { body: withLabel(2, 5, 10) }));
  await using server = serve(() => new Response(archive));
  await withTempDir(async (root) => {
    const file = join(root, CIFAR10_ARCHIVE);
    const expected = `Expected a label in 0..9 in ${file}/${CIFAR10_FOLDER}/data_batch_3.bin at ` +
      `byte offset ${5 * RECORD_BYTES} but found 10 (nothing was extracted from ${file})`;
    for (const attempt of [1, 2]) {
      const messages: string[] = [];
      await assert.rejects(
        () =>
          loadCifar10({
            source: server.url,
            md5: md5(archive),
            root,
            log: (m) => messages.push(m),
          }),
        { message: expected },
        `attempt ${attempt}`,
      );
      // Never "Using ...cifar-10-batches-bin (already downloaded)": there is no cache to use.
      assert.deepEqual(await listDir(root), [CIFAR10_ARCHIVE]);
      assert.deepEqual(messages.filter((m) => m.includes(`${CIFAR10_FOLDER} (already`)), []);
    }
    assert.equal(server.requests, 1, "the verified archive is kept and extracted again");
  });
});

Deno.test("loadCifar10() reports a cache that fails its check with the command to clear it", async (t) => {
  await using server = serve(() => new Response(SYNTHETIC));
  await withTempDir(async (root) => {
    const load = () => loadCifar10({ source: server.url, md5: SYNTHETIC_MD5, root });
    await load();
    const folder = join(root, CIFAR10_FOLDER);
    const advice = `(${folder} is the cache of an earlier download and fails its check: clear ` +
      `it with \`rm -r ${folder}\` and run again to download it again)`;
    const batch2 = join(folder, "data_batch_2.bin");
    await t.step("a flipped label", async () => {
      await Deno.writeFile(batch2, withLabel(1, 7, 200));
      await assert.rejects(load, {
        message: `Expected a label in 0..9 in ${batch2} at byte offset ${7 * RECORD_BYTES} but ` +
          `found 200 ${advice}`,
      });
    });
    await t.step("a batch cut to 9,999 records, refused from its size", async () => {
      await Deno.truncate(batch2, 9_999 * RECORD_BYTES);
      await assert.rejects(load, {
        message: `Expected ${batch2} to be ${BATCH} but found ${9_999 * RECORD_BYTES} bytes ` +
          `(9999 records) ${advice}`,
      });
    });
    await t.step("once cleared (as rm -r does), the next load extracts again", async () => {
      await Deno.remove(folder, { recursive: true });
      assertStandardData(await load());
      assert.equal(server.requests, 1);
    });
  });
});

Deno.test({
  name: "loadCifar10() says how to grant a host the task may not reach",
  permissions: { read: true, write: true, env: true, net: false },
  async fn() {
    const url = "http://127.0.0.1:8765/cifar-10-binary.tar.gz";
    await withTempDir(async (root) => {
      await assert.rejects(() => loadCifar10({ source: url, md5: SYNTHETIC_MD5, root }), {
        message: `Could not download ${url}: this task may not connect to 127.0.0.1:8765; grant ` +
          `it that host: deno run -P=train --allow-net=127.0.0.1:8765 bin/train.ts --data ${url} ` +
          `--md5 ${SYNTHETIC_MD5}`,
      });
      assert.deepEqual(await listDir(root), []);
    });
  },
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
      const folder = join(root, CIFAR10_FOLDER);
      await assert.rejects(() => loadCifar10({ root }), {
        message: new RegExp(
          `^Expected ${folder} to hold the CIFAR-10 binary files but ` +
            `data_batch_1.bin, .* are missing \\(${folder} is the cache of an earlier download ` +
            `and fails its check: clear it with \`rm -r ${folder}\` and run again to download ` +
            "it again\\)$",
        ),
      });
    });
  });
});

Deno.test("loadCifar10() reads a local .tar.gz in memory, checking its md5 first", async (t) => {
  await withTempDir(async (dir) => {
    const path = join(dir, "copy.tar.gz");
    await Deno.writeFile(path, SYNTHETIC);
    await t.step("the right md5: verified, then read; nothing is written", async () => {
      const messages: string[] = [];
      const root = join(dir, "root");
      const data = await loadCifar10({
        source: path,
        md5: SYNTHETIC_MD5.toUpperCase(),
        root,
        log: (m) => messages.push(m),
      });
      assertStandardData(data);
      assert.deepEqual(await listDir(dir), ["copy.tar.gz"]);
      assert.deepEqual(messages.slice(0, 2), [
        `Verified md5 ${SYNTHETIC_MD5} of ${path}`,
        `Reading ${path}`,
      ]);
    });
    await t.step("a wrong md5 names both", async () => {
      await assert.rejects(() => loadCifar10({ source: path, md5: "0".repeat(32) }), {
        message: `Expected md5 ${"0".repeat(32)} for ${path} but found ${SYNTHETIC_MD5} ` +
          "(a corrupted or different file)",
      });
    });
    await t.step("the md5 is checked before the archive is read", async () => {
      const other = join(dir, "other.tar.gz");
      await Deno.writeTextFile(other, "not even gzip");
      await assert.rejects(() => loadCifar10({ source: other, md5: SYNTHETIC_MD5 }), {
        message: new RegExp(`^Expected md5 ${SYNTHETIC_MD5} for ${other} but found [0-9a-f]{32} `),
      });
    });
    await t.step("a folder has no md5 to check", async () => {
      await assert.rejects(() => loadCifar10({ source: dir, md5: SYNTHETIC_MD5 }), {
        message: `Expected an md5 only with a .tar.gz archive or a URL but source ${dir} is a ` +
          "folder (its files have no md5 to check: pass the archive, or leave out the md5)",
      });
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
