/**
 * A small seeded random number generator whose whole state fits in a JSON
 * checkpoint, so a resumed run draws exactly the numbers an uninterrupted one would.
 *
 * @module
 */

/** The generator's state: four 32-bit words (sfc32). */
export type RngState = [number, number, number, number];

/**
 * sfc32 ("small fast counting" generator): fast, passes PractRand, and its
 * state is four integers, unlike `Math.random()` which cannot be seeded.
 *
 * @example
 * ```ts
 * import { Rng } from "./rng.ts";
 * const rng = new Rng(42);
 * const a = rng.next();
 * const copy = Rng.fromState(rng.state());
 * if (copy.next() !== rng.next()) throw new Error("state did not round-trip");
 * if (a < 0 || a >= 1) throw new Error("out of range");
 * ```
 */
export class Rng {
  #s: Uint32Array;

  /** @param seed Any integer; equal seeds give equal sequences. */
  constructor(seed: number) {
    if (!Number.isInteger(seed)) {
      throw new RangeError(`Expected seed to be an integer but found ${seed}`);
    }
    this.#s = new Uint32Array([0x9e3779b9, seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0, 1]);
    // Warm up so that nearby seeds give unrelated streams.
    for (let i = 0; i < 16; i++) this.nextUint32();
  }

  /** Rebuilds a generator from {@linkcode Rng.state}. */
  static fromState(state: RngState): Rng {
    if (!Array.isArray(state) || state.length !== 4 || !state.every(Number.isInteger)) {
      throw new TypeError(
        `Expected an RNG state of 4 integers but found ${JSON.stringify(state)}`,
      );
    }
    const rng = new Rng(0);
    rng.#s.set(state);
    return rng;
  }

  /** @returns A copy of the state, to store in a checkpoint. */
  state(): RngState {
    return [this.#s[0], this.#s[1], this.#s[2], this.#s[3]];
  }

  /** @returns A uniformly distributed 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.#s;
    const t = (s[0] + s[1] + s[3]) >>> 0;
    s[3] = s[3] + 1;
    s[0] = s[1] ^ (s[1] >>> 9);
    s[1] = s[2] + (s[2] << 3);
    s[2] = (s[2] << 21) | (s[2] >>> 11);
    s[2] = s[2] + t;
    return t;
  }

  /** @returns A float in [0, 1). */
  next(): number {
    return this.nextUint32() / 2 ** 32;
  }

  /** @returns An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Fisher-Yates shuffle, in place. @returns The same array. */
  shuffle<T extends { length: number; [i: number]: unknown }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }
}
