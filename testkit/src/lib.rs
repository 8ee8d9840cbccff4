//! What the playground's tests share, and the bench's tools with them: one answer to
//! each of the questions every test that starts servers or programs asks.
//!
//! - [`free_port`]: a loopback port to give a program that must be told its port.
//! - [`ephemeral_config`]: a config whose servers all take ports the kernel picks.
//! - [`ChildGuard`]: a child process that is ended and reaped when its guard drops, so
//!   a failing test leaves no process behind; [`Lines`]: a child's output read line by
//!   line on a thread of its own, so every wait on it is bounded and the child never
//!   blocks on a full pipe; [`die_with_parent`] for children of a long-running tool.
//! - [`until`] and [`expect`] (`runtime::wait`, which the libraries' own tests use
//!   too), [`listening`] and [`within`]: waits with a bound, polling instead of
//!   sleeping and hoping.

mod port;
mod process;
mod wait;

pub use port::{ephemeral_config, free_port};
pub use process::{die_with_parent, ChildGuard, Lines};
pub use wait::{accepts, expect, listening, until, within, POLL};
