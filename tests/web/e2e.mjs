// End-to-end tests of the web page in Debian's Chromium, driven by playwright-core.
//
// Usage: node tests/web/e2e.mjs RELAY_URL ARTIFACT_DIR [SCENARIO...]
// One browser, one context per simulated person. Prints one JSON line per
// scenario: {"scenario", "ok", "detail"}; tests/web/test_web.py asserts on them.
// Waits are on the page's status element and on text, never on sleeps.
// Every wait has a hang guard only, generous enough for a loaded machine
// (BLINDPAD_BOOT_TIMEOUT_MS, default 20 min for a page to boot;
// BLINDPAD_WAIT_TIMEOUT_MS, default 5 min for anything else); when one
// trips, the message says what was awaited. BLINDPAD_E2E_CRLF_LINK is a pad
// the Python SDK wrote with \r\n and lone \r line breaks (the crlf scenario;
// the download scenario saves it after and reports the file's bytes, base64).
// A scenario returns its detail line, or an object with it and more fields.

import { createHash, createHmac, createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [, , RELAY, ARTIFACTS, ...ONLY] = process.argv;
const BOOT_MS = Number(process.env.BLINDPAD_BOOT_TIMEOUT_MS ?? 1_200_000);
const WAIT_MS = Number(process.env.BLINDPAD_WAIT_TIMEOUT_MS ?? 300_000);
const ORIGIN = new URL(RELAY).origin;
const requests = []; // every request any page made: [url, referer, made by the service worker]
const secrets = new Set(); // link fragments, which no request may carry

const browser = await chromium.launch({
  executablePath: process.env.BLINDPAD_CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    // Every page is someone typing: none is a throttled background tab.
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
  ],
});

/** Note every request `context` makes in `requests`. */
function recordRequests(context) {
  context.on("request", (r) => requests.push([r.url(), r.headers().referer ?? "", r.serviceWorker() !== null]));
}

async function newContext() {
  const context = await browser.newContext({ viewport: { width: 820, height: 560 } });
  recordRequests(context);
  context.on("weberror", (e) => console.error("page error:", e.error().message));
  return context;
}

