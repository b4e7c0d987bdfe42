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
//
// Embed mode (/embed/, docs/EMBED.md): the same page without the landing
// chrome, inside another site's <blindpad-pad> element. It obeys commands
// (postMessage) only from its parent window, and only when the parent's origin
// is one the relay lists (body data-embed-origins); it answers and sends
// events to that origin only.

const cfg = document.body.dataset;
const $ = (id) => document.getElementById(id);
const STRINGS = globalThis.BLINDPAD_STRINGS; // web/strings.js: every word the page shows

/** The catalogue's line `key`, with "{name}" replaced by values.name. */
function t(key, values = {}) {
  const line = STRINGS[key];
  if (line === undefined) throw new Error(`no string ${key} in strings.js`);
  return line.replace(/\{(\w+)\}/g, (m, name) => (name in values ? String(values[name]) : m));
}

/** Fill index.html's words in from the catalogue (data-s, data-s-title...). */
function applyStrings() {
  document.documentElement.lang = STRINGS.lang;
  document.title = t("title");
  for (const el of document.querySelectorAll("[data-s]")) el.textContent = t(el.dataset.s);
  for (const attr of ["title", "placeholder", "aria-label"]) {
    const key = `s${attr.replace(/(^|-)(\w)/g, (m, d, c) => c.toUpperCase())}`; // data-s-aria-label -> sAriaLabel
    for (const el of document.querySelectorAll(`[data-s-${attr}]`)) el.setAttribute(attr, t(el.dataset[key]));
  }
}
const ta = $("pad");
const overlay = $("overlay");

let pad = null; // the Python BrowserPad
let shadow = ""; // the textarea's value as Python last knew it
let composing = false;
let scheduled = false;
let lastOverlayKey = "";
let writer = false; // the link can write (the embed API may edit)
let editable = false; // the user may type in the textarea (a writer of a text pad)
let jsonPad = false; // a JSON pad: shown read-only as formatted JSON
let stopped = false; // a fatal failure was shown: no more ticks
const EMBED = location.pathname.endsWith("/embed/");
const params = new URLSearchParams(location.search);

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
  } else {
    emit("change", { origin: "local", patches: [[d]] });
  }
}

const stats = { ticks: 0, ms: 0, worst: 0 };
let lastTick = 0;
function tick() {
  scheduled = false;
  if (!pad || stopped) return;
  const now = Date.now();
  const t0 = performance.now();
  lastTick = t0;
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
      editable = out.editable;
      jsonPad = out.kind === "json";
      ta.readOnly = !editable;
      setText(out.reset, [0, 0]);
      if (!jsonPad) emit("change", { origin: "reset", patches: [], text: out.reset });
    } else if (out.patches.length) {
      applyPatches(out.patches, out.sel);
      if (!jsonPad) emit("change", { origin: "remote", patches: out.patches });
    }
    if (out.json) {
      const origin = out.reset !== null ? "reset" : "remote";
      emit("change", { origin, value: out.json.value, ops: out.json.ops });
    }
    render(out);
  } catch (err) {
    report(internal(err));
  }
}

function history(kind) {
  if (!pad || composing || !editable) return;
  tick();
  const out = JSON.parse(pad[kind](Date.now()));
  if (out.patches.length) {
    applyPatches(out.patches, out.sel || selectionCp());
    emit("change", { origin: "local", patches: out.patches });
  }
  schedule();
}

// --- drawing ------------------------------------------------------------------

const STATUS_TEXT = {
  connecting: "connecting",
  offline: "offlineRetrying",
  syncing: "syncing",
  saved: "saved",
};

/** The status line: offline says when the next attempt is. */
function statusText(out) {
  if (out.status !== "offline") return STATUS_TEXT[out.status] ? t(STATUS_TEXT[out.status]) : out.status;
  const lead = t(out.ready ? "offline" : "unreachable");
  if (out.retryInMs === null) return t("retrying", { lead });
  return t("retryingIn", { lead, seconds: Math.max(1, Math.ceil(out.retryInMs / 1000)) });
}

/** A start-up milestone on the page's performance timeline (bench/browser.mjs reads them). */
const marked = new Set();
function mark(name) {
  if (marked.has(name)) return;
  marked.add(name);
  performance.mark(`blindpad:${name}`);
}

function setStatus(state, text) {
  mark(state);
  const el = $("status");
  el.dataset.state = state;
  el.textContent = text;
}

function render(out) {
  const online = out.status === "syncing" || out.status === "saved";
  if (online && !upgrade.online) checkForUpgrade();
  upgrade.online = online;
  if (out.fatal) {
    checkForUpgrade(); // VERSION_MISMATCH above all: a newer page may be waiting
    stopped = true;
    // A refused creation token is asked for again on the next new pad.
    if (out.fatal.includes("CREATE_TOKEN_REQUIRED")) sessionStorage.removeItem(TOKEN_KEY);
    fail(out.fatal);
    return;
  }
  setStatus(out.status, statusText(out));
  noteStatus(out.status);
  if (out.ready && !embed.ready) {
    embed.ready = true;
    storeSnapshot(); // taken at a cold boot: kept now that the pad is up
    emit("ready", { writer: out.writer, kind: out.kind });
  }
  for (const a of out.alarms) {
    emit("alarm", a);
    showAlarm(a);
  }
  if (out.ready) $("loading").hidden = true;
  $("download").hidden = !out.ready;
  if (!EMBED) $("history-open").hidden = !out.ready;
  $("readonly").hidden = out.editable;
  $("readonly").textContent = t(out.kind === "json" ? "jsonReadOnly" : "viewOnly");
  renderPeople(out.me, out.peers);
  renderOverlay(out.peers);
  for (const m of out.messages) report(m);
}

