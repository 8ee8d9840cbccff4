// The playground's config.json, read the way the Rust programs read it: the file
// (`config.json` in the working directory, or `--config PATH`), then `--KEY VALUE`
// flags (`--proxy_target.port 9000`). Only the keys the Node peers use are given
// defaults here; they are the same defaults as the Rust programs'.

'use strict';

const fs = require('fs');
const path = require('path');

const DEFAULTS = {
  proxy_port: 8600,
  proxy_heapdump_port: 8601,
  proxy_target: { host: 'localhost', port: 8800 },
  wss_port: 8800,
  wss_heapdump_port: 8801,
  proxy_tls: true,
  wss_head: 'retain',
  proxy_head: 'retain',
  wss_echo: false,
  bind: '127.0.0.1',
  snapshot_bind: '127.0.0.1',
  tls_cert: null,
  tls_key: null,
  cert_dir: '.certs',
};

const HEAD_MODES = ['retain', 'copy', 'drop'];

function fail(message) {
  console.error(`error: ${message}`);
  process.exit(2);
}

// Parses a flag's text as JSON when it is JSON (numbers, booleans, null), else a string.
function flagValue(text) {
  try {
    return JSON.parse(text);
  } catch (_) {
    return text;
  }
}

function load(argv = process.argv.slice(2)) {
  let file = 'config.json';
  const flags = [];
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    const value = argv[i + 1];
    if (!key.startsWith('--') || value === undefined) {
      fail(`expected --KEY VALUE pairs, got ${JSON.stringify(argv.slice(i))}`);
    }
    if (key === '--config') file = value;
    else flags.push([key.slice(2), flagValue(value)]);
  }
  let fromFile = {};
  if (fs.existsSync(file)) {
    try {
      fromFile = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      fail(`${file}: not valid JSON: ${e.message}`);
    }
  } else if (file !== 'config.json') {
    fail(`${file}: no such file`);
  }
  const config = JSON.parse(JSON.stringify(DEFAULTS));
  for (const [key, value] of Object.entries(fromFile)) {
    config[key] = value && typeof value === 'object' && !Array.isArray(value)
      ? { ...config[key], ...value }
      : value;
  }
  for (const [key, value] of flags) {
    const parts = key.split('.');
    let at = config;
    for (const part of parts.slice(0, -1)) {
      if (typeof at[part] !== 'object' || at[part] === null) at[part] = {};
      at = at[part];
    }
    at[parts[parts.length - 1]] = value;
  }
  for (const key of ['wss_head', 'proxy_head']) {
    if (!HEAD_MODES.includes(config[key])) {
      fail(`${key}: expected one of ${HEAD_MODES.join(', ')}, got ${JSON.stringify(config[key])}`);
    }
  }
  return config;
}

// Paths of the proxy's certificate and key: tls_cert/tls_key, else the self-signed
// pair the Rust proxy makes in cert_dir (the bench makes it before starting a peer).
function certPaths(config) {
  if (config.tls_cert && config.tls_key) return [config.tls_cert, config.tls_key];
  return [
    path.join(config.cert_dir, 'localhost.pem'),
    path.join(config.cert_dir, 'localhost.key.pem'),
  ];
}

// What a connection keeps of its upgrade for its life, as the Rust servers' head
// modes say: `retain` keeps the `head` Buffer the 'upgrade' event gave (what ws and
// http-proxy did in 2012), `copy` a copy of it, `drop` nothing.
function keepHead(mode, socket, head) {
  if (mode === 'retain') socket.keptHead = head;
  else if (mode === 'copy') socket.keptHead = Buffer.from(head);
}

module.exports = { load, certPaths, keepHead };
