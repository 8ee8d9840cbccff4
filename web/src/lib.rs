//! The browser playground: a Yew app that runs the seed's experiment through the
//! proxy, charts both servers' snapshots live, and shows and compares snapshots.
//!
//! [`logic`] holds everything that can be decided without a browser (config, series,
//! chart scales, snapshot differences, formatting) and is unit-tested natively with
//! `cargo test -p web`. The rest talks to the browser: [`api`] (HTTP and files),
//! [`runner`] (the experiment's websockets), [`state`] (the experiment's state, one
//! reducer), [`hooks`] and [`components`], put together by [`app::App`].

pub mod api;
pub mod app;
pub mod components;
pub mod hooks;
pub mod logic;
pub mod runner;
pub mod state;
