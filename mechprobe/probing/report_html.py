"""OUT/report.html: one self-contained page per probing run (README, "The report").

Plain HTML, CSS and a page of JavaScript, with the run's data inlined as JSON and the layer-wise
figures as PNG data URIs: no library and no network, so the file opens offline by double-click
and inside a notebook (ProbeResult._repr_html_). A charting or UI library would have to be
vendored into the package and kept up to date for a table, two selects and coloured cells.

The page holds the summary table with intervals and the printed notes, the layer-wise figure of
every setting, and an example browser: per example its statements, the gold tree (useful, depth
class, and for ProofWriter the proof's edges), the probes' out-of-fold predictions for the model
and the twin, and a strip of the statement's attention feature over layers.
"""

import base64
import html
import io
import json

import numpy as np

from mechprobe.cli import format_table
from mechprobe.probing.predictions import NO_LABEL
from mechprobe.probing.tree_recovery import recovered

# Examples per setting carried into the page: enough to browse, small enough to open at once
# (30 layers x 24 statements x 2 models of 200 examples is about 2 MB of JSON).
BROWSER_EXAMPLES = 200


def figure_uri(rows, name):
    """The setting's layer-wise figure as a PNG data URI."""
    from mechprobe.plots import layerwise_plot

    fig = layerwise_plot(rows, f"{name}: layer-wise probing")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def strip(feature):
    """A statement's feature as one number per layer (the mean over heads with --per-head)."""
    values = np.asarray(feature, dtype=float)
    return [round(float(v), 5) for v in values.reshape(len(values), -1).mean(axis=1)]


def browser_examples(predictions, limit=BROWSER_EXAMPLES):
    """The first `limit` examples of a setting as the browser's records."""
    trees = {who: recovered(predictions, who) for who in ("model", "random")}
    details = predictions.details or []
    examples = []
    for e in range(min(limit, len(predictions.ids))):
        rows = np.flatnonzero(predictions.example == e)
        detail = details[e] if e < len(details) else {}
        statements = detail.get("statements") or [f"statement {i}" for i in range(len(rows))]

        def depth(values):
            return [None if v == NO_LABEL else int(v) for v in values[rows]]

        examples.append({
            "id": predictions.ids[e], "question": detail.get("question"),
            "answer": detail.get("answer"), "predicted": detail.get("predicted"),
            "correct": detail.get("correct"), "edges": detail.get("edges"),
            "rank": detail.get("rank"), "statements": statements,
            "useful": [int(v) for v in predictions.useful[rows]], "depth": depth(predictions.depth),
            **{who: {"useful": [int(v) for v in predictions.predicted[who]["useful"][rows]],
                     "depth": depth(predictions.predicted[who]["depth"]),
                     "useful_set": bool(trees[who][0][e]), "tree": bool(trees[who][1][e])}
               for who in ("model", "random")},
            "strip": [strip(predictions.features[i]) for i in rows],
            "strip_random": [strip(predictions.random_features[i]) for i in rows]})
    return examples


def page_data(result):
    """What the page's script reads: per setting its summary row, figure and examples."""
    rows = {row["setting"]: row for row in result.summary()}
    settings = {}
    for name, scores in result.settings.items():
        these = result.predictions.get(name)
        settings[name] = {
            "summary": rows[name], "figure": figure_uri(scores["layerwise"], name),
            "layers": these.layers if these else [],
            "n_examples": scores["n_examples"],
            "examples": browser_examples(these) if these else []}
    return {"meta": {k: result.meta.get(k) for k in ("task", "model", "data", "split", "icl",
                                                       "seed", "n_examples", "probe")},
            "settings": settings}


def report_html(result):
    """The page of a ProbeResult, as a string."""
    data = page_data(result)
    text = result.report()
    # The warnings, caveats and flags stay in sight; the whole printed report folds away.
    notes = "\n".join(line for line in text.split("\n")
                      if line.startswith(("warning:", "caveat:", "flag:", "note:")))
    rows = result.summary()
    table = format_table(rows, result.summary_columns(rows)) if rows else ""
    payload = json.dumps(data, allow_nan=False, default=str).replace("</", "<\\/")
    return (PAGE.replace("@TITLE@", html.escape(f"{data['meta']['task']}: "
                                                f"{data['meta']['model']}"))
            .replace("@REPORT@", html.escape(text)).replace("@TABLE@", html.escape(table))
            .replace("@NOTES@", html.escape(notes))
            .replace("@DATA@", payload))


