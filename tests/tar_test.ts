import assert from "node:assert/strict";
import { join } from "node:path";
import {
  extractTar,
  gunzip,
  readTar,
  readTarFiles,
  safeTarPath,
  type TarEntry,
  type TarHeader,
} from "../lib/io/tar.ts";

// A tiny ustar writer, independent of the reader, so the reader is checked against the format.

interface Member {
  name: string;
  body?: string | Uint8Array;
  /** Type flag, "0" by default. */
  type?: string;
  linkName?: string;
  prefix?: string;
  /** Raw 12-byte size field, to write malformed or base-256 sizes. */
  sizeField?: Uint8Array;
}

const encoder = new TextEncoder();

function header(member: Member, size: number): Uint8Array {
  const block = new Uint8Array(512);
  const put = (text: string, offset: number) => block.set(encoder.encode(text), offset);
  put(member.name, 0);
  put("0000644\0", 100);
  put("0000000\0", 108);
  put("0000000\0", 116);
  if (member.sizeField) block.set(member.sizeField, 124);
  else put(size.toString(8).padStart(11, "0") + "\0", 124);
  put("14560254400\0", 136);
  put(member.type ?? "0", 156);
  put(member.linkName ?? "", 157);
  put("ustar\u000000", 257);
  put(member.prefix ?? "", 345);
  put("        ", 148);
  const sum = block.reduce((total, byte) => total + byte, 0);
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  return block;
}

function tar(members: Member[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const member of members) {
    const body = typeof member.body === "string"
      ? encoder.encode(member.body)
      : member.body ?? new Uint8Array(0);
    parts.push(header(member, body.length), body, new Uint8Array((512 - body.length % 512) % 512));
  }
  parts.push(new Uint8Array(1024));
  return concat(parts);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Streams `bytes` in pieces of `chunk` bytes, to exercise reads across chunk boundaries. */
function streamOf(
  bytes: Uint8Array,
  chunk = bytes.length || 1,
): ReadableStream<Uint8Array<ArrayBuffer>> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + chunk));
      offset += chunk;
    },
  });
}

function gunzipStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return gunzip(streamOf(bytes, 100));
}

async function entries(stream: ReadableStream<Uint8Array>, maxTotalBytes?: number) {
  const out: { entry: TarEntry; text: string }[] = [];
  for await (const entry of readTar(stream, { maxTotalBytes })) {
    out.push({ entry, text: new TextDecoder().decode(await entry.bytes()) });
  }
  return out;
}

const big = Uint8Array.from({ length: 1500 }, (_, i) => i % 251);

Deno.test("readTar() reads names, types, sizes and bodies", async () => {
  const archive = tar([
    { name: "dir/", type: "5" },
    { name: "dir/a.txt", body: "hello" },
    { name: "dir/empty" },
    { name: "dir/exact", body: "x".repeat(512) },
    { name: "long.bin", body: big, prefix: "some/prefix" },
  ]);
  for (const chunk of [7, 512, 100000]) {
    const found = await entries(streamOf(archive, chunk));
    assert.deepEqual(found.map(({ entry }) => [entry.name, entry.type, entry.size]), [
      ["dir/", "directory", 0],
      ["dir/a.txt", "file", 5],
      ["dir/empty", "file", 0],
      ["dir/exact", "file", 512],
      ["some/prefix/long.bin", "file", 1500],
    ]);
    assert.equal(found[1].text, "hello");
    assert.equal(found[3].text, "x".repeat(512));
    assert.deepEqual(found[1].entry.offset, 512);
  }
  const files = await readTarFiles(streamOf(archive, 300));
  assert.deepEqual(files.get("some/prefix/long.bin"), big);
});

Deno.test("readTar() reads a gzip'd archive and skips bodies left unread", async () => {
  const archive = await gzip(tar([
    { name: "a.bin", body: big },
    { name: "b.txt", body: "second" },
  ]));
  const names: string[] = [];
  let second = "";
  for await (const entry of readTar(gunzipStream(archive))) {
    names.push(entry.name);
    if (entry.name === "b.txt") second = new TextDecoder().decode(await entry.bytes());
  }
  assert.deepEqual(names, ["a.bin", "b.txt"]);
  assert.equal(second, "second");
});

