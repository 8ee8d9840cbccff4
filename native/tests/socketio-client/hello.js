// Node's socket.io client (socket.io-client 4, installed by
// scripts/socketio-client-install) opening one socket at URL over a websocket only,
// trusting the PEM certificate CA_FILE: it waits for the server's `hello` event,
// sends one `message` event and waits for its echo, then prints
// {"hello": ..., "echo": ...} as JSON and exits 0. Any failure (a connect error, no
// greeting or echo within 10 s) prints one line on stderr and exits 1.
// Usage: node hello.js URL CA_FILE

'use strict';

const fs = require('fs');
const { io } = require('socket.io-client');

const [url, caFile] = process.argv.slice(2);
if (!url || !caFile) {
  console.error('usage: node hello.js URL CA_FILE');
  process.exit(2);
}
const fail = (what) => {
  console.error(`socket.io-client: ${what}`);
  process.exit(1);
};
const timer = setTimeout(() => fail(`no greeting and echo from ${url} within 10 s`), 10000);

const socket = io(url, {
  transports: ['websocket'],
  reconnection: false,
  ca: fs.readFileSync(caFile),
});
const sent = `echo me, from node's socket.io-client`;
let hello = null;
socket.on('connect_error', (e) => fail(`cannot connect to ${url}: ${e.message}`));
socket.on('hello', (greeting) => {
  hello = greeting;
  socket.emit('message', sent);
});
socket.on('message', (echo) => {
  if (hello === null) return;
  clearTimeout(timer);
  console.log(JSON.stringify({ hello, echo, sent }));
  socket.close();
  process.exit(0);
});