/** Poll the page until `probe(page)` is truthy (the page's own state, never a fixed sleep). */
async function until(page, probe, what, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe(page);
    if (last === true) return;
    if (Date.now() > deadline) throw new Error(`hung: no ${what} after ${timeout} ms (hang guard; last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 40));
  }
}

async function waitState(page, state, timeout = WAIT_MS) {
  await until(
    page,
    async (p) => {
      const got = await p.$eval("#status", (e) => e.dataset.state).catch(() => "navigating");
      return got === state || got;
    },
    `status ${state}`,
    timeout,
  );
}

async function open(context, url) {
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && console.error("console:", m.text()));
  await page.goto(url);
  await waitState(page, "saved", BOOT_MS);
  const links = await page.evaluate(() => window.blindpad.links());
  secrets.add(links.fragment);
  return { page, links };
}

const value = (page) => page.$eval("#pad", (t) => t.value);
async function waitValue(page, pred, arg) {
  await until(
    page,
    async (p) => {
      const v = await value(p);
      return pred(v, arg) || v.slice(-60);
    },
    `text matching ${pred}`,
  );
}

async function converged(pages) {
  for (const p of pages) await waitState(p, "saved");
  if (process.env.DEBUG_E2E) console.error(await diag());
  const first = await value(pages[0]);
  for (const p of pages) await waitValue(p, (v, a) => v === a, first);
  for (const p of pages) {
    const own = await p.evaluate(() => window.blindpad.text());
    if (own !== first) throw new Error(`client text differs from the textarea: ${JSON.stringify(own)}`);
  }
  return first;
}

async function caretTo(page, utf16) {
  await page.focus("#pad");
  await page.$eval("#pad", (t, at) => t.setSelectionRange(at, at), utf16);
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

// --- scenarios ------------------------------------------------------------------

const world = {};

async function converge() {
  world.ctxA = await newContext();
  world.ctxB = await newContext();
  const a = await open(world.ctxA, `${RELAY}p/#new`);
  world.A = a.page;
  world.links = a.links;
  check(!a.page.url().includes("#new"), "the new pad's link replaced #new");
  world.B = (await open(world.ctxB, world.links.edit)).page;
  // Both type at once, A at the top and B at the bottom (two typists at one
  // spot may legitimately interleave their characters).
  await caretTo(world.A, 0);
  await world.A.keyboard.type("\n");
  await converged([world.A, world.B]);
  await caretTo(world.A, 0);
  await caretTo(world.B, 1);
  const paste = "line one\nline two 🎉\n\tline three\n";
  await Promise.all([
    world.A.keyboard.type("Hello 👋 wörld 😀!", { delay: 15 }),
    (async () => {
      await world.B.keyboard.type("xy", { delay: 20 });
      await world.B.keyboard.insertText(paste);
      await world.B.keyboard.type("z🙂", { delay: 20 });
    })(),
  ]);
  const text = await converged([world.A, world.B]);
  for (const piece of ["Hello 👋 wörld 😀!", paste, "xy", "z🙂"]) {
    check(text.includes(piece), `converged text ${JSON.stringify(text)} lacks ${JSON.stringify(piece)}`);
  }
  check(text.isWellFormed(), "no lone surrogate");
  return `${[...text].length} code points on both pages`;
}

async function caret() {
  const { A, B } = world;
  const before = await value(A);
  const at = before.indexOf("wörld");
  await caretTo(A, at);
  await caretTo(B, 0);
  await B.keyboard.type("→🦊 ");
  const inserted = "→🦊 ".length;
  await waitValue(A, (v) => v.startsWith("→🦊 "));
  const sel = await A.$eval("#pad", (t) => [t.selectionStart, t.selectionEnd]);
  check(sel[0] === at + inserted && sel[1] === at + inserted, `caret ${sel} expected ${at + inserted}`);
  await A.keyboard.type("~");
  const text = await converged([A, B]);
  check(text.includes("~wörld"), `typing after the remote insert lands at the caret: ${text}`);
  return `caret moved from ${at} to ${sel[0]} (UTF-16) and typing continued there`;
}

async function ime() {
  const { A, B } = world;
  const end = (await value(A)).length;
  await caretTo(A, end);
  const cdp = await world.ctxA.newCDPSession(A);
  await cdp.send("Input.imeSetComposition", { text: "に", selectionStart: 1, selectionEnd: 1 });
  await cdp.send("Input.imeSetComposition", { text: "にほ", selectionStart: 2, selectionEnd: 2 });
  await cdp.send("Input.imeSetComposition", { text: "日本", selectionStart: 2, selectionEnd: 2 });
  await cdp.send("Input.insertText", { text: "日本" });
  await cdp.detach();
  await waitValue(B, (v) => v.endsWith("日本"));
  const text = await converged([A, B]);
  check(text.endsWith("日本") && !text.includes("に"), `composition committed once: ${text}`);
  return "composition に → にほ → 日本 committed as 日本 on both pages";
}

async function surrogate() {
  const { A, B } = world;
  await A.focus("#pad");
  await A.keyboard.press("Control+End");
  await A.keyboard.type("\na😀b😀c");
  await converged([A, B]);
  const v = await value(A);
  const start = v.lastIndexOf("b");
  // Select exactly "b", whose both edges touch a surrogate pair, and replace it.
  await A.$eval("#pad", (t, s) => t.setSelectionRange(s, s + 1), start);
  await A.keyboard.type("Z");
  // Then select backwards from the end over the emoji with the keyboard and type over it.
  await A.keyboard.press("Control+End");
  await A.keyboard.press("Shift+ArrowLeft");
  await A.keyboard.press("Shift+ArrowLeft");
  await A.keyboard.type("C");
  const text = await converged([A, B]);
  check(text.endsWith("\na😀Z😀C") || text.endsWith("\na😀ZC"), `pairs intact: ${JSON.stringify(text.slice(-12))}`);
  check(text.isWellFormed(), "no lone surrogate after selection edits");
  return `tail is ${JSON.stringify(text.slice(text.lastIndexOf("\n") + 1))}`;
}

async function undo() {
  const { A, B } = world;
  await A.focus("#pad");
  await A.keyboard.press("Control+End");
  await A.keyboard.type(" MINE");
  await waitState(A, "saved");
  await waitValue(B, (v) => v.endsWith(" MINE"));
  await B.focus("#pad");
  await B.keyboard.press("Control+Home");
  await B.keyboard.type("THEIRS ");
  await waitValue(A, (v) => v.startsWith("THEIRS "));
  await A.keyboard.press("Control+z");
  await waitValue(A, (v) => !v.includes("MINE"));
  const text = await converged([A, B]);
  check(text.startsWith("THEIRS ") && !text.includes("MINE"), `undo removed only A's edit: ${text}`);
  await A.keyboard.press("Control+Shift+z");
  const redone = await converged([A, B]);
  check(redone.endsWith(" MINE") && redone.startsWith("THEIRS "), `redo put it back: ${redone}`);
  await A.keyboard.press("Control+z");
  await converged([A, B]);
  return "Ctrl+Z removed ' MINE' and kept B's 'THEIRS '; Ctrl+Shift+Z redid it";
}

async function view() {
  const { A, B } = world;
  world.ctxV = await newContext();
  const { page: V } = await open(world.ctxV, world.links.view);
  world.V = V;
  const text = await converged([A, B, V]);
  check(await V.$eval("#pad", (t) => t.readOnly), "the view page's textarea is read-only");
  check(await V.$eval("#readonly", (e) => !e.hidden), "the view page says View only");
  check((await V.$$("#copy-edit:not([hidden])")).length === 0, "no edit link on a view page");
  await caretTo(A, 6);
  await A.keyboard.press("Shift+ArrowRight");
  const nameA = await A.$eval(".person .you", (e) => e.parentElement.title.replace(" (you)", ""));
  await V.waitForFunction((n) => [...document.querySelectorAll("#overlay .flag")].some((f) => f.textContent === n), nameA, { timeout: WAIT_MS });
  await V.waitForSelector("#overlay .sel", { timeout: WAIT_MS });
  await V.focus("#pad");
  await V.keyboard.type("viewer was here");
  await V.keyboard.press("Backspace");
  check((await value(V)) === text, "typing on the view page changed nothing");
  check(!(await value(A)).includes("viewer"), "nothing reached the editors");
  await A.waitForFunction(() => document.querySelectorAll("#people .person").length >= 3, null, { timeout: WAIT_MS });
  return `view page shows ${[...text].length} code points, A's cursor and selection, and cannot edit`;
}

async function profile() {
  // Your name and colour: chosen once in the bar, seen by the others, kept on reload.
  const { B } = world;
  const ctx = await newContext();
  const { page: P } = await open(ctx, world.links.edit);
  const mine = () => P.$eval("#people .person", (e) => e.title);
  const generated = (await mine()).replace(/ \(you\)$/, "");
  const name = "Ada Lovelace 🧮";
  // The menu fills its form on its toggle event, a task after the click: wait for it.
  const field = (id) => P.$eval(id, (e) => e.value);
  await P.click("#settings > summary");
  await until(P, async () => (await field("#profile-name")) === generated || (await field("#profile-name")), "the form starts from the generated name");
  await P.fill("#profile-name", `  ${name} `);
  await P.$eval("#profile-color", (e) => {
    e.value = "#118833";
    e.dispatchEvent(new Event("input", { bubbles: true }));
  });
  await P.keyboard.press("Enter");
  check(!(await P.$eval("#settings", (e) => e.open)), "the menu closed on Enter");
  const people = (page) => page.$$eval("#people .person:not(.away)", (els) => els.map((e) => [e.title, e.querySelector(".dot").style.background]));
  const shows = async (page) => (await people(page)).some(([t, bg]) => t === name && bg === "rgb(17, 136, 51)") || JSON.stringify(await people(page));
  await until(B, shows, "the chosen name and colour in the other page's people list");
  await P.reload();
  await waitState(P, "saved", BOOT_MS);
  await until(P, async () => (await mine()) === `${name} (you)` || (await mine()), "the chosen name kept after a reload");
  await P.keyboard.press("Control+End"); // a new session: the others see it under the chosen name
  await until(B, shows, "the reloaded page under its chosen name");
  await P.click("#settings > summary");
  await until(P, async () => (await field("#profile-color")) === "#118833" || (await field("#profile-color")), "the form shows the chosen colour");
  await P.click("#profile-default");
  await until(P, async () => (await mine()) === `${generated} (you)` || (await mine()), `"Use the default" bringing back ${generated}`);
  await ctx.close();
  return `"${name}" in #118833 seen by another page, kept on reload; the default is ${generated}`;
}

async function screenshot() {
  const { A, B } = world;
  await A.focus("#pad");
  await A.keyboard.press("Control+A");
  await A.keyboard.type(
    "Meeting notes — Thursday\n\nAgenda\n  1. Relay rollout 🚀\n  2. Key rotation\n  3. Browser client (Pyodide)\n\n" +
      "Decisions\n  • The relay stays content-blind.\n  • Links carry the secret in the #fragment.\n\nAction items\n  ",
  );
  await converged([A, B]);
  const v = await value(B);
  const at = v.indexOf("Key rotation");
  await B.focus("#pad");
  await B.$eval("#pad", (t, s) => t.setSelectionRange(s, s + "Key rotation".length), at);
  await B.keyboard.press("Shift+ArrowRight"); // a real selection event
  await A.waitForSelector("#overlay .sel", { timeout: WAIT_MS });
  await B.waitForSelector("#overlay .flag", { timeout: WAIT_MS });
  await world.V.waitForSelector("#overlay .sel", { timeout: WAIT_MS });
  const shots = [];
  for (const p of [A, B]) shots.push((await p.screenshot()).toString("base64"));
  const page = await world.ctxA.newPage();
  await page.setViewportSize({ width: 1660, height: 580 });
  await page.setContent(
    `<body style="margin:0;background:#cfd5e1;display:flex;gap:20px;padding:10px">` +
      shots.map((s) => `<img src="data:image/png;base64,${s}" style="border-radius:8px">`).join("") +
      "</body>",
  );
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, "web-two-pages.png");
  writeFileSync(path, await page.screenshot());
  await page.close();
  return path;
}

