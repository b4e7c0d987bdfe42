// The page against a real relay made to lie (its SQLite file swapped for an
// older copy): driven step by step by tests/web/test_web_trust.py.
//
// Usage: node tests/web/trust.mjs
// Reads one JSON command a line on stdin, answers one JSON line on stdout:
// {"ok": true, ...what the page showed} or {"ok": false, "error": "..."}.
// Commands (one browser profile at a time, one page in it):
//   {"cmd": "launch", "profile": DIR}  a persistent Chromium profile (localStorage survives)
//   {"cmd": "open", "url": LINK}       open the pad's link in the profile's page
//   {"cmd": "saved", "text": T}        until the status is "saved" and the text is T
//   {"cmd": "type", "text": T}         type T at the end, one letter at a time, each saved
//   {"cmd": "mark"}                    from now on, every status shown is kept for "alarm"
//   {"cmd": "alarm"}                   until the alarm banner shows, then a few more ticks
//   {"cmd": "look"}                    what the page shows now
//   {"cmd": "shot", "path": PNG}       a screenshot of the page
//   {"cmd": "close"}                   close the profile (the browser)
//   {"cmd": "cached"}                  until the service worker controls the page and
//                                      IndexedDB holds the pad's log and local copy at its head
//   {"cmd": "reload"}                  reload the page (from the service worker's cache
//                                      when the relay is down) and wait for it to boot
//   {"cmd": "offline", "text": T}      until the pad is open from its local copy, "offline",
//                                      showing T
//   {"cmd": "append", "text": T}       type T at the end, one letter at a time, each taken
//                                      by the client (not waiting for the relay)
//   {"cmd": "upgraded", "from": B, "text": T}
//                                      until the page has reloaded itself into a build
//                                      other than B (its stylesheet's hashed URL) and is
//                                      saved with T; also how many loads the page made
//   {"cmd": "tab", "url": LINK}        open LINK in a new tab of the profile (then the page
//                                      commands act on it) and wait for it to boot
//   {"cmd": "use", "index": N}         the page commands act on tab N from now on
//   {"cmd": "snapshotted"}             until the page kept its start-up snapshot
//   {"cmd": "peek"}                    the kept snapshot: its size and which of this page's
//                                      secrets (the link's fragment, the text, every
//                                      blindpad.* value in localStorage and its JSON
//                                      strings) it holds
//   {"cmd": "spoil"}                   replace the kept snapshot by bytes that are none
//   {"cmd": "console"}                 the console lines of this tab that start "blindpad:"
// Waits poll the page's own state, never a fixed sleep, with a hang guard only
// (BLINDPAD_BOOT_TIMEOUT_MS, default 20 min for a page to boot;
// BLINDPAD_WAIT_TIMEOUT_MS, default 5 min for anything else) that says what hung.

import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const BOOT_MS = Number(process.env.BLINDPAD_BOOT_TIMEOUT_MS ?? 1_200_000);
const WAIT_MS = Number(process.env.BLINDPAD_WAIT_TIMEOUT_MS ?? 300_000);
const TICKS_AFTER_ALARM = 5; // status redraws watched once the banner shows (the page redraws every second)

let context = null;
let page = null;
let tabs = [];
const consoleLines = new Map(); // page -> its "blindpad: ..." console lines

// Installed in every page: every status the page shows, in order, and when the banner came.
function recordStatuses() {
  const loads = Number(sessionStorage.getItem("__trust.loads") || 0) + 1; // this tab's page loads
  sessionStorage.setItem("__trust.loads", String(loads));
  window.__trust = { statuses: [], mark: 0, alarmAt: null, loads };
  const start = () => {
    const status = document.getElementById("status");
    if (!status) return void setTimeout(start, 20);
    const note = () => {
      window.__trust.statuses.push([status.dataset.state, status.textContent]);
      if (window.__trust.alarmAt === null && document.getElementById("alarm")) {
        window.__trust.alarmAt = window.__trust.statuses.length;
      }
    };
    new MutationObserver(note).observe(status, { childList: true, characterData: true, subtree: true, attributes: true });
    note();
  };
  start();
}

function watchConsole(p) {
  consoleLines.set(p, []);
  p.on("console", (m) => {
    if (["error", "warning"].includes(m.type())) console.error("console:", m.text());
    if (m.text().startsWith("blindpad:")) consoleLines.get(p).push(m.text());
  });
}

async function booted(what) {
  await until(async () => {
    const ready = await page.evaluate(() => !!(window.blindpad && window.blindpad.debug())).catch(() => false);
    return ready || "not booted";
  }, what, BOOT_MS);
}

