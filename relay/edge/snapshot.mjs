// The page's start-up snapshot, made when the relay builds its web bundle
// (relay/edge/snapshot.py runs this in Node; see there for why and when).
//
// Usage: node snapshot.mjs PYODIDE_DIR WHEEL IMPORTS OUT
// Boots Pyodide (PYODIDE_DIR: node_modules/pyodide) for a snapshot, unpacks our
// wheel into site-packages, imports IMPORTS (comma-separated modules) and
// writes Pyodide's memory snapshot to OUT. Nothing of any pad exists here:
// only the standard library and our modules, imported.

import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [, , pyodideDir, wheel, imports, out] = process.argv;
const { loadPyodide } = await import(pathToFileURL(`${pyodideDir}/pyodide.mjs`).href);
const py = await loadPyodide({
  _makeSnapshot: true,
  indexURL: `${pyodideDir}/`,
  stdout: () => {},
  stderr: (line) => console.error(line),
});
// Where the page's loadPackage puts it: the same paths in tracebacks.
const site = py.runPython("import sysconfig; sysconfig.get_paths()['purelib']");
py.unpackArchive(new Uint8Array(readFileSync(wheel)), "wheel", { extractDir: site });
py.runPython(`import ${imports.split(",").join(", ")}`);
writeFileSync(out, py.makeMemorySnapshot());