// The relay was caught lying (client/trust.py): a banner nobody can miss, kept
// until the page is reloaded. The first such alarm names it (data-kind).
const ALARM_TEXT = { rollback: "alarmRollback", fork: "alarmFork", withheld: "alarmWithheld" };

function showAlarm(alarm) {
  if (!ALARM_TEXT[alarm.kind]) return;
  const said = t(ALARM_TEXT[alarm.kind]);
  let el = $("alarm");
  if (!el) {
    el = document.createElement("div");
    el.id = "alarm";
    el.className = "alarm";
    el.setAttribute("role", "alert");
    el.dataset.kind = alarm.kind;
    const advice = document.createElement("p");
    advice.className = "alarm-advice";
    advice.textContent = t("alarmAdvice");
    el.append(advice);
    $("bar").after(el);
  }
  const kinds = (el.dataset.kinds || "").split(" ").filter(Boolean);
  if (!kinds.includes(alarm.kind)) {
    const what = document.createElement("p");
    what.className = "alarm-what";
    what.textContent = said;
    el.querySelector(".alarm-advice").before(what);
    el.dataset.kinds = [...kinds, alarm.kind].join(" ");
  }
  const line = `${alarm.kind}: ${alarm.detail}`;
  const details = [...el.querySelectorAll(".alarm-detail")];
  if (details.length >= 5 || details.some((d) => d.textContent === line)) return;
  const detail = document.createElement("p");
  detail.className = "alarm-detail";
  detail.textContent = line;
  el.append(detail);
}

/**
 * Black or white, whichever contrasts more with `color` (a CSS colour; white
 * if unknown). One of the two always reaches 4.58:1 (WCAG AA's 4.5), pure
 * black and white only: with a softer ink, mid-light colours reach neither.
 */
function inkOn(color) {
  let rgb = null;
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
  const hsl = /^hsl\((\d+(?:\.\d+)?) (\d+(?:\.\d+)?)% (\d+(?:\.\d+)?)%\)$/.exec(color);
  if (hex) {
    rgb = hex.slice(1).map((h) => parseInt(h, 16) / 255);
  } else if (hsl) {
    const [h, s, l] = [Number(hsl[1]), hsl[2] / 100, hsl[3] / 100];
    const f = (n) => {
      const k = (n + h / 30) % 12;
      return l - s * Math.min(l, 1 - l) * Math.max(-1, Math.min(k - 3, 9 - k, 1));
    };
    rgb = [f(0), f(8), f(4)];
  }
  if (!rgb) return "#fff";
  const lin = rgb.map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  const lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  return 1.05 / (lum + 0.05) >= (lum + 0.05) / 0.05 ? "#fff" : "#000";
}

function initials(name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => [...w][0]).join("").toUpperCase();
}

