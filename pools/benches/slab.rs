//! Micro-benchmarks of the slab pool's hot path (`cargo bench -p pools --bench slab`):
//!
//! - `read/take region + view`: one socket read through the pool: take the next free
//!   region of the current slab, fill it, hand out a view, drop the view (a new slab
//!   is allocated each time the current one is full, as in a server).
//! - `view/slice + retain + release`: what a `retain` connection does with its head:
//!   a slice of a view, registered as a retainer of its slab, then released.
//! - `slab/allocate + free`: a read that needs a new slab, whose old slab is freed
//!   when replaced (1 MiB TCP and 10 MiB TLS slab sizes).
//! - `snapshot/pool with N retainers`: the pool's part of a snapshot with 8,000
//!   retained views (the snapshot-cost goal).
//!
//! The reader is in memory, so the figures are the pool's own cost, not the kernel's.

use std::hint::black_box;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pools::{SlabPool, SlabView};
use tokio::io::{AsyncRead, ReadBuf};

/// A reader that always has `chunk` bytes ready.
struct Source {
    chunk: usize,
}

impl AsyncRead for Source {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.chunk.min(buf.remaining());
        buf.initialize_unfilled_to(n)[..n].fill(0x42);
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// One read through `pool` from `source`, which is always ready.
fn read_once(pool: &SlabPool, source: &mut Source) -> SlabView {
    let mut cx = Context::from_waker(Waker::noop());
    match pool.poll_read(Pin::new(source), &mut cx) {
        Poll::Ready(Ok(Some(view))) => view,
        other => panic!("the in-memory source is always ready, got {other:?}"),
    }
}

fn read_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    for chunk in [512usize, 16 << 10] {
        let pool = SlabPool::new("tcp", 1 << 20, 64 << 10);
        let mut source = Source { chunk };
        group.throughput(Throughput::Bytes(chunk as u64));
        group.bench_function(format!("take region + view, {chunk} B"), |b| {
            b.iter(|| drop(black_box(read_once(&pool, &mut source))))
        });
    }
    group.finish();
}

fn view_path(c: &mut Criterion) {
    let pool = SlabPool::new("tcp", 1 << 20, 64 << 10);
    let mut source = Source { chunk: 600 };
    let view = read_once(&pool, &mut source);
    c.bench_function("view/slice + retain + release", |b| {
        b.iter(|| {
            let kept = view.slice(..400).retain(black_box(17), "upgrade request");
            drop(black_box(kept));
        })
    });
}

fn slab_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("slab");
    for (name, size) in [("tcp 1 MiB", 1usize << 20), ("tls 10 MiB", 10 << 20)] {
        // read_size == slab_size: every read needs a fresh slab; the previous one is
        // freed as soon as its view is dropped and it stops being current.
        let pool = SlabPool::new("tcp", size, size);
        let mut source = Source { chunk: 64 };
        group.bench_function(format!("allocate + free, {name}"), |b| {
            b.iter(|| drop(black_box(read_once(&pool, &mut source))))
        });
    }
    group.finish();
}

fn snapshot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(20);
    for retainers in [1_000u64, 8_000] {
        group.bench_function(format!("pool with {retainers} retainers"), |b| {
            b.iter_batched_ref(
                || {
                    let pool = SlabPool::new("tls", 10 << 20, 64 << 10);
                    let mut source = Source { chunk: 300 };
                    let kept: Vec<_> = (0..retainers)
                        .map(|i| read_once(&pool, &mut source).retain(i, "upgrade request"))
                        .collect();
                    (pool, kept)
                },
                |(pool, _kept)| {
                    black_box(pool.snapshot(Instant::now(), &allocator::registry::Index::take()))
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, read_path, view_path, slab_path, snapshot_path);
criterion_main!(benches);
