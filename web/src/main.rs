//! The browser playground (work in progress).

fn main() {}