let lastPeopleKey = "";
function renderPeople(me, peers) {
  const key = JSON.stringify([me, peers.map((p) => [p.session, p.name, p.color, p.away])]);
  if (key === lastPeopleKey) return;
  lastPeopleKey = key;
  const who = (p) => ({ name: p.name, color: p.color, away: !!p.away });
  emit("peers", { me: who(me), peers: peers.map(who) });
  const chips = [{ ...me, you: true }, ...peers].map((p) => {
    const chip = document.createElement("span");
    chip.className = p.away ? "person away" : "person";
    chip.title = p.you ? t("personYou", p) : p.away ? t("personAway", p) : p.name;
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.style.background = p.color;
    dot.style.color = inkOn(p.color);
    dot.textContent = initials(p.name);
    chip.append(dot, p.name);
    if (p.you) {
      const you = document.createElement("span");
      you.className = "you";
      you.textContent = t("you");
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
      flag.style.color = inkOn(c.color);
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
  const last = text.split("\n").filter((l) => l.trim()).slice(-1)[0] || t("unknownError");
  return t("internal", { detail: last.trim().slice(0, 200) });
}

/** Show one line under the pad (and log it). */
function report(text) {
  console.warn("blindpad:", text);
  const el = $("message");
  el.textContent = String(text).split("\n")[0];
  el.hidden = false;
}

function fail(text) {
  embed.error = String(text).split("\n")[0];
  emit("error", { message: embed.error });
  setStatus("error", t("error"));
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
  setStatus("token", t("tokenNeeded"));
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
    setStatus("loading", t("percent", { text, percent: p }));
    $("loading-text").textContent = t("percent", { text, percent: p });
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

// --- offline: the service worker and the pad's IndexedDB records ---------------

// One object store, "pads": per pad "<channel>/log" (the write-ahead log and
// head, mirrored from localStorage), "<channel>/base" (the text it was made
// on) and "<channel>/copy" (the last verified text and head). Python decides
// what to write (client/browser.py); here each key's latest value is written,
// in order, one transaction at a time.
const idb = { db: null, latest: new Map(), writing: false, written: 0, error: null };

function idbOpen() {
  if (idb.db) return Promise.resolve(idb.db);
  return new Promise((resolve, reject) => {
    const req = indexedDB.open("blindpad", 1);
    req.onupgradeneeded = () => req.result.createObjectStore("pads");
    req.onsuccess = () => resolve((idb.db = req.result));
    req.onerror = () => reject(req.error);
  });
}

/** This pad's records, as the JSON Python's start() reads ("" if none or unreadable). */
async function idbRead(channel) {
  if (!channel || !globalThis.indexedDB) return "";
  try {
    const db = await idbOpen();
    const parts = ["log", "base", "copy"];
    const values = await new Promise((resolve, reject) => {
      const store = db.transaction("pads", "readonly").objectStore("pads");
      const out = new Array(parts.length);
      let left = parts.length;
      parts.forEach((part, i) => {
        const req = store.get(`${channel}/${part}`);
        req.onsuccess = () => {
          out[i] = req.result;
          if (--left === 0) resolve(out);
        };
        req.onerror = () => reject(req.error);
      });
    });
    const found = {};
    parts.forEach((part, i) => typeof values[i] === "string" && (found[part] = values[i]));
    return JSON.stringify(found);
  } catch (err) {
    console.warn("blindpad: IndexedDB unreadable:", err);
    return "";
  }
}

/** Called by Python: keep `value` (JSON) under `key`; written soon, latest wins. */
function persist(key, value) {
  idb.latest.set(key, value);
  if (!idb.writing) idbFlush();
}

async function idbFlush() {
  idb.writing = true;
  try {
    const db = await idbOpen();
    while (idb.latest.size) {
      const batch = [...idb.latest];
      idb.latest.clear();
      await new Promise((resolve, reject) => {
        const tx = db.transaction("pads", "readwrite");
        const store = tx.objectStore("pads");
        for (const [key, value] of batch) store.put(value, key);
        tx.oncomplete = resolve;
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error);
      });
      idb.written += batch.length;
    }
  } catch (err) {
    idb.error = String(err && err.message ? err.message : err);
    console.warn("blindpad: IndexedDB write failed:", err);
  } finally {
    idb.writing = false;
  }
}

/** The service worker caches the page and its runtime, so a pad opened once opens offline. */
const upgrade = { registration: null, online: false, reloading: false };
const UPGRADE_KEY = "blindpad.upgraded-at";
const UPGRADE_LOOP_MS = 60_000; // a second upgrade this soon after one: say so, do not loop

function registerWorker(base) {
  if (EMBED || !("serviceWorker" in navigator)) return;
  // A page the worker already controlled that sees another worker take over
  // is running an older build than the relay's (docs/PROTOCOL.md §15.3).
  let controlled = !!navigator.serviceWorker.controller;
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    if (controlled) reloadIntoNewBuild();
    controlled = true;
  });
  navigator.serviceWorker
    .register(`${base}/sw.js`, { scope: `${base}/` })
    .then((registration) => (upgrade.registration = registration))
    .catch((err) => console.warn("blindpad: no service worker (the page needs the relay to open):", err));
}

/** The relay answered (or refused the page): ask whether it serves a newer build. */
function checkForUpgrade() {
  if (upgrade.registration) upgrade.registration.update().catch(() => {}); // offline again: next time
}

function reloadIntoNewBuild() {
  if (upgrade.reloading) return;
  const last = Number(sessionStorage.getItem(UPGRADE_KEY) || 0);
  if (Date.now() - last < UPGRADE_LOOP_MS) {
    report(t("outOfDate"));
    return;
  }
  upgrade.reloading = true;
  sessionStorage.setItem(UPGRADE_KEY, String(Date.now()));
  if (pad && !composing) tick(); // the typing not yet taken goes into the write-ahead log first
  location.reload();
}

// --- the start-up snapshot (docs/SECURITY.md, "The start-up snapshot") ---------
//
// Starting CPython and importing the client takes seconds of CPU; restoring a
// copy of Python's memory taken right after those imports takes a fraction of
// one. The relay makes that copy when it builds this page (Node, the same
// Pyodide and wheel: relay/edge/snapshot.py) and names it in body
// data-snapshot-url; a visit that holds no snapshot of its own restores from
// it (<html data-boot="served">). Where the relay has none, or it does not
// restore, the visit is a cold boot, which takes the copy itself, after importing
// the client and BEFORE anything of a pad (link, keys, author, text, stored
// records) reaches Python, and keeps it (about 30 MB) in this browser's Cache
// Storage, in the cache named by the build id (body data-build: the service
// worker's cache name, a hash of every asset URL, each carrying its content's
// hash: Pyodide and our wheel included), once the pad is ready and the page
// idle. An upgrade is a new build id, so an old snapshot is never found (and
// the service worker deletes its cache). Later visits restore from it; any
// failure there falls back to the cold boot, with one console line.
// <html data-boot> says which path this page took ("snapshot", "served" or
// "cold"); <html data-snapshot> what became of taking one ("stored", "failed",
// "off", or "served": none taken).
const SNAPSHOT_URL = `${location.origin}/startup-snapshot.bin`;
// What the snapshot has imported: the page and what it imports later (a restored
// page imports from memory; its files come back in the background). The same
// list as relay/edge/snapshot.py's STARTUP_IMPORTS (a test compares them).
const SNAPSHOT_IMPORTS = [
  "client.browser", "client.jsondoc", "client.engine", "client.recovery", "client.commands._http", "crypto._sodium",
];
const snapshot = {
  build: /^blindpad-[\w-]+$/.test(cfg.build || "") ? cfg.build : "",
  found: null, // the promise of the stored snapshot (a Response, or null), looked up first thing
  taken: null, // the bytes, from the cold boot until the pad is ready, then stored
};

function canSnapshot() {
  return !!snapshot.build && "caches" in globalThis;
}

/** This build's snapshot (a Response to read), or null when there is none or it cannot be read. */
async function findSnapshot() {
  if (!canSnapshot()) return null;
  try {
    const cache = await caches.open(snapshot.build);
    return (await cache.match(SNAPSHOT_URL)) || null;
  } catch (err) {
    console.warn("blindpad: the start-up snapshot is unreadable, starting afresh:", errLine(err));
    return null;
  }
}

/** Keep the snapshot taken at this cold boot, once the pad is ready and the page idle. */
function storeSnapshot() {
  const bytes = snapshot.taken;
  if (!bytes) return;
  snapshot.taken = null;
  const later = globalThis.requestIdleCallback || ((f) => setTimeout(f, 1000));
  later(async () => {
    try {
      const cache = await caches.open(snapshot.build);
      await cache.put(SNAPSHOT_URL, new Response(bytes, { headers: { "Content-Type": "application/octet-stream" } }));
      document.documentElement.dataset.snapshot = "stored";
    } catch (err) {
      document.documentElement.dataset.snapshot = "failed";
      console.warn("blindpad: could not keep the start-up snapshot:", errLine(err));
    }
  }, { timeout: 5000 });
}

async function dropSnapshot() {
  try {
    await (await caches.open(snapshot.build)).delete(SNAPSHOT_URL);
  } catch {
    // nothing kept, nothing to drop
  }
}

const errLine = (err) => String(err && err.message ? err.message : err).split("\n")[0];

/**
 * Python restored from a snapshot of this build (`bytes`: a promise), or null
 * (then boot cold). `own`: this browser's (dropped when it does not restore),
 * else the relay's.
 */
async function restorePython(loadPyodide, options, bytes, own) {
  let py;
  try {
    py = await loadPyodide({ ...options, _loadSnapshot: bytes });
    mark("python");
    // Each restore draws its own numbers (the snapshot froze `random`'s state).
    py.runPython("import random; random.seed(); import client.browser");
  } catch (err) {
    const whose = own ? "the start-up snapshot" : "the relay's start-up snapshot";
    console.warn(`blindpad: ${whose} did not restore, starting afresh:`, errLine(err));
    if (own) dropSnapshot();
    return null;
  }
  restoreFiles(py);
  return py;
}

/**
 * The snapshot holds Python's memory, not its files: our wheel's files come
 * back once the page is idle (for tracebacks; every module the page imports is
 * in memory). Not with loadPackage: its Python would hold the main thread for
 * half a second while the pad opens.
 */
function restoreFiles(py) {
  const later = globalThis.requestIdleCallback || ((f) => setTimeout(f, 1000));
  later(async () => {
    try {
      const response = await fetch(cfg.wheel);
      if (!response.ok) throw new Error(`${cfg.wheel}: ${response.status}`);
      const site = py.runPython("import sysconfig; sysconfig.get_paths()['purelib']");
      py.unpackArchive(await response.arrayBuffer(), "wheel", { extractDir: site });
      mark("files");
    } catch (err) {
      console.warn("blindpad: the client's files did not load:", errLine(err));
    }
  }, { timeout: 5000 });
}

/** Boot Python and import the client: from the snapshot when there is one, else cold. */
async function startPython(loadPyodide) {
  const options = {
    indexURL: new URL(cfg.pyodide, location.href).href,
    lockFileURL: new URL(cfg.lock, location.href).href,
    stdout: (s) => console.log(s),
    stderr: (s) => console.warn(s),
  };
  const found = await snapshot.found;
  const restored = found && (await restorePython(loadPyodide, options, found.arrayBuffer(), true));
  if (restored) {
    document.documentElement.dataset.boot = "snapshot";
    return restored;
  }
  // None of this browser's: the relay's, made when it built this page (relay/edge/snapshot.py).
  const served = !found && cfg.snapshotUrl && (await restorePython(loadPyodide, options, fetchServed(), false));
  if (served) {
    document.documentElement.dataset.boot = "served";
    document.documentElement.dataset.snapshot = "served"; // nothing of our own to take
    return served;
  }
  document.documentElement.dataset.boot = "cold";
  const py = await loadPyodide(options);
  mark("python");
  loading(t("loadingClient"), 82, 92);
  await loadClient(py);
  mark("client");
  if (!canSnapshot()) {
    document.documentElement.dataset.snapshot = "off";
    return py;
  }
  try {
    // Nothing of a pad has reached Python yet: only the stdlib and our modules.
    py.runPython(`import ${SNAPSHOT_IMPORTS.join(", ")}`);
    mark("imported");
    snapshot.taken = takeSnapshot(py);
    mark("snapshot-taken");
  } catch (err) {
    document.documentElement.dataset.snapshot = "failed";
    console.warn("blindpad: no start-up snapshot:", errLine(err));
  }
  return py;
}

/**
 * Python's memory now, as Pyodide's makeMemorySnapshot gives it. Pyodide
 * takes one only from an interpreter started for it (`_makeSnapshot`), whose
 * `js` module goes through a recording proxy that breaks the page's own calls
 * (`js.localStorage`: "Illegal invocation"); so this interpreter, started as
 * usual, is allowed to for this one synchronous call. Python must then hold
 * no JavaScript object but Pyodide's own (the client binds to `js` only when a
 * pad opens), and the package list must look empty (a restored page loads
 * no package: `restoreFiles` unpacks our wheel's files).
 */
function takeSnapshot(py) {
  const config = py._api.config;
  const loaded = py.loadedPackages;
  const kept = { ...loaded };
  for (const name of Object.keys(loaded)) delete loaded[name];
  config._makeSnapshot = true;
  try {
    return py.makeMemorySnapshot();
  } finally {
    config._makeSnapshot = false;
    Object.assign(loaded, kept);
  }
}

/** The relay's start-up snapshot (a promise of its bytes). */
async function fetchServed() {
  const response = await fetch(cfg.snapshotUrl);
  if (!response.ok) throw new Error(`could not load ${cfg.snapshotUrl}: ${response.status}`);
  return response.arrayBuffer();
}

async function loadClient(py) {
  const errors = [];
  await py.loadPackage("blindpad", { messageCallback: () => {}, errorCallback: (m) => errors.push(m) });
  if (errors.length) throw new Error(`loading the blindpad client failed: ${errors.join("; ")}`);
}

async function boot() {
  mark("boot");
  const fragment = location.hash.slice(1);
  if (!fragment) {
    fail(t("noFragment"));
    return;
  }
  snapshot.found = findSnapshot(); // meanwhile
  idbOpen().catch(() => {}); // likewise (idbRead reports a failure)
  // Opening a pad needs no token; a pad this tab created and reloads may still need it.
  const token = fragment === "new" ? await creationToken() : sessionStorage.getItem(TOKEN_KEY) || "";
  loading(t("loadingPython"), 2, 80);
  // libsodium and Python load side by side: Python binds to sodium only when the pad opens.
  const sodium = (async () => {
    await loadScript(cfg.sodium);
    await loadScript(cfg.sodiumWrappers);
    await globalThis.sodium.ready;
    mark("sodium");
  })();
  const python = import(cfg.pyodideMjs).then(({ loadPyodide }) => {
    mark("pyodide-module");
    return startPython(loadPyodide);
  });
  const [py] = await Promise.all([python, sodium]);
  mark("python-ready");
  loading(t("opening"), 94);
  const browser = py.pyimport("client.browser");
  const base = location.href.split("#")[0].split("?")[0].replace(/\/(p|embed)\/$/, "");
  const readonly = EMBED && params.get("readonly") === "1";
  const stored = await idbRead(browser.channel_of(base, fragment));
  const opened = browser.start(base, fragment, schedule, token, readonly, persist, stored);
  if (opened.failure) {
    fail(opened.failure);
    return;
  }
  pad = opened;
  mark("opened");
  if (embed.name) pad.set_name(embed.name);
  const links = JSON.parse(pad.links());
  if (fragment !== links.fragment) history_replace(links.fragment);
  if (!EMBED) {
    setupLinks(links);
    setupProfile();
  }
  registerWorker(base);
  clearInterval(creep);
  setStatus("connecting", t("connecting"));
  $("loading-text").textContent = t("connectingRelay");
  schedule();
  setInterval(schedule, 1000);
}

/** One line for a failed start: a missing asset means the relay went away. */
function startFailure(err) {
  const text = err && err.message ? err.message : String(err);
  if (text.startsWith("could not load") || err instanceof TypeError) {
    console.error("blindpad:", text);
    return t("cannotReach", { detail: text.split("\n")[0] });
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
        window.prompt(t("copyPrompt"), link);
      }
      button.textContent = t("copied");
      setTimeout(() => (button.textContent = label), 1500);
    });
  };
  wire("copy-edit", links.edit);
  wire("copy-view", links.view);
}

