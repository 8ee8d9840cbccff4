//! What the allocation registry costs the allocator (`cargo bench -p allocator --bench registry`).
//!
//! Allocate and free one buffer, the way hyper's and tungstenite's buffers come and
//! go: 8 KiB (recorded: at or above the 4 KiB threshold) and 4 KiB less one byte
//! (below it: one comparison more than jemalloc), each with the registry on, then
//! the same after `alloc_registry: false` (`registry::disable`, one-way, so last).
//! At the end it prints each pair's ratio, measured in this one run; and the cost of
//! one `Index::take` (what a snapshot pays for the lookup) with 10,000 entries live.

use std::hint::black_box;
use std::time::{Duration, Instant};

use allocator::registry::{self, Index};
use criterion::{criterion_group, criterion_main, Criterion};

fn alloc_free(size: usize) {
    let v: Vec<u8> = Vec::with_capacity(size);
    black_box(v.as_ptr());
}

/// Time of one call of `f`: the best of 7 rounds of 1,000,000 calls (for the printed
/// ratio; the best round is the one least disturbed by the rest of the machine).
fn mean(f: impl Fn()) -> f64 {
    const N: u32 = 1_000_000;
    (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..N {
                f();
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(N)
        })
        .fold(f64::INFINITY, f64::min)
}

fn benches(c: &mut Criterion) {
    let live: Vec<Vec<u8>> = (0..10_000).map(|_| Vec::with_capacity(8192)).collect();
    c.bench_function("index/take with 10,000 live entries", |b| {
        b.iter(|| black_box(Index::take().entries().len()))
    });
    drop(live);

    let on_8k = mean(|| alloc_free(8192));
    let on_small = mean(|| alloc_free(4095));
    c.bench_function("alloc+free 8 KiB, registry on", |b| {
        b.iter(|| alloc_free(8192))
    });
    c.bench_function("alloc+free 4095 B, registry on", |b| {
        b.iter(|| alloc_free(4095))
    });
    registry::disable();
    let off_8k = mean(|| alloc_free(8192));
    let off_small = mean(|| alloc_free(4095));
    c.bench_function("alloc+free 8 KiB, registry off", |b| {
        b.iter(|| alloc_free(8192))
    });
    c.bench_function("alloc+free 4095 B, registry off", |b| {
        b.iter(|| alloc_free(4095))
    });
    println!(
        "registry cost: 8 KiB alloc+free {:.1} ns on / {:.1} ns off = {:.2}x; \
         4095 B {:.1} ns on / {:.1} ns off = {:.2}x",
        on_8k,
        off_8k,
        on_8k / off_8k,
        on_small,
        off_small,
        on_small / off_small,
    );
}

criterion_group! {
    name = registry;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = benches
}
criterion_main!(registry);
