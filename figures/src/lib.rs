//! How the playground writes figures, one rule each for the page (wasm), the load
//! client (native): no dependencies, so it builds for both.
//!
//! - [`axis`]: the scale of a chart's value axis from 0: a round step (1, 2 or 5,
//!   and on the page's charts 2.5, times a power of ten) for about as many ticks as
//!   asked, and the first multiple of it at or above the highest value.
//! - [`bytes`]: bytes in binary units (`64.0 KiB`, `10.0 MiB`) and the unit that
//!   suits a magnitude, as the page's figures and byte axes print them.

pub mod axis;
pub mod bytes;