// --- history: a timeline of what the relay keeps ------------------------------

const hist = { revisions: [], seq: null, text: null };

function fmtTime(ms) {
  if (typeof ms !== "number") return t("historyUnknownTime");
  return new Date(ms).toLocaleString(STRINGS.lang, { dateStyle: "medium", timeStyle: "medium" });
}

/** Open the history panel: fetch what the relay keeps (with the read token) and list it. */
async function openHistory() {
  if (!pad || stopped) return;
  $("history").hidden = false;
  $("history-open").setAttribute("aria-expanded", "true");
  $("history-restore").disabled = true;
  $("history-compare").disabled = true;
  showCompare(false);
  $("history-diff").replaceChildren();
  $("history-text").value = "";
  $("history-what").textContent = t("historyLoading");
  $("history-list").replaceChildren();
  hist.seq = hist.text = null;
  try {
    const req = JSON.parse(pad.history_request());
    const headers = { Authorization: req.authorization };
    const listing = await fetch(req.snapshots, { headers, cache: "no-store" });
    if (!listing.ok) throw new Error(`GET snapshots: ${listing.status}`);
    const { floor, snapshots } = await listing.json();
    const query = floor ? `from=snapshot&at=${floor}` : "since=0";
    const res = await fetch(`${req.history}?${query}`, { headers, cache: "no-store" });
    if (!res.ok) throw new Error(`GET history: ${res.status}`);
    const out = JSON.parse(pad.history_load(new Uint8Array(await res.arrayBuffer())));
    if (out.failure) throw new Error(out.failure);
    // The checkpoints kept from before the trimmed history: each a whole text.
    const older = [];
    for (const { seq } of snapshots.filter((x) => x.seq < floor)) {
      const one = await fetch(`${req.history}?from=snapshot&at=${seq}`, { headers, cache: "no-store" });
      const entry = one.ok ? JSON.parse(pad.history_checkpoint(new Uint8Array(await one.arrayBuffer()))) : null;
      older.push(entry && !entry.failure ? entry : { seq, time: null, author: null, color: null, kind: "unreadable" });
    }
    hist.revisions = [...older, ...out.revisions];
  } catch (err) {
    $("history-what").textContent = t("historyFailed", { detail: String(err && err.message ? err.message : err).split("\n")[0] });
    return;
  }
  renderHistory();
}

