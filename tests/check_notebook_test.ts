/**
 * tools/check_notebook.ts's rules for what every reader sees: a PNG and a text alternative for
 * every image, no HTML that Jupyter's sanitiser breaks, no path of the machine that ran the
 * notebook; and the sanitiser itself, where Debian's Notebook 6.4 ships it, keeping what
 * lib/notebook/display.ts and lib/report/html.ts produce. (Figures, errors and printed lines:
 * tests/notebook_test.ts.)
 */
import assert from "node:assert/strict";
import { checkNotebook, SANITISED_HTML } from "../tools/check_notebook.ts";
import { htmlTable } from "../lib/report/figures.ts";
import { colorText } from "../lib/report/html.ts";
import { displayNotebook } from "./support/display_notebook.ts";

/** A notebook of one executed code cell with these outputs. */
function notebookWith(outputs: unknown[]) {
  return {
    nbformat: 4,
    metadata: { kernelspec: { name: "deno" } },
    cells: [{ cell_type: "code", metadata: {}, execution_count: 1, outputs }],
  };
}

const shown = (data: Record<string, string>) => ({ output_type: "display_data", data });

Deno.test("checkNotebook() wants an image/png and a text/plain beside every image", () => {
  assert.deepEqual(
    checkNotebook(
      notebookWith([
        shown({ "image/svg+xml": "<svg/>", "text/plain": "a" }),
        shown({ "image/png": "iVBORw0KGgo=" }),
        shown({ "image/png": "iVBORw0KGgo=", "image/svg+xml": "<svg/>", "text/plain": "b" }),
      ]),
      [],
      [],
    ),
    [
      "Expected cell 0 output 0 (image/svg+xml) to have an image/png too: untrusted Jupyter " +
      "and nbconvert show no SVG",
      "Expected cell 0 output 1 (an image) to have a text/plain alternative but found none",
    ],
  );
});

Deno.test("checkNotebook() names HTML that Jupyter's sanitiser removes", () => {
  const problems = checkNotebook(
    notebookWith([
      shown({ "text/html": '<div style="display:grid;grid-template-columns:repeat(2,9px)">' }),
      shown({ "text/html": "<b>x</b><svg></svg><style>b{}</style>" }),
      shown({ "text/html": '<pre><span style="color:#d73a49">const</span></pre>' }),
      shown({ "text/html": `<pre>${colorText("const", "#d73a49")}</pre>${htmlTable([["a"]])}` }),
    ]),
    [],
    [],
  );
  assert.deepEqual(problems, [
    "cell 0 output 0 (text/html) relies on a CSS grid's columns (removed: the grid falls into " +
    "one column; use showImageGrid())",
    "cell 0 output 1 (text/html) relies on an inline <svg> (removed; show figures with showSvg())",
    "cell 0 output 1 (text/html) relies on a <style> element (removed)",
    "cell 0 output 2 (text/html) relies on colours in style attributes (Notebook 6 removes them " +
    "all; use colorText(), a <font>)",
  ]);
});

Deno.test("checkNotebook() names paths of the machine that ran it, except those allowed", () => {
  const notebook = notebookWith([
    {
      output_type: "stream",
      name: "stdout",
      text: [
        "Reading CIFAR-10 from /work/shared/data/cifar-10-binary.tar.gz\n",
        "/tmp/7439d147.png: cat 90.0%\n",
        "wasm from /home/me/x/node_modules/ (native: /root/a.so)\n",
        "kept: runs/tmp/x, ../shared/data, data/cifar-10, https://example.org/home/page\n",
      ],
    },
    shown({ "text/html": "<td>/Users/me/data</td>", "text/plain": "/var/folders/ab/T/x" }),
  ]);
  assert.deepEqual(checkNotebook(notebook, [], []), [
    "cell 0 output 0 shows a path of the machine that ran it: " +
    "/work/shared/data/cifar-10-binary.tar.gz",
    "cell 0 output 0 shows a path of the machine that ran it: /tmp/7439d147.png",
    "cell 0 output 0 shows a path of the machine that ran it: /home/me/x/node_modules/",
    "cell 0 output 0 shows a path of the machine that ran it: /root/a.so",
    "cell 0 output 1 shows a path of the machine that ran it: /var/folders/ab/T/x",
    "cell 0 output 1 shows a path of the machine that ran it: /Users/me/data",
  ]);
  const allowed = checkNotebook(notebook, [], [], { allowedPaths: ["/tmp/", "/work/", "/home/"] });
  assert.deepEqual(allowed.map((p) => p.split(": ")[1]), [
    "/root/a.so",
    "/var/folders/ab/T/x",
    "/Users/me/data",
  ]);
});

