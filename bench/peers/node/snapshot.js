// GET /snapshot for the Node peers: the process's own memory figures (RSS from the
// kernel, V8's heap and the Buffers outside it from process.memoryUsage()) and its
// connection counts, in the spirit of the Rust servers' snapshot (not its schema).

'use strict';

const http = require('http');

function serve(port, bind, role, state) {
  const started = Date.now();
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url.split('?')[0] !== '/snapshot') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('GET /snapshot\n');
      return;
    }
    const t0 = process.hrtime.bigint();
    const memory = process.memoryUsage();
    const snapshot = {
      role,
      stack: 'node',
      taken_at_ms: Date.now(),
      took_us: 0,
      process: {
        pid: process.pid,
        uptime_ms: Date.now() - started,
        rss_bytes: memory.rss,
        node: {
          version: process.version,
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
    res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
    res.end(JSON.stringify(snapshot));
  });
  server.on('error', (e) => {
    console.error(`${role}: snapshot endpoint on ${bind}:${port}: ${e.message}`);
    process.exit(1);
  });
  server.listen(port, bind);
  return server;
}

module.exports = { serve };