function renderHistory() {
  const items = [...hist.revisions].reverse().map((r) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "history-item";
    b.dataset.seq = r.seq;
    const values = { seq: r.seq, time: fmtTime(r.time), author: r.author || t("historyUnknownAuthor") };
    const key = { unreadable: "historyUnreadable", snapshot: "historySnapshot", checkpoint: "historyCheckpoint" }[r.kind] || "historyEntry";
    b.textContent = t(key, values);
    if (r.color) b.style.borderLeftColor = r.color;
    b.disabled = r.kind === "unreadable";
    b.addEventListener("click", () => showRevision(r, b));
    li.append(b);
    return li;
  });
  $("history-list").replaceChildren(...items);
  $("history-what").textContent = items.length ? "" : t("historyEmpty");
  const first = $("history-list").querySelector("button:not([disabled])");
  if (first) first.focus();
}

/** A read-only view of the text after one revision (replayed and verified by Python). */
function showRevision(r, button) {
  const out = JSON.parse(pad.revision(r.seq));
  for (const b of document.querySelectorAll(".history-item[aria-current]")) b.removeAttribute("aria-current");
  button.setAttribute("aria-current", "true");
  if (out.failure) {
    $("history-what").textContent = out.failure;
    $("history-restore").disabled = true;
    $("history-compare").disabled = true;
    return;
  }
  hist.seq = out.seq;
  hist.text = out.text;
  $("history-text").value = out.text;
  $("history-what").textContent = t("historyShowing", { seq: out.seq, time: fmtTime(r.time), author: r.author || t("historyUnknownAuthor") });
  $("history-restore").disabled = !editable;
  $("history-compare").disabled = false;
  renderCompare(out.compare);
}

