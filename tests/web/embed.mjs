// <blindpad-pad> on another origin, in Debian's Chromium driven by playwright-core.
//
// Usage: node tests/web/embed.mjs RELAY_URL HOST_OK HOST_BAD LINK JSON_LINK
//   HOST_OK and HOST_BAD serve docs/embed-example.html (as /host.html) filled
//   in with RELAY_URL and LINK; the relay lists HOST_OK in --embed-origins only.
// Prints one JSON line per scenario ({"scenario", "ok", "detail", ...});
// tests/web/test_embed.py asserts on them. Waits are on events and polled
// states with generous hang guards, never on sleeps or timing thresholds.
//   api      the element opens the pad; insert, getText, change and status
//            events; setName
//   page     the normal page (a separate browser context) sees the host's
//            edit and the host's name; what it types reaches the element as a
//            remote change
//   readonly a second element with `readonly` and `theme="dark"` reads but
//            cannot write; one with another relay's link is refused at once,
//            one with a damaged link fires `error` and rejects `ready`
//   json     two elements (two browser contexts) on a JSON pad the SDK made:
//            getValue, set, insertItem, moveItem, add, editText, deleteAt;
//            local and remote change events carry the value; errors are one
//            line (a text call on a JSON pad, a missing key, NaN, a missing
//            argument); the frame shows formatted JSON read-only
//   blocked  on HOST_BAD the relay's CSP refuses the frame: Chromium reports
//            the frame-ancestors violation and `ready` never resolves

import { chromium } from "playwright-core";

const [, , RELAY, HOST_OK, HOST_BAD, LINK, JSON_LINK] = process.argv;
const BOOT_MS = Number(process.env.BLINDPAD_BOOT_TIMEOUT_MS ?? 180_000);
const WAIT_MS = Number(process.env.BLINDPAD_WAIT_TIMEOUT_MS ?? 30_000);
const HOST_TEXT = "from the host ";
const PAGE_TEXT = " typed on the page";

