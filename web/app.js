// blindpad's page: boots Pyodide from this relay, runs the Python client
// (client/browser.py) and binds it to a textarea.
//
// Everything comes from this origin (no CDN). The pad's secret is in the
// URL fragment, which no request carries. The textarea speaks UTF-16; the
// client speaks code points: this file converts at the edge and never splits
// a surrogate pair. Local edits are diffed once per animation frame; remote
// changes are applied between frames (never during an IME composition) with
// the selection moved through them by Python. The textarea shows every line
// break as "\n"; Python maps them to the document's own (\r\n, lone \r), so
// opening a pad never rewrites text nobody typed.
//
// Errors: the page shows one line (what happened, what to do); a Python
// traceback goes to the browser console only.

const cfg = document.body.dataset;
const $ = (id) => document.getElementById(id);
const ta = $("pad");
const overlay = $("overlay");

let pad = null; // the Python BrowserPad
let shadow = ""; // the textarea's value as Python last knew it
let composing = false;
let scheduled = false;
let lastOverlayKey = "";
let writer = false;
let stopped = false; // a fatal failure was shown: no more ticks

// --- UTF-16 <-> code points ---------------------------------------------------

const isHigh = (c) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c) => c >= 0xdc00 && c <= 0xdfff;

/** Code points in s[from, to) (UTF-16 offsets). */
function cpCount(s, from = 0, to = s.length) {
  let n = 0;
  for (let i = from; i < to; i++) {
    if (isHigh(s.charCodeAt(i)) && i + 1 < to && isLow(s.charCodeAt(i + 1))) i++;
    n++;
  }
  return n;
}

/** A UTF-16 offset moved off the middle of a surrogate pair (to its start). */
function snap(s, u) {
  if (u > 0 && u < s.length && isLow(s.charCodeAt(u)) && isHigh(s.charCodeAt(u - 1))) return u - 1;
  return u;
}

const toCp = (s, u) => cpCount(s, 0, snap(s, u));

/** The UTF-16 offset of code point `cp`, starting the walk at UTF-16 offset `from`. */
function toUtf16(s, cp, from = 0) {
  let i = from;
  while (cp > 0 && i < s.length) {
    i += isHigh(s.charCodeAt(i)) && i + 1 < s.length && isLow(s.charCodeAt(i + 1)) ? 2 : 1;
    cp--;
  }
  return i;
}

/** The edit from `old` to `cur` as [pos, delete, insert] in code points, or null. */
function localDiff(old, cur) {
  if (old === cur) return null;
  const max = Math.min(old.length, cur.length);
  let p = 0;
  while (p < max && old.charCodeAt(p) === cur.charCodeAt(p)) p++;
  if (p > 0 && isHigh(old.charCodeAt(p - 1))) p--; // never end a prefix inside a pair
  let s = 0;
  while (s < max - p && old.charCodeAt(old.length - 1 - s) === cur.charCodeAt(cur.length - 1 - s)) s++;
  if (s > 0 && isLow(old.charCodeAt(old.length - s))) s--; // nor start a suffix inside one
  return [cpCount(old, 0, p), cpCount(old, p, old.length - s), cur.slice(p, cur.length - s)];
}

/** The textarea's selection as [anchor, head] in code points. */
function selectionCp() {
  const v = ta.value;
  const start = toCp(v, ta.selectionStart);
  const end = toCp(v, ta.selectionEnd);
  return ta.selectionDirection === "backward" ? [end, start] : [start, end];
}

function setSelectionCp(sel) {
  const v = ta.value;
  const a = toUtf16(v, sel[0]);
  const h = toUtf16(v, sel[1]);
  ta.setSelectionRange(Math.min(a, h), Math.max(a, h), a > h ? "backward" : "forward");
}

/** Apply patches (lists of [pos, delete, insert] in code points) to the textarea. */
function applyPatches(patches, sel) {
  let v = ta.value;
  for (const ops of patches) {
    for (let k = ops.length - 1; k >= 0; k--) {
      const [pos, del, ins] = ops[k];
      const a = toUtf16(v, pos);
      const b = toUtf16(v, del, a);
      v = v.slice(0, a) + ins + v.slice(b);
    }
  }
  setText(v, sel);
}

function setText(v, sel) {
  const top = ta.scrollTop;
  ta.value = v;
  shadow = v;
  if (sel) setSelectionCp(sel);
  ta.scrollTop = top;
}

// --- the frame loop -----------------------------------------------------------

function schedule() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(tick);
  setTimeout(() => scheduled && tick(), 120); // hidden tabs get no animation frames
}

