//! What the page decides without a browser: no yew, no web-sys here, so every part
//! is unit-tested natively.
//!
//! - [`audit`]: the live series of the processes a running `client audit` measures.
//! - [`config`]: the ports and experiment defaults read from config.json.
//! - [`experiment`]: the experiment's settings as typed in the form, and its live counts
//!   (the page keeps them in one reducer: [`crate::state`]).
//! - [`series`]: the bounded time window of samples kept for the charts.
//! - [`chart`]: value axes (counts, bytes) on the `figures` crate's axis rule, the time
//!   axis, and line geometry.
//! - [`diff`]: the difference of two snapshots of one server.
//! - [`flame`]: the flame graph of retained bytes by retaining path, its zoom, and
//!   what grew or shrank between two snapshots.
//! - [`slabs`]: the order and wording of pools, slabs and retainers in the snapshot tree.
//! - [`pin`]: what each pinning connection sends of its own traffic, and its progress.
//! - [`format`](mod@format): numbers, bytes and durations as the page prints them.

pub mod audit;
pub mod chart;
pub mod config;
pub mod diff;
pub mod experiment;
pub mod flame;
pub mod format;
pub mod pin;
pub mod series;
pub mod slabs;

#[cfg(test)]
pub(crate) mod fixtures;
