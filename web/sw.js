// blindpad's service worker: the page opens without the relay.
//
// Served by the relay at /sw.js (scope: the whole origin), no-cache, with the
// cache's name and the list to precache filled in (relay/edge/web.py). The name
// carries the protocol version and a hash of every asset URL (each URL carries
// its content's hash), so a relay upgrade is a new cache; the old ones are
// deleted on activate (docs/PROTOCOL.md §15.3).
//
// * /assets/... (immutable, content-hashed): cache first; precached on install
//   (the app shell, Pyodide, libsodium, our wheel), so a pad opened once opens
//   again with the relay stopped;
// * the pages (/ and /p/): network first (an upgrade reaches the user at
//   once), the cached copy when the relay cannot be reached;
// * everything else (the websocket, /v1/... reads, /embed/...): the network,
//   untouched.
// It holds no pad content: each pad's text lives in IndexedDB (web/app.js).

const CACHE = "{{cache}}";
const PRECACHE = {{precache}};
const PAGES = ["/", "/p/"];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(PRECACHE))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("blindpad-") && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

async function pageFirst(request, path) {
  try {
    const response = await fetch(request);
    if (response.ok) {
      const cache = await caches.open(CACHE);
      await cache.put(path, response.clone());
    }
    return response;
  } catch (err) {
    const cached = await caches.match(path, { cacheName: CACHE });
    if (cached) return cached;
    throw err;
  }
}

async function assetFirst(request) {
  const cached = await caches.match(request, { cacheName: CACHE });
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) {
    const cache = await caches.open(CACHE);
    await cache.put(request, response.clone());
  }
  return response;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && PAGES.includes(url.pathname)) {
    event.respondWith(pageFirst(request, url.pathname));
  } else if (url.pathname.startsWith("/assets/")) {
    event.respondWith(assetFirst(request));
  }
});
