//! Times the `.heapsnapshot` writer on a synthetic proxy snapshot of 8,000 pinning
//! connections, each pinning a slab of its own (the largest file per connection):
//! `cargo run --release -p snapshot --example heapsnapshot_bench [CONNECTIONS]`.
//! docs/results/benchmarks.md records its figures.

use std::time::Instant;

fn main() {
    let connections: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("CONNECTIONS is a number"))
        .unwrap_or(8000);
    let snap = snapshot::heapsnapshot::synthetic_proxy(connections);
    let json = serde_json::to_vec(&snap).unwrap().len();
    let mut times = Vec::new();
    let mut written = None;
    for _ in 0..21 {
        let mut sink = std::io::sink();
        let start = Instant::now();
        written = Some(snapshot::heapsnapshot::write(&snap, &mut sink).unwrap());
        times.push(start.elapsed());
    }
    times.sort();
    let w = written.unwrap();
    println!(
        "{connections} connections: {} nodes, {} edges, {} strings; file {:.2} MB (the JSON snapshot: {:.2} MB); \
         write to a sink: min {:.1} ms, median {:.1} ms, max {:.1} ms over {} runs",
        w.nodes,
        w.edges,
        w.strings,
        w.bytes as f64 / 1e6,
        json as f64 / 1e6,
        times[0].as_secs_f64() * 1e3,
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        times.len()
    );
}
