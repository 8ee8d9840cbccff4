// The Node peer's socket.io server: socket.io 4 on a plain http server, reading the
// playground's config.json (wss_port, wss_heapdump_port, wss_echo, bind), the
// counterpart of our socketio wss for `client audit --socketio` (scripts/audit-peers).
// It greets each socket with the `hello` event as our wss does and, with wss_echo,
// sends every `message` event back. socket.io keeps each socket's handshake
// request (`socket.request`) for its life: the head modes do not apply here.
// Usage: node socketio-wss.js [--config PATH] [--KEY VALUE ...]

'use strict';

const http = require('http');
const { Server } = require('socket.io');
const { load } = require('./config');
const snapshot = require('./snapshot');

const config = load();
const state = { open: 0, accepted: 0, headMode: 'retain', echo: config.wss_echo };

const server = http.createServer((req, res) => {
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('this is the Node peer socket.io server: connect with a socket.io client (path /socket.io/)\n');
});
const io = new Server(server, { transports: ['websocket'], serveClient: false });

io.on('connection', (socket) => {
  state.open += 1;
  state.accepted += 1;
  const id = state.accepted;
  socket.on('disconnect', () => { state.open -= 1; });
  if (config.wss_echo) {
    socket.on('message', (data) => socket.emit('message', data));
  }
  socket.emit('hello', `hello from node socket.io wss, connection ${id}`);
});
server.on('error', (e) => {
  console.error(`socketio-wss: cannot listen on ${config.bind}:${config.wss_port}: ${e.message}`);
  process.exit(1);
});
server.listen(config.wss_port, config.bind, () => {
  console.error(`node socket.io wss listening on ws://${config.bind}:${config.wss_port}/socket.io/ (echo ${config.wss_echo})`);
});
snapshot.serve(config.wss_heapdump_port, config.snapshot_bind, 'wss', state);

setInterval(() => {
  const rss = process.memoryUsage.rss() / 1e6;
  console.error(`socketio-wss: open ${state.open} (accepted ${state.accepted}), rss ${rss.toFixed(1)} MB`);
}, 5000).unref();
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
