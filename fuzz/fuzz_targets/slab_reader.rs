//! `SlabPool::poll_read` over an in-memory reader that yields arbitrary chunk sizes,
//! is not ready, fails, or scribbles over the buffer it was given before saying so.
//!
//! Checked after every step against a model of the views the test keeps:
//! - the bytes read back are the input, in order, and a kept view never changes;
//! - the snapshot's accounting: per live slab its handed-out bytes, referenced bytes,
//!   views and retainers; live slabs = allocated - freed; one current slab, the newest;
//!   a new slab only when the current one cannot fit a read;
//! - once every view is dropped, at most the current slab is left, unreferenced.
#![no_main]

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pools::{Retained, SlabPool, SlabView};
use tokio::io::{AsyncRead, ReadBuf};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Slab size: 1 + this % 4096 bytes (small, so that slabs roll over often).
    slab_size: u16,
    /// Read size: 1 + this % slab size.
    read_size: u16,
    steps: Vec<Step>,
    data: Vec<u8>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Step {
    /// The next read yields up to `len` bytes (at least 1 while any are left).
    Read { len: u16, keep: Keep },
    /// The reader is not ready (after writing `scribble` bytes into the buffer).
    Pending { scribble: u8 },
    /// The read fails (after writing `scribble` bytes into the buffer).
    Fail { scribble: u8 },
    DropOldest,
    DropNewest,
}

/// What the test keeps of a read.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Keep {
    Nothing,
    View,
    /// A slice of the view (which keeps the whole read's region alive).
    Slice { from: u16, to: u16 },
    /// The view kept as a connection's retainer.
    Retained { connection: u8 },
}

#[derive(Clone, Copy)]
enum Next {
    Bytes(usize),
    Pending(u8),
    Fail(u8),
}

/// The client's bytes, handed out as the test says.
struct Reader {
    data: Vec<u8>,
    pos: usize,
    next: Next,
}

impl AsyncRead for Reader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let scribble = |buf: &mut ReadBuf<'_>, n: u8| {
            let n = (n as usize).min(buf.remaining());
            buf.put_slice(&vec![0xA5; n]);
        };
        match self.next {
            Next::Pending(n) => {
                scribble(buf, n);
                Poll::Pending
            }
            Next::Fail(n) => {
                scribble(buf, n);
                Poll::Ready(Err(io::Error::other("fuzz: read failed")))
            }
            Next::Bytes(len) => {
                let left = self.data.len() - self.pos;
                let n = len.max(1).min(left).min(buf.remaining());
                let start = self.pos;
                buf.put_slice(&self.data[start..start + n]);
                self.pos += n;
                Poll::Ready(Ok(()))
            }
        }
    }
}

enum Holder {
    View(SlabView),
    Slice(SlabView),
    Retained(Retained),
}

/// One read the test keeps something of.
struct Kept {
    slab: u64,
    /// Bytes of the read (what the region counts, whatever part is kept).
    len: usize,
    /// The bytes the kept part must hold, forever.
    expected: Vec<u8>,
    holder: Holder,
}

impl Kept {
    fn bytes(&self) -> &[u8] {
        match &self.holder {
            Holder::View(v) | Holder::Slice(v) => v,
            Holder::Retained(r) => r.view(),
        }
    }
}

struct Model {
    slab_size: usize,
    read_size: usize,
    kept: Vec<Kept>,
    /// Bytes handed out per slab, by the reads seen.
    handed_out: BTreeMap<u64, usize>,
    reads: u64,
    bytes: usize,
}

fuzz_target!(|input: Input| {
    let slab_size = 1 + input.slab_size as usize % 4096;
    let read_size = 1 + input.read_size as usize % slab_size;
    let pool = SlabPool::new("tcp", slab_size, read_size);
    let mut reader = Reader {
        data: input.data.clone(),
        pos: 0,
        next: Next::Bytes(0),
    };
    let mut model = Model {
        slab_size,
        read_size,
        kept: Vec::new(),
        handed_out: BTreeMap::new(),
        reads: 0,
        bytes: 0,
    };
    let mut eof = false;
    for step in input.steps.iter().copied() {
        match step {
            Step::Read { len, keep } => eof |= read(&pool, &mut reader, &mut model, Next::Bytes(len as usize), keep),
            Step::Pending { scribble } => {
                read(&pool, &mut reader, &mut model, Next::Pending(scribble), Keep::Nothing);
            }
            Step::Fail { scribble } => {
                read(&pool, &mut reader, &mut model, Next::Fail(scribble), Keep::Nothing);
            }
            Step::DropOldest => {
                if !model.kept.is_empty() {
                    model.kept.remove(0);
                }
            }
            Step::DropNewest => {
                model.kept.pop();
            }
        }
        check(&pool, &model);
    }
    // The rest in the largest reads, then end of stream (twice: it stays ended).
    while !eof {
        eof = read(&pool, &mut reader, &mut model, Next::Bytes(usize::MAX), Keep::Nothing);
        check(&pool, &model);
    }
    assert!(read(&pool, &mut reader, &mut model, Next::Bytes(usize::MAX), Keep::Nothing));
    assert_eq!(model.bytes, input.data.len(), "every byte read back");
    check(&pool, &model);

    // Every view dropped: only the current slab may be left, and nothing in it is used.
    model.kept.clear();
    let snap = pool.snapshot(Instant::now(), &allocator::registry::Index::take());
    assert!(snap.live_slabs <= 1, "{} slabs left", snap.live_slabs);
    for slab in &snap.slabs {
        assert!(slab.current, "slab {} outlived its views", slab.id);
        assert_eq!((slab.views, slab.referenced_bytes), (0, 0));
        assert!(slab.retainers.is_empty());
    }
    assert_eq!(snap.referenced_bytes, 0);
    assert_eq!(snap.slabs_allocated_total - snap.slabs_freed_total, snap.live_slabs);
    drop(pool);
});