def notebook_html(result, height=760):
    """The page inside an iframe, for a notebook cell: its script and styles kept apart."""
    return (f'<iframe style="width:100%;height:{height}px;border:1px solid #ccc" '
            f'srcdoc="{html.escape(report_html(result), quote=True)}"></iframe>')


PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>MechanisticProbe: @TITLE@</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.2em;color:#222;max-width:1400px}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:12px}
table.st{border-collapse:collapse;font-size:13px}
table.st td,table.st th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
table.st th{background:#f0f0f0}
.ok{background:#dff3df}.bad{background:#f8d7d7}.na{color:#999}
.cell{display:inline-block;width:10px;height:14px;margin:0}
.strip{white-space:nowrap;line-height:0}
.controls select,.controls button{font-size:13px;margin-right:.5em}
#figures{display:flex;flex-wrap:wrap;gap:8px}img.fig{width:min(100%,680px)}
#errors{color:#b00}.notes{background:#fff6e0;white-space:pre-wrap}.notes:empty{display:none}
.trees{display:flex;flex-wrap:wrap;gap:10px;margin:.6em 0}.trees figure{margin:0}
.trees figcaption{font-size:12px;color:#444}svg.tree{border:1px solid #ddd;background:#fcfcfc}
</style></head><body>
<h1>MechanisticProbe: @TITLE@</h1>
<div id="errors"></div>
<h2>Summary</h2>
<pre id="summary">@TABLE@</pre>
<pre id="notes" class="notes">@NOTES@</pre>
<details><summary>the printed report (tables, intervals, warnings)</summary><pre>@REPORT@</pre></details>
<h2>Layer-wise probing</h2>
<div id="figures"></div>
<h2>Examples</h2>
<div class="controls">
setting <select id="setting"></select>
show <select id="filter">
<option value="all">all</option>
<option value="correct">answer right</option><option value="wrong">answer wrong</option>
<option value="tree">tree recovered (model)</option><option value="notree">tree not recovered (model)</option>
</select>
example <select id="example"></select>
<button id="prev">previous</button><button id="next">next</button>
<span id="count"></span>
</div>
<div id="view"></div>
<p class="na">Predictions are out of fold: each comes from the probe fitted without the example.
The trees: the gold one (useful statements by depth class d0, d1, ..., the root on top; arrows
premise to conclusion), and the statements the model's and the twin's probes call useful, at the
class probe 2 gives them (green: right; red: wrong; dashed: a gold node they left out; "?": a
statement called useful that is not, which probe 2 gives no class). Their arrows are the gold
edges between the nodes they kept: no probe predicts edges yet.
Green: the prediction equals the gold label; red: it does not. Depth: the class of probe 2, which
predicts it for gold-useful statements only. The strip: the statement's attention feature per
layer (layer 0 left), darker = higher, scaled to the example's largest value.</p>
<script id="data" type="application/json">@DATA@</script>
<script>
"use strict";
const errors = [];
window.addEventListener("error", e => { errors.push(String(e.message));
  document.getElementById("errors").textContent = "error: " + errors.join("; "); });
const DATA = JSON.parse(document.getElementById("data").textContent);
const $ = id => document.getElementById(id);
const esc = s => String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c]));
const names = Object.keys(DATA.settings);

for (const name of names) {
  const fig = document.createElement("img");
  fig.className = "fig"; fig.alt = name + ": layer-wise probing"; fig.src = DATA.settings[name].figure;
  $("figures").appendChild(fig);
  $("setting").add(new Option(name, name));
}

function shown() {
  const setting = DATA.settings[$("setting").value], filter = $("filter").value;
  return setting.examples.filter(e =>
    filter === "all" || (filter === "correct" && e.correct === true) ||
    (filter === "wrong" && e.correct === false) || (filter === "tree" && e.model.tree) ||
    (filter === "notree" && !e.model.tree));
}

function fillExamples(keep) {
  const list = shown(), select = $("example");
  select.innerHTML = "";
  list.forEach((e, i) => select.add(new Option(e.id, String(i))));
  const setting = DATA.settings[$("setting").value];
  $("count").textContent = list.length + " shown of the first " + setting.examples.length +
    " (" + setting.n_examples + " probed)";
  if (keep !== undefined && keep < list.length) select.value = String(keep);
  render();
}

function cellClass(gold, guess) { return guess === null ? "na" : (gold === guess ? "ok" : "bad"); }

