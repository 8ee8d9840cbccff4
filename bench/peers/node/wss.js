// The Node peer's websocket server: ws 8 behind a plain http server, reading the
// playground's config.json (wss_port, wss_heapdump_port, wss_head, wss_echo, bind).
// It greets each connection as the Rust wss does, then discards (or echoes) what it
// receives. Usage: node wss.js [--config PATH] [--KEY VALUE ...]

'use strict';

const http = require('http');
const { WebSocketServer } = require('ws');
const { load, keepHead } = require('./config');
const snapshot = require('./snapshot');

const config = load();
const state = { open: 0, accepted: 0, headMode: config.wss_head, echo: config.wss_echo };

const server = http.createServer((req, res) => {
  res.writeHead(426, { 'content-type': 'text/plain' });
  res.end('this is the Node peer websocket server: connect with a websocket\n');
});
const wss = new WebSocketServer({ noServer: true });

server.on('upgrade', (req, socket, head) => {
  keepHead(config.wss_head, socket, head);
  wss.handleUpgrade(req, socket, head, (ws) => {
    state.open += 1;
    state.accepted += 1;
    const id = state.accepted;
    ws.on('error', () => {});
    ws.on('close', () => { state.open -= 1; });
    if (config.wss_echo) {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    }
    ws.send(`hello from node wss, connection ${id} (head mode ${config.wss_head})`);
  });
});
server.on('clientError', (err, socket) => socket.destroy());
server.on('error', (e) => {
  console.error(`wss: cannot listen on ${config.bind}:${config.wss_port}: ${e.message}`);
  process.exit(1);
});
server.listen(config.wss_port, config.bind, () => {
  console.error(`node wss listening on ws://${config.bind}:${config.wss_port} (head ${config.wss_head}, echo ${config.wss_echo})`);
});
snapshot.serve(config.wss_heapdump_port, config.snapshot_bind, 'wss', state);

setInterval(() => {
  const rss = process.memoryUsage.rss() / 1e6;
  console.error(`wss: open ${state.open} (accepted ${state.accepted}), rss ${rss.toFixed(1)} MB`);
}, 5000).unref();
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
