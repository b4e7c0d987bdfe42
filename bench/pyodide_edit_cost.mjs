// Per-edit cost under Pyodide (issue 20: "the same ratio reported under Pyodide").
//
// Usage: node bench/pyodide_edit_cost.mjs WHEEL [EDITS]
// Boots Pyodide in Node with libsodium-wrappers as the crypto backend (as the
// page does), installs our wheel and bench/'s pure-Python modules, and runs
// bench/s_edit_cost.py's `one_size` at 10 KB and 10 MB: the engine with real
// crypto, no network. Prints one JSON line per size.

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const [, , WHEEL, EDITS = "256"] = process.argv;

const sodium = (await import("libsodium-wrappers")).default;
await sodium.ready;
globalThis.sodium = sodium;
const { loadPyodide } = await import("pyodide");
const py = await loadPyodide({ indexURL: join(ROOT, "node_modules", "pyodide") + "/" });
const site = py.runPython("import site; site.getsitepackages()[0]");
py.unpackArchive(new Uint8Array(readFileSync(WHEEL)), "wheel", { extractDir: site });
py.FS.mkdirTree(`${site}/bench`);
for (const name of readdirSync(join(ROOT, "bench"))) {
  if (name.endsWith(".py")) py.FS.writeFile(`${site}/bench/${name}`, readFileSync(join(ROOT, "bench", name)));
}
for (const size of [10_000, 10_000_000]) {
  const out = py.runPython(`
import json
from bench.s_edit_cost import one_size
r = one_size(${size}, ${Number(EDITS)})
json.dumps({"size": ${size}, "local_us": r["local_us"]["median"], "remote_us": r["remote_us"]["median"],
            "ack_us": r["ack_us"]["median"], "sha256_full_us": r["sha256_full_us"]})
`);
  console.log(out);
}
