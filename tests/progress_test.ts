import assert from "node:assert/strict";
import { formatDuration, ProgressLine } from "../lib/report/progress.ts";

/** A stand-in for `Deno.stdout` that keeps what was written, as text. */
class FakeWriter {
  readonly writes: string[] = [];
  #decoder = new TextDecoder();
  constructor(readonly terminal: boolean) {}
  writeSync(bytes: Uint8Array): number {
    this.writes.push(this.#decoder.decode(bytes));
    return bytes.length;
  }
  isTerminal(): boolean {
    return this.terminal;
  }
}

Deno.test("formatDuration() writes hours, minutes and seconds", () => {
  assert.equal(formatDuration(3725), "1h02m05s");
  assert.equal(formatDuration(3600), "1h00m00s");
  assert.equal(formatDuration(36_000 + 59), "10h00m59s");
});

Deno.test("formatDuration() leaves out the hours, then the minutes, when they are zero", () => {
  assert.equal(formatDuration(65), "1m05s");
  assert.equal(formatDuration(600), "10m00s");
  assert.equal(formatDuration(4.2), "4s");
  assert.equal(formatDuration(0), "0s");
});

Deno.test("formatDuration() rounds to the second and clamps negatives to 0s", () => {
  assert.equal(formatDuration(59.5), "1m00s");
  assert.equal(formatDuration(3599.6), "1h00m00s");
  assert.equal(formatDuration(0.4), "0s");
  assert.equal(formatDuration(-3), "0s");
});

Deno.test("formatDuration() writes ? for a time that is not finite", () => {
  assert.equal(formatDuration(Infinity), "?");
  assert.equal(formatDuration(NaN), "?");
});

Deno.test("ProgressLine on a non-TTY writer prints plain lines at most once per interval", () => {
  const out = new FakeWriter(false);
  const line = new ProgressLine(out, 60_000);
  line.update("batch 1");
  line.update("batch 2"); // within the interval: not printed
  line.update("batch 3");
  assert.deepEqual(out.writes, ["batch 1\n"]);
  line.update("batch 4", true); // final: printed however recent the last line
  line.done(); // no line left open: nothing to end
  assert.deepEqual(out.writes, ["batch 1\n", "batch 4\n"]);
});

Deno.test("ProgressLine on a non-TTY writer prints again once the interval has passed", async () => {
  const out = new FakeWriter(false);
  const line = new ProgressLine(out, 500);
  line.update("a");
  line.update("b");
  await new Promise((resolve) => setTimeout(resolve, 600));
  line.update("c");
  line.update("d");
  assert.deepEqual(out.writes, ["a\n", "c\n"]);
});

Deno.test("ProgressLine's plain lines come every 10 s by default", () => {
  assert.equal(new ProgressLine(new FakeWriter(false)).plainIntervalMs, 10_000);
});

Deno.test("ProgressLine on a TTY redraws one line in place and ends it on done()", () => {
  const out = new FakeWriter(true);
  const line = new ProgressLine(out, 60_000);
  line.update("batch 1");
  line.update("batch 2");
  line.done();
  line.done(); // already ended: nothing more
  assert.deepEqual(out.writes, ["\rbatch 1\x1b[K", "\rbatch 2\x1b[K", "\n"]);
});

Deno.test("ProgressLine.bar() fills 20 characters in proportion, clamped to [0, 1]", () => {
  const line = new ProgressLine(new FakeWriter(false));
  assert.equal(line.bar(0), `[${".".repeat(20)}]`);
  assert.equal(line.bar(0.5), `[${"#".repeat(10)}${".".repeat(10)}]`);
  assert.equal(line.bar(0.33), `[${"#".repeat(7)}${".".repeat(13)}]`);
  assert.equal(line.bar(1.5), `[${"#".repeat(20)}]`);
  assert.equal(line.bar(-1), `[${".".repeat(20)}]`);
});
