/**
 * Text made safe to put into HTML: the figures' tables and captions and the notebook's
 * displays all escape through this one function.
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
