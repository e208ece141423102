// fastvar serve: the page. It only draws what the server's API answers (Result.to_json's
// document); the state lives in the URL's query string, which is the API's query plus a few
// view-only keys (view_*), so a shared link reopens the same view.
"use strict";

const $ = (id) => document.getElementById(id);
const WIDTHS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];
const TRIALS = [200, 500, 1000, 2000, 5000, 10000, 20000, 50000];
// the page's own defaults where they differ from the command line's (a quick first view)
const PAGE_DEFAULTS = {trials: 2000, engine: "exact"};
// API keys the controls set; any other API key in the URL is passed through unchanged
const CONTROLLED = ["activation", "init", "distribution", "width", "depth", "bias_std",
  "residual", "norm", "correlation", "trials", "seed", "engine", "histograms"];
const VIEW = {view_log: "1", view_layer: "", view_of: "z"};

let meta = null;        // /api/options
let extras = new URLSearchParams();  // API keys from the URL that no control sets
let controller = null;  // the request in flight, aborted when a newer one starts
let current = null;     // {query, plan, doc, text} of the result drawn
let timer = null;
let viewLayer = null;   // the histogram's layer; null: the last layer
// a slider's value from the URL that the slider cannot hold (not a number, out of its range,
// between its steps): sent as written, so that the server's answer is about what was asked
let pinned = {};

const declared = (name) => meta.options.find((o) => o.name === name);
const accepted = (name) => { const o = declared(name); return o && !o.refused; };
const fmt = (x, digits = 4) => (x === null || x === undefined || Number.isNaN(x)) ? "n/a"
  : Number(x).toPrecision(digits).replace(/\.?0+e/, "e").replace(/(\.\d*?)0+$/, "$1")
    .replace(/\.$/, "");

function fillSelect(select, values, labels = {}) {
  for (const v of values) {
    const option = document.createElement("option");
    option.value = v;
    option.textContent = labels[v] || v;
    select.insertBefore(option, select.querySelector('option[value="custom"]'));
  }
}

function setup() {
  const c = meta.choices;
  fillSelect($("activation"), c.activation);
  fillSelect($("init"), c.init);
  fillSelect($("distribution"), c.distribution);
  fillSelect($("residual"), c.residual);
  fillSelect($("norm"), c.norm);
  fillSelect($("engine"), c.engine);
  fillSelect($("trials"), TRIALS.map(String));
  $("histograms-row").hidden = !accepted("histograms");
  for (const [id, name] of [["activation", "activation"], ["init", "init"],
    ["distribution", "distribution"], ["width", "width"], ["depth", "depth"],
    ["bias_std", "bias_std"], ["residual", "residual"], ["norm", "norm"],
    ["correlation", "correlation"], ["trials", "trials"], ["seed", "seed"],
    ["engine", "engine"]]) {
    const o = declared(name);
    if (o) $(id).title = o.help;
  }
}

function defaultOf(name) {
  if (name in PAGE_DEFAULTS) return String(PAGE_DEFAULTS[name]);
  const o = declared(name);
  return o && o.default !== null ? String(o.default) : "";
}

// ------------------------------------------------------------ URL <-> controls

// width and depth are text as typed (a number box would turn "abc" into ""): the server's
// refusal then echoes what the user wrote
function setWidth(text) {
  $("width").value = text;
  const n = Number(text);
  const i = WIDTHS.findIndex((w) => w >= n);
  if (text.trim() !== "" && !Number.isNaN(n)) {
    $("width-slider").value = i < 0 ? WIDTHS.length - 1 : i;
  }
  $("width-out").textContent = text;
}

function setDepth(text) {
  $("depth").value = text;
  const n = Number(text);
  if (text.trim() !== "" && !Number.isNaN(n)) $("depth-slider").value = Math.min(n, 200);
  $("depth-out").textContent = text;
}

function setRange(id, text) {
  $(id).value = text;
  if (text.trim() === "" || Number($(id).value) !== Number(text)) pinned[id] = text;
  else delete pinned[id];
}

const rangeValue = (id) => pinned[id] ?? $(id).value;

function ensureOption(select, value) {
  if (![...select.options].some((o) => o.value === value)) {
    const option = document.createElement("option");
    option.value = option.textContent = value;
    select.appendChild(option);
  }
}