/**
 * The text now against the version shown (segments of client.textdiff.compare):
 * removed text in <del>, added in <ins>, long unchanged stretches folded.
 * Built with text nodes only: the pad's text is never parsed as HTML.
 */
function renderCompare(segments) {
  let added = 0;
  let removed = 0;
  const nodes = segments.map(([kind, value]) => {
    if (kind === "~") {
      const fold = document.createElement("span");
      fold.className = "fold";
      fold.textContent = t("historyFolded", { count: value });
      return fold;
    }
    if (kind === "=") return document.createTextNode(value);
    const el = document.createElement(kind === "+" ? "ins" : "del");
    el.textContent = value;
    if (kind === "+") added += cpCount(value);
    else removed += cpCount(value);
    return el;
  });
  const summary = document.createElement("p");
  summary.className = "fine";
  summary.textContent = added || removed ? t("historyChanged", { added, removed }) : t("historyNoChange");
  $("history-diff").replaceChildren(summary, ...nodes);
  showCompare($("history-compare").getAttribute("aria-pressed") === "true");
}

/** Show the comparison (true) or the version's text (false). */
function showCompare(on) {
  $("history-compare").setAttribute("aria-pressed", String(on));
  $("history-diff").hidden = !on;
  $("history-text").hidden = on;
}

/** Restore: one new edit by this user, from the text now to the version's (as shown). */
function restoreRevision() {
  if (!pad || stopped || !editable || hist.text === null) return;
  tick(); // the typing of this frame and remote changes first
  const d = localDiff(ta.value, hist.text);
  if (d) {
    const problem = pad.edit(d[0], d[1], d[2], Date.now());
    if (problem) {
      report(problem);
      setText(pad.reset(), selectionCp());
      return;
    }
    applyPatches([[d]], [d[0] + cpCount(d[2]), d[0] + cpCount(d[2])]);
    emit("change", { origin: "local", patches: [[d]] });
  }
  $("history-what").textContent = t("historyRestored", { seq: hist.seq });
  schedule();
  closeHistory();
}

function closeHistory() {
  $("history").hidden = true;
  $("history-open").setAttribute("aria-expanded", "false");
  $("history-open").focus();
}

function setupHistory() {
  $("history-open").addEventListener("click", () => ($("history").hidden ? openHistory() : closeHistory()));
  $("history-close").addEventListener("click", closeHistory);
  $("history-restore").addEventListener("click", restoreRevision);
  $("history-compare").addEventListener("click", () => {
    const on = $("history-compare").getAttribute("aria-pressed") !== "true";
    if (on && hist.seq !== null) {
      tick(); // against the text as it is now
      const out = JSON.parse(pad.revision(hist.seq));
      if (!out.failure) renderCompare(out.compare);
    }
    showCompare(on);
  });
  $("history").addEventListener("keydown", (e) => e.key === "Escape" && closeHistory());
}