/** Poll until `probe()` is true (the page's own state, never a fixed sleep). */
async function until(probe, what, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last === true) return;
    if (Date.now() > deadline) throw new Error(`hung: no ${what} after ${timeout} ms (hang guard; last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** What the page shows. */
function look() {
  return page.evaluate(() => {
    const $ = (id) => document.getElementById(id);
    const banner = $("alarm");
    const rect = banner ? banner.getBoundingClientRect() : null;
    return {
      text: $("pad").value,
      client: window.blindpad.text(),
      state: $("status").dataset.state,
      status: $("status").textContent,
      message: $("message").hidden ? "" : $("message").textContent,
      build: document.querySelector("link[rel=stylesheet]").getAttribute("href"), // content-hashed
      banner: banner
        ? {
            kind: banner.dataset.kind,
            kinds: banner.dataset.kinds,
            role: banner.getAttribute("role"),
            text: banner.innerText,
            visible: rect.width > 0 && rect.height > 0 && rect.top >= 0 && rect.top < window.innerHeight / 2,
          }
        : null,
      debug: window.blindpad.debug(),
      boot: document.documentElement.dataset.boot ?? null,
      snapshot: document.documentElement.dataset.snapshot ?? null,
      stored: Object.fromEntries(
        Object.keys(localStorage).filter((k) => k.startsWith("blindpad.head.")).map((k) => [k, JSON.parse(localStorage.getItem(k))]),
      ),
    };
  });
}

async function saved(text, timeout = WAIT_MS) {
  await until(async () => {
    const seen = await look().catch((e) => ({ navigating: String(e) }));
    return (seen.state === "saved" && seen.text === text && seen.client === text) || seen;
  }, `status saved with the text ${JSON.stringify(text)}`, timeout);
}

const COMMANDS = {
  async launch({ profile }) {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.BLINDPAD_CHROMIUM ?? "/usr/bin/chromium",
      headless: true,
      viewport: { width: 820, height: 560 },
      args: [
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
      ],
    });
    context.on("weberror", (e) => console.error("page error:", e.error().message));
    await context.addInitScript(recordStatuses);
    return {};
  },
  async open({ url }) {
    page = context.pages()[0] ?? (await context.newPage());
    watchConsole(page);
    tabs = [page];
    await page.goto(url);
    await booted("page boot (Pyodide and the client)");
    return {};
  },
  async tab({ url }) {
    page = await context.newPage();
    watchConsole(page);
    tabs.push(page);
    await page.goto(url);
    await booted(`boot of tab ${tabs.length - 1}`);
    return {};
  },
  async use({ index }) {
    page = tabs[index];
    return {};
  },
  async snapshotted() {
    await until(async () => {
      const state = await page.evaluate(() => document.documentElement.dataset.snapshot ?? "not yet");
      if (state === "failed" || state === "off") throw new Error(`no start-up snapshot: ${state}`);
      return state === "stored" || state;
    }, "start-up snapshot kept (<html data-snapshot>)");
    return look();
  },
  async peek() {
    return page.evaluate(async () => {
      const cache = await caches.open(document.body.dataset.build);
      const kept = await cache.match(`${location.origin}/startup-snapshot.bin`);
      if (!kept) return { size: null, holds: [] };
      const bytes = new Uint8Array(await kept.arrayBuffer());
      const secrets = { fragment: location.hash.slice(1), text: document.getElementById("pad").value };
      for (const key of Object.keys(localStorage).filter((k) => k.startsWith("blindpad."))) {
        secrets[key] = localStorage.getItem(key);
      }
      // Each secret, and each of its JSON string values but a "format" tag (a
      // constant of the code), as UTF-8 (how CPython holds a str).
      const needles = [];
      for (const [name, value] of Object.entries(secrets)) {
        needles.push([name, value]);
        try {
          const parsed = JSON.parse(value);
          if (parsed && typeof parsed === "object") {
            for (const [k, v] of Object.entries(parsed)) {
              if (typeof v === "string" && v.length >= 8 && k !== "format") needles.push([`${name}.${k}`, v]);
            }
          }
        } catch {
          // not JSON: the value itself is the needle
        }
      }
      // Byte for byte, both sides read as one-byte characters (a native search).
      const latin = new TextDecoder("latin1");
      const hay = latin.decode(bytes);
      const enc = new TextEncoder();
      const holds = needles
        .filter(([, value]) => value.length >= 8 && hay.includes(latin.decode(enc.encode(value))))
        .map(([name]) => name);
      return { size: bytes.length, searched: needles.map(([name]) => name), holds };
    });
  },
  async spoil() {
    await page.evaluate(async () => {
      const cache = await caches.open(document.body.dataset.build);
      const junk = new Uint8Array(1 << 20).fill(7);
      await cache.put(`${location.origin}/startup-snapshot.bin`, new Response(junk));
    });
    return {};
  },
  async console() {
    return { lines: consoleLines.get(page) ?? [] };
  },
  async saved({ text }) {
    await saved(text, BOOT_MS);
    return look();
  },
  async type({ text }) {
    for (const letter of text) {
      const before = await page.$eval("#pad", (t) => t.value);
      await page.focus("#pad");
      await page.$eval("#pad", (t) => t.setSelectionRange(t.value.length, t.value.length));
      await page.keyboard.type(letter);
      await saved(before + letter);
    }
    return look();
  },
  async mark() {
    await page.evaluate(() => (window.__trust.mark = window.__trust.statuses.length));
    return {};
  },
  async alarm() {
    await until(async () => {
      const seen = await look().catch((e) => ({ navigating: String(e) }));
      return !!seen.banner || seen;
    }, "alarm banner (#alarm)");
    const at = await page.evaluate(() => window.__trust.statuses.length);
    await until(async () => {
      const n = await page.evaluate(() => window.__trust.statuses.length);
      return n >= at + TICKS_AFTER_ALARM || `${n - at} status redraws since the banner`;
    }, `${TICKS_AFTER_ALARM} status redraws after the banner showed`);
    const trace = await page.evaluate(() => window.__trust);
    return {
      ...(await look()),
      statuses: trace.statuses.slice(trace.mark).map(([state]) => state),
      statusesAfterAlarm: trace.statuses.slice(trace.alarmAt ?? trace.statuses.length).map(([state, text]) => `${state}: ${text}`),
    };
  },
  look,
  async cached() {
    await until(async () => {
      const seen = await page.evaluate(async () => {
        const info = window.blindpad.offline();
        const records = info.channel ? await window.blindpad.records(info.channel) : {};
        const copy = typeof records.copy === "string" ? JSON.parse(records.copy) : "";
        const header = copy ? JSON.parse(copy.split("\n")[1]) : null;
        const names = await caches.keys();
        return { ...info, names, height: window.blindpad.debug().height, copyHeight: header && header.height, log: !!records.log };
      });
      const done = seen.worker && !seen.writing && seen.log && seen.copyHeight === seen.height && seen.names.length === 1;
      return done || seen;
    }, "the service worker in control, one cache, and the pad's log and copy in IndexedDB");
    return { ...(await look()), offline: await page.evaluate(() => window.blindpad.offline()) };
  },
  async reload() {
    await page.reload();
    await until(async () => {
      const ready = await page.evaluate(() => !!(window.blindpad && window.blindpad.debug())).catch(() => false);
      return ready || "not booted";
    }, "page boot after a reload (Pyodide and the client)", BOOT_MS);
    return {};
  },
  async offline({ text }) {
    await until(async () => {
      const seen = await look().catch((e) => ({ navigating: String(e) }));
      const writable = await page.$eval("#pad", (t) => !t.readOnly).catch(() => false);
      return (seen.state === "offline" && seen.text === text && seen.client === text && writable) || { ...seen, writable };
    }, `status offline, editable, with the text ${JSON.stringify(text)}`, BOOT_MS);
    return { ...(await look()), offline: await page.evaluate(() => window.blindpad.offline()) };
  },
  async upgraded({ from, text }) {
    await until(async () => {
      const seen = await look().catch((e) => ({ navigating: String(e) }));
      return (seen.build && seen.build !== from && seen.state === "saved" && seen.text === text) || seen;
    }, `the page reloaded into a build other than ${from}, saved with ${JSON.stringify(text)}`, BOOT_MS);
    return { ...(await look()), loads: await page.evaluate(() => window.__trust.loads) };
  },
  async append({ text }) {
    for (const letter of text) {
      const before = await page.evaluate(() => window.blindpad.text());
      await page.focus("#pad");
      await page.$eval("#pad", (t) => t.setSelectionRange(t.value.length, t.value.length));
      await page.keyboard.type(letter);
      await until(async () => {
        const now = await page.evaluate(() => window.blindpad.text());
        return now === before + letter || now;
      }, `the client to take ${JSON.stringify(letter)}`);
    }
    return look();
  },
  async shot({ path }) {
    await page.screenshot({ path });
    return {};
  },
  async close() {
    await context.close();
    context = page = null;
    tabs = [];
    return {};
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  let answer;
  try {
    answer = { ok: true, ...(await COMMANDS[command.cmd](command)) };
  } catch (err) {
    let seen = null;
    try {
      seen = page ? await look() : null;
    } catch {
      // the page is gone
    }
    answer = { ok: false, error: String(err && err.stack ? err.stack : err).slice(0, 2000), seen };
  }
  console.log(JSON.stringify(answer));
}
if (context) await context.close();