function controlsFromURL() {
  const url = new URLSearchParams(location.search);
  const get = (k) => url.has(k) ? url.get(k) : defaultOf(k);
  extras = new URLSearchParams();
  for (const [k, v] of url) {
    if (!CONTROLLED.includes(k) && !(k in VIEW)) extras.append(k, v);
  }
  const act = get("activation");
  const m = /^([a-z_]+)\((.*)\)$/.exec(act);
  const name = m ? m[1] : act;
  ensureOption($("activation"), name);
  $("activation").value = name;
  $("activation_param").value = m ? m[2] : (meta.choices.activation_param[name] ?? "");
  const init = get("init");
  if (meta.choices.init.includes(init) || Number.isNaN(Number(init))) {
    ensureOption($("init"), init);
    $("init").value = init;
  } else {
    $("init").value = "custom";
    $("sigma_w2").value = init;
  }
  // a value no option offers is kept as written, so that the server's refusal names it
  const choose = (id, value) => { ensureOption($(id), value); $(id).value = value; };
  choose("distribution", get("distribution"));
  pinned = {};
  setWidth(get("width"));
  setDepth(get("depth"));
  setRange("bias_std", get("bias_std"));
  const residual = url.get("residual") || "";
  if (residual === "" || Number.isNaN(Number(residual))) {
    choose("residual", residual);
  } else {
    $("residual").value = "custom";
    $("alpha").value = residual;
  }
  choose("norm", url.get("norm") || "");
  $("correlation-on").checked = url.has("correlation");
  if (url.has("correlation")) setRange("correlation", url.get("correlation"));
  const trials = get("trials");
  ensureOption($("trials"), trials);
  $("trials").value = trials;
  $("seed").value = get("seed");
  choose("engine", get("engine"));
  $("histograms").checked = url.get("histograms") !== "false";
  $("view_log").checked = (url.get("view_log") ?? VIEW.view_log) !== "0";
  const layer = Number(url.get("view_layer") || "none");
  viewLayer = Number.isInteger(layer) && layer >= 1 ? layer : null;  // else: the last layer
  const radios = [...document.getElementsByName("view_of")];
  const of = radios.some((r) => r.value === url.get("view_of")) ? url.get("view_of")
    : VIEW.view_of;
  for (const r of radios) r.checked = r.value === of;
  syncVisibility();
}

function syncVisibility() {
  const act = $("activation").value;
  $("activation-param-row").hidden = !(act in meta.choices.activation_param);
  $("sigma-row").hidden = $("init").value !== "custom";
  $("distribution").disabled = $("init").value === "orthogonal";
  $("alpha-row").hidden = $("residual").value !== "custom";
  $("correlation").disabled = !$("correlation-on").checked;
  $("correlation-out").textContent = $("correlation-on").checked ? rangeValue("correlation")
    : "off";
  $("bias-out").textContent = rangeValue("bias_std");
  const shaped = extras.has("widths");  // widths given in the URL: width and depth step aside
  for (const id of ["width", "width-slider", "depth", "depth-slider"]) $(id).disabled = shaped;
  const note = [...extras.keys()];
  $("extra-note").hidden = note.length === 0;
  $("extra-note").textContent = note.length ? `also from the link: ${extras.toString()}` : "";
}

// The API query of the controls (without the view keys), in a stable order.
function apiQuery() {
  const q = new URLSearchParams();
  const act = $("activation").value;
  const param = $("activation_param").value.trim();
  q.set("activation", act in meta.choices.activation_param && param !== ""
    ? `${act}(${param})` : act);
  q.set("init", $("init").value === "custom" ? $("sigma_w2").value : $("init").value);
  if ($("init").value !== "orthogonal") q.set("distribution", $("distribution").value);
  if (!extras.has("widths")) {
    q.set("width", $("width").value);
    q.set("depth", $("depth").value);
  }
  q.set("bias_std", rangeValue("bias_std"));
  const residual = $("residual").value;
  if (residual) q.set("residual", residual === "custom" ? $("alpha").value : residual);
  if ($("norm").value) q.set("norm", $("norm").value);
  if ($("correlation-on").checked) q.set("correlation", rangeValue("correlation"));
  q.set("trials", $("trials").value);
  q.set("seed", $("seed").value);
  q.set("engine", $("engine").value);
  if (accepted("histograms")) q.set("histograms", $("histograms").checked ? "true" : "false");
  for (const [k, v] of extras) q.append(k, v);
  return q;
}

