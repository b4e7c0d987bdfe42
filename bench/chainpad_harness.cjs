// ChainPad 5.3.1 peer: two ChainPad instances and an in-process broadcast
// server in one node process, in real time (our own harness, after the
// description in shared/research/chainpad.md §6 and §8).
//
// Usage: node bench/chainpad_harness.cjs TRACE.json.gz LIMIT MODE TIMEOUT_S
//   MODE "default": ChainPad's default cadence (avgSyncMilliseconds 300,
//        checkpointInterval 50); the typist only calls change().
//   MODE "fast": as fast as it can: sync() after every txn and after every ack
//        (one message in flight is ChainPad's own rule).
// The server appends every message to a log, broadcasts it to the other
// client, then acks the sender; every delivery is asynchronous (setImmediate),
// as a real transport's would be.  Client A types the trace (one change() per
// trace patch, yielding to the event loop after each txn); client B watches
// until getUserDoc() equals the target text.  Prints one JSON line.
const zlib = require("node:zlib");
const fs = require("node:fs");
const ChainPad = require("chainpad");

const [tracePath, limitArg, mode, timeoutArg] = process.argv.slice(2);
const trace = JSON.parse(zlib.gunzipSync(fs.readFileSync(tracePath)).toString("utf8"));
const txns = trace.txns.slice(0, Number(limitArg));
// Positions count code points; the traces have none above U+FFFF, so
// UTF-16 offsets are the same.
let target = "";
for (const txn of txns)
  for (const [pos, del, ins] of txn.patches)
    target = target.slice(0, pos) + ins + target.slice(pos + del);

const fast = mode === "fast";
const config = { logLevel: 0, userName: "a" };
const bytes = { up: 0, down: 0 };
const log = [];
let messages = 0;
let checkpoints = 0;
const clients = [];

function mkClient(name) {
  const pad = ChainPad.create({ ...config, userName: name });
  const client = { pad, name };
  pad.onMessage((msg, cb) => {
    bytes.up += Buffer.byteLength(msg);
    messages += 1;
    if (msg.indexOf('"cp"') !== -1 || msg.startsWith("[4,")) checkpoints += 1;
    log.push(msg);
    setImmediate(() => {
      for (const other of clients) {
        if (other !== client) {
          bytes.down += Buffer.byteLength(msg);
          other.pad.message(msg);
        }
      }
      setImmediate(() => {
        cb();
        if (fast) pad.sync();
      });
    });
  });
  clients.push(client);
  return client;
}

const a = mkClient("a");
const b = mkClient("b");
a.pad.start();
b.pad.start();

const cpu0 = process.cpuUsage();
const t0 = performance.now();
let tTyped = 0;

async function type() {
  for (const txn of txns) {
    for (const [pos, del, ins] of txn.patches) a.pad.change(pos, del, ins);
    if (fast) a.pad.sync();
    await new Promise((r) => setImmediate(r));
  }
  tTyped = performance.now();
}

function finish(ok, why) {
  const cpu = process.cpuUsage(cpu0);
  const out = {
    ok,
    why,
    wall_s: (performance.now() - t0) / 1000,
    typed_s: (tTyped - t0) / 1000,
    cpu_s: (cpu.user + cpu.system) / 1e6,
    messages,
    checkpoints,
    bytes_up: bytes.up,
    bytes_down: bytes.down,
    log_bytes: log.reduce((n, m) => n + Buffer.byteLength(m), 0),
    target_len: target.length,
    txns: txns.length,
  };
  console.log(JSON.stringify(out));
  a.pad.abort();
  b.pad.abort();
  process.exit(0);
}

const deadline = setTimeout(() => finish(false, "timeout"), Number(timeoutArg) * 1000);
type().then(() => {
  const poll = () => {
    const doc = b.pad.getUserDoc();
    if (doc.length === target.length && doc === target) {
      if (a.pad.getUserDoc() !== target) return finish(false, "typist diverged");
      clearTimeout(deadline);
      return finish(true, "");
    }
    setTimeout(poll, 2);
  };
  poll();
});