// --- download, your name and colour -------------------------------------------

/** A file name from the pad's first line (the catalogue's default if it has none). */
function fileName(text, ext) {
  const first = text.split(/\r\n?|\n/).find((l) => l.trim()) || "";
  const stem = first.normalize("NFKC").replace(/[^\p{L}\p{N} _-]+/gu, " ").trim().replace(/\s+/g, "-");
  return `${[...stem].slice(0, 48).join("") || t("downloadName")}.${ext}`;
}

/**
 * Save the document's own text as a file, built here (a Blob): nothing leaves
 * the page. The text is the client's, not the textarea's, so every line break
 * is the document's own (\r\n, lone \r), byte for byte.
 */
function download(ext, type) {
  if (!pad || stopped) return;
  tick(); // this frame's typing first
  const text = pad.text();
  const url = URL.createObjectURL(new Blob([text], { type: `${type};charset=utf-8` }));
  const a = document.createElement("a");
  a.href = url;
  a.download = fileName(text, ext);
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  closeMenus();
}

function closeMenus(except = null) {
  for (const menu of document.querySelectorAll("details.menu[open]")) if (menu !== except) menu.open = false;
}

function setupMenus() {
  $("download-txt").addEventListener("click", () => download("txt", "text/plain"));
  $("download-md").addEventListener("click", () => download("md", "text/markdown"));
  for (const menu of document.querySelectorAll("details.menu")) {
    menu.addEventListener("toggle", () => menu.open && closeMenus(menu));
    menu.addEventListener("keydown", (e) => {
      if (e.key !== "Escape" || !menu.open) return;
      menu.open = false;
      menu.querySelector("summary").focus();
    });
  }
  document.addEventListener("click", (e) => {
    if (!e.target.closest("details.menu")) closeMenus();
  });
}

/** Your name and colour: chosen in the bar, kept in this browser (client/browser.py). */
function setupProfile() {
  const menu = $("settings");
  const fill = () => {
    const p = JSON.parse(pad.profile());
    $("profile-name").value = p.name;
    $("profile-color").value = p.color;
  };
  const chosen = (json) => {
    lastPeopleKey = "";
    menu.open = false;
    menu.querySelector("summary").focus();
    schedule();
    return json;
  };
  menu.hidden = false;
  menu.addEventListener("toggle", () => {
    if (!menu.open) return;
    fill();
    $("profile-name").focus();
  });
  $("profile-form").addEventListener("submit", (e) => {
    e.preventDefault();
    chosen(pad.choose($("profile-name").value, $("profile-color").value));
  });
  $("profile-default").addEventListener("click", () => chosen(pad.choose("", "")));
}

/** A typed character leaves at once when the page is idle (no tick in the last
 * frame); in a burst, the frame loop batches as before. */
function typed() {
  if (!composing && performance.now() - lastTick > 16) tick();
  else schedule();
}

function listen() {
  ta.addEventListener("input", typed);
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
    } else if (!editable) {
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
  // Leaving: the local copy goes to IndexedDB now (it is otherwise written every few seconds).
  window.addEventListener("pagehide", () => pad && !stopped && pad.keep_copy(Date.now()));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden" && pad && !stopped) pad.keep_copy(Date.now());
  });
  window.addEventListener("offline", () => pad && !stopped && (pad.went_offline(), schedule()));
  window.addEventListener("online", () => pad && !stopped && (pad.retry_now(), schedule()));
}

// --- embed mode: the API over postMessage (docs/EMBED.md) ----------------------

const embed = {
  allowed: new Set((cfg.embedOrigins || "").split(" ").filter(Boolean)),
  origin: null, // the parent's origin, once its first command was accepted
  status: null,
  ready: false,
  error: null, // the fatal line, if any (also told to a host that speaks later)
  name: "",
};

/** Send an event to the embedding page (nothing before it spoke, nothing elsewhere). */
function emit(event, detail) {
  if (EMBED && embed.origin) window.parent.postMessage({ blindpad: 1, event, detail }, embed.origin);
}

/** Tell the embedding page the status word when it changes. */
function noteStatus(status) {
  if (status !== embed.status) emit("status", { status: (embed.status = status) });
}

/** Apply one API edit, [pos, delete, insert] in code points of the text as shown. */
function apiEdit(pos, del, ins) {
  needKind("text");
  if (!writer) throw new Error("this is a view link: it cannot change the pad");
  tick(); // take the user's typing and remote changes first
  const length = cpCount(ta.value);
  ins = String(ins).replace(/\r\n?/g, "\n"); // the textarea shows every line break as \n
  if (ins.isWellFormed && !ins.isWellFormed()) ins = ins.toWellFormed();
  if (!(Number.isInteger(pos) && Number.isInteger(del) && pos >= 0 && del >= 0 && pos + del <= length)) {
    throw new Error(`positions out of range: ${pos}+${del} in a text of ${length} code points`);
  }
  if (!del && !ins) return;
  const problem = pad.edit(pos, del, ins, Date.now());
  if (problem) throw new Error(problem);
  noteStatus(pad.status()); // "syncing" now, not only if a frame sees it before the ACK
  const shift = (at) => (at >= pos + del ? at - del + cpCount(ins) : Math.min(at, pos));
  applyPatches([[[pos, del, ins]]], selectionCp().map(shift));
  emit("change", { origin: "local", patches: [[[pos, del, ins]]] });
  schedule();
}

