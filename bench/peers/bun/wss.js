// The Bun peer's websocket server: Bun.serve with a `websocket` handler (uWebSockets
// inside Bun), reading the playground's config.json (wss_port, wss_heapdump_port,
// wss_head, wss_echo, bind, snapshot_bind) as the Node peer does, with the same
// config reader (../node/config.js). It greets each connection as the Rust wss and
// the Node peer do, then discards (or echoes) what it receives, and serves
// GET /snapshot on wss_heapdump_port with the process's own figures.
// Usage: bun wss.js [--config PATH] [--KEY VALUE ...]
//
// Bun closes a websocket that has been idle for `idleTimeout` seconds (120 by
// default); here it is off (0): idle websockets are what the bench measures.

'use strict';

const { load } = require('../node/config');

const config = load();
const state = { open: 0, accepted: 0, headMode: config.wss_head, echo: config.wss_echo };

// What a connection keeps of its upgrade request for its life, as the head modes say:
// `retain` the Request object itself (its headers), `copy` a copy of the headers as
// one string, `drop` nothing. Bun hands no `head` Buffer out: the request is all there is.
function kept(mode, req) {
  if (mode === 'retain') return req;
  if (mode === 'copy') {
    let text = `${req.method} ${req.url}\r\n`;
    for (const [k, v] of req.headers) text += `${k}: ${v}\r\n`;
    return text;
  }
  return null;
}

let server;
try {
  server = Bun.serve({
    hostname: config.bind,
    port: config.wss_port,
    fetch(req, srv) {
      if (srv.upgrade(req, { data: { id: 0, kept: kept(config.wss_head, req) } })) return undefined;
      return new Response('this is the Bun peer websocket server: connect with a websocket\n', {
        status: 426,
        headers: { 'content-type': 'text/plain' },
      });
    },
    websocket: {
      idleTimeout: 0,
      open(ws) {
        state.open += 1;
        state.accepted += 1;
        ws.data.id = state.accepted;
        ws.send(`hello from bun wss, connection ${ws.data.id} (head mode ${config.wss_head})`);
      },
      message(ws, message) {
        // A string came as a text message, a Buffer as a binary one: sent back the same.
        if (config.wss_echo) ws.send(message);
      },
      close() {
        state.open -= 1;
      },
    },
  });
} catch (e) {
  console.error(`wss: cannot listen on ${config.bind}:${config.wss_port}: ${e.message}`);
  process.exit(1);
}
console.error(`bun wss listening on ws://${config.bind}:${server.port} (head ${config.wss_head}, echo ${config.wss_echo}, bun ${Bun.version})`);

// GET /snapshot: RSS from the kernel, JavaScriptCore's heap and the Buffers outside it
// from process.memoryUsage(), connection counts; the Node peer's fields, `bun` for `node`.
const started = Date.now();
try {
  Bun.serve({
    hostname: config.snapshot_bind,
    port: config.wss_heapdump_port,
    fetch(req) {
      if (req.method !== 'GET' || new URL(req.url).pathname !== '/snapshot') {
        return new Response('GET /snapshot\n', { status: 404, headers: { 'content-type': 'text/plain' } });
      }
      const t0 = process.hrtime.bigint();
      const memory = process.memoryUsage();
      const snapshot = {
        role: 'wss',
        stack: 'bun',
        taken_at_ms: Date.now(),
        took_us: 0,
        process: {
          pid: process.pid,
          uptime_ms: Date.now() - started,
          rss_bytes: memory.rss,
          bun: {
            version: Bun.version,
            heap_total_bytes: memory.heapTotal,
            heap_used_bytes: memory.heapUsed,
            external_bytes: memory.external,
            array_buffers_bytes: memory.arrayBuffers,
          },
        },
        settings: { head_mode: state.headMode, echo: Boolean(state.echo) },
        connections: { open: state.open, accepted_total: state.accepted },
      };
      snapshot.took_us = Number((process.hrtime.bigint() - t0) / 1000n);
      return new Response(JSON.stringify(snapshot), {
        headers: { 'content-type': 'application/json', 'access-control-allow-origin': '*' },
      });
    },
  });
} catch (e) {
  console.error(`wss: snapshot endpoint on ${config.snapshot_bind}:${config.wss_heapdump_port}: ${e.message}`);
  process.exit(1);
}

setInterval(() => {
  const rss = process.memoryUsage.rss() / 1e6;
  console.error(`wss: open ${state.open} (accepted ${state.accepted}), rss ${rss.toFixed(1)} MB`);
}, 5000).unref();
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
