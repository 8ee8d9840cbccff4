//! The socket.io stack (`wss_stack` = `socketio`): the seed's third system as Rust
//! users run it today, socketioxide mounted on warp and served by hyper's HTTP/1
//! connections with upgrades.
//!
//! # What engine.io keeps, and which buffer that may pin
//!
//! engineioxide keeps each socket's `http::request::Parts` (its URI and every header
//! value) for the socket's whole life (`Socket::req_parts`, engineioxide-0.17
//! `src/socket.rs`; for a websocket, the parts of the upgrade request,
//! `transport/ws.rs` `new_req` clones them into the socket's task). hyper parses a
//! request head out of its connection's read buffer and makes every header value a
//! `Bytes` slice of it (hyper-1 `src/proto/h1/role.rs`), so keeping the parts keeps
//! that read buffer (8 KiB at first, more for a larger head) after the upgrade: the
//! 2013 `head` bug in today's Rust. Each socket's parts are registered as kept parts
//! ([`runtime::kept::KeptParts`]) at connect and unregistered at disconnect, so the
//! snapshot names the allocation they lie in, found by the allocation registry.
//!
//! # The head modes
//!
//! A layer in front of socketioxide ([`head::HeadService`]) applies the head mode
//! in force to every request: `retain` passes it as hyper made it; `copy` (and
//! `copy_unpooled`: there is no pool here) hands socketioxide a request whose URI
//! and header values are owned copies, the fix a user can apply today; `drop`
//! keeps only what engine.io needs (the query and the websocket handshake headers),
//! copied. The same layer admits new sessions (the memory guard, the connection cap:
//! 503 before any handshake).
//!
//! - [`wss`]: the server: start, the namespace's handlers, shutdown.
//! - [`head`]: the layer that admits sessions and applies the head mode.

pub mod head;
pub mod wss;
