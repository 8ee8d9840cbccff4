// The Node peer's TLS websocket reverse proxy: http-proxy 1.18 behind an https
// server, reading the playground's config.json (proxy_port, proxy_heapdump_port,
// proxy_target, proxy_head, proxy_tls, tls_cert/tls_key/cert_dir, bind). It uses the
// same certificate as the Rust proxy, so the same client trusts both.
// Usage: node proxy.js [--config PATH] [--KEY VALUE ...]

'use strict';

const fs = require('fs');
const http = require('http');
const https = require('https');
const httpProxy = require('http-proxy');
const { load, certPaths, keepHead } = require('./config');
const snapshot = require('./snapshot');

const config = load();
const state = { open: 0, accepted: 0, headMode: config.proxy_head };
const target = { host: config.proxy_target.host, port: config.proxy_target.port };
const proxy = httpProxy.createProxyServer({ target, ws: true });

proxy.on('error', (err, req, res) => {
  // res is a ServerResponse for plain requests and the client socket for upgrades.
  if (res && typeof res.writeHead === 'function') {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`proxy: upstream ${target.host}:${target.port}: ${err.message}\n`);
  } else if (res && typeof res.destroy === 'function') {
    res.destroy();
  }
});

const handler = (req, res) => proxy.web(req, res);
let server;
if (config.proxy_tls) {
  const [cert, key] = certPaths(config);
  let tls;
  try {
    tls = { cert: fs.readFileSync(cert), key: fs.readFileSync(key) };
  } catch (e) {
    console.error(`proxy: cannot read the certificate: ${e.message}`);
    process.exit(2);
  }
  server = https.createServer(tls, handler);
} else {
  server = http.createServer(handler);
}

server.on('upgrade', (req, socket, head) => {
  state.open += 1;
  state.accepted += 1;
  socket.on('close', () => { state.open -= 1; });
  socket.on('error', () => {});
  keepHead(config.proxy_head, socket, head);
  proxy.ws(req, socket, head);
});
server.on('clientError', (err, socket) => socket.destroy());
server.on('error', (e) => {
  console.error(`proxy: cannot listen on ${config.bind}:${config.proxy_port}: ${e.message}`);
  process.exit(1);
});
server.listen(config.proxy_port, config.bind, () => {
  const scheme = config.proxy_tls ? 'wss' : 'ws';
  console.error(`node proxy listening on ${scheme}://${config.bind}:${config.proxy_port} -> ${target.host}:${target.port} (head ${config.proxy_head})`);
});
snapshot.serve(config.proxy_heapdump_port, config.snapshot_bind, 'proxy', state);

setInterval(() => {
  const rss = process.memoryUsage.rss() / 1e6;
  console.error(`proxy: open ${state.open} (accepted ${state.accepted}), rss ${rss.toFixed(1)} MB`);
}, 5000).unref();
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