Deno.test("checkNotebook() lets an optional figure's cell show nothing, but not the others", () => {
  const notebook = {
    nbformat: 4,
    metadata: { kernelspec: { name: "deno" } },
    cells: [
      { cell_type: "code", metadata: { figure: ["depth"] }, execution_count: 1, outputs: [] },
      { cell_type: "code", metadata: { figure: ["curves"] }, execution_count: 2, outputs: [] },
    ],
  };
  const missing = [
    "Expected cell 0 (depth) to show 1 image or HTML output(s) but found 0",
    "Expected cell 1 (curves) to show 1 image or HTML output(s) but found 0",
  ];
  assert.deepEqual(checkNotebook(notebook, ["depth", "curves"], []), missing);
  assert.deepEqual(
    checkNotebook(notebook, ["depth", "curves"], [], { optionalFigures: ["depth"] }),
    missing.slice(1),
  );
  assert.deepEqual(
    checkNotebook({ ...notebook, cells: notebook.cells.slice(1) }, ["depth", "curves"], [], {
      optionalFigures: ["depth"],
    }),
    [
      "Expected cell 0 (curves) to show 1 image or HTML output(s) but found 0",
      'Expected a cell with figure "depth" but found none',
    ],
    "an optional figure's cell must still be there",
  );
});

Deno.test("the display notebook of real display.ts outputs passes every output rule", async () => {
  assert.deepEqual(checkNotebook(await displayNotebook(), [], []), []);
});

const SANITIZER = "/usr/lib/python3/dist-packages/notebook/static/components/sanitizer/index.js";
const sanitizerMissing = !(await Deno.stat(SANITIZER).then(() => true, () => false));

/** Notebook 6's sanitiser (an AMD module around sanitize-html), loaded without a browser. */
async function notebookSanitizer(): Promise<
  { sanitize(html: string, options?: Record<string, unknown>): string }
> {
  let exported: { defaultSanitizer: never } | undefined;
  const define = (factory: () => typeof exported) => void (exported = factory());
  Object.assign(globalThis, { define });
  try {
    await import(`file://${SANITIZER}`);
  } finally {
    Reflect.deleteProperty(globalThis, "define");
  }
  assert.ok(exported, `Expected ${SANITIZER} to define a module`);
  return exported.defaultSanitizer;
}

Deno.test({
  name: "Notebook 6's sanitiser keeps <font color>, tables and PNG images, and drops the rest",
  ignore: sanitizerMissing,
  async fn() {
    const sanitizer = await notebookSanitizer();
    // An untrusted notebook's output, as notebook/js/outputarea.js sanitises it (allow_css off).
    const untrusted = (html: string) => sanitizer.sanitize(html, { allowedStyles: {} });
    const code = `<pre>${colorText("const", "#d73a49")} x</pre>`;
    assert.equal(untrusted(code), code);
    const table = htmlTable([["a", "b"], ["c", 1]]);
    assert.match(untrusted(table), /^<table><thead><tr><th[^>]*>a<\/th>/);
    assert.match(untrusted(table), /<td[^>]*>1<\/td><\/tr><\/tbody><\/table>$/);
    const img = '<img src="data:image/png;base64,iVBORw0KGgo=" width="64" height="64" />';
    assert.equal(untrusted(img), img);
    // What check_notebook.ts refuses is what this sanitiser removes (JupyterLab's options: the
    // defaults, which keep colours but still drop a grid's columns).
    assert.doesNotMatch(untrusted('<span style="color:#d73a49">x</span>'), /#d73a49/);
    assert.doesNotMatch(sanitizer.sanitize('<div style="grid-template-columns:1px">'), /grid/);
    assert.match(sanitizer.sanitize('<span style="color:#d73a49">x</span>'), /#d73a49/);
    for (const html of ["<svg><rect/></svg>", "<style>b{}</style>", "<script>1</script>"]) {
      assert.equal(sanitizer.sanitize(html), "", html);
      assert.ok(SANITISED_HTML.some(({ pattern }) => pattern.test(html)), html);
    }
  },
});
