// Scenario 7 of bench/: the web page in Debian's Chromium (playwright-core).
//
// Usage: node bench/browser.mjs RELAY_URL RUNS KEYSTROKES
// Per run, in a fresh browser context (cold cache): page A creates a pad
// (navigation to status "saved" = boot time), page B opens its edit link;
// then A types KEYSTROKES characters one at a time and, for each, we time
// from the key press to the character showing in B's textarea (keystroke to
// remote display, through Pyodide, libsodium, the relay and back) twice:
// from outside (node's clock around the CDP key press and a poll of B on its
// animation frames: adds the CDP round trips and up to a frame of polling)
// and from inside the pages (A's beforeinput listener and the moment B's page
// writes the textarea, both on the shared wall clock `performance.timeOrigin
// + performance.now()`; B writes it in an animation frame, so it is painted
// in that frame); keystrokes come 50-99 ms apart, then a
// new tab in B's context opens the link again (warm cache: once B kept its
// start-up snapshot, <html data-snapshot>, so the new tab restores Python from
// it, or from the relay's when it serves one; <html data-boot> says which
// path each boot took: "cold", "served" (the relay's snapshot) or "snapshot"). The page's own counters give
// the longest main-thread block spent in Python per frame; its performance
// marks (blindpad:*, ms after navigation) say where a boot's time went.
// Prints one JSON line per run.

import { chromium } from "playwright-core";

const [, , RELAY, RUNS = "1", KEYS = "20"] = process.argv;
const BOOT_MS = 180_000;

const browser = await chromium.launch({
  executablePath: process.env.BLINDPAD_CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
  ],
});

async function boot(context, url) {
  const page = await context.newPage();
  const started = performance.now();
  await page.goto(url);
  await page.waitForFunction(
    () => document.querySelector("#status")?.dataset.state === "saved",
    null,
    { timeout: BOOT_MS, polling: 20 },
  );
  const marks = await page.evaluate(() =>
    Object.fromEntries(
      performance.getEntriesByType("mark")
        .filter((m) => m.name.startsWith("blindpad:"))
        .map((m) => [m.name.slice(9), Math.round(m.startTime)]),
    ),
  );
  const path = await page.evaluate(() => document.documentElement.dataset.boot || "cold");
  return { page, ms: performance.now() - started, marks, path };
}

/** Page A: the wall-clock time of each key's `beforeinput` in its textarea (the
 * first event a typed character raises: CDP types these characters as text, no keydown). */
function timeKeys() {
  window.__keyAt = null;
  document.querySelector("#pad").addEventListener(
    "beforeinput", () => (window.__keyAt = performance.timeOrigin + performance.now()), true,
  );
}

/** Page B: the wall-clock time the page first writes a textarea value holding `window.__want`. */
function timeShown() {
  const ta = document.querySelector("#pad");
  const proto = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, "value");
  window.__want = null;
  window.__shownAt = null;
  Object.defineProperty(ta, "value", {
    configurable: true,
    get() {
      return proto.get.call(this);
    },
    set(v) {
      proto.set.call(this, v);
      if (window.__want !== null && v.includes(window.__want)) {
        window.__shownAt = performance.timeOrigin + performance.now();
        window.__want = null;
      }
    },
  });
}

try {
  for (let run = 0; run < Number(RUNS); run++) {
    const ctxA = await browser.newContext();
    const ctxB = await browser.newContext();
    const a = await boot(ctxA, new URL("/p/#new", RELAY).href);
    const link = await a.page.evaluate(() => window.blindpad.links().edit);
    const b = await boot(ctxB, link);
    await a.page.focus("#pad");
    await a.page.evaluate(timeKeys);
    await b.page.evaluate(timeShown);
    const latencies = [];
    const inPage = [];
    for (let i = 0; i < Number(KEYS); i++) {
      const char = String.fromCharCode(0x4e00 + run * 1000 + i); // unique per keystroke
      await b.page.evaluate((c) => (window.__want = c), char);
      const t0 = performance.now();
      await a.page.keyboard.type(char);
      await b.page.waitForFunction(
        (c) => document.querySelector("#pad").value.includes(c),
        char,
        { timeout: 30_000, polling: "raf" },
      );
      latencies.push(performance.now() - t0);
      const keyAt = await a.page.evaluate(() => window.__keyAt);
      const shownAt = await b.page.evaluate(() => window.__shownAt);
      inPage.push(shownAt - keyAt);
      await new Promise((r) => setTimeout(r, 50 + ((i * 37) % 50))); // a typist's pause, not locked to frames
    }
    const stats = await a.page.evaluate(() => window.blindpad.stats());
    const statsB = await b.page.evaluate(() => window.blindpad.stats());
    const same = (await a.page.$eval("#pad", (t) => t.value)) ===
      (await b.page.$eval("#pad", (t) => t.value));
    // B's start-up snapshot kept (a page without one says nothing: waits for nothing).
    await b.page.waitForFunction(
      () => !document.documentElement.dataset.boot || !!document.documentElement.dataset.snapshot,
      null,
      { timeout: BOOT_MS, polling: 50 },
    );
    // A second visit in B's context (its HTTP cache warm): a new tab on the link.
    const c = await boot(ctxB, link);
    const warmPath = c.path;
    await c.page.close();
    console.log(JSON.stringify({
      run, boot_ms: a.ms, boot_b_ms: b.ms, boot_warm_ms: c.ms, warm_path: warmPath, paths: [a.path, b.path], latencies, in_page: inPage,
      marks: { a: a.marks, b: b.marks, warm: c.marks }, converged: same,
      worst_frame_ms: Math.max(stats.worst, statsB.worst),
    }));
    await ctxA.close();
    await ctxB.close();
  }
} finally {
  await browser.close();
}