function stripHtml(values, top) {
  return '<span class="strip">' + values.map((v, l) => {
    const shade = Math.round(255 - 215 * (top > 0 ? v / top : 0));
    return '<span class="cell" title="layer ' + l + ': ' + v + '" style="background:rgb(' +
      shade + ',' + shade + ',255)"></span>'; }).join("") + "</span>";
}

// A tree as inline SVG: the useful statements as nodes, one row per depth class (the root, the
// highest class, on top), edges premise -> conclusion. `nodes`: [statement, class or null];
// `mark`: per node "ok", "bad" (its class or usefulness is wrong) or "missed" (a gold node the
// prediction left out, drawn dashed); class null: useful but no class predicted (row "?").
function treeSvg(title, nodes, edges, mark, texts) {
  const classes = [...new Set(nodes.map(n => n[1]))].sort((a, b) =>
    (b === null) - (a === null) || b - a);
  const rowOf = new Map(classes.map((c, r) => [c, r]));
  const perRow = classes.map(c => nodes.filter(n => n[1] === c));
  const width = Math.max(220, 46 * Math.max(1, ...perRow.map(r => r.length)) + 20);
  const height = 40 + 52 * Math.max(1, classes.length);
  const at = new Map();
  perRow.forEach((row, r) => row.forEach((n, i) =>
    at.set(n[0], [(i + 1) * width / (row.length + 1), 30 + 52 * r + 14])));
  const colour = {ok: "#2e7d32", bad: "#c62828", missed: "#c62828"};
  let svg = '<svg class="tree" width="' + width + '" height="' + height + '" ' +
    'xmlns="http://www.w3.org/2000/svg"><defs><marker id="arrow-' + title.replace(/\W/g, "") +
    '" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto">' +
    '<path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>';
  classes.forEach((c, r) => { svg += '<text x="4" y="' + (30 + 52 * r + 18) +
    '" font-size="10" fill="#888">' + (c === null ? "?" : "d" + c) + "</text>"; });
  for (const [a, b] of edges) {
    if (!at.has(a) || !at.has(b)) continue;
    const [x1, y1] = at.get(a), [x2, y2] = at.get(b);
    const dy = y2 > y1 ? -13 : 13;     // stop at the box's edge, above or below
    svg += '<line x1="' + x1 + '" y1="' + (y1 + (y2 > y1 ? 13 : -13)) + '" x2="' + x2 +
      '" y2="' + (y2 + dy) + '" stroke="#555" stroke-width="1.2" marker-end="url(#arrow-' +
      title.replace(/\W/g, "") + ')"/>';
  }
  nodes.forEach((n, i) => {
    const [x, y] = at.get(n[0]), m = mark[i];
    svg += '<g class="node ' + m + '"><title>#' + n[0] + ": " + esc(texts[n[0]]) + "</title>" +
      '<rect x="' + (x - 19) + '" y="' + (y - 13) + '" width="38" height="26" rx="6" fill="#fff" ' +
      'stroke="' + colour[m] + '" stroke-width="2"' + (m === "missed" ? ' stroke-dasharray="4 3"' : "") +
      '/><text x="' + x + '" y="' + (y + 4) + '" font-size="12" text-anchor="middle">#' + n[0] +
      "</text></g>";
  });
  return "<figure><figcaption>" + esc(title) + "</figcaption>" + svg + "</svg></figure>";
}

// The gold tree's edges: the task's, or where it gives none and the tree has one root (the
// k-th smallest: every leaf feeds the root), every other useful statement -> the root.
function goldEdges(e) {
  if (e.edges && e.edges.length) return e.edges;
  const useful = e.useful.map((u, i) => i).filter(i => e.useful[i]);
  const top = Math.max(...useful.map(i => e.depth[i]));
  const roots = useful.filter(i => e.depth[i] === top);
  return roots.length === 1 ? useful.filter(i => i !== roots[0]).map(i => [i, roots[0]]) : [];
}

function treesHtml(e) {
  const gold = e.useful.map((u, i) => i).filter(i => e.useful[i]);
  const edges = goldEdges(e);
  let html = '<div class="trees">' + treeSvg("gold tree", gold.map(i => [i, e.depth[i]]), edges,
    gold.map(() => "ok"), e.statements);
  for (const [who, label] of [["model", "model's probes"], ["random", "twin's probes"]]) {
    const p = e[who], nodes = [], mark = [];
    e.statements.forEach((_, i) => {
      if (p.useful[i]) {
        nodes.push([i, e.useful[i] ? p.depth[i] : null]);
        mark.push(e.useful[i] && (p.depth[i] === e.depth[i] || p.depth[i] === null) ? "ok" : "bad");
      } else if (e.useful[i]) { nodes.push([i, e.depth[i]]); mark.push("missed"); }
    });
    // edges between the predicted nodes where the gold tree has them (no edge probe yet)
    html += treeSvg(label + (p.tree ? ": tree recovered" : ""), nodes,
      edges.filter(([a, b]) => p.useful[a] && p.useful[b]), mark, e.statements);
  }
  return html + "</div>";
}