/** Hand the textarea's change since the last frame to Python (one batch per frame). */
function flushLocal(now) {
  if (composing || ta.value === shadow) return;
  let cur = ta.value;
  if (cur.isWellFormed && !cur.isWellFormed()) {
    cur = cur.toWellFormed();
    const sel = selectionCp();
    ta.value = cur;
    setSelectionCp(sel);
  }
  const d = localDiff(shadow, cur);
  shadow = cur;
  if (!d) return;
  let problem;
  try {
    problem = pad.edit(d[0], d[1], d[2], now);
  } catch (err) {
    problem = internal(err);
  }
  if (problem) {
    report(problem);
    setText(pad.reset(), selectionCp());
  }
}

const stats = { ticks: 0, ms: 0, worst: 0 };
function tick() {
  scheduled = false;
  if (!pad || stopped) return;
  const now = Date.now();
  const t0 = performance.now();
  try {
    tickInner(now);
  } finally {
    const spent = performance.now() - t0;
    stats.ticks++;
    stats.ms += spent;
    stats.worst = Math.max(stats.worst, spent);
  }
}

function tickInner(now) {
  try {
    flushLocal(now);
    const [a, h] = composing ? [-1, -1] : selectionCp();
    const out = JSON.parse(pad.tick(a, h, composing, now));
    if (out.reset !== null) {
      writer = out.writer;
      ta.readOnly = !writer;
      setText(out.reset, [0, 0]);
    } else if (out.patches.length) {
      applyPatches(out.patches, out.sel);
    }
    render(out);
  } catch (err) {
    report(internal(err));
  }
}

function history(kind) {
  if (!pad || composing || !writer) return;
  tick();
  const out = JSON.parse(pad[kind](Date.now()));
  if (out.patches.length) applyPatches(out.patches, out.sel || selectionCp());
  schedule();
}

// --- drawing ------------------------------------------------------------------

const STATUS_TEXT = {
  connecting: "Connecting…",
  offline: "Offline — reconnecting…",
  syncing: "Syncing…",
  saved: "Saved",
};

/** The status line: offline says when the next attempt is. */
function statusText(out) {
  if (out.status !== "offline") return STATUS_TEXT[out.status] || out.status;
  const lead = out.ready ? "Offline" : "Cannot reach the relay";
  if (out.retryInMs === null) return `${lead} — reconnecting…`;
  return `${lead} — reconnecting in ${Math.max(1, Math.ceil(out.retryInMs / 1000))} s`;
}

function setStatus(state, text) {
  const el = $("status");
  el.dataset.state = state;
  el.textContent = text;
}

function render(out) {
  if (out.fatal) {
    stopped = true;
    // A refused creation token is asked for again on the next new pad.
    if (out.fatal.includes("CREATE_TOKEN_REQUIRED")) sessionStorage.removeItem(TOKEN_KEY);
    fail(out.fatal);
    return;
  }
  setStatus(out.status, statusText(out));
  if (out.ready) $("loading").hidden = true;
  $("readonly").hidden = out.writer;
  renderPeople(out.me, out.peers);
  renderOverlay(out.peers);
  for (const m of out.messages) report(m);
}

function initials(name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => [...w][0]).join("").toUpperCase();
}

let lastPeopleKey = "";
function renderPeople(me, peers) {
  const key = JSON.stringify([me, peers.map((p) => [p.session, p.name, p.color, p.away])]);
  if (key === lastPeopleKey) return;
  lastPeopleKey = key;
  const chips = [{ ...me, you: true }, ...peers].map((p) => {
    const chip = document.createElement("span");
    chip.className = p.away ? "person away" : "person";
    chip.title = p.you ? `${p.name} (you)` : p.away ? `${p.name} (not heard from lately)` : p.name;
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.style.background = p.color;
    dot.textContent = initials(p.name);
    chip.append(dot, p.name);
    if (p.you) {
      const you = document.createElement("span");
      you.className = "you";
      you.textContent = "(you)";
      chip.append(you);
    }
    return chip;
  });
  $("people").replaceChildren(...chips);
}