function viewQuery() {
  const q = new URLSearchParams();
  if (!$("view_log").checked) q.set("view_log", "0");
  if (viewLayer !== null) q.set("view_layer", String(viewLayer));
  const of = [...document.getElementsByName("view_of")].find((r) => r.checked).value;
  if (of !== VIEW.view_of) q.set("view_of", of);
  return q;
}

function writeURL() {
  const q = apiQuery();
  for (const [k, v] of viewQuery()) q.set(k, v);
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

// ------------------------------------------------------------ running

function setState(state, text) {
  document.body.dataset.state = state;
  $("run-text").textContent = text;
}

function progress(seconds) {
  const bar = $("progress-bar");
  bar.style.transition = "none";
  bar.style.width = "0%";
  void bar.offsetWidth;  // restart the transition
  if (seconds === null) return;
  bar.style.transition = `width ${Math.max(0.2, seconds * 1.3)}s linear`;
  bar.style.width = "95%";
}

function showError(doc) {
  const error = $("error");
  error.hidden = false;
  error.textContent = doc.error;
  for (const el of document.querySelectorAll(".bad")) el.classList.remove("bad");
  if (doc.parameter && $(doc.parameter)) $(doc.parameter).classList.add("bad");
  setState("error", "refused: " + doc.error);
  progress(null);
}

function schedule(delay = 250) {
  const depth = Number($("depth").value);
  if (viewLayer !== null && !extras.has("widths") && viewLayer > depth) viewLayer = null;
  syncVisibility();
  writeURL();
  clearTimeout(timer);
  timer = setTimeout(run, delay);
}

async function run() {
  const query = apiQuery().toString();
  if (current && current.query === query) { draw(); return; }
  if (controller) controller.abort();  // a newer request replaces a stale one
  controller = new AbortController();
  const signal = controller.signal;
  setState("running", "checking…");
  try {
    const planned = await fetch(`/api/plan?${query}`, {signal});
    const plan = await planned.json();
    if (!planned.ok) { showError(plan); return; }
    $("describe").textContent = `${plan.describe}; ${plan.trials} trials`;
    setState("running", `running: ${plan.estimate}…`);
    progress(plan.seconds);
    const answered = await fetch(`/api/simulate?${query}`, {signal});
    const text = await answered.text();
    const doc = JSON.parse(text);
    if (answered.status === 503) {  // busy: try again unless a newer request came
      setState("running", "the server is busy; trying again…");
      timer = setTimeout(() => { if (!signal.aborted) run(); }, 1000);
      return;
    }
    if (!answered.ok) { showError(doc); return; }
    if (current && current.jsonURL) URL.revokeObjectURL(current.jsonURL);
    current = {query, plan, doc, text};
    $("error").hidden = true;
    for (const el of document.querySelectorAll(".bad")) el.classList.remove("bad");
    await draw();
    progress(null);
    if (signal.aborted) return;  // a newer request took over while the plots were drawn
    document.body.dataset.drawn = query;  // every plot shows this request's numbers
    setState("done", `${doc.trials} trials in ${doc.elapsed_s.toFixed(3)} s on engine ` +
      `${doc.engine}`);
  } catch (err) {
    if (err.name === "AbortError") return;
    showError({error: `no answer from the server (${err.message})`, parameter: null});
  }
}

// ------------------------------------------------------------ drawing

const layers = () => current.doc.columns.layer.length;
const CONFIG = {displaylogo: false, responsive: true};
const BLUE = "#1f5fa8", ORANGE = "#d9661f", GREY = "#555";

function baseLayout(title, ytitle, log) {
  return {
    title: {text: title, font: {size: 15}}, margin: {l: 60, r: 15, t: 40, b: 70},
    xaxis: {title: {text: "layer l"}}, yaxis: {title: {text: ytitle}, type: log ? "log" : "linear",
      exponentformat: "power"},
    legend: {orientation: "h", x: 0, y: -0.3}, height: 340, paper_bgcolor: "white",
  };
}

function measured(name, x, y, se, color) {
  return {name, x, y, type: "scatter", mode: "lines+markers", marker: {size: 5, color},
    line: {color, width: 1.5},
    error_y: se ? {type: "data", array: se, visible: true, color, thickness: 1} : undefined};
}

function theoryTrace(name, x, y, color = GREY) {
  return {name, x, y, type: "scatter", mode: "lines", line: {color, dash: "dash", width: 1.5}};
}

async function plot(id, traces, layout) {
  const div = $(id);
  await Plotly.react(div, traces, layout, {...CONFIG,
    toImageButtonOptions: {format: "png", filename: `fastvar-${id.slice(5)}`, scale: 2}});
  div.dataset.query = current.query;  // which request the drawn numbers answer
}

function draw() {
  const doc = current.doc, col = doc.columns, x = col.layer;
  const log = $("view_log").checked;
  const pending = [
    plot("plot-q", [measured("q measured", x, col.q_mean, col.q_mean_se, BLUE),
      theoryTrace("q theory (n → ∞)", x, col.q_theory)],
    baseLayout("signal q<sup>l</sup>", "q", log)),
  ];
  if (doc.gradients) {
    pending.push(plot("plot-g", [measured("g measured", x, col.g_mean, col.g_mean_se, ORANGE),
      theoryTrace("g theory (n → ∞)", x, col.g_theory)],
    baseLayout("gradient g<sup>l</sup>", "g", log)));
  } else {
    pending.push(plot("plot-g", [], {...baseLayout("no gradients in this run", "g", false)}));
  }
  $("fig-c").hidden = doc.input_correlation === null;
  if (doc.input_correlation !== null) {
    pending.push(plot("plot-c", [measured("c measured", x, col.c_mean, col.c_mean_se, BLUE),
      theoryTrace("c theory", x, col.c_theory)],
    baseLayout("correlation c<sup>l</sup>", "c", false)));
  }
  pending.push(drawFinite(doc));
  pending.push(drawHistogram());
  explain(doc);
  warningsOf(doc);
  const json = new Blob([current.text], {type: "application/json"});
  current.jsonURL = URL.createObjectURL(json);
  $("download-json").href = current.jsonURL;
  $("download-csv").href = `/api/simulate?${current.query}&format=csv`;
  for (const a of document.querySelectorAll(".downloads a")) a.removeAttribute("aria-disabled");
  return Promise.all(pending);
}

function drawFinite(doc) {
  const col = doc.columns, x = col.layer;
  const traces = [measured("excess kurtosis of z", x, col.z_kurt, col.z_kurt_se || null, BLUE)];
  const have = "z_kurt_theory" in col;
  if (have) traces.push(theoryTrace("kurtosis theory (finite n)", x, col.z_kurt_theory, BLUE));
  traces.push({...measured("Var q over networks", x, col.q_var, col.q_var_se || null, ORANGE),
    xaxis: "x2", yaxis: "y2"});
  if ("q_var_theory" in col) {
    traces.push({...theoryTrace("Var q theory (finite n)", x, col.q_var_theory, ORANGE),
      xaxis: "x2", yaxis: "y2"});
  }
  const layout = baseLayout("the finite-width gap", "excess kurtosis of z", false);
  Object.assign(layout, {grid: {rows: 1, columns: 2, pattern: "independent"},
    xaxis2: {title: {text: "layer l"}}, yaxis2: {title: {text: "Var q"}, type: "log",
      exponentformat: "power"}});
  $("finite-note").firstChild.textContent = have
    ? "The finite-width gap: measured against the finite-width theory. At infinite width " +
      "z is Gaussian (excess kurtosis 0) and q is the same in every network. "
    : "The finite-width gap: at infinite width z is Gaussian (excess kurtosis 0) and q the " +
      "same in every network (this fastvar has no finite-width theory columns to compare). ";
  return plot("plot-finite", traces, layout);
}

function selectedOf() {
  return [...document.getElementsByName("view_of")].find((r) => r.checked).value;
}

function drawHistogram() {
  const doc = current.doc, L = layers();
  const slider = $("view_layer");
  slider.max = L;
  if (viewLayer !== null && (viewLayer > L || viewLayer < 1)) {
    viewLayer = null;  // the network has fewer layers now: show (and link to) the last one
    writeURL();
  }
  const layer = viewLayer === null ? L : viewLayer;
  slider.value = layer;
  $("view-layer-out").textContent = layer;
  const of = selectedOf();
  const h = doc.histograms;
  const delta = document.querySelector('input[name="view_of"][value="delta"]');
  delta.disabled = !(h && h.delta);
  if (!h || !h[of]) {
    $("hist-note").textContent = h ? `no histogram of ${of} in this run (no gradients)`
      : "no histograms in this result" + (accepted("histograms") ? " (turn them on under Run)"
        : " (this server's fastvar does not make them)");
    return plot("plot-hist", [], {...baseLayout(`layer ${layer}: no histograms`, "density", false),
      xaxis: {title: {text: of}}});
  }
  const part = h[of], i = layer - 1, B = h.bins, R = h.range, scale = part.scale[i];
  const width = scale * 2 * R / B;
  const counts = part.counts[i];
  const total = part.below[i] + part.above[i] + counts.reduce((s, c) => s + c, 0);
  const centers = counts.map((_, j) => scale * (j - B / 2 + 0.5) * 2 * R / B);
  const density = counts.map((c) => total > 0 ? c / (total * width) : 0);
  const traces = [{name: `${of} measured`, x: centers, y: density, type: "bar", width,
    marker: {color: of === "delta" ? ORANGE : BLUE, opacity: 0.6}}];
  const theory = of === "z" ? doc.columns.q_theory[i] : of === "delta" ? doc.columns.g_theory[i]
    : null;
  if (theory !== null && theory > 0) {
    const xs = Array.from({length: 241}, (_, k) => -R * scale + k * 2 * R * scale / 240);
    traces.push(theoryTrace(`N(0, ${fmt(theory, 3)}) theory`, xs,
      xs.map((v) => Math.exp(-v * v / (2 * theory)) / Math.sqrt(2 * Math.PI * theory))));
  }
  const out = total > 0 ? (part.below[i] + part.above[i]) / total : 0;
  $("hist-note").textContent = `Layer ${layer}: ${total} values of ${of}` +
    (out > 0 ? `; ${(100 * out).toPrecision(2)}% fall outside the bins (±${R} × ${fmt(scale, 3)})`
      : "") + (of === "a" ? "; a = φ(z) has no Gaussian theory curve" : "");
  // show the bins that hold values (the bins span ±R scales, mostly empty)
  const used = counts.flatMap((c, j) => c > 0 ? [j] : []);
  const lo = used.length ? centers[used[0]] - width : -R * scale;
  const hi = used.length ? centers[used[used.length - 1]] + width : R * scale;
  return plot("plot-hist", traces, {...baseLayout(`layer ${layer}: distribution of ${of}`,
    "density", false), bargap: 0, xaxis: {title: {text: of}, range: [lo, hi]}});
}

function pm(value, se, digits = 4) {
  return se === null || se === undefined ? fmt(value, digits)
    : `${fmt(value, digits)} ± ${fmt(se, 2)}`;
}

function explain(doc) {
  const col = doc.columns, plan = current.plan, L = layers();
  const n0 = doc.network.widths[0], wv = plan.weight_var[0], q0 = doc.input_q0;
  const bias = doc.network.bias_std;
  const sections = [];
  sections.push(`<h2>Why doesn't z vanish when each w·x is tiny?</h2>
<p>Each weight of layer 1 has variance Var(w) = <b>${fmt(wv)}</b> (std ${fmt(Math.sqrt(wv))}),
and each product w<sub>ij</sub>x<sub>j</sub> has variance Var(w)·E[x²] = ${fmt(wv * q0)}: tiny.
But z<sub>i</sub> = Σ<sub>j</sub> w<sub>ij</sub>x<sub>j</sub> adds n<sub>0</sub> = ${n0} of them
with random signs, and variances of independent terms add:
Var(z) = n<sub>0</sub>·Var(w)·E[x²]${bias ? " + bias²" : ""} = <b>${fmt(col.q_theory[0])}</b>
(theory). Measured at layer 1: <b id="explain-z1">${pm(col.z_var[0], col.z_var_se[0])}</b>.
The spread of a sum of n random terms grows like √n, and the 1/√n in the weights cancels it:
"of order 1" is said of z, not of w. Through the layers, q<sup>${L}</sup> =
<b>${pm(col.q_mean[L - 1], col.q_mean_se[L - 1])}</b> (theory ${fmt(col.q_theory[L - 1])}).</p>`);
  if (doc.gradients && L > 1) {
    const ratio = col.g_mean[0] / col.g_mean[L - 1];
    const per = Math.pow(ratio, 1 / (L - 1));
    const verdict = per > 1.02 ? "they grow towards the input (exploding)"
      : per < 0.98 ? "they shrink towards the input (vanishing)" : "they hold steady";
    sections.push(`<h2>Why don't gradients vanish?</h2>
<p>The backward pass is the same kind of sum, over the n units of the next layer:
g<sup>l-1</sup> = n·Var(w)·E[φ'(z)²]·g<sup>l</sup>. Fed g<sup>${L}</sup> =
${pm(col.g_mean[L - 1], col.g_mean_se[L - 1])} at the last layer, the gradient reaching layer 1 is
g<sup>1</sup> = <b id="explain-g1">${pm(col.g_mean[0], col.g_mean_se[0])}</b> (theory
${fmt(col.g_theory[0])}): a factor of <b>${fmt(per, 3)}</b> per layer on average, so ${verdict}.
ReLU with He init gives n·(2/n)·½ = 1 exactly; Xavier's 1/n halves it at every layer.</p>`);
  } else {
    sections.push("<h2>Why don't gradients vanish?</h2><p>This run has no backward pass.</p>");
  }
  $("explain").innerHTML = sections.join("\n");
}

function warningsOf(doc) {
  const box = $("warnings");
  box.hidden = doc.warnings.length === 0;
  box.replaceChildren(...doc.warnings.map((w) => {
    const p = document.createElement("p");
    p.textContent = `warning: ${w}`;
    return p;
  }));
}

async function downloadPng(id) {
  const url = await Plotly.toImage($(id), {format: "png", scale: 2});
  const a = document.createElement("a");
  a.href = url;
  a.download = `fastvar-${id.slice(5)}.png`;
  document.body.appendChild(a);
  a.click();
  a.remove();
}

// ------------------------------------------------------------ wiring

function wire() {
  $("controls").addEventListener("submit", (e) => e.preventDefault());
  $("width-slider").addEventListener("input", () => {
    setWidth(String(WIDTHS[Number($("width-slider").value)]));
    schedule();
  });
  $("depth-slider").addEventListener("input", () => { setDepth($("depth-slider").value);
    schedule(); });
  $("width").addEventListener("change", () => {
    setWidth($("width").value.trim());
    schedule(50);
  });
  $("depth").addEventListener("change", () => {
    setDepth($("depth").value.trim());
    schedule(50);
  });
  for (const id of ["bias_std", "correlation"]) {
    $(id).addEventListener("input", () => { delete pinned[id]; schedule(); });
  }
  for (const id of ["activation_param", "sigma_w2", "alpha", "seed"]) {
    $(id).addEventListener("input", () => schedule());
  }
  for (const id of ["activation", "init", "distribution", "residual", "norm", "trials", "engine",
    "correlation-on", "histograms"]) {
    $(id).addEventListener("change", () => {
      if (id === "activation") {
        $("activation_param").value = meta.choices.activation_param[$("activation").value] ?? "";
      }
      schedule(50);
    });
  }
  const redraw = () => { writeURL(); if (current) draw(); };
  $("view_log").addEventListener("change", redraw);
  $("view_layer").addEventListener("input", () => {
    viewLayer = Number($("view_layer").value);
    writeURL();
    if (current) drawHistogram();
  });
  for (const r of document.getElementsByName("view_of")) {
    r.addEventListener("change", () => { writeURL(); if (current) drawHistogram(); });
  }
  for (const b of document.querySelectorAll("button.png")) {
    b.addEventListener("click", () => downloadPng(b.dataset.plot));
  }
  $("download-png").addEventListener("click", async () => {
    for (const div of document.querySelectorAll(".plot")) {
      if (!div.closest("[hidden]") && div.data) await downloadPng(div.id);
    }
  });
  window.addEventListener("popstate", () => { controlsFromURL(); run(); });
}

async function start() {
  try {
    const answer = await fetch("/api/options");
    meta = await answer.json();
  } catch (err) {
    setState("error", `cannot reach the server (${err.message})`);
    return;
  }
  if (typeof Plotly === "undefined") {
    setState("error", "Plotly.js did not load: pip install 'fastvar[serve]'");
    return;
  }
  setup();
  controlsFromURL();
  wire();
  writeURL();
  run();
}

start();