Deno.test("readTar() applies GNU long names and pax paths", async () => {
  const longName = "deep/".repeat(30) + "file.txt";
  const paxPath = "pax/" + "p".repeat(120);
  const paxRecord = (key: string, value: string) => {
    const rest = ` ${key}=${value}\n`;
    let length = rest.length + 3;
    length = rest.length + String(length).length;
    return `${length}${rest}`;
  };
  const archive = tar([
    { name: "././@LongLink", type: "L", body: longName + "\0" },
    { name: "truncated", body: "one" },
    { name: "PaxHeaders/x", type: "x", body: paxRecord("path", paxPath) + paxRecord("mtime", "1") },
    { name: "short", body: "two" },
    { name: "plain", body: "three" },
  ]);
  const found = await entries(streamOf(archive));
  assert.deepEqual(found.map(({ entry, text }) => [entry.name, text]), [
    [longName, "one"],
    [paxPath, "two"],
    ["plain", "three"],
  ]);
});

Deno.test("readTar() reads base-256 sizes", async () => {
  const sizeField = new Uint8Array(12);
  sizeField[0] = 0x80;
  sizeField[10] = 0x01; // 256
  sizeField[11] = 0x02; // + 2
  const [found] = await entries(
    streamOf(tar([{ name: "b", body: "z".repeat(258), sizeField }])),
  );
  assert.equal(found.entry.size, 258);
  assert.equal(found.text.length, 258);
});