/** Whether the page is no wider than its viewport, and every open menu inside it. */
async function fits(page, width) {
  const got = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    body: document.body.scrollWidth,
    panels: [...document.querySelectorAll("details[open] .menu-panel")].map((p) => {
      const r = p.getBoundingClientRect();
      return [Math.floor(r.left), Math.ceil(r.right)];
    }),
  }));
  check(got.scroll <= width && got.body <= width, `wider than ${width} px: ${JSON.stringify(got)}`);
  check(got.panels.every(([l, r]) => l >= 0 && r <= width), `a menu goes off the screen: ${JSON.stringify(got)}`);
  return got;
}

async function small() {
  // A 360 px phone: no horizontal scroll, with a pad open and people present.
  const { A } = world;
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  recordRequests(context);
  const landing = await context.newPage();
  await landing.goto(RELAY);
  await waitState(landing, "landing");
  await fits(landing, 360);
  await landing.close();
  const { page: S } = await open(context, world.links.edit);
  await S.waitForFunction(() => document.querySelectorAll("#people .person:not(.away)").length >= 3, null, { timeout: WAIT_MS });
  await A.waitForFunction(() => document.querySelectorAll("#people .person:not(.away)").length >= 3, null, { timeout: WAIT_MS });
  await fits(S, 360);
  mkdirSync(ARTIFACTS, { recursive: true });
  await S.screenshot({ path: join(ARTIFACTS, "web-small.png") });
  const sizes = [];
  for (const menu of ["download", "settings"]) {
    await S.click(`#${menu} > summary`);
    sizes.push(await fits(S, 360));
    await S.screenshot({ path: join(ARTIFACTS, `web-small-${menu}.png`) });
    await S.keyboard.press("Escape");
  }
  const people = await S.$$eval("#people .person", (els) => els.length);
  await context.close();
  return `360 × 740: landing and pad (${people} people) fit, scrollWidth ${sizes[0].scroll}; both menus on screen`;
}

