/**
 * The library's own code, shown in the notebook: {@linkcode showLibrarySource} cuts exported
 * declarations out of a `lib/` module ({@linkcode declarationSource}) and shows them with
 * comments, strings and keywords coloured ({@linkcode highlightTypeScript}), so that what the
 * notebook teaches is the code that runs, not a copy of it.
 *
 * @module
 */
import { colorText, escapeHtml } from "../report/html.ts";
import { showHtml } from "./display.ts";

const KEYWORDS = new RegExp(
  "\\b(?:as|async|await|const|else|export|for|function|if|import|interface|let|new|of|" +
    "readonly|return|type)\\b",
);
const TOKENS =
  /(\/\*\*?[\s\S]*?\*\/|\/\/[^\n]*)|("(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`)|(\b\w+\b)/g;

/**
 * A declaration's source text, JSDoc included, cut out of a TypeScript file: from the doc
 * comment above `export function name` (or `async function*`) / `export const name` to the closing
 * line at column 0.
 *
 * @param source The file's text.
 * @param name The exported function or constant.
 * @returns The declaration's lines.
 * @throws {Error} If `source` has no such export.
 *
 * @example
 * ```ts
 * import { declarationSource } from "./source.ts";
 * const file = "/** Two. *\/\nexport function two(): number {\n  return 2;\n}\nconst x = 1;\n";
 * console.log(declarationSource(file, "two").split("\n").length); // 4
 * ```
 */
export function declarationSource(source: string, name: string): string {
  const lines = source.split("\n");
  const start = lines.findIndex((line) =>
    new RegExp(`^export (?:async )?(?:function\\*?|const|class|interface) ${name}\\b`).test(line)
  );
  if (start < 0) throw new Error(`Expected an exported declaration of ${name} but found none`);
  let first = start;
  if (lines[start - 1]?.trimEnd().endsWith("*/")) {
    while (first > 0 && !lines[first].startsWith("/**")) first--;
  }
  let last = start;
  if (!/;\s*$/.test(lines[start])) {
    while (last < lines.length - 1 && !/^[}\]]/.test(lines[last])) last++;
  }
  return lines.slice(first, last + 1).join("\n");
}

/**
 * TypeScript as HTML with comments, strings and keywords coloured (with `colorText()`, which
 * keeps its colour where Jupyter's sanitiser removes `style` attributes).
 */
export function highlightTypeScript(code: string): string {
  let html = "";
  let at = 0;
  for (const match of code.matchAll(TOKENS)) {
    html += escapeHtml(code.slice(at, match.index));
    const [token, comment, string, word] = match;
    const color = comment !== undefined
      ? "#6a737d"
      : string !== undefined
      ? "#032f62"
      : word !== undefined && KEYWORDS.test(word)
      ? "#d73a49"
      : null;
    html += color === null ? escapeHtml(token) : colorText(token, color);
    at = match.index + token.length;
  }
  html += escapeHtml(code.slice(at));
  return `<pre style="font-size:12px;line-height:1.35;background:#f6f8fa;padding:8px;` +
    `overflow:auto">${html}</pre>`;
}

/**
 * Shows declarations of a `lib/` module as highlighted code: what the notebook teaches is the
 * library's own code, not a copy of it.
 *
 * @param file A module of `lib/`, e.g. `"model.ts"`.
 * @param names The exported functions or constants to show, in this order.
 */
export async function showLibrarySource(file: string, names: string[]): Promise<void> {
  const text = await Deno.readTextFile(new URL(`../${file}`, import.meta.url));
  const code = names.map((name) => declarationSource(text, name)).join("\n\n");
  await showHtml(highlightTypeScript(code), `lib/${file}: ${names.join(", ")}`);
}