Deno.test("readTar() rejects malformed archives, naming the byte offset", async (t) => {
  const good = tar([{ name: "a.txt", body: "hello" }, { name: "b.txt", body: big }]);
  await t.step("a bad header checksum", async () => {
    const bad = good.slice();
    bad[512 + 3] ^= 1; // inside the first body: fine; now corrupt the second header
    bad[1024 + 1] ^= 1;
    await assert.rejects(() => entries(streamOf(bad)), {
      message:
        /^Expected tar header checksum \d+ at byte offset 1024 but found \d+ \(not a tar archive/,
    });
  });
  await t.step("an archive cut inside an entry", async () => {
    await assert.rejects(() => entries(streamOf(good.subarray(0, 1536 + 100))), {
      message: 'Expected 1500 bytes for tar entry "b.txt" (header at byte offset 1024) ' +
        "but the archive ended at byte offset 1636",
    });
  });
  await t.step("an archive without its end-of-archive block", async () => {
    await assert.rejects(() => entries(streamOf(good.subarray(0, good.length - 1024))), {
      message: "Expected a tar header or the end-of-archive block at byte offset 3072 " +
        "but the archive ended there",
    });
  });
  await t.step("a size that is not octal", async () => {
    const sizeField = encoder.encode("00000000009\0");
    await assert.rejects(() => entries(streamOf(tar([{ name: "n", sizeField }]))), {
      message: 'Expected an octal size in the tar header at byte offset 0 but found "00000000009"',
    });
  });
  await t.step("bytes that are not a tar archive", async () => {
    await assert.rejects(() => entries(streamOf(encoder.encode("hello ".repeat(200)))), {
      message: /^Expected an octal checksum in the tar header at byte offset 0/,
    });
  });
  await t.step("a corrupted gzip stream", async () => {
    const gz = await gzip(good);
    gz[gz.length - 6] ^= 0xff; // in the CRC trailer
    await assert.rejects(() => entries(gunzipStream(gz)), {
      message: "Expected the gzip checksum to match the inflated data but it does not " +
        "(a corrupted file: download or copy it again)",
    });
  });
});

Deno.test("safeTarPath() normalises relative paths and refuses escaping ones", () => {
  assert.equal(safeTarPath("a/b"), "a/b");
  assert.equal(safeTarPath("./a//b/./c"), "a/b/c");
  assert.equal(safeTarPath("dir/"), "dir");
  const refused: [string, string][] = [
    ["../evil", 'a ".." segment'],
    ["a/../../evil", 'a ".." segment'],
    ["/etc/passwd", "an absolute path"],
    ["C:/x", "a drive letter"],
    ["a\\..\\b", "a backslash"],
    ["./", "an empty path"],
  ];
  for (const [name, why] of refused) {
    assert.throws(() => safeTarPath(name, "test.tar"), {
      message: "Expected a relative path inside the target folder for the tar entry in test.tar " +
        `but found ${JSON.stringify(name)} (${why})`,
    });
  }
});

Deno.test("extractTar() writes only the selected files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const archive = await gzip(tar([
      { name: "top/", type: "5" },
      { name: "top/keep.txt", body: "kept" },
      { name: "top/sub/keep.bin", body: big },
      { name: "top/skip.txt", body: "skipped" },
    ]));
    const written = await extractTar(gunzipStream(archive), join(dir, "out"), {
      select: (path) => path.startsWith("top/keep") || path.endsWith(".bin") ? path : null,
    });
    assert.deepEqual(written, ["top/keep.txt", "top/sub/keep.bin"]);
    assert.equal(await Deno.readTextFile(join(dir, "out/top/keep.txt")), "kept");
    assert.deepEqual(await Deno.readFile(join(dir, "out/top/sub/keep.bin")), big);
    await assert.rejects(() => Deno.stat(join(dir, "out/top/skip.txt")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("extractTar() refuses entries that would land outside the target", async (t) => {
  const dir = await Deno.makeTempDir();
  const target = join(dir, "out");
  const cases: [string, Member, RegExp][] = [
    ["a ../ path", { name: "../evil", body: "x" }, /found "\.\.\/evil" \(a "\.\." segment\)$/],
    ["an absolute path", { name: join(dir, "evil"), body: "x" }, /\(an absolute path\)$/],
    [
      "a symlink",
      { name: "link", type: "2", linkName: "/etc/passwd" },
      /^Expected only regular files and folders in the archive but found a symlink \(type flag "2"\) "link" -> "\/etc\/passwd" in the tar header at byte offset 1024$/,
    ],
    [
      "a hard link",
      { name: "hard", type: "1", linkName: "../x" },
      /found a hard link \(type flag "1"\) "hard" -> "..\/x"/,
    ],
    [
      "a FIFO",
      { name: "fifo", type: "6" },
      /found an unsupported entry \(type flag "6"\) "fifo" in/,
    ],
  ];
  try {
    for (const [what, member, message] of cases) {
      await t.step(what, async () => {
        // The bad entry comes second, after an ordinary one, and is refused even when unselected.
        const archive = await gzip(tar([{ name: "ok.txt", body: "fine" }, member]));
        await assert.rejects(
          () => extractTar(gunzipStream(archive), target, { select: () => null }),
          { message },
        );
        await assert.rejects(() => Deno.stat(join(dir, "evil")), Deno.errors.NotFound);
        await assert.rejects(() => readTarFiles(gunzipStream(archive)), { message });
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * `head`, then zeros for ever: what a gzip bomb inflates to. `pulled()` says how many bytes the
 * reader took, to show that a refusal came before the body was read.
 */
function endless(head: Uint8Array) {
  let pulled = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = pulled === 0 ? head : new Uint8Array(65536);
      pulled += chunk.length;
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 }); // no read-ahead: what is pulled is what the reader asked for
  return { stream, pulled: () => pulled };
}

Deno.test("readTarFiles() shows select each header before any of its body is read", async () => {
  // A header declaring 2.16 GB, followed by an endless body: a zip bomb's data_batch_1.bin.
  const size = 704_000 * 3073;
  const bomb = endless(header({ name: "data_batch_1.bin" }, size));
  const seen: TarHeader[] = [];
  await assert.rejects(
    () =>
      readTarFiles(bomb.stream, {
        select: (path, entry) => {
          seen.push(entry);
          throw new Error(`Expected ${path} to be 30730000 bytes but it declares ${entry.size}`);
        },
      }),
    { message: `Expected data_batch_1.bin to be 30730000 bytes but it declares ${size}` },
  );
  assert.deepEqual(seen.map(({ name, size, offset }) => [name, size, offset]), [
    ["data_batch_1.bin", size, 0],
  ]);
  assert.equal(bomb.pulled(), 512, "the body was read");
});

Deno.test("readTar() reads no more than maxTotalBytes", async (t) => {
  await t.step("an entry that would end past it is refused from its header", async () => {
    const bomb = endless(header({ name: "zeros.bin" }, 1e9));
    const skip = async () => {
      for await (const _ of readTar(bomb.stream, { maxTotalBytes: 10_000 }));
    };
    await assert.rejects(skip, {
      message: 'Expected at most 10000 bytes of tar data but the entry "zeros.bin" (header at ' +
        "byte offset 0) declares 1000000000 bytes, which would end at byte offset 1000000512",
    });
    assert.equal(bomb.pulled(), 512, "the body was skipped");
  });
  await t.step("so is a body read with bytes() or chunks()", async () => {
    const archive = tar([{ name: "a.txt", body: "hello" }, { name: "b.bin", body: big }]);
    await assert.rejects(() => readTarFiles(streamOf(archive), { maxTotalBytes: 2048 }), {
      message: 'Expected at most 2048 bytes of tar data but the entry "b.bin" (header at byte ' +
        "offset 1024) declares 1500 bytes, which would end at byte offset 3072",
    });
  });
  await t.step("and data past it after the end-of-archive block", async () => {
    const archive = tar([{ name: "a.txt", body: "hello" }]);
    const padded = concat([archive, new Uint8Array(4096)]);
    await assert.rejects(() => entries(streamOf(padded, 1000), archive.length), {
      message: `Expected at most ${archive.length} bytes of tar data but the stream goes on past ` +
        `byte offset ${archive.length}`,
    });
    assert.equal((await entries(streamOf(archive), archive.length)).length, 1, "exactly fits");
  });
});

Deno.test("readTarFiles() refuses a member too big to hold in memory, naming it", async () => {
  const sizeField = new Uint8Array(12);
  sizeField[0] = 0x80;
  sizeField[5] = 0x10; // 2^52
  const archive = tar([{ name: "huge.bin", sizeField }]);
  await assert.rejects(() => readTarFiles(streamOf(archive)), {
    message: 'Expected tar entry "huge.bin" (header at byte offset 0) to fit in memory but it ' +
      "declares 4503599627370496 bytes",
  });
});

Deno.test("readTarFiles() and extractTar() refuse a path that is in the archive twice", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, Member[], string][] = [
      [
        "a file twice",
        [{ name: "a.txt", body: "first" }, { name: "b.txt" }, { name: "a.txt", body: "second" }],
        '"a.txt" again in the tar header at byte offset 1536 (first in the tar header at byte ' +
        "offset 0)",
      ],
      [
        "the same path spelt two ways",
        [{ name: "d/a.txt", body: "first" }, { name: "./d//a.txt", body: "second" }],
        '"d/a.txt" again in the tar header at byte offset 1024 (first in the tar header at byte ' +
        "offset 0)",
      ],
      [
        "a folder and a file",
        [{ name: "d/", type: "5" }, { name: "d", body: "x" }],
        '"d" again in the tar header at byte offset 512 (first in the tar header at byte ' +
        "offset 0)",
      ],
    ];
    for (const [what, members, found] of cases) {
      await t.step(what, async () => {
        const message = `Expected each path once in the archive but found ${found}`;
        await assert.rejects(() => readTarFiles(streamOf(tar(members))), { message });
        const archive = tar(members);
        await assert.rejects(() => extractTar(streamOf(archive), join(dir, "out")), { message });
        // Refused even when the copies are not selected.
        await assert.rejects(() => readTarFiles(streamOf(archive), { select: () => null }), {
          message,
        });
      });
    }
    await t.step("a folder twice is fine (tar --append writes that)", async () => {
      const files = await readTarFiles(
        streamOf(
          tar([{ name: "d/", type: "5" }, { name: "d/a", body: "1" }, { name: "d/", type: "5" }]),
        ),
      );
      assert.deepEqual([...files.keys()], ["d/a"]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gunzip() says whether a stream is empty, not gzip, truncated or corrupted", async (t) => {
  const text = "x".repeat(100_000) + "y".repeat(100_000);
  const gz = await gzip(encoder.encode(text));
  const inflate = (bytes: Uint8Array, chunk?: number) =>
    new Response(gunzip(streamOf(bytes, chunk))).text();
  const again = "download or copy it again";
  await t.step("a whole stream, in any chunking, and two gzip members in a row", async () => {
    assert.equal(await inflate(gz), text);
    assert.equal(await inflate(gz, 7), text);
    assert.equal(await inflate(concat([gz, gz]), 1000), text + text);
  });
  await t.step("empty", async () => {
    await assert.rejects(() => inflate(new Uint8Array(0)), {
      message: "Expected gzip data but found an empty file (0 bytes)",
    });
  });
  await t.step("not gzip", async () => {
    await assert.rejects(() => inflate(encoder.encode("PK\x03\x04 a zip file")), {
      message: "Expected gzip data (starting with bytes 1f 8b) but found bytes 50 4b 03 04 " +
        "(not a gzip file)",
    });
  });
  for (const cut of [10, gz.length >> 1, gz.length - 4]) {
    await t.step(`cut after ${cut} of ${gz.length} bytes`, async () => {
      await assert.rejects(() => inflate(gz.subarray(0, cut), 5), {
        message: `Expected the gzip stream to go on but it ends after ${cut} bytes ` +
          `(a truncated file: ${again})`,
      });
    });
  }
  await t.step("a wrong length in the trailer", async () => {
    const bad = gz.slice();
    bad[bad.length - 1] ^= 1;
    await assert.rejects(() => inflate(bad), {
      message: "Expected the gzip checksum to match the inflated data but it does not " +
        `(a corrupted file: ${again})`,
    });
  });
  await t.step("corrupt deflate data", async () => {
    const bad = gz.slice();
    bad[12] ^= 0xff;
    await assert.rejects(() => inflate(bad), {
      message: new RegExp(
        "^Expected valid gzip data but found corrupt data at or before compressed byte offset " +
          `\\d+ \\(.+; a corrupted file: ${again}\\)$`,
      ),
    });
  });
  await t.step("cancelling it cancels the source", async () => {
    let cancelled = false;
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(gz);
      },
      cancel() {
        cancelled = true;
      },
    });
    const reader = gunzip(source).getReader();
    await reader.read();
    await reader.cancel();
    assert.ok(cancelled);
  });
});
