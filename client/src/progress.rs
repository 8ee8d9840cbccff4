//! The ramp-up progress bar (and the audit's step bars), and a log writer that keeps
//! them intact.
//!
//! The bar draws on stderr only when stderr is a terminal (indicatif hides it
//! otherwise). Log lines go through [`LogWriter`], which clears the bar while a line
//! is written and redraws it after, so the two never garble each other.

use std::io::{self, Write};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle, WeakProgressBar};
use tracing_subscriber::fmt::MakeWriter;

/// The bar log lines must step around, if one is showing.
static ACTIVE: Mutex<Option<WeakProgressBar>> = Mutex::new(None);

fn active() -> Option<ProgressBar> {
    ACTIVE.lock().ok()?.as_ref()?.upgrade()
}

/// A progress bar of pinning connections open out of `target`; log lines suspend it.
pub fn ramp_bar(target: u64) -> ProgressBar {
    let bar = ProgressBar::new(target);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} pinning {pos}/{len} [{bar:30}] {percent}% {msg} ({elapsed})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    if let Ok(mut slot) = ACTIVE.lock() {
        *slot = Some(bar.downgrade());
    }
    bar
}

/// A progress bar of one audit step: `what` done out of `target`; log lines suspend
/// it. Hidden when `show` is false (`--no-progress`).
pub fn step_bar(what: &str, target: u64, show: bool) -> ProgressBar {
    let bar = if show {
        ProgressBar::new(target)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {prefix:<24} {pos}/{len} [{bar:30}] {percent}% {msg} ({elapsed})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what.to_string());
    if let Ok(mut slot) = ACTIVE.lock() {
        *slot = Some(bar.downgrade());
    }
    bar
}

/// Prints `text` on stdout, stepping around the progress bar when one shows.
pub fn println(text: &str) {
    let print = || println!("{text}");
    match active() {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// Log destination for `tracing`: stderr, around the progress bar when one shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let write = || io::stderr().lock().write_all(buf);
        match active() {
            Some(bar) => bar.suspend(write)?,
            None => write()?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
