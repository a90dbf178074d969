/**
 * One declarative flag table per command: each flag's kind, range, help text and default in one
 * place, from which {@linkcode parseFlags} checks a command line and {@linkcode formatFlags} writes
 * the usage text. A bad flag is a one-line {@linkcode UsageError} naming it.
 *
 * @example
 * ```ts
 * import { type FlagTable, parseFlags } from "./flags.ts";
 *
 * const FLAGS = {
 *   port: { kind: "int", value: "N", min: 0, max: 65535, help: "port", default: "8000" },
 * } satisfies FlagTable;
 * console.log(parseFlags(FLAGS, ["--port", "80"])?.values.port); // 80
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { flagError, UsageError } from "./run_main.ts";

/** What every flag says about itself, whatever its kind. */
interface FlagCommon<Field extends string> {
  /** The usage text; lines after the first (`\n`) continue under it. */
  help: string;
  /** The usage text's `(default X)`. @default none shown */
  default?: string;
  /**
   * Makes the flag required: without it the command stops with
   * `--NAME: expected <this> but found none`.
   * @default optional
   */
  required?: string;
  /** The options field the flag sets (see {@linkcode fieldValues}). @default none */
  field?: Field;
}

/** A flag that takes a value; `value` names it in the usage text (`N`, `NAME`, `PATH`). */
interface ValueFlag<Field extends string> extends FlagCommon<Field> {
  value: string;
}

/**
 * One flag. Kinds: `boolean` (present or not), `string`, `int` and `number` (checked against `min`
 * and `max`, both inclusive), `choice` (one of `choices`).
 */
export type FlagSpec<Field extends string = string> =
  | FlagCommon<Field> & { kind: "boolean" }
  | ValueFlag<Field> & { kind: "string" }
  | ValueFlag<Field> & { kind: "int" | "number"; min?: number; max?: number }
  | ValueFlag<Field> & { kind: "choice"; choices: readonly string[] };

/** A command's flags by name (without `--`), in the order its usage text lists them. */
export type FlagTable<Field extends string = string> = Readonly<Record<string, FlagSpec<Field>>>;

/** The type a flag's value has once parsed. */
export type FlagValue<S> = S extends { kind: "boolean" } ? boolean
  : S extends { kind: "int" | "number" } ? number
  : S extends { kind: "choice"; choices: readonly (infer C extends string)[] } ? C
  : string;

/** Parsed values by flag name: required flags always present, others only when given. */
export type FlagValues<T extends FlagTable> =
  & { -readonly [K in keyof T as T[K] extends { required: string } ? K : never]: FlagValue<T[K]> }
  & { -readonly [K in keyof T as T[K] extends { required: string } ? never : K]?: FlagValue<T[K]> };

/** What {@linkcode parseFlags} returns for a command line without `--help`. */
export interface ParsedFlags<T extends FlagTable> {
  values: FlagValues<T>;
  /** Arguments that are not flags (image files for `deno task predict`). */
  positionals: string[];
}

/** Every command takes `--help` (and `-h`); it is not in the tables. */
const HELP_FLAG: FlagSpec = { kind: "boolean", help: "this text" };

/** Options for {@linkcode parseFlags}. */
export interface ParseFlagsOptions {
  /** Accept arguments that are not flags. @default false */
  positionals?: boolean;
}

/**
 * Checks a command line against a flag table: unknown flags, missing values, values of the wrong
 * kind or out of range, and missing required flags are each a one-line {@linkcode UsageError}
 * naming the flag, with what was expected and what was found.
 *
 * @param table The command's flags.
 * @param args The command line after the script name.
 * @param options Whether arguments that are not flags are accepted.
 * @returns The values of the flags given, or `null` for `--help` (which skips every other check
 *   but unknown flags).
 * @throws {UsageError} naming the flag that is wrong.
 *
 * @example
 * ```ts
 * import { type FlagTable, parseFlags } from "./flags.ts";
 *
 * const FLAGS = { top: { kind: "int", value: "N", min: 1, help: "classes to show" } } satisfies FlagTable;
 * console.log(parseFlags(FLAGS, ["--top", "2"])?.values.top); // 2
 * console.log(parseFlags(FLAGS, ["--help"])); // null
 * try {
 *   parseFlags(FLAGS, ["--top", "0"]);
 * } catch (error) {
 *   console.log((error as Error).message); // --top: expected an integer >= 1 but found "0"
 * }
 * ```
 */
export function parseFlags<T extends FlagTable>(
  table: T,
  args: readonly string[],
  options: ParseFlagsOptions = {},
): ParsedFlags<T> | null {
  const parseArgsOptions: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, spec] of Object.entries(table)) {
    parseArgsOptions[name] = { type: spec.kind === "boolean" ? "boolean" : "string" };
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeValues(args),
      strict: true,
      allowPositionals: options.positionals ?? false,
      options: parseArgsOptions,
    });
  } catch (error) {
    throw flagError(error);
  }
  if (parsed.values.help) return null;
  const values: Record<string, string | number | boolean> = {};
  for (const [name, spec] of Object.entries(table)) {
    const given = parsed.values[name];
    if (given === undefined) {
      if (spec.required !== undefined) {
        throw new UsageError(`--${name}: expected ${spec.required} but found none`);
      }
      continue;
    }
    values[name] = typeof given === "string" ? parseValue(name, spec, given) : given === true;
  }
  return { values: values as FlagValues<T>, positionals: parsed.positionals };
}

