//! The browser playground: a Yew app that runs the seed's experiment through the
//! proxy, charts both servers' snapshots live, and shows and compares snapshots.
//!
//! [`logic`] holds everything that can be decided without a browser (config, series,
//! chart scales, snapshot differences, formatting) and is unit-tested natively with
//! `cargo test -p web`, as is [`state`], the experiment's state in one reducer. The
//! rest talks to the browser: [`api`] (HTTP and files), [`runner`] (the experiment's
//! websockets), [`hooks`] and [`components`], put together by [`app::App`]. How
//! figures are written (byte units, chart axes) is the `figures` crate's, shared
//! with the native client.

pub mod api;
pub mod app;
pub mod components;
pub mod hooks;
pub mod logic;
pub mod runner;
pub mod state;