/// One poll of the pool with the reader set to `next`; true at end of stream.
fn read(pool: &Arc<SlabPool>, reader: &mut Reader, model: &mut Model, next: Next, keep: Keep) -> bool {
    let before = pool.snapshot(Instant::now(), &allocator::registry::Index::take());
    let current = before.slabs.iter().find(|s| s.current).map(|s| (s.id, s.handed_out_bytes as usize));
    reader.next = next;
    let mut cx = Context::from_waker(Waker::noop());
    let view = match pool.poll_read(Pin::new(reader), &mut cx) {
        Poll::Pending => {
            assert!(matches!(next, Next::Pending(_)));
            return false;
        }
        Poll::Ready(Err(_)) => {
            assert!(matches!(next, Next::Fail(_)));
            return false;
        }
        Poll::Ready(Ok(None)) => {
            assert_eq!(reader.pos, reader.data.len(), "end of stream only at the end");
            return true;
        }
        Poll::Ready(Ok(Some(view))) => view,
    };
    let n = view.len();
    assert!(n >= 1 && n <= model.read_size, "a read of {n} bytes (read size {})", model.read_size);
    let expected = &reader.data[model.bytes..model.bytes + n];
    assert_eq!(&view[..], expected, "the bytes read back are the input");
    let slab = view.slab_id();
    match current {
        Some((id, _)) if id == slab => {}
        // A new slab is made only when the current one cannot fit a read
        // (it may have been made by a poll that then was pending or failed).
        Some((id, handed_out)) => {
            assert!(slab > id, "slab {slab} after {id}");
            assert!(model.slab_size - handed_out < model.read_size, "slab {id} had room");
        }
        None => {}
    }
    assert!(slab >= 1);
    *model.handed_out.entry(slab).or_default() += n;
    model.reads += 1;
    model.bytes += n;
    let (holder, expected) = match keep {
        Keep::Nothing => return false,
        Keep::View => (Holder::View(view), expected.to_vec()),
        // Empty slices too (`from == to`, at either end): an empty view still holds
        // its read's region referenced, as any view does.
        Keep::Slice { from, to } => {
            let from = from as usize % (n + 1);
            let to = from + to as usize % (n - from + 1);
            (Holder::Slice(view.slice(from..to)), expected[from..to].to_vec())
        }
        Keep::Retained { connection } => {
            (Holder::Retained(view.retain(connection as u64, "fuzz")), expected.to_vec())
        }
    };
    model.kept.push(Kept { slab, len: n, expected, holder });
    false
}

/// The pool's snapshot against the model.
fn check(pool: &SlabPool, model: &Model) {
    let snap = pool.snapshot(Instant::now(), &allocator::registry::Index::take());
    assert_eq!(snap.slab_size as usize, model.slab_size);
    assert_eq!(snap.read_size as usize, model.read_size);
    assert_eq!(snap.live_slabs as usize, snap.slabs.len());
    assert_eq!(snap.slabs_allocated_total - snap.slabs_freed_total, snap.live_slabs);
    assert_eq!(snap.retained_bytes, snap.live_slabs * model.slab_size as u64);
    assert_eq!(snap.reads_total, model.reads);
    assert_eq!(snap.bytes_read_total as usize, model.bytes);
    assert!(snap.slabs.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    let currents: Vec<_> = snap.slabs.iter().filter(|s| s.current).collect();
    if snap.slabs_allocated_total > 0 {
        assert_eq!(currents.len(), 1, "one current slab");
        assert_eq!(currents[0].id, snap.slabs_allocated_total, "the newest is current");
    } else {
        assert!(currents.is_empty());
    }

    // Per slab: what the model's kept views say.
    let mut used: BTreeMap<u64, (u64, u64, usize, u64)> = BTreeMap::new();
    for k in &model.kept {
        let e = used.entry(k.slab).or_default();
        e.0 += k.len as u64;
        e.1 += 1;
        if let Holder::Retained(_) = k.holder {
            e.2 += 1;
            e.3 += k.bytes().len() as u64;
        }
        assert_eq!(k.bytes(), &k.expected[..], "a kept view changed");
    }
    for slab in &snap.slabs {
        assert_eq!(slab.size as usize, model.slab_size);
        let handed_out = model.handed_out.get(&slab.id).copied().unwrap_or(0);
        assert_eq!(slab.handed_out_bytes as usize, handed_out, "slab {}", slab.id);
        assert!(slab.handed_out_bytes <= slab.size);
        assert!(slab.referenced_bytes <= slab.handed_out_bytes);
        let (referenced, views, retainers, retained) = used.get(&slab.id).copied().unwrap_or_default();
        assert_eq!(slab.referenced_bytes, referenced, "slab {}", slab.id);
        assert_eq!(slab.views, views, "slab {}", slab.id);
        assert_eq!(slab.retainers.len(), retainers, "slab {}", slab.id);
        assert_eq!(slab.retainers.iter().map(|r| r.bytes).sum::<u64>(), retained);
        if !slab.current {
            assert!(views > 0, "slab {} is alive with no view", slab.id);
        }
    }
    for id in used.keys() {
        assert!(snap.slabs.iter().any(|s| s.id == *id), "slab {id} has views but is gone");
    }
    assert_eq!(snap.referenced_bytes, used.values().map(|u| u.0).sum::<u64>());
}
