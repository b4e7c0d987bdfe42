// Run every golden vector (tests/vectors/*.jsonl) under Pyodide in Node.
//
// This is the Pyodide gate of `scripts/test`. It uses only what `scripts/setup`
// installed: Pyodide from node_modules (never the CDN; no package is fetched)
// and libsodium-wrappers, exposed as `globalThis.sodium` for crypto's
// emscripten backend. Our `client`, `crypto` and `wire` packages arrive as the same
// deterministic wheel the relay serves to browsers (`python -m relay.edge.wheel`),
// unpacked into site-packages. Then tests/vectors/runner.py runs inside
// Pyodide. Exit status 0 only if every vector passed.
//
// Then, second phase, the core unit tests run inside Pyodide too: pytest and
// Hypothesis come as pure wheels that `scripts/setup` fetched into
// .cache/pyodide-wheels (tests/pyodide/requirements.txt), and CORE_TESTS below
// are copied into Pyodide's file system with what they import.
//
// Usage: node tests/pyodide/run.mjs
// Environment: BLINDPAD_PYODIDE_TIMEOUT_S (default 3600; 0 = no limit) is a
// last-resort hang guard on loading and on each phase, many times the slowest
// run seen (the core tests took 316 s on a loaded 2-core machine): a slow
// machine must never fail for being slow. BLINDPAD_VECTORS_DIR replaces tests/vectors (to test this
// script); BLINDPAD_PYODIDE_SIM_SEEDS (default 30) sizes the simulator run.

import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const VECTORS = resolve(process.env.BLINDPAD_VECTORS_DIR ?? join(ROOT, "tests", "vectors"));
const TIMEOUT_S = Number(process.env.BLINDPAD_PYODIDE_TIMEOUT_S ?? 3600);
const WHEELS = join(ROOT, ".cache", "pyodide-wheels");
// The pure core and its laws; tests that need sockets, processes or the relay
// package stay CPython-only.
const CORE_TESTS = [
  "core/test_textops.py",
  "core/test_rope.py",
  "core/test_doctype.py",
  "core/test_jsondoc.py",
  "core/test_engine.py",
  "core/test_recovery.py",
  "core/test_rebase.py",
  "core/test_sim.py",
  "core/test_vectors.py",
  "core/test_mmr.py",
  "core/test_integrity.py",
  "core/test_descent_proof.py",
  "core/test_high_water.py",
  "crypto/test_crypto_envelope.py",
  "crypto/test_crypto_links.py",
  "wire/test_wire.py",
  "wire/test_turns.py",
];
const SUPPORT = ["conftest.py", "sim.py", "jsongen.py"];
const PYTEST_INI = `[pytest]
addopts = -q -p no:cacheprovider --strict-markers
filterwarnings = error
markers = slow: longer end-to-end tests
`;

function python() {
  const venv = join(ROOT, ".venv", "bin", "python");
  return existsSync(venv) ? venv : "python3";
}

function buildWheel() {
  const out = mkdtempSync(join(tmpdir(), "blindpad-wheel-"));
  try {
    const path = execFileSync(python(), ["-m", "relay.edge.wheel", out], { cwd: ROOT, encoding: "utf8" })
      .trim();
    return { name: path.split("/").pop(), bytes: new Uint8Array(readFileSync(path)) };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** `promise`, or a rejection naming `what` if it hangs past the guard. */
function withTimeout(promise, what) {
  if (!(TIMEOUT_S > 0)) return promise;
  let timer;
  const started = performance.now();
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const spent = ((performance.now() - started) / 1000).toFixed(0);
      reject(
        new Error(
          `${what} hung: no result after ${spent} s (hang guard ${TIMEOUT_S} s; ` +
            "set BLINDPAD_PYODIDE_TIMEOUT_S to change it, 0 for none)",
        ),
      );
    }, TIMEOUT_S * 1000);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

async function loadRuntime() {
  const sodium = (await import("libsodium-wrappers")).default;
  await sodium.ready;
  globalThis.sodium = sodium;
  const { loadPyodide } = await import("pyodide");
  const indexURL = join(ROOT, "node_modules", "pyodide") + "/";
  // No `packages`: nothing is fetched. Python's stdout and stderr go to ours,
  // byte for byte (pytest's progress dots share a line).
  const py = await loadPyodide({ indexURL });
  const raw = (stream) => ({
    write: (bytes) => {
      stream.write(bytes);
      return bytes.length;
    },
  });
  py.setStdout(raw(process.stdout));
  py.setStderr(raw(process.stderr));
  return py;
}

function installProject(py, wheel) {
  const site = py.runPython("import site; site.getsitepackages()[0]");
  py.unpackArchive(wheel.bytes, "wheel", { extractDir: site });
  py.FS.mkdirTree("/vectors");
  for (const name of readdirSync(VECTORS)) {
    if (name.endsWith(".jsonl") || name.endsWith(".py")) {
      py.FS.writeFile(`/vectors/${name}`, new Uint8Array(readFileSync(join(VECTORS, name))));
    }
  }
}

function copyTree(py, from, to) {
  py.FS.mkdirTree(to);
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    if (entry.name === "__pycache__") continue;
    if (entry.isDirectory()) {
      copyTree(py, join(from, entry.name), `${to}/${entry.name}`);
    } else if (/\.(py|jsonl)$/.test(entry.name)) {
      py.FS.writeFile(`${to}/${entry.name}`, new Uint8Array(readFileSync(join(from, entry.name))));
    }
  }
}