/** Others' selections and carets, drawn in a mirror of the textarea. */
function renderOverlay(peers) {
  const v = ta.value;
  const key = JSON.stringify([v.length, ta.clientWidth, peers.map((p) => [p.sel, p.color, p.name, p.away])]) + v;
  if (key === lastOverlayKey) return syncOverlay();
  lastOverlayKey = key;
  const ranges = [];
  const carets = [];
  for (const p of peers) {
    if (!p.sel) continue;
    const a = Math.min(toUtf16(v, p.sel[0]), v.length);
    const h = Math.min(toUtf16(v, p.sel[1]), v.length);
    const color = p.away ? "#8a919e" : p.color; // not heard from lately: grey
    if (a !== h) ranges.push({ from: Math.min(a, h), to: Math.max(a, h), color });
    carets.push({ at: h, color: p.color, name: p.name, away: p.away });
  }
  const points = [...new Set([0, v.length, ...ranges.flatMap((r) => [r.from, r.to]), ...carets.map((c) => c.at)])]
    .sort((x, y) => x - y);
  const frag = document.createDocumentFragment();
  for (let i = 0; i < points.length; i++) {
    const at = points[i];
    for (const c of carets.filter((c) => c.at === at)) {
      const caret = document.createElement("span");
      caret.className = c.away ? "caret away" : "caret";
      caret.style.color = c.color;
      const flag = document.createElement("span");
      flag.className = "flag";
      flag.style.background = c.color;
      flag.textContent = c.name;
      caret.append(flag);
      frag.append(caret);
    }
    if (i + 1 < points.length) {
      const text = v.slice(at, points[i + 1]);
      const range = ranges.find((r) => r.from <= at && points[i + 1] <= r.to);
      if (range) {
        const span = document.createElement("span");
        span.className = "sel";
        span.style.background = `color-mix(in srgb, ${range.color} 24%, transparent)`;
        span.textContent = text;
        frag.append(span);
      } else {
        frag.append(text);
      }
    }
  }
  frag.append("\u200b"); // a trailing newline still makes a line
  overlay.replaceChildren(frag);
  syncOverlay();
}

function syncOverlay() {
  overlay.style.width = `${ta.clientWidth}px`;
  overlay.style.height = `${ta.clientHeight}px`;
  overlay.scrollTop = ta.scrollTop;
}

/** One line for an unexpected error; the whole of it (a traceback) goes to the console. */
function internal(err) {
  const text = err && err.message ? err.message : String(err);
  console.error("blindpad: internal error:", text);
  const last = text.split("\n").filter((l) => l.trim()).slice(-1)[0] || "unknown error";
  return `Something went wrong in the page (${last.trim().slice(0, 200)}). Reload it; details are in the browser console.`;
}

/** Show one line under the pad (and log it). */
function report(text) {
  console.warn("blindpad:", text);
  const el = $("message");
  el.textContent = String(text).split("\n")[0];
  el.hidden = false;
}

function fail(text) {
  setStatus("error", "Error");
  $("loading-text").textContent = text;
  report(text);
}

// --- boot ---------------------------------------------------------------------

// The relay's creation token, when it has one (body data-create-token="required"):
// asked for before a new pad is created, kept for this tab only.
const TOKEN_KEY = "blindpad.createToken";

/** The creation token for a new pad: "" when the relay needs none, else asked once per tab. */
function creationToken() {
  if (cfg.createToken !== "required") return Promise.resolve("");
  const kept = sessionStorage.getItem(TOKEN_KEY);
  if (kept) return Promise.resolve(kept);
  $("editor").hidden = true;
  $("token-card").hidden = false;
  setStatus("token", "Creation token needed");
  $("token").focus();
  return new Promise((resolve) => {
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const token = $("token").value;
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("token-card").hidden = true;
      $("editor").hidden = false;
      resolve(token);
    });
  });
}

let progress = 0;
let creep = null;
function loading(text, percent, until = percent) {
  progress = Math.max(progress, percent);
  clearInterval(creep);
  const show = () => {
    const p = Math.round(progress);
    setStatus("loading", `${text} ${p}%`);
    $("loading-text").textContent = `${text} ${p}%`;
    $("progress-bar").style.width = `${p}%`;
  };
  show();
  if (until > percent) {
    creep = setInterval(() => {
      progress += (until - progress) * 0.06;
      show();
    }, 150);
  }
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(s);
  });
}