async function a11y() {
  // axe-core (npm, pinned in package.json) in the page: no serious or critical violation.
  const source = readFileSync(new URL("../../node_modules/axe-core/axe.min.js", import.meta.url), "utf8");
  const audit = async (page, where) => {
    if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.evaluate(source);
    const found = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ["violations"] });
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
    });
    return found.map((v) => ({ where, ...v }));
  };
  const ctx = await newContext();
  const landing = await ctx.newPage();
  await landing.goto(RELAY);
  await waitState(landing, "landing");
  const found = await audit(landing, "landing");
  await landing.close();
  const { page } = await open(ctx, world.links.edit);
  await page.waitForFunction(() => document.querySelectorAll("#people .person").length >= 3, null, { timeout: WAIT_MS });
  found.push(...(await audit(page, "pad")));
  for (const menu of ["download", "settings"]) {
    await page.click(`#${menu} > summary`);
    found.push(...(await audit(page, `pad, ${menu} open`)));
    await page.keyboard.press("Escape");
  }
  await page.click("#history-open");
  await page.waitForSelector("#history-list .history-item", { timeout: WAIT_MS });
  await page.click("#history-list .history-item");
  await until(page, async (p) => (await p.$eval("#history-text", (e) => e.value)) !== "" || "empty", "a version shown");
  found.push(...(await audit(page, "pad, history open")));
  await page.click("#history-close");
  const view = await ctx.newPage();
  await view.goto(world.links.view);
  await waitState(view, "saved", BOOT_MS);
  found.push(...(await audit(view, "view page")));
  await ctx.close();
  const bad = found.filter((v) => v.impact === "serious" || v.impact === "critical");
  check(bad.length === 0, `axe: ${JSON.stringify(bad)}`);
  const minor = found.map((v) => `${v.where}: ${v.id} (${v.impact})`);
  return `axe-core ${JSON.parse(readFileSync(new URL("../../node_modules/axe-core/package.json", import.meta.url))).version}: no serious or critical violation; minor: ${minor.join(", ") || "none"}`;
}

