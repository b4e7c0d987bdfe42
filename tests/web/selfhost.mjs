// The page of an installed relay in Debian's Chromium, driven by playwright-core.
//
// Usage: node tests/web/selfhost.mjs RELAY_URL [TOKEN_RELAY_URL TOKEN]
// Prints one JSON line per scenario: {"scenario", "ok", "detail", ...};
// tests/web/test_selfhost.py asserts on them. Waits are on the page's status
// element, never on sleeps.
//   saved  create a pad on RELAY_URL, type, see "saved"; reports the edit link
//   gzip   the largest asset the page loaded came gzip-encoded
//   token  on TOKEN_RELAY_URL (started with --create-token TOKEN): without the
//          token the landing page asks for it and a wrong one is refused with
//          one line; with it the pad is created and saved

import { chromium } from "playwright-core";

const [, , RELAY, TOKEN_RELAY, TOKEN] = process.argv;
const BOOT_MS = Number(process.env.BLINDPAD_BOOT_TIMEOUT_MS ?? 180_000);
const WAIT_MS = Number(process.env.BLINDPAD_WAIT_TIMEOUT_MS ?? 30_000);

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
    await new Promise((r) => setTimeout(r, 40));
  }
}

const state = (page) => page.$eval("#status", (e) => e.dataset.state).catch(() => "navigating");
async function waitState(page, want, timeout = WAIT_MS) {
  await until(async () => {
    const got = await state(page);
    return got === want || got;
  }, `status ${want}`, timeout);
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

const world = { responses: [] };

async function saved() {
  const context = await browser.newContext();
  context.on("response", (r) => world.responses.push(r));
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && console.error("console:", m.text()));
  await page.goto(`${RELAY}p/#new`);
  await waitState(page, "saved", BOOT_MS);
  await page.focus("#pad");
  await page.keyboard.type("typed on an installed relay");
  await waitState(page, "saved");
  const links = await page.evaluate(() => window.blindpad.links());
  check(links.edit.includes("#"), `an edit link: ${JSON.stringify(links)}`);
  world.page = page;
  return { detail: "created a pad, typed, saw saved", edit: links.edit };
}

async function gzip() {
  let largest = null;
  for (const r of world.responses) {
    if (!new URL(r.url()).pathname.startsWith("/assets/") || r.status() !== 200) continue;
    const size = (await r.body()).length;
    if (!largest || size > largest.size) largest = { r, size };
  }
  check(largest, "the page loaded no asset");
  const headers = await largest.r.allHeaders();
  const asked = (await largest.r.request().allHeaders())["accept-encoding"] ?? "";
  const sent = (await largest.r.request().sizes()).responseBodySize;
  const name = new URL(largest.r.url()).pathname.split("/").pop();
  check(asked.includes("gzip"), `the browser asked for ${asked}`);
  check(headers["content-encoding"] === "gzip", `${name} came with content-encoding ${headers["content-encoding"]}`);
  check(headers.vary === "Accept-Encoding", `vary: ${headers.vary}`);
  return { detail: `${name}: ${largest.size} bytes decoded, ${sent} bytes on the wire (gzip)`, name, decoded: largest.size, wire: sent };
}

async function token() {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && console.error("console:", m.text()));
  await page.goto(`${TOKEN_RELAY}p/#new`);
  await waitState(page, "token");
  check(await page.$eval("#token-card", (e) => !e.hidden), "the token card is shown");
  await page.fill("#token", "a wrong guess");
  await page.click("#token-submit");
  await waitState(page, "error", BOOT_MS);
  const refused = await page.$eval("#message", (e) => e.textContent);
  check(refused.includes("CREATE_TOKEN_REQUIRED") && refused.includes("did not accept"), `refusal: ${refused}`);
  const kept = await page.evaluate(() => sessionStorage.getItem("blindpad.createToken"));
  check(kept === null, `the refused token is forgotten: ${kept}`);
  // Again from the landing page's button, with the right token this time.
  await page.goto(TOKEN_RELAY);
  await page.click("#new-pad");
  await waitState(page, "token");
  await page.fill("#token", TOKEN);
  await page.click("#token-submit");
  await waitState(page, "saved", BOOT_MS);
  await page.focus("#pad");
  await page.keyboard.type("created with the token");
  await waitState(page, "saved");
  const links = await page.evaluate(() => window.blindpad.links());
  return { detail: `a wrong token was refused (${refused.length} chars, one line); the right one created the pad`, refused, edit: links.edit };
}

const SCENARIOS = { saved, gzip, token };
for (const [name, run] of Object.entries(SCENARIOS)) {
  if (name === "token" && !TOKEN_RELAY) continue;
  const started = Date.now();
  let result;
  try {
    result = { scenario: name, ok: true, ...(await run()) };
  } catch (err) {
    result = { scenario: name, ok: false, detail: String(err && err.stack ? err.stack : err).slice(0, 2000) };
  }
  result.seconds = (Date.now() - started) / 1000;
  console.log(JSON.stringify(result));
}
await browser.close();
