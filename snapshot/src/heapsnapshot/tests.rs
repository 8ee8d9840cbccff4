//! Tests of the `.heapsnapshot` writer: the file read back as DevTools reads it
//! (fields by name, edges owned in node order, `to_node` as offsets), its sizes,
//! retainers and ids. DevTools' and memlab's own readers load the servers' files in
//! the e2e package (`e2e/tests/heapsnapshot.rs`).

use super::*;
use crate::*;
use serde_json::Value;

/// One node as read back.
#[derive(Debug, Clone)]
struct N {
    ty: String,
    name: String,
    id: u64,
    size: u64,
    /// (edge type, edge name or index, target node number)
    edges: Vec<(String, String, usize)>,
}

/// Reads a file the way DevTools does: the meta's field lists give the layout.
fn read(bytes: &[u8]) -> Vec<N> {
    let v: Value = serde_json::from_slice(bytes).expect("the file is JSON");
    let text = std::str::from_utf8(bytes).unwrap();
    let keys = [
        "snapshot",
        "nodes",
        "edges",
        "trace_function_infos",
        "trace_tree",
        "samples",
        "locations",
        "strings",
    ];
    let at_key: Vec<usize> = keys
        .iter()
        .map(|k| text.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(
        at_key.windows(2).all(|w| w[0] < w[1]),
        "DevTools reads the sections in V8's order"
    );
    assert_eq!(v.as_object().unwrap().len(), keys.len());
    let meta = &v["snapshot"]["meta"];
    let fields: Vec<&str> = meta["node_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let at = |name: &str| fields.iter().position(|f| *f == name).unwrap();
    let node_types: Vec<&str> = meta["node_types"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let edge_types: Vec<&str> = meta["edge_types"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let strings: Vec<&str> = v["strings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let nodes: Vec<u64> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    let edges: Vec<u64> = v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    let width = fields.len();
    assert_eq!(nodes.len() % width, 0);
    let count = nodes.len() / width;
    assert_eq!(v["snapshot"]["node_count"].as_u64(), Some(count as u64));
    assert_eq!(
        v["snapshot"]["edge_count"].as_u64(),
        Some(edges.len() as u64 / 3)
    );
    assert!(
        nodes.iter().chain(&edges).all(|n| *n < 1 << 32),
        "every number is a 32-bit unsigned integer"
    );
    let mut out = Vec::new();
    let mut e = 0;
    for i in 0..count {
        let f = |name: &str| nodes[i * width + at(name)];
        let mut own = Vec::new();
        for _ in 0..f("edge_count") {
            let ty = edge_types[edges[e] as usize].to_string();
            let name = match ty.as_str() {
                "element" | "hidden" => edges[e + 1].to_string(),
                _ => strings[edges[e + 1] as usize].to_string(),
            };
            let to = edges[e + 2] as usize;
            assert_eq!(to % width, 0, "to_node is a node's offset");
            assert!(to / width < count);
            own.push((ty, name, to / width));
            e += 3;
        }
        out.push(N {
            ty: node_types[f("type") as usize].to_string(),
            name: strings[f("name") as usize].to_string(),
            id: f("id"),
            size: f("self_size"),
            edges: own,
        });
    }
    assert_eq!(e, edges.len(), "each node owns the next edge_count edges");
    out
}

/// The nodes whose edges (not weak) lead to `node`, with the edge's name.
fn retainers(nodes: &[N], node: usize) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for (ty, name, to) in &n.edges {
            if *to == node && ty != "weak" {
                found.push((i, name.clone()));
            }
        }
    }
    found
}

fn of_class<'a>(nodes: &'a [N], class: &str) -> Vec<(usize, &'a N)> {
    nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.name == class && n.ty != "string")
        .collect()
}

#[test]
fn the_graph_holds_the_snapshots_figures() {
    let snap = synthetic_proxy(5);
    let bytes = to_vec(&snap);
    let mut counted = Vec::new();
    let written = write(&snap, &mut counted).unwrap();
    assert_eq!(counted, bytes);
    assert_eq!(written.bytes, bytes.len() as u64);
    let nodes = read(&bytes);
    assert_eq!(written.nodes, nodes.len() as u64);

    // The root first, then Process.
    assert_eq!(nodes[0].ty, "synthetic");
    assert_eq!(nodes[0].edges, vec![("element".into(), "1".into(), 1)]);
    assert_eq!(nodes[1].name, "Process");

    // The file's total is the allocator's allocated bytes.
    let total: u64 = nodes.iter().map(|n| n.size).sum();
    assert_eq!(Some(total), snap.process.allocator.allocated_bytes);
    assert_eq!(written.total_size, total);
    let unattributed = of_class(&nodes, "(unattributed)");
    assert_eq!(unattributed.len(), 1);
    assert_eq!(Some(unattributed[0].1.size), written.unattributed);
    assert!(written.unattributed.unwrap() > 0);

    // Slabs: as many and as large as the live slabs; the pool holds them weakly, the
    // current one strongly; each is kept by its connection's request and head.
    let slabs = of_class(&nodes, "Slab");
    assert_eq!(slabs.len() as u64, snap.totals.live_slabs);
    assert_eq!(
        slabs.iter().map(|(_, n)| n.size).sum::<u64>(),
        snap.totals.retained_bytes
    );
    assert!(slabs.iter().all(|(_, n)| n.ty == "native"));
    let pool = of_class(&nodes, "SlabPool")[0].0;
    for (i, slab) in &snap.pools[0].slabs.iter().enumerate().collect::<Vec<_>>() {
        let node = slabs[*i].0;
        let from_pool: Vec<_> = nodes[pool].edges.iter().filter(|e| e.2 == node).collect();
        assert_eq!(from_pool.len(), 1);
        let expected = if slab.current { "property" } else { "weak" };
        assert_eq!(from_pool[0].0, expected, "slab {}", slab.id);
        let mut held: Vec<String> = retainers(&nodes, node)
            .into_iter()
            .filter(|(from, _)| *from != pool)
            .map(|(from, name)| format!("{} {name}", nodes[from].name))
            .collect();
        held.sort();
        let c = slab.retainers[0].connection;
        assert_eq!(
            held,
            [
                format!("UpgradeHead upgrade head of connection {c}"),
                format!("UpgradeRequest upgrade request of connection {c}"),
            ]
        );
        // ...and each part by its connection.
        for (from, _) in retainers(&nodes, node) {
            if from == pool {
                continue;
            }
            let owners = retainers(&nodes, from);
            assert_eq!(owners.len(), 1);
            let owner = &nodes[owners[0].0];
            assert_eq!(owner.name, "Connection");
            assert_eq!(owner.id as u32, connection_node_id(c));
            assert_eq!(
                nodes[from].size,
                if nodes[from].name == "UpgradeHead" {
                    20
                } else {
                    580
                }
            );
        }
    }
    // The slabs' own allocations are the slabs, not extra Allocation nodes.
    assert!(of_class(&nodes, "Allocation").is_empty());

    // Connections: one each, its own size, its peer, mode and age as properties.
    let conns = of_class(&nodes, "Connection");
    assert_eq!(conns.len(), 5);
    for (_, c) in &conns {
        assert_eq!(c.size, 1112);
        let props: Vec<String> = c
            .edges
            .iter()
            .filter(|e| nodes[e.2].ty == "string")
            .map(|e| format!("{}={}", e.1, nodes[e.2].name))
            .collect();
        assert!(
            props.iter().any(|p| p.starts_with("peer=127.0.0.1:")),
            "{props:?}"
        );
        assert!(props.contains(&"head_mode=retain".to_string()), "{props:?}");
        assert!(props.iter().any(|p| p.starts_with("age=")), "{props:?}");
    }
}

#[test]
fn ids_are_odd_unique_and_stable_across_snapshots() {
    let before = synthetic_proxy(6);
    let mut after = before.clone();
    // Connection 2 closes: its slab is freed; the others age.
    after.connections.list.retain(|c| c.id != 2);
    after.pools[0].slabs.retain(|s| s.id != 2);
    for c in &mut after.connections.list {
        c.age_ms += 5000;
    }
    for s in &mut after.pools[0].slabs {
        s.age_ms += 5000;
    }
    after
        .pinned_allocations
        .allocations
        .retain(|a| a.id != 1002);
    let a = read(&to_vec(&before));
    let b = read(&to_vec(&after));
    for nodes in [&a, &b] {
        let ids: HashSet<u64> = nodes.iter().map(|n| n.id).collect();
        assert_eq!(ids.len(), nodes.len(), "ids are unique");
        assert!(nodes.iter().all(|n| n.id % 2 == 1), "ids are odd");
    }
    let by_id = |nodes: &[N]| -> HashMap<u64, (String, String)> {
        nodes
            .iter()
            .map(|n| (n.id, (n.ty.clone(), n.name.clone())))
            .collect()
    };
    let (ia, ib) = (by_id(&a), by_id(&b));
    // Every object of the second is the same object in the first, except strings
    // whose value changed (an age) under the same id.
    for (id, (ty, name)) in &ib {
        match ia.get(id) {
            Some((ty0, name0)) => {
                assert_eq!(ty0, ty);
                if ty != "string" {
                    assert_eq!(name0, name, "id {id}");
                }
            }
            None => panic!("id {id} ({ty} {name}) is new"),
        }
    }
    // What went away: slab 2, connection 2 and its parts and strings.
    let gone: Vec<&(String, String)> = ia
        .iter()
        .filter(|(id, _)| !ib.contains_key(id))
        .map(|(_, v)| v)
        .collect();
    let classes = |class: &str| gone.iter().filter(|(_, n)| n == class).count();
    assert_eq!(classes("Slab"), 1);
    assert_eq!(classes("Connection"), 1);
    assert_eq!(classes("UpgradeRequest") + classes("UpgradeHead"), 2);
    assert!(ia.contains_key(&(slab_node_id(1, 2) as u64)));
    assert!(!ib.contains_key(&(slab_node_id(1, 2) as u64)));
}

/// The warp stack: header values and first messages kept in hyper's and
/// tungstenite's buffers, as `Allocation` nodes.
#[test]
fn pinned_allocations_are_allocations_held_by_their_parts() {
    let mut snap = synthetic_proxy(0);
    snap.pools.clear();
    snap.settings.stack = Some(Stack::Warp);
    let kept = |c: u64, part: &str, bytes: u64| Retainer::new(c, part, bytes);
    snap.pinned_allocations.allocations = vec![
        PinnedAllocation {
            id: 77,
            size: 8192,
            age_ms: 3000,
            kept_bytes: 30,
            kept: vec![kept(9, "header host", 14), kept(9, "header user-agent", 16)],
        },
        PinnedAllocation {
            id: 78,
            size: 131072,
            age_ms: 2900,
            kept_bytes: 100,
            kept: vec![kept(9, "first message", 100)],
        },
    ];
    snap.connections.list = vec![OpenConnection {
        id: 9,
        peer: None,
        head_mode: Some(HeadMode::Retain),
        age_ms: 3000,
        own_bytes: 900,
    }];
    snap.process.allocator.allocated_bytes = Some(500_000);
    let nodes = read(&to_vec(&snap));
    let allocations = of_class(&nodes, "Allocation");
    assert_eq!(allocations.len(), 2);
    let header_buffer = allocations.iter().find(|(_, n)| n.size == 8192).unwrap().0;
    let mut held: Vec<String> = retainers(&nodes, header_buffer)
        .into_iter()
        .map(|(from, name)| format!("{} {name}", nodes[from].name))
        .collect();
    held.sort();
    assert_eq!(
        held,
        [
            "HeaderValue header host of connection 9",
            "HeaderValue header user-agent of connection 9"
        ]
    );
    let message_buffer = allocations
        .iter()
        .find(|(_, n)| n.size == 131072)
        .unwrap()
        .0;
    let held = retainers(&nodes, message_buffer);
    assert_eq!(nodes[held[0].0].name, "Message");
    let total: u64 = nodes.iter().map(|n| n.size).sum();
    assert_eq!(total, 500_000);
}

/// At 8,000 connections, each pinning a slab of its own, the file stays under 5 MB
/// (the time it takes is measured in release by `examples/heapsnapshot_bench.rs`).
#[test]
fn eight_thousand_connections_fit_in_five_megabytes() {
    let snap = synthetic_proxy(8000);
    let mut sink = io::sink();
    let written = write(&snap, &mut sink).unwrap();
    eprintln!("8000 connections: {written:?}");
    assert!(written.bytes < 5_000_000, "{} bytes", written.bytes);
    assert_eq!(
        Some(written.total_size),
        snap.process.allocator.allocated_bytes
    );
}

/// Unreadable allocated bytes: no `(unattributed)` node, the total is what the graph
/// attributes, and `Process` says why in DevTools.
#[test]
fn unreadable_allocated_bytes_leave_out_unattributed_and_say_why() {
    let readable = synthetic_proxy(5);
    let mut snap = readable.clone();
    snap.process.allocator.allocated_bytes = None;
    snap.process.unreadable = vec![Unreadable {
        figure: figure::ALLOCATED.into(),
        reason: "jemalloc stats.allocated: Invalid argument".into(),
    }];
    let bytes = to_vec(&snap);
    let written = write(&snap, &mut Vec::new()).unwrap();
    let nodes = read(&bytes);
    assert!(of_class(&nodes, "(unattributed)").is_empty());
    assert_eq!(written.unattributed, None);
    let total: u64 = nodes.iter().map(|n| n.size).sum();
    assert_eq!(written.total_size, total);
    // Everything else is the readable file's graph, so the total is its attributed part.
    let with = write(&readable, &mut Vec::new()).unwrap();
    assert_eq!(total, with.total_size - with.unattributed.unwrap());
    let said: Vec<&str> = nodes[1]
        .edges
        .iter()
        .filter(|(_, name, _)| name == "allocated_bytes")
        .map(|(_, _, to)| nodes[*to].name.as_str())
        .collect();
    assert_eq!(
        said,
        ["unreadable: jemalloc stats.allocated: Invalid argument"]
    );
}

#[test]
fn strings_are_escaped_and_ages_readable() {
    let mut snap = synthetic_proxy(1);
    snap.connections.list[0].peer = Some("a\"b\\c\n\u{1}é".into());
    let nodes = read(&to_vec(&snap));
    assert!(nodes.iter().any(|n| n.name == "a\"b\\c\n\u{1}é"));
    assert_eq!(age(850), "850 ms");
    assert_eq!(age(12_345), "12.3 s");
    assert_eq!(age(245_000), "4 min 05 s");
    assert_eq!(age(7_380_000), "2 h 03 min");
    assert_eq!(file_name(&snap), "proxy-1750000000000.heapsnapshot");
}