async function history() {
  // The relay's history in the page: an earlier version shown read-only, and
  // restored as a new edit that the other page receives.
  const { A, B } = world;
  await converged([A, B]);
  const before = await value(A);
  const height = (await A.evaluate(() => window.blindpad.debug())).height;
  await A.focus("#pad");
  await A.keyboard.press("Control+End");
  await A.keyboard.type(" — changed after 🕰️");
  await A.keyboard.press("Control+Home");
  await A.keyboard.type("(edited) ");
  const changed = await converged([A, B]);
  check(changed !== before, "the text changed");
  await B.click("#history-open");
  const item = `#history-list .history-item[data-seq="${height}"]`;
  await B.waitForSelector(item, { timeout: WAIT_MS });
  const items = await B.$$eval("#history-list .history-item", (els) => els.map((e) => e.textContent));
  check(items.length >= 2 && items.every((t) => /^#\d+ · /.test(t)), `a timeline: ${JSON.stringify(items.slice(0, 3))}`);
  await B.click(item);
  await until(B, async (p) => (await p.$eval("#history-text", (e) => e.value)) === before || (await p.$eval("#history-text", (e) => e.value)).slice(-40), `version #${height} shown`);
  check(await B.$eval("#history-text", (e) => e.readOnly), "the version is read-only");
  check((await value(B)) === changed, "looking at a version changed nothing");
  mkdirSync(ARTIFACTS, { recursive: true });
  // Compare with now: the edits made since are marked, nothing else is.
  await B.click("#history-compare");
  const diff = await B.$eval("#history-diff", (e) => ({
    hidden: e.hidden,
    ins: [...e.querySelectorAll("ins")].map((n) => n.textContent),
    del: [...e.querySelectorAll("del")].map((n) => n.textContent),
    summary: e.querySelector("p").textContent,
    textHidden: document.getElementById("history-text").hidden,
  }));
  check(!diff.hidden && diff.textHidden && diff.del.length === 0 && diff.ins.join("|") === "(edited) | — changed after 🕰️",
    `compare marks the two edits since: ${JSON.stringify(diff)}`);
  const added = [...diff.ins.join("")].length;
  check(diff.summary.includes(`${added} characters added, 0 removed`), `a summary line: ${diff.summary}`);
  await B.screenshot({ path: join(ARTIFACTS, "web-history-compare.png") });
  await B.click("#history-compare");
  check(!(await B.$eval("#history-text", (e) => e.hidden)), "the version's text is back");
  await fits(B, 820); // three people and every button in the bar, none off the edge
  check(await B.$eval("#copy-view", (e) => e.getBoundingClientRect().right <= 820), "the last button of the bar is on screen");
  await B.screenshot({ path: join(ARTIFACTS, "web-history.png") });
  await B.click("#history-restore");
  check(await B.$eval("#history", (e) => e.hidden), "restoring closed the panel");
  await waitValue(A, (v, a) => v === a, before);
  const text = await converged([A, B]);
  check(text === before, `restored: ${JSON.stringify(text.slice(-40))}`);
  return `${items.length} versions listed; #${height} shown read-only and restored, the other page has it`;
}

async function checkpoints() {
  // A checkpoint kept from before the relay's trimmed floor is listed in the
  // history, marked as such, and shown as the whole text it holds.
  const ckpt = JSON.parse(process.env.BLINDPAD_E2E_CHECKPOINT || "null");
  check(ckpt, "BLINDPAD_E2E_CHECKPOINT is not set");
  const ctx = await newContext();
  const { page } = await open(ctx, ckpt.link);
  await page.click("#history-open");
  const item = `#history-list .history-item[data-seq="${ckpt.seq}"]`;
  await page.waitForSelector(item, { timeout: WAIT_MS });
  const label = await page.$eval(item, (e) => e.textContent);
  check(label.includes("older checkpoint"), `the checkpoint is marked: ${label}`);
  const seqs = await page.$$eval("#history-list .history-item", (els) => els.map((e) => Number(e.dataset.seq)));
  check(seqs.some((x) => x > ckpt.seq + 1), `the kept history after the floor is listed too: ${seqs.slice(0, 5)}`);
  await page.click(item);
  await until(page, async (p) => (await p.$eval("#history-text", (e) => e.value)) === ckpt.text || "not yet", `checkpoint #${ckpt.seq} shown`);
  await ctx.close();
  return `checkpoint #${ckpt.seq} listed among ${seqs.length} versions and shown (${ckpt.text.length} characters)`;
}

async function routed(control) {
  const context = await newContext();
  await context.routeWebSocket(/\/ws$/, (ws) => {
    if (control.down) {
      ws.close();
      return;
    }
    const server = ws.connectToServer();
    control.sockets.push(ws);
    ws.onMessage((m) => {
      if (!control.blockUp) server.send(m);
    });
    server.onMessage((m) => ws.send(m));
  });
  return context;
}

async function offline() {
  const { A } = world;
  const control = { down: false, blockUp: false, sockets: [] };
  const ctx = await routed(control);
  const { page: C } = await open(ctx, world.links.edit);
  await converged([A, C]);
  await C.waitForFunction(() => document.querySelectorAll("#people .person:not(.away)").length >= 2, null, { timeout: WAIT_MS });
  control.down = true;
  for (const ws of control.sockets.splice(0)) await ws.close();
  await waitState(C, "offline");
  await C.focus("#pad");
  await C.keyboard.press("Control+End");
  await C.keyboard.type("\nwritten while offline ✈️");
  check(!(await value(A)).includes("offline ✈️"), "nothing leaked while offline");
  check((await C.$eval("#status", (e) => e.dataset.state)) === "offline", "still offline");
  await until(C, async (p) => /^Offline — reconnecting in \d+ s$/.test(await p.$eval("#status", (e) => e.textContent)) || (await p.$eval("#status", (e) => e.textContent)), "the offline status with its countdown");
  const status = await C.$eval("#status", (e) => e.textContent);
  const away = await C.$$eval("#people .person.away", (els) => els.map((e) => e.title));
  check(away.length >= 1, "the others are greyed out while offline");
  mkdirSync(ARTIFACTS, { recursive: true });
  await C.screenshot({ path: join(ARTIFACTS, "web-offline.png") });
  control.down = false;
  await waitState(C, "saved");
  await waitValue(A, (v) => v.endsWith("written while offline ✈️"));
  const text = await converged([A, C]);
  check(text.split("written while offline").length === 2, "delivered exactly once");
  await ctx.close();
  return `offline ("${status}", ${away.length} greyed out) → saved; the offline edit reached the other page once`;
}

async function netdown() {
  // The browser's network goes away without closing the socket (a DevTools
  // "Offline", a dead Wi-Fi): the page must say so, not "Syncing…" forever.
  const { A } = world;
  const ctx = await newContext();
  const { page: E } = await open(ctx, world.links.edit);
  await converged([A, E]);
  await ctx.setOffline(true);
  await waitState(E, "offline");
  await E.focus("#pad");
  await E.keyboard.press("Control+End");
  await E.keyboard.type(" (netdown)");
  await ctx.setOffline(false);
  await waitState(E, "saved");
  await waitValue(A, (v) => v.endsWith(" (netdown)"));
  await converged([A, E]);
  await ctx.close();
  return "the browser's offline event → Offline; online → saved, the edit delivered";
}

async function crlf() {
  const link = process.env.BLINDPAD_E2E_CRLF_LINK;
  check(link, "BLINDPAD_E2E_CRLF_LINK is not set");
  const original = "line 1 😀\r\nline 2\r\nlone CR\rend\r\n";
  const ctx = await newContext();
  const { page: F } = await open(ctx, link);
  const shown = await value(F);
  check(shown === original.replace(/\r\n?/g, "\n"), `the textarea shows \\n breaks: ${JSON.stringify(shown)}`);
  // Let the page run many frames: it must not "fix" what it shows.
  const ticks = (await F.evaluate(() => window.blindpad.stats())).ticks;
  await until(F, async (p) => (await p.evaluate(() => window.blindpad.stats())).ticks > ticks + 20 || "ticking", "20 page frames");
  const opened = await F.evaluate(() => window.blindpad.text());
  check(opened === original, `only opening changed the text: ${JSON.stringify(opened)}`);
  check(!(await F.evaluate(() => window.blindpad.unsaved())), "only opening made an edit");
  await caretTo(F, shown.length);
  await F.keyboard.type("typed ✓");
  await caretTo(F, shown.indexOf("line 2") + 4);
  await F.keyboard.press("Enter");
  // The status line may still say "saved" from before the Enter until the page
  // has taken the key: wait for the edit in the text, then for its ACK.
  const held = async (p) => (await p.evaluate(() => window.blindpad.text())).includes("line\n 2") || "no Enter yet";
  await until(F, held, "the Enter in the page's text");
  // Two edits the page takes in one frame (as on a busy machine, or a paste
  // tool): one diff spans the breaks between them, which must stay as they were.
  await F.evaluate(() => {
    const ta = document.getElementById("pad");
    ta.value = ta.value.replace("lone CR", "lone, CR") + "!";
    ta.dispatchEvent(new Event("input"));
  });
  const both = async (p) => (await p.evaluate(() => window.blindpad.text())).endsWith("✓!") || "no frame yet";
  await until(F, both, "the one-frame edits in the page's text");
  await until(F, async (p) => !(await p.evaluate(() => window.blindpad.unsaved())) || "unsaved", "every edit acknowledged");
  await waitState(F, "saved");
  const text = await F.evaluate(() => window.blindpad.text());
  await ctx.close();
  return `the page held ${JSON.stringify(text)}`;
}

async function download() {
  // The crlf pad as the SDK will read it after the run: saved as .txt and .md,
  // built in the page (a blob: URL, no request to the relay).
  const ctx = await newContext();
  const { page } = await open(ctx, process.env.BLINDPAD_E2E_CRLF_LINK);
  // A page restored from a start-up snapshot fetches the client's wheel once
  // idle (restoreFiles in web/app.js): its own request, which a busy machine
  // may delay until the download. Wait for it before counting.
  const filesBack = () => document.documentElement.dataset.boot === "cold" || performance.getEntriesByName("blindpad:files").length > 0;
  await until(page, async (p) => (await p.evaluate(filesBack)) || "still loading", "the page's background load of the client's files");
  const before = requests.length;
  const files = {};
  for (const ext of ["txt", "md"]) {
    await page.click("#download > summary");
    const [saved] = await Promise.all([page.waitForEvent("download", { timeout: WAIT_MS }), page.click(`#download-${ext}`)]);
    const bytes = readFileSync(await saved.path());
    files[ext] = { name: saved.suggestedFilename(), base64: bytes.toString("base64") };
  }
  // The service worker's precache of the build (the page's first visit in
  // this context) may still be running on a busy machine: not the download's.
  const made = requests.slice(before).filter(([, , worker]) => !worker).map(([url]) => url);
  check(made.every((url) => url.startsWith("blob:")), `the download made a request: ${JSON.stringify(made)}`);
  await ctx.close();
  const names = Object.values(files).map((f) => f.name);
  return { detail: `saved ${names.join(" and ")}, no request to the relay`, files };
}

async function errors() {
  // A damaged link: one line (what, what to do), no traceback, nothing else.
  const ctx = await newContext();
  const page = await ctx.newPage();
  const edit = world.links.edit;
  const broken = edit.slice(0, -3) + (edit.endsWith("A") ? "B" : "A") + edit.slice(-2);
  await page.goto(broken);
  await waitState(page, "error", BOOT_MS);
  const message = await page.$eval("#message", (e) => e.textContent);
  check(!message.includes("Traceback") && !message.includes("\n"), `one line: ${message}`);
  check(/cannot be opened/.test(message) && /Copy the whole link/.test(message), `says what and what to do: ${message}`);
  // A well-formed link of a pad this relay never had: said so, and not created.
  const payload = randomBytes(32).toString("base64url");
  const sum = createHash("sha256").update(`blindpad/v1/link/1.e.${payload}`).digest("hex").slice(0, 8);
  const stranger = await ctx.newPage();
  await stranger.goto(`${RELAY}p/#1.e.${payload}.${sum}`);
  await waitState(stranger, "error", BOOT_MS);
  const missing = await stranger.$eval("#message", (e) => e.textContent);
  check(/does not exist on this relay/.test(missing) && !missing.includes("\n"), `missing pad: ${missing}`);
  // Its channel id, derived as docs/PROTOCOL.md §1.1 says: the relay must not know it.
  const seed = createHmac("sha256", Buffer.from(payload, "base64url")).update("blindpad/v1/sign").digest();
  const pkcs8 = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  const pub = createPublicKey(createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" }));
  const verifyKey = Buffer.from(pub.export({ format: "jwk" }).x, "base64url");
  const channel = createHash("sha256").update("blindpad/v1/channel").update(verifyKey).digest("hex");
  const head = await stranger.evaluate(async (c) => (await fetch(`/v1/channels/${c}/head`)).status, channel);
  check(head === 404, `opening a link created its pad: GET head answered ${head}`);
  await ctx.close();
  // The relay unreachable from the start (the page itself loaded): say so, with the next attempt.
  const control = { down: true, blockUp: false, sockets: [] };
  const cut = await routed(control);
  const cutPage = await cut.newPage();
  await cutPage.goto(world.links.edit);
  await waitState(cutPage, "offline", BOOT_MS);
  const unreachable = await cutPage.$eval("#status", (e) => e.textContent);
  check(/^Cannot reach the relay — reconnecting (in \d+ s|…)$/.test(unreachable), `unreachable: ${unreachable}`);
  check(await cutPage.$eval("#message", (e) => e.hidden), "no error message for a relay that may come back");
  control.down = false;
  await waitState(cutPage, "saved");
  await cut.close();
  return `${message} | ${unreachable}`;
}

async function reload() {
  const { A } = world;
  const control = { down: false, blockUp: false, sockets: [] };
  const ctx = await routed(control);
  const { page: D } = await open(ctx, world.links.edit);
  await converged([A, D]);
  control.blockUp = true; // the relay never hears of what D types now
  await D.focus("#pad");
  await D.keyboard.press("Control+End");
  await D.keyboard.type("\nsealed but unacknowledged");
  await waitState(D, "syncing");
  const pending = await D.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("blindpad.pending.")).map((k) => JSON.parse(localStorage.getItem(k)).length));
  check(pending.some((n) => n > 0), `write-ahead log in localStorage: ${pending}`);
  let asked = false;
  D.on("dialog", (d) => {
    asked = asked || d.type() === "beforeunload";
    d.accept();
  });
  control.blockUp = false;
  await D.reload();
  check(asked, "leaving with unacknowledged edits asked for confirmation");
  await waitState(D, "saved", BOOT_MS);
  await waitValue(A, (v) => v.endsWith("sealed but unacknowledged"));
  const text = await converged([A, D]);
  check(text.split("sealed but unacknowledged").length === 2, "delivered exactly once");
  await ctx.close();
  return "a reload with unacknowledged edits asked first, then delivered them once";
}

async function snapshotted() {
  // The reliability suite's browser case (docs/RELIABILITY.md): this many runs.
  const runs = Number(process.env.BLINDPAD_E2E_SNAPSHOTTED_RUNS ?? 1);
  const details = [];
  for (let run = 1; run <= runs; run++) details.push(await snapshottedOnce(run));
  return `${runs} run(s); last: ${details[details.length - 1]}`;
}

async function snapshottedOnce(run) {
  // Issue 11: type offline, close the tab, another writer writes enough for a
  // snapshot, reopen: the offline edit is merged onto the snapshot, once, with
  // no recovery alarm (before, the page dropped it: "parent is not on the chain").
  const { A } = world;
  const control = { down: false, blockUp: false, sockets: [] };
  const ctx = await routed(control);
  const { page: F } = await open(ctx, world.links.edit);
  await converged([A, F]);
  const before = await F.evaluate(() => window.blindpad.debug().height);
  control.down = true;
  for (const ws of control.sockets.splice(0)) await ws.close();
  await waitState(F, "offline");
  await F.focus("#pad");
  await F.keyboard.press("Control+Home");
  // More keystrokes than the page's pipeline (32 patches): the rest fold into the log too.
  const typed = `typed offline (run ${run}), tab closed ⛵, well past the pipeline of 32 patches\n`;
  await F.keyboard.type(typed);
  // The client has taken every keystroke (a crash within the frame after a
  // keystroke may lose that one; that is not what this tests).
  await until(F, async (p) => (await p.evaluate(() => window.blindpad.text())).startsWith(typed) || "not yet", "the typed text in the client");
  const logged = await F.evaluate(() => {
    const keys = Object.keys(localStorage);
    const pending = keys.filter((k) => k.startsWith("blindpad.pending.")).map((k) => JSON.parse(localStorage.getItem(k)).length);
    const bases = keys.filter((k) => k.startsWith("blindpad.base."));
    return { pending, bases: bases.length };
  });
  check(logged.pending.some((n) => n > 0) && logged.bases > 0, `the log and its base in localStorage: ${JSON.stringify(logged)}`);
  await F.close(); // no beforeunload: the tab is simply gone
  // The other writer: more bytes than the whole pad, then it replaces them by
  // one line, so the pad is small again and has more patch bytes since its
  // last snapshot than text: it makes a snapshot (each run, not just the first).
  const size = (await value(A)).length;
  const chunk = `\n${"snapshot me ".repeat(Math.ceil((size + 20000) / 12))}`;
  const mark = `\nthe other writer, run ${run}`;
  await A.$eval("#pad", (t, c) => {
    t.value += c;
    t.dispatchEvent(new Event("input"));
  }, chunk);
  await waitState(A, "saved");
  await A.$eval("#pad", (t, [c, m]) => {
    t.value = t.value.replace(c, m);
    t.dispatchEvent(new Event("input"));
  }, [chunk, mark]);
  await waitState(A, "saved");
  // "Saved" is about patches; the snapshot A made is uploaded beside them:
  // wait until the relay has stored it, or the reopened tab may join from an
  // older one (a busy machine showed it, run 45 of 100).
  await until(A, async (p) => {
    const d = await p.evaluate(() => window.blindpad.debug());
    return (d.snapshot > before && d.uploading === 0) || `not yet: ${JSON.stringify(d)}`;
  }, "the other writer's snapshot stored by the relay");
  control.down = false;
  const { page: G } = await open(ctx, world.links.edit);
  const debug = await G.evaluate(() => window.blindpad.debug());
  check(debug.snapshot > before, `the reopened tab joined from a snapshot past the offline edit's parent: ${JSON.stringify(debug)} (before: ${before})`);
  const text = await converged([A, G]);
  check(text.split(typed).length === 2, "delivered whole, exactly once");
  check(text.split(mark).length === 2 && !text.includes("snapshot me"), "the other writer's text intact");
  const message = await G.$eval("#message", (e) => e.textContent);
  check(!/recovery/i.test(message), `no recovery alarm: ${message}`);
  await ctx.close();
  return `offline edit, tab closed, snapshot at height ${debug.snapshot} (> ${before}), reopened: merged once, no alarm`;
}

async function network() {
  // A download is a blob: URL of this origin: built in the page, it goes nowhere.
  const local = (url) => url.startsWith(`${ORIGIN}/`) || url.startsWith("data:") || url.startsWith(`blob:${ORIGIN}/`);
  const outside = requests.filter(([url]) => !local(url));
  check(outside.length === 0, `requests outside ${ORIGIN}: ${JSON.stringify(outside.slice(0, 5))}`);
  const leaks = requests.filter(([url, ref]) => [...secrets].some((s) => url.includes(s) || ref.includes(s)));
  check(leaks.length === 0, `a request carried a link secret: ${JSON.stringify(leaks.slice(0, 3))}`);
  check(requests.every(([url]) => !url.includes("#")), "no request URL has a fragment");
  return `${requests.length} requests, all to ${ORIGIN}, none carrying a secret`;
}

async function diag() {
  const out = [];
  for (const name of ["A", "B", "V"]) {
    const page = world[name];
    if (!page || page.isClosed()) continue;
    const state = await page.evaluate(() => ({
      status: document.getElementById("status").textContent,
      message: document.getElementById("message").textContent,
      value: document.getElementById("pad").value,
      client: window.blindpad.text(),
      debug: window.blindpad.debug(),
      stats: window.blindpad.stats(),
    }));
    out.push(`${name}: ${JSON.stringify(state)}`);
  }
  return out.join("\n");
}

const SCENARIOS = {
  converge, caret, ime, surrogate, undo, view, profile, screenshot, small, a11y, history, checkpoints, offline, netdown, crlf,
  download,
  errors,
  reload, snapshotted, network,
};
let broken = null;
for (const [name, run] of Object.entries(SCENARIOS)) {
  if (ONLY.length && !ONLY.includes(name)) continue;
  const started = Date.now();
  let result;
  if (broken && name !== "network") {
    result = { scenario: name, ok: false, detail: `not run: ${broken} failed first` };
  } else {
    try {
      const got = await run();
      result = { scenario: name, ok: true, ...(typeof got === "string" ? { detail: got } : got) };
    } catch (err) {
      result = { scenario: name, ok: false, detail: `${String(err && err.stack ? err.stack : err).slice(0, 2000)}\n${await diag()}` };
      if (name === "converge") broken = name;
    }
  }
  result.seconds = (Date.now() - started) / 1000;
  if (process.env.DEBUG_E2E) result.diag = await diag();
  console.log(JSON.stringify(result));
}
await browser.close();