function installCoreTests(py) {
  if (!existsSync(WHEELS)) {
    throw new Error(`${WHEELS} is missing: run scripts/setup (it fetches pytest for Pyodide)`);
  }
  const site = py.runPython("import site; site.getsitepackages()[0]");
  for (const name of readdirSync(WHEELS).filter((n) => n.endsWith(".whl"))) {
    py.unpackArchive(new Uint8Array(readFileSync(join(WHEELS, name))), "wheel", { extractDir: site });
  }
  const tests = join(ROOT, "tests");
  py.FS.mkdirTree("/project/tests");
  for (const name of [...SUPPORT, ...CORE_TESTS]) {
    py.FS.mkdirTree(dirname(`/project/tests/${name}`));
    py.FS.writeFile(`/project/tests/${name}`, new Uint8Array(readFileSync(join(tests, name))));
  }
  copyTree(py, join(tests, "vectors"), "/project/tests/vectors");
  py.FS.writeFile("/project/pytest.ini", PYTEST_INI);
}

const RUN_CORE_TESTS = `
import os, sys
os.chdir("/project")
os.environ["BLINDPAD_SIM_SEEDS"] = "${Number(process.env.BLINDPAD_PYODIDE_SIM_SEEDS ?? 30)}"
sys.path.insert(0, "/project/tests")
import pytest
int(pytest.main(["-c", "/project/pytest.ini", "tests"]))
`;

const RUN_VECTORS = `
import json, sys
sys.path.insert(0, "/vectors")
import runner
from pathlib import Path
import crypto.backend
backend = crypto.backend.get_backend().name
try:
    counts = runner.run(Path("/vectors"))
    result = {"ok": True, "counts": counts, "backend": backend}
except AssertionError as failure:
    result = {"ok": False, "message": str(failure), "backend": backend}
json.dumps(result)
`;

async function main() {
  const started = performance.now();
  if (!existsSync(join(VECTORS, "runner.py"))) {
    throw new Error("tests/vectors/runner.py is missing: nothing to run the vectors with");
  }
  const wheel = buildWheel();
  const py = await withTimeout(loadRuntime(), "loading Pyodide");
  installProject(py, wheel);
  const raw = await withTimeout(py.runPythonAsync(RUN_VECTORS), "running the vectors");
  const result = JSON.parse(raw);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (!result.ok) {
    console.error(`pyodide: vectors FAILED (backend ${result.backend}, ${seconds} s)\n${result.message}`);
    return 1;
  }
  const counts = Object.entries(result.counts).sort(([a], [b]) => a.localeCompare(b));
  const total = counts.reduce((sum, [, n]) => sum + n, 0);
  const detail = counts.map(([prefix, n]) => `${prefix} ${n}`).join(", ");
  if (total === 0) {
    console.error("pyodide: no vectors found");
    return 1;
  }
  console.log(
    `pyodide: ${total} vectors passed (${detail}) with ${wheel.name}, ` +
      `backend ${result.backend}, in ${seconds} s`,
  );
  installCoreTests(py);
  const testsStarted = performance.now();
  const code = await withTimeout(py.runPythonAsync(RUN_CORE_TESTS), "running the core tests");
  const testSeconds = ((performance.now() - testsStarted) / 1000).toFixed(1);
  if (code !== 0) {
    console.error(`pyodide: core unit tests FAILED (pytest exit ${code}, ${testSeconds} s)`);
    return 1;
  }
  console.log(`pyodide: core unit tests passed under Python 3.14 (${testSeconds} s)`);
  return 0;
}

try {
  process.exitCode = await main();
} catch (error) {
  // An uncaught Pyodide error would print the whole 1.25 MB minified glue line.
  const message = error instanceof Error ? error.message : String(error);
  console.error(`pyodide: FAILED: ${message.length > 4000 ? message.slice(-4000) : message}`);
  process.exitCode = 1;
}
// Pyodide keeps handles open; leave as soon as the result is known.
process.exit(process.exitCode);