/**
 * `node:util` reads `--width -4` as a flag without its value; a negative number is a value,
 * so it is joined to the flag before it (`--width=-4`) and reaches the range check.
 */
function joinNegativeValues(args: readonly string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--") return [...joined, ...args.slice(i)];
    if (/^--[^=]+$/.test(args[i]) && /^-\d/.test(args[i + 1] ?? "")) {
      joined.push(`${args[i]}=${args[i + 1]}`);
      i++;
    } else {
      joined.push(args[i]);
    }
  }
  return joined;
}

/** One flag's text as its kind says: a number in range, one of the choices, or the text itself. */
function parseValue(name: string, spec: FlagSpec, text: string): string | number {
  switch (spec.kind) {
    case "int":
    case "number": {
      const n = Number(text);
      const valid = text.trim() !== "" && Number.isFinite(n) &&
        (spec.kind === "number" || Number.isInteger(n)) &&
        n >= (spec.min ?? -Infinity) && n <= (spec.max ?? Infinity);
      if (!valid) {
        throw new UsageError(`--${name}: expected ${describeNumber(spec)} but found "${text}"`);
      }
      return n;
    }
    case "choice":
      if (!spec.choices.includes(text)) {
        throw new UsageError(
          `--${name}: expected one of ${spec.choices.join(", ")} but found "${text}"`,
        );
      }
      return text;
    default:
      return text;
  }
}

/** `an integer`, `an integer >= 1`, `an integer in 0..65535`, `a number <= 1`. */
function describeNumber(spec: { kind: "int" | "number"; min?: number; max?: number }): string {
  const what = spec.kind === "int" ? "an integer" : "a number";
  if (spec.min !== undefined && spec.max !== undefined) {
    return `${what} in ${spec.min}..${spec.max}`;
  }
  if (spec.min !== undefined) return `${what} >= ${spec.min}`;
  if (spec.max !== undefined) return `${what} <= ${spec.max}`;
  return what;
}

/**
 * The options fields the given flags set, by field name (flags without a `field` are left out):
 * what a command merges over its defaults.
 *
 * @param table The command's flags.
 * @param values What {@linkcode parseFlags} returned for them.
 * @returns `{ [spec.field]: value }` for every flag given that has a field.
 *
 * @example
 * ```ts
 * import { fieldValues, type FlagTable, parseFlags } from "./flags.ts";
 *
 * const FLAGS = {
 *   "batch-size": { kind: "int", value: "N", field: "batchSize", help: "images per step" },
 * } satisfies FlagTable;
 * const parsed = parseFlags(FLAGS, ["--batch-size", "32"]);
 * console.log(parsed && fieldValues(FLAGS, parsed.values)); // { batchSize: 32 }
 * ```
 */
export function fieldValues<Field extends string>(
  table: FlagTable<Field>,
  values: Readonly<Record<string, unknown>>,
): Partial<Record<Field, unknown>> {
  const fields: Partial<Record<Field, unknown>> = {};
  for (const [name, spec] of Object.entries(table)) {
    if (spec.field !== undefined && values[name] !== undefined) fields[spec.field] = values[name];
  }
  return fields;
}

/**
 * The flag that sets an options field, to name it in an error about that field.
 *
 * @param table The command's flags.
 * @param field An options field (`learningRate`).
 * @returns Its flag's name without `--` (`lr`), or `undefined` if no flag sets it.
 */
export function flagForField<Field extends string>(
  table: FlagTable<Field>,
  field: Field,
): string | undefined {
  return Object.entries(table).find(([, spec]) => spec.field === field)?.[0];
}

/** Usage lines are wrapped to fit this many columns where a default would pass it. */
const USAGE_WIDTH = 100;

/**
 * The usage text's flag list, one flag a line in the table's order, then `--help`:
 * `  --epochs N   passes over the training set   (default 10)`. The default is written
 * `(default X)` for a value and `(default: ...)` for a description (text with a space).
 *
 * @param table The command's flags.
 * @returns The lines, each ending in a newline.
 *
 * @example
 * ```ts
 * import { type FlagTable, formatFlags } from "./flags.ts";
 *
 * const FLAGS = { port: { kind: "int", value: "N", help: "port", default: "8000" } } satisfies FlagTable;
 * console.log(formatFlags(FLAGS));
 * // "  --port N  port       (default 8000)\n  --help    this text\n"
 * ```
 */
export function formatFlags(table: FlagTable): string {
  const rows = [...Object.entries(table), ["help", HELP_FLAG] as const].map(([name, spec]) => ({
    label: `--${name}${spec.kind === "boolean" ? "" : ` ${spec.value}`}`,
    help: spec.help.split("\n"),
    note: spec.required !== undefined
      ? "(required)"
      : spec.default === undefined
      ? ""
      : /\s/.test(spec.default)
      ? `(default: ${spec.default})`
      : `(default ${spec.default})`,
  }));
  const helpColumn = 2 + Math.max(...rows.map((r) => r.label.length)) + 2;
  const noteColumn = helpColumn + 2 +
    Math.max(...rows.filter((r) => r.note !== "").map((r) => r.help[0].length));
  const indent = " ".repeat(helpColumn);
  return rows.map(({ label, help, note }) => {
    const first = `  ${label}`.padEnd(helpColumn) + help[0];
    const rest = help.slice(1).map((line) => indent + line);
    const lines = note === ""
      ? [first, ...rest]
      : noteColumn + note.length <= USAGE_WIDTH
      ? [first.padEnd(noteColumn) + note, ...rest]
      : [first, ...rest, indent + note];
    return lines.join("\n") + "\n";
  }).join("");
}
