import assert from "node:assert/strict";
import { join } from "node:path";
import { extractTar, readTar, readTarFiles, safeTarPath, type TarEntry } from "../lib/io/tar.ts";

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
  return streamOf(bytes, 100).pipeThrough(new DecompressionStream("gzip"));
}

async function entries(stream: ReadableStream<Uint8Array>) {
  const out: { entry: TarEntry; text: string }[] = [];
  for await (const entry of readTar(stream)) {
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
    await assert.rejects(() => entries(gunzipStream(gz)), TypeError);
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
