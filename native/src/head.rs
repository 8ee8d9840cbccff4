//! What a connection keeps of its upgrade request for its whole life.
//!
//! The upgrade request and the `head` (bytes that arrived after its headers) are
//! slab views. `retain` keeps those views (the seed's bug: each pins its slab),
//! `copy` keeps an owned copy (the module-level fix), `drop` keeps nothing (the
//! core-level fix).

use bytes::Bytes;
use snapshot::HeadMode;

use crate::http::RequestHead;
use crate::slab::Retained;

/// Part names, as the snapshot's retainers show them.
pub const PART_REQUEST: &str = "upgrade request";
pub const PART_HEAD: &str = "upgrade head";

/// What one connection keeps.
pub enum KeptHead {
    /// The slab views themselves.
    Retained(Vec<Retained>),
    /// An owned copy of the request and head.
    Copied(Bytes),
    /// Nothing.
    Nothing,
}

impl KeptHead {
    /// Keeps `request` for `connection` as `mode` says.
    pub fn keep(mode: HeadMode, connection: u64, request: &RequestHead) -> KeptHead {
        match mode {
            HeadMode::Retain => {
                let mut kept = Vec::with_capacity(request.chunks.len() + 1);
                let mut start = 0;
                for chunk in &request.chunks {
                    let end = start + chunk.len();
                    let split = request.header_len.clamp(start, end) - start;
                    if split > 0 {
                        kept.push(chunk.slice(..split).retain(connection, PART_REQUEST));
                    }
                    if split < chunk.len() {
                        kept.push(chunk.slice(split..).retain(connection, PART_HEAD));
                    }
                    start = end;
                }
                KeptHead::Retained(kept)
            }
            HeadMode::Copy => {
                let mut copy = Vec::with_capacity(request.len());
                for chunk in &request.chunks {
                    copy.extend_from_slice(chunk);
                }
                KeptHead::Copied(Bytes::from(copy))
            }
            HeadMode::Drop => KeptHead::Nothing,
        }
    }

    /// Bytes kept (views or copy).
    pub fn len(&self) -> usize {
        match self {
            KeptHead::Retained(views) => views.iter().map(|r| r.view().len()).sum(),
            KeptHead::Copied(b) => b.len(),
            KeptHead::Nothing => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
