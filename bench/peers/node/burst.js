// The bench's bursting client: Node's `ws` client, as the users run it.
// It opens N websockets (TLS, trusting --ca), waits for each one's greeting, then
// on "burst" from stdin every websocket sends its first message and then its bytes
// in messages of --message bytes, all queued at once (as fast as ws sends them),
// and reads the echoes. It prints one line per step and holds the websockets idle
// until stdin closes.
//
// Usage: node burst.js --url wss://127.0.0.1:PORT/ --ca CERT --connections N
//          --first BYTES --bytes BYTES --message BYTES [--echo true|false]
//          [--servername NAME]  (the name the certificate is checked against)
// Lines out: "open N", "done SECONDS", or "error WHY" (then exit 1).

'use strict';

const fs = require('fs');
const readline = require('readline');
const WebSocket = require('ws');

function args() {
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) {
      fail(`expected --KEY VALUE pairs, got ${argv.slice(i).join(' ')}`);
    }
    out[argv[i].slice(2)] = argv[i + 1];
  }
  for (const key of ['url', 'ca', 'connections', 'first', 'bytes', 'message']) {
    if (out[key] === undefined) fail(`--${key} is missing`);
  }
  return out;
}

function fail(why) {
  process.stdout.write(`error ${why}\n`);
  process.exit(1);
}

const a = args();
const n = Number(a.connections);
const first = Number(a.first);
const bytes = Number(a.bytes);
const message = Math.max(1, Number(a.message));
const echo = (a.echo || 'true') === 'true';
const ca = fs.readFileSync(a.ca);

const sockets = [];
let opened = 0;

function open(i) {
  const ws = new WebSocket(a.url, { ca, servername: a.servername, perMessageDeflate: false });
  ws.binaryType = 'nodebuffer';
  ws.expected = 0;
  ws.on('error', (e) => fail(`websocket ${i}: ${e.message}`));
  ws.on('close', (code) => {
    if (!closing) fail(`websocket ${i} closed by the server (${code})`);
  });
  ws.once('message', () => {
    opened += 1;
    if (opened === n) process.stdout.write(`open ${n}\n`);
    ws.on('message', () => {
      ws.expected -= 1;
      if (ws.expected === 0) ws.resolve();
    });
  });
  sockets.push(ws);
}

// Sends everything at once; resolves when every echo (or, without echo, the pong
// of a ping sent after the last message: the server has read it all) came back.
function burst(ws) {
  return new Promise((resolve) => {
    ws.resolve = resolve;
    const sizes = [first];
    for (let left = bytes; left > 0; left -= Math.min(left, message)) {
      sizes.push(Math.min(left, message));
    }
    if (echo) ws.expected = sizes.length;
    for (const size of sizes) ws.send(Buffer.alloc(size, 0xab));
    if (!echo) {
      ws.once('pong', resolve);
      ws.ping();
    }
  });
}

let closing = false;
for (let i = 0; i < n; i += 1) open(i);

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  if (line.trim() !== 'burst') return;
  const started = process.hrtime.bigint();
  await Promise.all(sockets.map(burst));
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(`done ${secs.toFixed(3)}\n`);
}).on('close', () => {
  closing = true;
  for (const ws of sockets) ws.terminate();
  process.exit(0);
});