function render() {
  const list = shown(), e = list[Number($("example").value)], view = $("view");
  if (!e) { view.innerHTML = "<p>no example of this kind among those carried into the page</p>"; return; }
  const top = Math.max(...e.strip.flat()), topRandom = Math.max(...e.strip_random.flat());
  const k = e.rank ? e.depth.filter(d => d !== null).length - 1 : null;
  let head = "<p><b>" + esc(e.id) + "</b>";
  if (e.question !== null && e.question !== undefined) head += ": " + esc(e.question);
  if (e.answer !== null && e.answer !== undefined) head += " &mdash; answer " + esc(e.answer);
  if (e.correct !== null && e.correct !== undefined)
    head += ', model <span class="' + (e.correct ? "ok" : "bad") + '">' +
      (e.correct ? "right" : "wrong") + (e.predicted ? " (" + esc(e.predicted) + ")" : "") + "</span>";
  head += "; tree recovered: model " + (e.model.tree ? "yes" : "no") + ", twin " +
    (e.random.tree ? "yes" : "no") + "</p>";
  let rows = "<tr><th>#</th><th>statement</th>" + (e.rank ? "<th>rank</th><th>role</th>" : "") +
    "<th>gold useful</th><th>gold depth</th><th>model useful</th><th>model depth</th>" +
    "<th>twin useful</th><th>twin depth</th><th>attention, model</th><th>attention, twin</th></tr>";
  e.statements.forEach((text, i) => {
    const role = e.rank ? (e.rank[i] < k ? "leaf" : (e.rank[i] === k ? "root" : "")) : null;
    rows += "<tr><td>" + i + "</td><td>" + esc(text) + "</td>" +
      (e.rank ? "<td>" + e.rank[i] + "</td><td>" + role + "</td>" : "") +
      "<td>" + e.useful[i] + "</td><td>" + (e.depth[i] === null ? "-" : e.depth[i]) + "</td>" +
      '<td class="' + cellClass(e.useful[i], e.model.useful[i]) + '">' + e.model.useful[i] + "</td>" +
      '<td class="' + cellClass(e.depth[i], e.model.depth[i]) + '">' + (e.model.depth[i] === null ? "-" : e.model.depth[i]) + "</td>" +
      '<td class="' + cellClass(e.useful[i], e.random.useful[i]) + '">' + e.random.useful[i] + "</td>" +
      '<td class="' + cellClass(e.depth[i], e.random.depth[i]) + '">' + (e.random.depth[i] === null ? "-" : e.random.depth[i]) + "</td>" +
      "<td>" + stripHtml(e.strip[i], top) + "</td><td>" + stripHtml(e.strip_random[i], topRandom) + "</td></tr>";
  });
  let edges = "";
  if (e.edges && e.edges.length)
    edges = "<p>proof edges (premise &rarr; conclusion): " +
      e.edges.map(([a, b]) => "#" + a + " &rarr; #" + b).join(", ") + "</p>";
  view.innerHTML = head + treesHtml(e) + '<table class="st" id="statements">' + rows + "</table>" + edges;
}

$("setting").addEventListener("change", () => fillExamples());
$("filter").addEventListener("change", () => fillExamples());
$("example").addEventListener("change", render);
$("prev").addEventListener("click", () => { const s = $("example");
  if (s.selectedIndex > 0) { s.selectedIndex -= 1; render(); } });
$("next").addEventListener("click", () => { const s = $("example");
  if (s.selectedIndex < s.options.length - 1) { s.selectedIndex += 1; render(); } });

// report.html#setting=min01&example=3 opens that example, &next=2 then presses "next" twice
// (links to an example, and the browser test)
const wanted = new URLSearchParams(location.hash.slice(1));
if (wanted.get("setting") && names.includes(wanted.get("setting"))) $("setting").value = wanted.get("setting");
if (wanted.get("filter")) $("filter").value = wanted.get("filter");
fillExamples(wanted.get("example") ? Number(wanted.get("example")) : 0);
for (let i = 0; i < Number(wanted.get("next") || 0); i++) $("next").click();
document.body.dataset.ready = "yes";
</script></body></html>
"""