async function boot() {
  const fragment = location.hash.slice(1);
  if (!fragment) {
    fail("This link has no secret part after '#': ask for the whole link, or create a new pad.");
    return;
  }
  // Opening a pad needs no token; a pad this tab created and reloads may still need it.
  const token = fragment === "new" ? await creationToken() : sessionStorage.getItem(TOKEN_KEY) || "";
  loading("Loading encryption…", 2, 8);
  await loadScript(cfg.sodium);
  await loadScript(cfg.sodiumWrappers);
  await globalThis.sodium.ready;
  loading("Starting Python…", 8, 80);
  const { loadPyodide } = await import(cfg.pyodideMjs);
  const py = await loadPyodide({
    indexURL: new URL(cfg.pyodide, location.href).href,
    lockFileURL: new URL(cfg.lock, location.href).href,
    stdout: (s) => console.log(s),
    stderr: (s) => console.warn(s),
  });
  loading("Loading blindpad…", 82, 92);
  const errors = [];
  await py.loadPackage("blindpad", { messageCallback: () => {}, errorCallback: (m) => errors.push(m) });
  if (errors.length) throw new Error(`loading the blindpad client failed: ${errors.join("; ")}`);
  loading("Opening the pad…", 94);
  const browser = py.pyimport("client.browser");
  const base = location.href.split("#")[0].replace(/\/p\/$/, "");
  const opened = browser.start(base, fragment, schedule, token);
  if (opened.failure) {
    fail(opened.failure);
    return;
  }
  pad = opened;
  const links = JSON.parse(pad.links());
  if (fragment !== links.fragment) history_replace(links.fragment);
  setupLinks(links);
  clearInterval(creep);
  setStatus("connecting", STATUS_TEXT.connecting);
  $("loading-text").textContent = "Connecting to the relay…";
  schedule();
  setInterval(schedule, 1000);
}

/** One line for a failed start: a missing asset means the relay went away. */
function startFailure(err) {
  const text = err && err.message ? err.message : String(err);
  if (text.startsWith("could not load") || err instanceof TypeError) {
    console.error("blindpad:", text);
    return `Cannot reach the relay (${text.split("\n")[0]}). Check your connection, then reload the page.`;
  }
  return internal(err);
}

function history_replace(fragment) {
  window.history.replaceState(null, "", `#${fragment}`);
}

function setupLinks(links) {
  const wire = (id, link) => {
    const button = $(id);
    if (!link) return;
    button.hidden = false;
    const label = button.textContent;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(link);
      } catch {
        window.prompt("Copy this link:", link);
      }
      button.textContent = "Copied!";
      setTimeout(() => (button.textContent = label), 1500);
    });
  };
  wire("copy-edit", links.edit);
  wire("copy-view", links.view);
}

function listen() {
  ta.addEventListener("input", schedule);
  ta.addEventListener("compositionstart", () => (composing = true));
  ta.addEventListener("compositionend", () => {
    composing = false;
    schedule();
  });
  document.addEventListener("selectionchange", schedule);
  ta.addEventListener("scroll", syncOverlay);
  window.addEventListener("resize", () => {
    lastOverlayKey = "";
    schedule();
  });
  ta.addEventListener("keydown", (e) => {
    if (!(e.ctrlKey || e.metaKey) || e.altKey) return;
    const k = e.key.toLowerCase();
    if (k === "z" && !e.shiftKey) {
      e.preventDefault();
      history("undo");
    } else if ((k === "z" && e.shiftKey) || k === "y") {
      e.preventDefault();
      history("redo");
    }
  });
  ta.addEventListener("beforeinput", (e) => {
    if (e.inputType === "historyUndo" || e.inputType === "historyRedo") {
      e.preventDefault();
      history(e.inputType === "historyUndo" ? "undo" : "redo");
    } else if (!writer) {
      e.preventDefault();
    }
  });
  window.addEventListener("beforeunload", (e) => {
    if (!pad) return;
    try {
      flushLocal(Date.now());
      if (pad.unsaved()) {
        e.preventDefault();
        e.returnValue = "";
      }
    } catch {
      // leaving anyway
    }
  });
  window.addEventListener("hashchange", () => location.reload());
  window.addEventListener("offline", () => pad && !stopped && (pad.went_offline(), schedule()));
  window.addEventListener("online", () => pad && !stopped && (pad.retry_now(), schedule()));
}

// Tests and the bench read the client's own view of the text here.
window.blindpad = {
  text: () => (pad ? pad.text() : null),
  links: () => (pad ? JSON.parse(pad.links()) : null),
  unsaved: () => (pad ? pad.unsaved() : null),
  debug: () => (pad ? JSON.parse(pad.debug()) : null),
  stats: () => ({ ...stats }),
};

if (location.pathname.endsWith("/p/")) {
  $("editor").hidden = false;
  listen();
  boot().catch((err) => fail(startFailure(err)));
} else {
  $("landing").hidden = false;
  setStatus("saved", "Encrypted in your browser");
  $("status").dataset.state = "landing";
}
