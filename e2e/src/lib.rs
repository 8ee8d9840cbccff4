//! End-to-end tests live in tests/; this crate holds what they share: the paths,
//! and [`chromium`], the browser and its DevTools driver.

use std::path::{Path, PathBuf};

pub mod chromium;

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ lies in the repository")
        .to_path_buf()
}

/// Cargo's target folder (`CARGO_TARGET_DIR`, or `target/` at the root).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}