const browser = await chromium.launch({
  executablePath: process.env.BLINDPAD_CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

async function until(probe, what, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last === true) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

const hostPage = (host) => `${host}host.html`; // the link is in the page, never in a URL
const events = (page, type) => page.evaluate((t) => window.__events.filter((e) => e.type === t), type);
const world = {};

async function open(host) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const log = [];
  page.on("console", (m) => log.push(m.text()));
  // Record every event of the element from its first one on.
  await page.addInitScript(() => {
    window.__events = [];
    document.addEventListener("DOMContentLoaded", () => {
      const el = document.querySelector("blindpad-pad");
      for (const type of ["change", "status", "peers", "alarm", "error", "ready"]) {
        el.addEventListener(type, (e) => window.__events.push({ type, detail: e.detail }));
      }
    });
  });
  await page.goto(hostPage(host));
  return { context, page, log };
}

async function api() {
  const { page, log } = await open(HOST_OK);
  world.host = page;
  world.hostLog = log;
  const info = await page.evaluate((ms) => {
    const el = document.querySelector("blindpad-pad");
    const guard = new Promise((_, reject) => setTimeout(() => reject(new Error("ready: hang guard")), ms));
    return Promise.race([el.ready, guard]);
  }, BOOT_MS);
  check(info && info.writer === true, `ready says the link can write: ${JSON.stringify(info)}`);
  const before = await page.evaluate(() => document.querySelector("blindpad-pad").getText());
  check(before === "from python\n", `getText reads what the SDK wrote: ${JSON.stringify(before)}`);
  await page.evaluate((t) => document.querySelector("blindpad-pad").insert(0, t), HOST_TEXT);
  const after = await page.evaluate(() => document.querySelector("blindpad-pad").getText());
  check(after === HOST_TEXT + before, `getText after insert: ${JSON.stringify(after)}`);
  const changes = await events(page, "change");
  const mine = changes.find((c) => c.detail.origin === "local");
  check(mine && JSON.stringify(mine.detail.patches) === JSON.stringify([[[0, 0, HOST_TEXT]]]),
    `a local change event with the delta: ${JSON.stringify(changes)}`);
  await until(async () => {
    const seen = (await events(page, "status")).map((e) => e.detail.status);
    const i = seen.lastIndexOf("syncing");
    return (i >= 0 && seen.slice(i).includes("saved")) || seen;
  }, "status saved after syncing");
  const words = new Set((await events(page, "status")).map((e) => e.detail.status));
  check([...words].every((w) => ["connecting", "offline", "syncing", "saved"].includes(w)), `status words: ${[...words]}`);
  const refused = await page.evaluate(() =>
    document.querySelector("blindpad-pad").insert(999, "x").then(() => "accepted", (e) => e.message));
  check(refused.includes("out of range"), `a bad position is refused with one line: ${refused}`);
  await page.evaluate(() => document.querySelector("blindpad-pad").setName("Host Ada"));
  const frame = page.frames().find((f) => f.url().startsWith(`${RELAY}embed/`));
  check(frame && !frame.url().split("#")[0].includes(LINK.split("#")[1]), `the secret is in the fragment only: ${frame && frame.url()}`);
  return { detail: `ready, read ${before.length} chars, inserted, saw change + saved; statuses ${[...words].join(",")}` };
}

async function page() {
  const context = await browser.newContext();
  const pad = await context.newPage();
  await pad.goto(LINK);
  const state = () => pad.$eval("#status", (e) => e.dataset.state).catch(() => "navigating");
  await until(async () => (await state()) === "saved" || (await state()), "the page saved", BOOT_MS);
  await until(async () => {
    const text = await pad.evaluate(() => window.blindpad.text());
    return text === `${HOST_TEXT}from python\n` || text;
  }, "the page sees the host's insert");
  await until(async () => {
    const people = await pad.$eval("#people", (e) => e.textContent);
    return people.includes("Host Ada") || people;
  }, "the page lists the host's name");
  await pad.focus("#pad");
  await pad.keyboard.press("Control+End");
  await pad.keyboard.type(PAGE_TEXT);
  await until(async () => (await state()) === "saved" || (await state()), "the page saved its typing");
  const host = world.host;
  await until(async () => {
    const text = await host.evaluate(() => document.querySelector("blindpad-pad").getText());
    return text.endsWith(PAGE_TEXT) || text;
  }, "the element sees the page's typing");
  const remote = (await events(host, "change")).filter((c) => c.detail.origin === "remote");
  check(remote.length > 0, "remote change events reached the host");
  const peers = await events(host, "peers");
  check(peers.some((p) => p.detail.peers.length >= 1), `a peers event lists the page: ${JSON.stringify(peers.at(-1))}`);
  await host.evaluate(() => document.querySelector("blindpad-pad").focus());
  return { detail: `the page saw the insert and "Host Ada"; ${remote.length} remote change events reached the host` };
}

async function readonly() {
  const host = world.host;
  const result = await host.evaluate(async ([link, ms]) => {
    const add = (attrs) => {
      const el = document.createElement("blindpad-pad");
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
      document.body.append(el);
      return el;
    };
    const foreign = add({ link: "https://elsewhere.example/p/#abc" });
    const refused = await foreign.ready.then(() => "opened", (e) => e.message);
    const damaged = add({ link: link.split("#")[0] + "#not-a-secret" });
    const errors = [];
    damaged.addEventListener("error", (e) => errors.push(e.detail.message));
    const guard0 = new Promise((_, reject) => setTimeout(() => reject(new Error("damaged: hang guard")), ms));
    const broken = await Promise.race([damaged.ready.then(() => "opened", (e) => e.message), guard0]);
    const el = add({ link, readonly: "", theme: "dark" });
    const guard = new Promise((_, reject) => setTimeout(() => reject(new Error("ready: hang guard")), ms));
    const info = await Promise.race([el.ready, guard]);
    const text = await el.getText();
    const write = await el.insert(0, "x").then(() => "accepted", (e) => e.message);
    return { refused, broken, errors, info, text, write };
  }, [LINK, BOOT_MS]);
  check(result.broken.includes("cannot be opened") && result.errors[0] === result.broken,
    `a damaged link rejects ready and fires one error event: ${JSON.stringify([result.broken, result.errors])}`);
  check(result.refused.includes("must be a pad link of"), `a link of another relay: ${result.refused}`);
  check(result.info.writer === false, `readonly opens the view link: ${JSON.stringify(result.info)}`);
  check(result.text.startsWith(HOST_TEXT), `the read-only element reads the pad: ${JSON.stringify(result.text)}`);
  check(result.write.includes("view link"), `a read-only element cannot write: ${result.write}`);
  const frames = host.frames().filter((f) => f.url().startsWith(`${RELAY}embed/?`));
  const themes = await Promise.all(frames.map((f) => f.evaluate(() => document.body.dataset.theme)));
  check(themes.includes("dark"), `theme=dark reaches the frame: ${themes}`);
  return { detail: `readonly: writer false, write refused (${result.write}); a foreign link refused` };
}

async function jsonPad() {
  // Two elements on the JSON pad, each in its own browser context (own identity).
  const make = async () => {
    const { page } = await open(HOST_OK);
    const info = await page.evaluate(async ([link, ms]) => {
      const el = document.createElement("blindpad-pad");
      el.id = "json";
      el.setAttribute("link", link);
      window.__jsonEvents = [];
      for (const type of ["change", "ready"]) el.addEventListener(type, (e) => window.__jsonEvents.push({ type, detail: e.detail }));
      document.body.append(el);
      const guard = new Promise((_, reject) => setTimeout(() => reject(new Error("json ready: hang guard")), ms));
      return Promise.race([el.ready, guard]);
    }, [JSON_LINK, BOOT_MS]);
    return { page, info };
  };
  const a = await make();
  const b = await make();
  check(a.info.writer === true && a.info.kind === "json", `ready says a writable JSON pad: ${JSON.stringify(a.info)}`);
  const call = (side, method, ...args) => side.page.evaluate(([m, xs]) => {
    const el = document.getElementById("json");
    return el[m](...xs).then((value) => ({ value }), (e) => ({ error: e.message }));
  }, [method, args]);
  const sorted = (v) => (v && typeof v === "object" ? JSON.stringify(v, Object.keys(v).sort()) : JSON.stringify(v));
  const start = await call(a, "getValue");
  const initial = { count: 1, items: ["a", "b"], title: "from python" };
  check(sorted(start.value) === sorted(initial), `getValue reads what the SDK wrote: ${JSON.stringify(start)}`);
  for (const [method, ...args] of [["set", ["done"], false], ["insertItem", ["items"], 2, "c"], ["moveItem", ["items"], 0, 2],
    ["add", ["count"], 41], ["editText", ["title"], 0, 0, "hello "], ["set", ["gone"], { x: [1] }], ["deleteAt", ["gone"]],
    ["set", ["done"], true]]) {
    const r = await call(a, method, ...args);
    check(!("error" in r), `${method} ${JSON.stringify(args)}: ${r.error}`);
  }
  const want = { count: 42, done: true, items: ["b", "c", "a"], title: "hello from python" };
  const mine = await call(a, "getValue");
  check(sorted(mine.value) === sorted(want), `the value after the edits: ${JSON.stringify(mine)}`);
  const local = await a.page.evaluate(() => window.__jsonEvents.filter((e) => e.type === "change" && e.detail.origin === "local"));
  check(local.length === 8 && sorted(local.at(-1).detail.value) === sorted(want) && local[2].detail.ops[0].kind === "m",
    `a local change event per edit, with the value and the op: ${JSON.stringify(local.slice(-2))}`);
  const refusals = [await call(a, "getText"), await call(a, "set", ["nope", "x"], 1), await call(a, "set", ["x"], NaN),
    await call(a, "set", ["x"]), await call(a, "moveItem", ["items"], 5, 0)];
  const lines = refusals.map((r) => r.error || "accepted");
  check(lines[0].includes("JSON pad") && lines[1].includes("no key") && lines[2].includes("not a JSON number")
    && lines[3].includes("set takes") && lines[4].includes("no item"), `refusals are one line each: ${JSON.stringify(lines)}`);
  check(lines.every((l) => !l.includes("\n") && !l.includes("Traceback")), `no tracebacks: ${JSON.stringify(lines)}`);
  await until(async () => {
    const v = (await call(b, "getValue")).value;
    return sorted(v) === sorted(want) || v;
  }, "the second element sees the first one's edits");
  const changes = await b.page.evaluate(() => window.__jsonEvents.filter((e) => e.type === "change"));
  check(changes[0].detail.origin === "reset" && changes.every((e) => Array.isArray(e.detail.ops) && "value" in e.detail),
    `the first change is the reset, and every change carries the value and the ops: ${JSON.stringify(changes.slice(0, 2))}`);
  const remote = changes.filter((e) => e.detail.origin === "remote");
  check(remote.length > 0 && remote.every((e) => Array.isArray(e.detail.ops))
    && remote.some((e) => e.detail.ops.some((op) => op.kind === "m" && op.path.join() === "items,0")),
    `remote change events carry the ops: ${JSON.stringify(remote)}`);
  check((await call(b, "add", ["count"], 1)).value === null, "the second element adds one");
  await until(async () => {
    const v = (await call(a, "getValue")).value;
    return v.count === 43 || v;
  }, "the first element sees the second one's add");
  const frame = a.page.frames().find((f) => f.url().startsWith(`${RELAY}embed/`) && f.url().includes(JSON_LINK.split("#")[1]));
  const shown = await frame.evaluate(() => ({ text: document.getElementById("pad").value, ro: document.getElementById("pad").readOnly,
    badge: document.getElementById("readonly").textContent }));
  check(shown.ro && JSON.parse(shown.text).count === 43 && shown.text.includes('\n  "count": 43,') && shown.badge.includes("JSON"),
    `the frame shows formatted JSON, read-only: ${JSON.stringify(shown)}`);
  const textSide = await a.page.evaluate(() =>
    document.querySelector("blindpad-pad").getValue().then(() => "accepted", (e) => e.message));
  check(textSide.includes("text pad"), `getValue on a text pad is refused: ${textSide}`);
  await a.page.context().close();
  await b.page.context().close();
  return { detail: `8 edits by path, refusals: ${lines.join(" | ")}; the second element saw ${remote.length} remote changes` };
}

async function blocked() {
  const { page, log } = await open(HOST_BAD);
  const headers = [];
  page.on("response", (r) => r.url().startsWith(`${RELAY}embed/?`) && headers.push(r.headers()["content-security-policy"]));
  await page.reload();
  await until(() => log.some((line) => line.includes("frame-ancestors")) || log.slice(-3), "a frame-ancestors violation", BOOT_MS);
  const state = await page.evaluate(() =>
    Promise.race([document.querySelector("blindpad-pad").ready.then(() => "ready", (e) => `rejected: ${e.message}`),
      new Promise((r) => setTimeout(() => r("pending"), 0))]));
  check(state === "pending", `ready never resolves on a host that is not listed: ${state}`);
  const csp = headers.at(-1) || "";
  check(csp.includes(`frame-ancestors ${HOST_OK.replace(/\/$/, "")}`) && !csp.includes(HOST_BAD.replace(/\/$/, "")),
    `the CSP names the listed origin only: ${csp}`);
  const violation = log.find((line) => line.includes("frame-ancestors"));
  return { detail: `refused: ${violation.slice(0, 160)}` };
}

const SCENARIOS = { api, page, readonly, json: jsonPad, blocked };
for (const [name, run] of Object.entries(SCENARIOS)) {
  const started = Date.now();
  let result;
  try {
    result = { scenario: name, ok: true, ...(await run()) };
  } catch (err) {
    const tail = name === "api" && world.hostLog ? `\nconsole: ${world.hostLog.slice(-10).join("\n")}` : "";
    result = { scenario: name, ok: false, detail: String(err && err.stack ? err.stack : err).slice(0, 2000) + tail };
  }
  result.seconds = (Date.now() - started) / 1000;
  console.log(JSON.stringify(result));
}
await browser.close();
