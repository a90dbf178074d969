/**
 * Text made safe to put into HTML: the figures' tables and captions and the notebook's
 * displays all escape through {@linkcode escapeHtml}; {@linkcode colorText} colours text in a way
 * that Jupyter's sanitiser keeps.
 *
 * @module
 */

/**
 * Escapes `& < > " '` as numeric character references, so that the text reads the same inside
 * an element or a quoted attribute.
 *
 * @param text Any text.
 * @returns The text with those five characters escaped.
 *
 * @example
 * ```ts
 * import { escapeHtml } from "./html.ts";
 * console.log(escapeHtml('cat → "dog" & <b>')); // cat → &#34;dog&#34; &#38; &#60;b&#62;
 * ```
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Text in a colour, as HTML that keeps its colour in a notebook Jupyter does not trust: a
 * `<font color>`, because Notebook 6 removes every `style` attribute from such a notebook's
 * outputs (JupyterLab keeps `color`), while both keep `<font>`'s `color` attribute.
 *
 * @param text Any text (escaped here).
 * @param color A CSS colour: `#` and 3 or 6 hex digits, or a name of letters.
 * @returns The HTML.
 * @throws {RangeError} If `color` is neither.
 *
 * @example
 * ```ts
 * import { colorText } from "./html.ts";
 * console.log(colorText("const", "#d73a49")); // <font color="#d73a49">const</font>
 * ```
 */
export function colorText(text: string, color: string): string {
  if (!/^(?:#(?:[0-9a-f]{3}){1,2}|[a-z]+)$/i.test(color)) {
    throw new RangeError(`Expected a colour as #rgb, #rrggbb or a name but found ${color}`);
  }
  return `<font color="${color}">${escapeHtml(text)}</font>`;
}
