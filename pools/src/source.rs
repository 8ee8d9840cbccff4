//! Where socket reads come from: anything async-readable, whose bytes land in the pool
//! as they are read, or a TLS session, whose decrypted bytes the pool receives.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncRead;

use super::{SlabPool, SlabView};

/// A source of bytes read through a [`SlabPool`].
pub trait ReadViews {
    /// Reads once through `pool`, appending the views of what arrived to `out`;
    /// `Ok(false)` at end of stream. A read may bring no view at all (TLS records
    /// that carried no application data): call again.
    fn poll_read_views(
        &mut self,
        cx: &mut Context<'_>,
        pool: &SlabPool,
        out: &mut impl Extend<SlabView>,
    ) -> Poll<io::Result<bool>>;
}

impl<R: AsyncRead + Unpin + ?Sized> ReadViews for R {
    fn poll_read_views(
        &mut self,
        cx: &mut Context<'_>,
        pool: &SlabPool,
        out: &mut impl Extend<SlabView>,
    ) -> Poll<io::Result<bool>> {
        pool.poll_read(Pin::new(self), cx)
            .map_ok(|view| match view {
                Some(view) => {
                    out.extend(Some(view));
                    true
                }
                None => false,
            })
    }
}

/// Reads once from `source` through `pool` (see [`ReadViews::poll_read_views`]).
pub async fn read_views<S: ReadViews + ?Sized>(
    source: &mut S,
    pool: &SlabPool,
    out: &mut impl Extend<SlabView>,
) -> io::Result<bool> {
    poll_fn(|cx| source.poll_read_views(cx, pool, out)).await
}
