/**
 * A progress line for terminals: redrawn in place on a TTY, and on anything else
 * (a log file, CI) printed as plain lines no more often than every few seconds.
 *
 * @module
 */
import { writeAllSync } from "../io/write_all.ts";

/** `3725` -> `1h02m05s`; `65` -> `1m05s`; `4.2` -> `4s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const p = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}h${p(m)}m${p(r)}s` : m > 0 ? `${m}m${p(r)}s` : `${r}s`;
}

/** Writes progress to a stream; a TTY gets one line redrawn in place. */
export class ProgressLine {
  #out: { writeSync(p: Uint8Array): number; isTerminal(): boolean };
  #tty: boolean;
  #open = false;
  #lastPlainMs = -Infinity;
  #encoder = new TextEncoder();

  /**
   * @param out Usually `Deno.stdout`.
   * @param plainIntervalMs Least time between two plain (non-TTY) lines. @default 10000
   */
  constructor(
    out: { writeSync(p: Uint8Array): number; isTerminal(): boolean },
    readonly plainIntervalMs = 10_000,
  ) {
    this.#out = out;
    this.#tty = out.isTerminal();
  }

  /** Shows `text`; `final` forces a plain line out even if one was printed a moment ago. */
  update(text: string, final = false): void {
    if (this.#tty) {
      this.#write(`\r${text}\x1b[K`);
      this.#open = true;
      return;
    }
    const now = performance.now();
    if (final || now - this.#lastPlainMs >= this.plainIntervalMs) {
      this.#write(`${text}\n`);
      this.#lastPlainMs = now;
    }
  }

  /** Ends the in-place line so that the next output starts on a fresh line. */
  done(): void {
    if (this.#open) this.#write("\n");
    this.#open = false;
  }

  /** A 20-character bar for `fraction` in [0, 1]. */
  bar(fraction: number): string {
    const filled = Math.round(Math.min(1, Math.max(0, fraction)) * 20);
    return `[${"#".repeat(filled)}${".".repeat(20 - filled)}]`;
  }

  #write(text: string): void {
    writeAllSync(this.#out, this.#encoder.encode(text));
  }
}
