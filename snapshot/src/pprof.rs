//! The snapshot as a pprof heap profile: gzip-compressed `profile.proto`, the file
//! `go tool pprof`, Grafana Pyroscope and Parca read.
//!
//! Built from one [`Snapshot`] and nothing else: one sample per retaining path of
//! [`crate::paths`], its stack the path's frames (pprof lists them leaf first, so
//! the slab or allocation is the sample's first location and the process its last),
//! its values `inuse_objects/count` and `inuse_space/bytes` (the default sample
//! type, so every view opens on bytes), and string labels `head_mode`, `stack`,
//! `pool` and `role` where they apply, plus a numeric `connection`.
//!
//! Each frame is a function named as the frame is (`connection 17`, `tcp slab`);
//! a slab's or allocation's location carries its id as the line number, so
//! `-top` adds up all the slabs of a pool into one entry while `-traces -lines`
//! still tells them apart. The profile's total is the paths' total: the
//! allocator's allocated bytes when readable (see [`crate::paths`]).
//!
//! The messages are declared here with prost's derive, field for field as in
//! pprof's published `profile.proto` (github.com/google/pprof, proto/profile.proto),
//! so no protobuf compiler is needed to build.

use std::collections::HashMap;
use std::io::{self, Write};

use prost::Message;

use crate::paths::{self, FrameKind};
use crate::Snapshot;

/// File name extension of a gzip-compressed profile.
pub const EXTENSION: &str = "pb.gz";

/// Content type of the file (protobuf, gzip-compressed).
pub const CONTENT_TYPE: &str = "application/octet-stream";

/// The name a download of `snap` gets: `<role>-<taken_at_ms>.pb.gz`.
pub fn file_name(snap: &Snapshot) -> String {
    format!("{}-{}.{EXTENSION}", snap.role, snap.taken_at_ms)
}

/// `profile.proto`'s messages, with its field numbers.
pub mod proto {
    /// `perftools.profiles.Profile`.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub mapping: Vec<Mapping>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "7")]
        pub drop_frames: i64,
        #[prost(int64, tag = "8")]
        pub keep_frames: i64,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
        #[prost(int64, repeated, tag = "13")]
        pub comment: Vec<i64>,
        #[prost(int64, tag = "14")]
        pub default_sample_type: i64,
    }

    /// `ValueType`: a type and a unit, as string table indexes.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    /// `Sample`: its stack (leaf first), its values, its labels.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    /// `Label`: a string (`str`) or a number (`num`, in `num_unit`).
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
        #[prost(int64, tag = "3")]
        pub num: i64,
        #[prost(int64, tag = "4")]
        pub num_unit: i64,
    }

    /// `Mapping`: a mapped binary.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Mapping {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub memory_start: u64,
        #[prost(uint64, tag = "3")]
        pub memory_limit: u64,
        #[prost(uint64, tag = "4")]
        pub file_offset: u64,
        #[prost(int64, tag = "5")]
        pub filename: i64,
        #[prost(int64, tag = "6")]
        pub build_id: i64,
        #[prost(bool, tag = "7")]
        pub has_functions: bool,
        #[prost(bool, tag = "8")]
        pub has_filenames: bool,
        #[prost(bool, tag = "9")]
        pub has_line_numbers: bool,
        #[prost(bool, tag = "10")]
        pub has_inline_frames: bool,
    }

    /// `Location`: one frame of a stack.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub mapping_id: u64,
        #[prost(uint64, tag = "3")]
        pub address: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
        #[prost(bool, tag = "5")]
        pub is_folded: bool,
    }

    /// `Line`: a function and a line in it.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
    }

    /// `Function`: names as string table indexes.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
        #[prost(int64, tag = "5")]
        pub start_line: i64,
    }
}

