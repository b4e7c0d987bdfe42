// Load generator for the throughput scenario (node + ws from bench/node_modules).
//
// Usage: node bench/loadgen.mjs SPEC.json
// SPEC: {mode: "ceiling"|"blindpad", window, timeout_s, channels: [{url,
//   receivers, count, setup: [hex frames] (sender), rsetup: [hex frames]
//   (each receiver), payloads: path of (u32 len + bytes)* frames, rurls:
//   optional [urls]: receiver i connects to rurls[i % length] (relays sharing a
//   store), else to url}]}
// Protocol: every client connects and runs its setup frames (blindpad: HELLO
// -> WELCOME, SUBSCRIBE -> HISTORY_END); then "READY" is printed and the
// generator waits for a line on stdin before sending.  Each sender keeps up to
// `window` messages unacknowledged.  Output: one JSON line with counts, wall
// time, and ack / delivery latency percentiles (ms).
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import WebSocket from "ws";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const blind = spec.mode === "blindpad";
const now = () => Number(process.hrtime.bigint()) / 1e6;
const ackLat = [];
const delLat = [];
let delivered = 0;
let expected = 0;
let errors = [];
let lastDelivery = 0;

function readFrames(path) {
  const buf = readFileSync(path);
  const out = [];
  for (let off = 0; off < buf.length; ) {
    const n = buf.readUInt32BE(off);
    out.push(buf.subarray(off + 4, off + 4 + n));
    off += 4 + n;
  }
  return out;
}

function open(url, setup) {
  // Connect and run the setup frames; resolve with the socket.
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0 });
    ws.binaryType = "nodebuffer";
    let step = 0;
    const timer = setTimeout(() => reject(new Error("setup timeout " + url)), 30000);
    const next = () => {
      if (step >= setup.length) {
        clearTimeout(timer);
        ws.removeAllListeners("message");
        resolve(ws);
        return;
      }
      ws.send(Buffer.from(setup[step], "hex"));
    };
    ws.on("open", next);
    ws.on("error", reject);
    ws.on("message", (data) => {
      const t = data[0];
      // blindpad: WELCOME (0x81) answers HELLO, HISTORY_END (0x84) SUBSCRIBE
      if (t === 0x81 || t === 0x84) {
        step += 1;
        next();
      } else if (t === 0x87 || t === 0x8f) {
        reject(new Error("setup refused: type " + t));
      }
    });
  });
}

async function main() {
  const channels = [];
  for (const ch of spec.channels) {
    const setup = ch.setup || [];
    const rsetup = ch.rsetup || [];
    const sender = await open(ch.url, setup);
    const receivers = [];
    const rurls = ch.rurls || [ch.url];
    for (let i = 0; i < ch.receivers; i++) {
      receivers.push(await open(rurls[i % rurls.length], rsetup));
    }
    channels.push({ ch, sender, receivers, frames: readFrames(ch.payloads) });
    expected += ch.receivers * ch.count;
  }
  console.log("READY");
  const rl = createInterface({ input: process.stdin });
  await new Promise((resolve) => rl.once("line", resolve));
  rl.close();
  const start = now();
  const done = new Promise((resolve) => {
    const timer = setTimeout(() => {
      errors.push("timeout");
      resolve();
    }, spec.timeout_s * 1000);
    const check = () => {
      if (delivered >= expected) {
        clearTimeout(timer);
        resolve();
      }
    };
    for (const c of channels) {
      const sent = new Array(c.ch.count).fill(0);
      let next = 0;
      let acked = 0;
      const pump = () => {
        while (next < c.ch.count && next - acked < spec.window) {
          sent[next] = now();
          c.sender.send(c.frames[next]);
          next += 1;
        }
      };
      c.sender.on("message", (data) => {
        const t = now();
        let index;
        if (blind) {
          if (data[0] === 0x86) index = data.readUInt32BE(1) - 1;
          else if (data[0] === 0x87 || data[0] === 0x8f) {
            errors.push("refused/error type " + data[0] + " code " + data.readUInt16BE(5));
            return;
          } else return;
        } else index = data.readUInt32BE(0);
        ackLat.push(t - sent[index]);
        acked += 1;
        pump();
      });
      for (const r of c.receivers) {
        r.on("message", (data) => {
          const t = now();
          let index;
          if (blind) {
            if (data[0] !== 0x85) return;
            index = Number(data.readBigUInt64BE(33)) - 1;
          } else index = data.readUInt32BE(0);
          delLat.push(t - sent[index]);
          delivered += 1;
          lastDelivery = t;
          check();
        });
        r.on("close", (code) => errors.push("receiver closed " + code));
      }
      pump();
    }
  });
  await done;
  const wall = (lastDelivery || now()) - start;
  const pct = (xs, q) => {
    if (!xs.length) return 0;
    const s = Float64Array.from(xs).sort();
    return s[Math.min(s.length - 1, Math.round(q * (s.length - 1)))];
  };
  const out = {
    delivered,
    expected,
    wall_ms: wall,
    acks: ackLat.length,
    ack_p50_ms: pct(ackLat, 0.5),
    ack_p99_ms: pct(ackLat, 0.99),
    delivery_p50_ms: pct(delLat, 0.5),
    delivery_p99_ms: pct(delLat, 0.99),
    errors: errors.slice(0, 5),
  };
  console.log(JSON.stringify(out));
  for (const c of channels) {
    c.sender.terminate();
    for (const r of c.receivers) r.terminate();
  }
  setTimeout(() => process.exit(0), 100);
}

main().catch((e) => {
  console.log(JSON.stringify({ fatal: String(e) }));
  process.exit(1);
});