/** Throw unless the pad is open and of `kind` ("text" or "json"). */
function needKind(kind) {
  if (!pad || stopped || !embed.ready) throw new Error("the pad is not ready");
  if (kind === "text" && jsonPad) throw new Error("this is a JSON pad: use getValue and the path methods");
  if (kind === "json" && !jsonPad) throw new Error("this is a text pad: the path methods are for JSON pads");
}

/** JSON text of `args`, refusing what JSON cannot hold instead of changing it. */
function jsonArgs(args) {
  return JSON.stringify(args, (key, v) => {
    if (v === undefined) throw new Error(`${key === "" ? "an argument" : `"${key}"`} is missing (undefined is not JSON)`);
    if (typeof v === "number" && !Number.isFinite(v)) throw new Error(`${v} is not a JSON number`);
    if (typeof v === "function" || typeof v === "symbol") throw new Error(`a ${typeof v} is not JSON`);
    return v;
  });
}

/** Apply one API edit by path to a JSON pad (method of client.jsondoc.EDITS). */
function apiJson(method, args) {
  needKind("json");
  if (!writer) throw new Error("this is a view link: it cannot change the pad");
  while (args.length && args.at(-1) === undefined) args.pop(); // arguments left out
  tick(); // remote changes first
  const [a, h] = selectionCp();
  const out = JSON.parse(pad.json_edit(method, jsonArgs(args), a, h));
  if (out.problem) throw new Error(out.problem);
  if (!out.op) return;
  noteStatus(pad.status());
  if (out.patches.length) applyPatches(out.patches, out.sel);
  emit("change", { origin: "local", value: out.value, ops: [out.op] });
  schedule();
}

const COMMANDS = {
  hello(options = {}) {
    if (typeof options.name === "string" && options.name) COMMANDS.setName(options.name);
    // Say what happened before the host listened.
    lastPeopleKey = "";
    schedule();
    if (embed.status) emit("status", { status: embed.status });
    if (embed.ready) emit("ready", { writer, kind: jsonPad ? "json" : "text" });
    if (embed.error) emit("error", { message: embed.error });
    return { ready: embed.ready };
  },
  getText() {
    needKind("text");
    tick();
    return ta.value;
  },
  insert: (pos, text) => apiEdit(pos, 0, text),
  delete: (pos, count) => apiEdit(pos, count, ""),
  replace(text) {
    needKind("text");
    tick();
    const d = localDiff(ta.value, String(text).replace(/\r\n?/g, "\n"));
    if (d) apiEdit(d[0], d[1], d[2]);
  },
  setName(name) {
    embed.name = String(name).slice(0, 64);
    if (pad) pad.set_name(embed.name);
  },
  focus: () => ta.focus(),
  getValue() {
    needKind("json");
    tick();
    return JSON.parse(pad.value());
  },
  set: (...args) => apiJson("set", args),
  deleteAt: (...args) => apiJson("delete_at", args),
  insertItem: (...args) => apiJson("insert_item", args),
  moveItem: (...args) => apiJson("move_item", args),
  add: (...args) => apiJson("add", args),
  editText: (...args) => apiJson("edit_text", args),
};

function onCommand(e) {
  // Only our parent, only from a listed origin, and always the same one.
  if (e.source !== window.parent || !embed.allowed.has(e.origin)) return;
  if (embed.origin !== null && e.origin !== embed.origin) return;
  const m = e.data;
  if (!m || m.blindpad !== 1 || !Object.hasOwn(COMMANDS, m.cmd)) return;
  embed.origin = e.origin;
  let reply;
  try {
    const value = COMMANDS[m.cmd](...(Array.isArray(m.args) ? m.args : []));
    reply = { ok: true, value: value === undefined ? null : value };
  } catch (err) {
    reply = { ok: false, error: String(err && err.message ? err.message : err).split("\n")[0] };
  }
  window.parent.postMessage({ blindpad: 1, id: m.id, ...reply }, embed.origin);
}

// Tests and the bench read the client's own view of the text here.
window.blindpad = {
  text: () => (pad ? pad.text() : null),
  links: () => (pad ? JSON.parse(pad.links()) : null),
  unsaved: () => (pad ? pad.unsaved() : null),
  debug: () => (pad ? JSON.parse(pad.debug()) : null),
  stats: () => ({ ...stats }),
  offline: () => ({
    opened: pad ? pad.opened_offline : null,
    channel: pad ? pad.channel : null,
    worker: !!navigator.serviceWorker?.controller,
    stored: idb.written,
    writing: idb.writing || idb.latest.size > 0,
    error: idb.error,
  }),
  records: async (channel) => JSON.parse((await idbRead(channel)) || "{}"),
};

applyStrings();
if (EMBED) {
  document.body.classList.add("embed");
  document.body.dataset.theme = params.get("theme") === "dark" ? "dark" : "light";
  $("bar").hidden = params.get("toolbar") !== "1";
  if (window.parent !== window) window.addEventListener("message", onCommand);
}
if (EMBED || location.pathname.endsWith("/p/")) {
  $("editor").hidden = false;
  listen();
  setupMenus();
  setupHistory();
  boot().catch((err) => fail(startFailure(err)));
} else {
  $("landing").hidden = false;
  setStatus("saved", t("landingStatus"));
  $("status").dataset.state = "landing";
}