/// The string table, `""` first as the format requires.
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Strings {
        let mut s = Strings {
            table: Vec::new(),
            index: HashMap::new(),
        };
        s.get("");
        s
    }

    fn get(&mut self, s: &str) -> i64 {
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

/// The profile of `snap`, not yet encoded.
pub fn profile(snap: &Snapshot) -> proto::Profile {
    let paths = paths::of(snap);
    let mut strings = Strings::new();
    let objects = proto::ValueType {
        r#type: strings.get("inuse_objects"),
        unit: strings.get("count"),
    };
    let space = proto::ValueType {
        r#type: strings.get("inuse_space"),
        unit: strings.get("bytes"),
    };
    let file = strings.get(&format!("snapshot of {}", paths::process_name(snap)));
    let [k_mode, k_stack, k_pool, k_role, k_connection] =
        ["head_mode", "stack", "pool", "role", "connection"].map(|k| strings.get(k));
    let role = strings.get(&snap.role);
    let stack = snap.settings.stack.map(|s| strings.get(s.as_str()));

    let mut functions: Vec<proto::Function> = Vec::new();
    let mut function_ids: HashMap<String, u64> = HashMap::new();
    let mut locations: Vec<proto::Location> = Vec::new();
    let mut location_ids: HashMap<(u64, i64), u64> = HashMap::new();
    let mut samples = Vec::with_capacity(paths.paths.len());
    for path in &paths.paths {
        let mut location_id = Vec::with_capacity(path.frames.len());
        let mut connection = None;
        for frame in path.frames.iter().rev() {
            let function_id = *function_ids.entry(frame.name.clone()).or_insert_with(|| {
                let id = functions.len() as u64 + 1;
                let name = strings.get(&frame.name);
                functions.push(proto::Function {
                    id,
                    name,
                    system_name: name,
                    filename: file,
                    start_line: 0,
                });
                id
            });
            let line = match frame.kind {
                FrameKind::Slab | FrameKind::Allocation | FrameKind::Connection => {
                    frame.id.unwrap_or(0) as i64
                }
                _ => 0,
            };
            if frame.kind == FrameKind::Connection {
                connection = frame.id;
            }
            let id = *location_ids.entry((function_id, line)).or_insert_with(|| {
                let id = locations.len() as u64 + 1;
                locations.push(proto::Location {
                    id,
                    mapping_id: 1,
                    address: 0,
                    line: vec![proto::Line { function_id, line }],
                    is_folded: false,
                });
                id
            });
            location_id.push(id);
        }
        let text = |key: i64, value: i64| proto::Label {
            key,
            str: value,
            num: 0,
            num_unit: 0,
        };
        let mut label = vec![text(k_role, role)];
        if let Some(stack) = stack {
            label.push(text(k_stack, stack));
        }
        if let Some(mode) = path.head_mode {
            label.push(text(k_mode, strings.get(mode.as_str())));
        }
        if let Some(pool) = &path.pool {
            label.push(text(k_pool, strings.get(pool)));
        }
        if let Some(c) = connection {
            label.push(proto::Label {
                key: k_connection,
                str: 0,
                num: c as i64,
                num_unit: 0,
            });
        }
        samples.push(proto::Sample {
            location_id,
            value: vec![path.objects as i64, path.bytes as i64],
            label,
        });
    }

    let mut comment = vec![strings.get(&format!(
        "{} pid {}: retained bytes by retaining path, {} bytes in all",
        snap.role, snap.process.pid, paths.total_bytes
    ))];
    comment.push(strings.get(match paths.unattributed {
        Some(_) => "total = the allocator's allocated_bytes; (unattributed) is what no path names",
        None => "allocated_bytes unreadable: the total is what the paths attribute",
    }));
    let mapping = proto::Mapping {
        id: 1,
        memory_start: 0,
        memory_limit: 0,
        file_offset: 0,
        filename: strings.get(&snap.role),
        build_id: 0,
        has_functions: true,
        has_filenames: true,
        has_line_numbers: true,
        has_inline_frames: false,
    };
    let default_sample_type = space.r#type;
    proto::Profile {
        sample_type: vec![objects, space.clone()],
        sample: samples,
        mapping: vec![mapping],
        location: locations,
        function: functions,
        drop_frames: 0,
        keep_frames: 0,
        time_nanos: (snap.taken_at_ms as i64).saturating_mul(1_000_000),
        duration_nanos: (snap.took_us as i64).saturating_mul(1_000),
        period_type: Some(space),
        period: 1,
        comment,
        default_sample_type,
        string_table: strings.table,
    }
}

/// Writes `snap` as a gzip-compressed profile to `out`; returns the bytes written.
pub fn write<W: Write>(snap: &Snapshot, out: W) -> io::Result<u64> {
    let encoded = profile(snap).encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Counting(out, 0), flate2::Compression::default());
    gz.write_all(&encoded)?;
    let Counting(_, written) = gz.finish()?;
    Ok(written)
}

/// The whole file in memory.
pub fn to_vec(snap: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    write(snap, &mut out).expect("writing to a Vec does not fail");
    out
}

/// Reads a gzip-compressed profile back (the servers' files, in tests and tools).
pub fn read(gzipped: &[u8]) -> io::Result<proto::Profile> {
    let mut raw = Vec::new();
    io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gzipped), &mut raw)?;
    proto::Profile::decode(raw.as_slice())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Counts what passes through to the writer.
struct Counting<W>(W, u64);

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1 += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests;
