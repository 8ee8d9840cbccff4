//! The servers' Chrome heap snapshots, read by what users open them in.
//!
//! The real wss and TLS proxy run the accelerated seed scenario in `retain` (on the
//! slab stack the wss in `copy`, so that its copies pin the chunks of Node's
//! small-Buffer pool, the third pool, between short-lived small messages); their
//! `GET /snapshot?format=heapsnapshot` files are loaded into the DevTools heap
//! snapshot code that ships inside Debian's chromium (served on its
//! `--remote-debugging-port`, driven over the DevTools protocol): the same
//! `HeapSnapshotLoader`, `JSHeapSnapshot`, dominators, Retainers and Comparison
//! that the Memory panel shows. The test asserts what that panel would show against
//! the JSON snapshots the same servers serve, then loads one file in memlab, a
//! second, independent reader. Nothing is computed from a formula: every expected
//! figure comes from the servers' own JSON snapshots.

use e2e::chromium::DevTools;
use e2e::{repo_root, target_dir};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use runtime::config::Config;
use runtime::server::Running;
use runtime::shutdown::Shutdown;
use serde_json::{json, Value};
use snapshot::heapsnapshot::{connection_node_id, pool_slot, slab_node_id};
use snapshot::{HeadMode, Snapshot, Stack};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

/// Upper bound of every wait.
const BOUND: Duration = Duration::from_secs(30);
/// Pinning websockets in the scenario.
const PINNING: usize = 5;

/// The servers run inside this test process, so the allocator's figures they
/// report are the whole process's: one stack's test at a time, or the other's
/// files and servers move the total [`check_total`] compares.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until `check` holds, polling every 50 ms, for at most [`BOUND`].
async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    testkit::expect(what, BOUND, testkit::POLL, check).await
}

// ---- chromium and the DevTools heap snapshot code inside it ----

/// What the page runs: DevTools' own loader and snapshot, and what the Memory
/// panel's Summary, Retainers and Comparison views ask of them.
const HARNESS: &str = r#"
window.H = {
  snaps: {},
  async load(name, text) {
    const W = await import('/devtools/entrypoints/heap_snapshot_worker/heap_snapshot_worker.js');
    const loader = new W.HeapSnapshotLoader.HeapSnapshotLoader();
    for (let i = 0; i < text.length; i += 65536) loader.write(text.slice(i, i + 65536));
    loader.close();
    const channel = new MessageChannel();
    new W.HeapSnapshot.SecondaryInitManager(channel.port2);
    const s = await loader.buildSnapshot(channel.port1);
    this.snaps[name] = s;
    return this.view(s);
  },
  retainers(s, index) {
    return s.createRetainingEdgesProvider(index).serializeItemsRange(0, 100000).items;
  },
  view(s) {
    const agg = s.aggregatesWithFilter({});
    const summary = {};
    for (const k in agg) {
      const a = agg[k];
      summary[a.name] = {count: a.count, self: a.self};
    }
    const objects = [];
    for (const a of Object.values(agg)) {
      if (!['Slab', 'Allocation', 'Connection'].includes(a.name)) continue;
      for (const index of a.idxs) {
        const n = s.createNode(index);
        const d = s.createNode(n.dominatorIndex());
        objects.push({
          class: a.name, id: n.id(), self: n.selfSize(), retained: n.retainedSize(),
          dominator: {name: d.name(), id: d.id()},
          retainers: this.retainers(s, index).map(e => ({
            edge: String(e.name), type: e.type, name: e.node.name, id: e.node.id,
            retainers: this.retainers(s, e.node.nodeIndex).map(f => ({
              edge: String(f.name), type: f.type, name: f.node.name, id: f.node.id,
            })),
          })),
        });
      }
    }
    return {total: s.totalSize, nodes: s.nodeCount, summary, objects};
  },
  diff(before, after) {
    const a = this.snaps[before], b = this.snaps[after];
    const d = b.calculateSnapshotDiff(before, a.aggregatesForDiff(b.interfaceDefinitions()));
    const out = {};
    for (const k in d) {
      const c = d[k];
      out[c.name] = {added: c.addedCount, removed: c.removedCount, added_size: c.addedSize,
                     removed_size: c.removedSize, deleted_ids: c.deletedIds, added_ids: c.addedIds};
    }
    return out;
  },
};
true
"#;

/// Starts chromium's DevTools page with [`HARNESS`] in it.
async fn devtools() -> DevTools {
    let mut c = DevTools::start(BOUND).await;
    assert_eq!(c.eval(HARNESS).await, json!(true));
    c
}

/// Loads a file's text into DevTools' heap snapshot code as `name`: what the
/// Memory panel shows of it.
async fn load(c: &mut DevTools, name: &str, text: &str) -> Loaded {
    let expr = format!(
        "H.load({}, {})",
        serde_json::to_string(name).unwrap(),
        serde_json::to_string(text).unwrap()
    );
    let v = c.eval(&expr).await;
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

/// The Comparison view of `after` against `before`, by class.
async fn diff(c: &mut DevTools, before: &str, after: &str) -> HashMap<String, ClassDiff> {
    let v = c.eval(&format!("H.diff({before:?}, {after:?})")).await;
    serde_json::from_value(v).unwrap()
}

#[derive(Debug, serde::Deserialize)]
struct Loaded {
    total: u64,
    nodes: u64,
    summary: HashMap<String, Aggregate>,
    objects: Vec<Object>,
}

#[derive(Debug, serde::Deserialize)]
struct Aggregate {
    count: u64,
    #[serde(rename = "self")]
    self_size: u64,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct Object {
    class: String,
    id: u64,
    #[serde(rename = "self")]
    self_size: u64,
    retained: u64,
    dominator: Named,
    retainers: Vec<Retainer>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct Named {
    name: String,
    id: u64,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct Retainer {
    edge: String,
    name: String,
    id: u64,
    #[serde(default)]
    retainers: Vec<Retainer>,
}

#[derive(Debug, serde::Deserialize)]
struct ClassDiff {
    added: u64,
    removed: u64,
    added_size: u64,
    removed_size: u64,
    deleted_ids: Vec<u64>,
    added_ids: Vec<u64>,
}

impl Loaded {
    fn object(&self, class: &str, id: u32) -> &Object {
        self.objects
            .iter()
            .find(|o| o.class == class && o.id == id as u64)
            .unwrap_or_else(|| panic!("no {class} @{id} in DevTools' view"))
    }
}

// ---- the servers and the scenario ----

struct Servers {
    config: Config,
    wss: Running,
    proxy: Running,
    shutdown: Shutdown,
    _dir: tempfile::TempDir,
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// The accelerated seed scenario's servers (small slabs), both in `retain` on `stack`.
async fn start(stack: Stack) -> Servers {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        tcp_slab_size: 64 << 10,
        tls_slab_size: 128 << 10,
        read_size: 4 << 10,
        wss_echo: true,
        // On the slab stack the wss copies (pooled): its copies pin the small-Buffer
        // pool's chunks, the third pool, while the proxy's views pin TLS slabs.
        wss_head: match stack {
            Stack::Slab => HeadMode::Copy,
            _ => HeadMode::Retain,
        },
        proxy_head: HeadMode::Retain,
        wss_stack: stack,
        proxy_stack: stack,
        ..testkit::ephemeral_config(dir.path())
    };
    let shutdown = Shutdown::new();
    let wss = native::wss::start(&config, &shutdown).await.unwrap();
    config.proxy_target.port = wss.addr.port();
    let proxy = native::proxy::start(&config, &shutdown).await.unwrap();
    config.proxy_port = proxy.addr.port();
    Servers {
        config,
        wss,
        proxy,
        shutdown,
        _dir: dir,
    }
}

impl Servers {
    async fn open(&self) -> client::WsStream {
        let tls = runtime::tls::client_config(&self.config).unwrap();
        let mut ws = client::open_websocket(&self.config, Some(&tls))
            .await
            .unwrap();
        // The wss's greeting: the websocket is open end to end.
        let hello = tokio::time::timeout(BOUND, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(hello.to_text().unwrap().starts_with("hello from wss"));
        ws
    }

    /// The seed's scenario: the data connection sends more than a TLS slab between
    /// two pinning connections (slab stack), or each pinning connection sends its
    /// first message (warp stack, where tungstenite's read buffer keeps it).
    async fn pin(&self, stack: Stack) -> Vec<client::WsStream> {
        let mut pinning = Vec::new();
        match stack {
            Stack::Slab => {
                let mut data = self.open().await;
                let burst = vec![0xAB; 160 << 10];
                for _ in 0..PINNING {
                    pinning.push(self.open().await);
                    data.send(Message::binary(burst.clone())).await.unwrap();
                    let echo = tokio::time::timeout(BOUND, data.next())
                        .await
                        .unwrap()
                        .unwrap()
                        .unwrap();
                    assert_eq!(echo.len(), burst.len());
                    // Small messages: short-lived pooled buffers that move the wss's
                    // buffer pool past the copy just made.
                    for _ in 0..3 {
                        data.send(Message::binary(vec![0xCD; 3000])).await.unwrap();
                        let echo = tokio::time::timeout(BOUND, data.next()).await.unwrap();
                        assert_eq!(echo.unwrap().unwrap().len(), 3000);
                    }
                }
                data.close(None).await.unwrap();
            }
            Stack::Warp | Stack::Socketio => {
                for i in 0..PINNING {
                    let mut ws = self.open().await;
                    ws.send(Message::text(format!("first message {i}")))
                        .await
                        .unwrap();
                    let echo = tokio::time::timeout(BOUND, ws.next())
                        .await
                        .unwrap()
                        .unwrap()
                        .unwrap();
                    assert!(echo.to_text().unwrap().starts_with("first message"));
                    pinning.push(ws);
                }
            }
        }
        pinning
    }
}

/// A server's JSON snapshot and its `.heapsnapshot` taken between two JSON
/// snapshots that agree on every slab, allocation and connection (so the file holds
/// the same objects as the JSON), retried until they do.
async fn take(server: &Running) -> (Snapshot, String) {
    let objects = |s: &Snapshot| {
        let slabs: Vec<_> = s
            .pools
            .iter()
            .flat_map(|p| {
                p.slabs
                    .iter()
                    .map(|sl| (p.name.clone(), sl.id, sl.retainers.len()))
            })
            .collect();
        let allocations: Vec<_> = s
            .pinned_allocations
            .allocations
            .iter()
            .map(|a| (a.id, a.kept.len()))
            .collect();
        let conns: Vec<_> = s.connections.list.iter().map(|c| c.id).collect();
        (slabs, allocations, conns)
    };
    let start = Instant::now();
    loop {
        let before = client::fetch::fetch(server.snapshot_addr).await.unwrap();
        let file = client::fetch::get(server.snapshot_addr, "/snapshot?format=heapsnapshot")
            .await
            .unwrap();
        let after = client::fetch::fetch(server.snapshot_addr).await.unwrap();
        if objects(&before) == objects(&after) {
            let json = serde_json::to_value(&after).unwrap();
            snapshot::validate(&json).unwrap_or_else(|e| panic!("{e:?}"));
            return (after, String::from_utf8(file.to_vec()).unwrap());
        }
        assert!(start.elapsed() < BOUND, "the server never held still");
    }
}

/// Who holds each slab strongly in the model: its connections (retainers) and the
/// pool (current, or no connection keeps it).
fn slab_holders(slab: &snapshot::Slab) -> BTreeSet<Option<u64>> {
    let mut holders: BTreeSet<Option<u64>> =
        slab.retainers.iter().map(|r| Some(r.connection)).collect();
    if slab.current || slab.retainers.is_empty() {
        holders.insert(None);
    }
    holders
}

/// Asserts DevTools' view of a slab-stack server's file against its JSON snapshot.
fn check_slabs(what: &str, snap: &Snapshot, view: &Loaded) {
    // Summary: the Slab class is the JSON's live slabs, count and bytes.
    let slabs = view
        .summary
        .get("Slab")
        .unwrap_or_else(|| panic!("{what}: no Slab class"));
    assert_eq!(slabs.count, snap.totals.live_slabs, "{what}: Slab count");
    assert_eq!(
        slabs.self_size, snap.totals.retained_bytes,
        "{what}: Slab size"
    );
    let mut pinned = 0;
    let mut labels = Vec::new();
    for (i, pool) in snap.pools.iter().enumerate() {
        let slot = pool_slot(&pool.name, i);
        for slab in &pool.slabs {
            let o = view.object("Slab", slab_node_id(slot, slab.id));
            assert_eq!(o.self_size, slab.size);
            // A slab dominates nothing of size: its retained size is its own.
            assert_eq!(o.retained, slab.size, "{what}: slab {} retained", slab.id);
            // Its dominator: the one part that keeps it, else the one connection
            // whose parts do, else the pool (current, or kept by reads only), else
            // Process (several holders).
            let holders = slab_holders(slab);
            let expected_dominator = match holders.iter().collect::<Vec<_>>().as_slice() {
                [Some(_)] if slab.retainers.len() == 1 => {
                    let class = snapshot::heapsnapshot::part_class(&slab.retainers[0].part);
                    (class.to_string(), 0)
                }
                [Some(c)] => ("Connection".to_string(), connection_node_id(*c) as u64),
                [None] => ("SlabPool".to_string(), 0),
                _ => ("Process".to_string(), 0),
            };
            assert_eq!(
                o.dominator.name, expected_dominator.0,
                "{what}: slab {} dominator",
                slab.id
            );
            if expected_dominator.1 != 0 {
                assert_eq!(o.dominator.id, expected_dominator.1);
            }
            if slab.retainers.is_empty() {
                continue;
            }
            pinned += 1;
            // Retainers pane: the upgrade request and head of its connections, each
            // named as the JSON's retainer, each kept by that connection.
            let mut shown: Vec<(String, String, u64)> = o
                .retainers
                .iter()
                .filter(|r| r.name != "SlabPool")
                .map(|r| {
                    assert_eq!(r.retainers.len(), 1, "{what}: {r:?}");
                    let owner = &r.retainers[0];
                    assert_eq!(owner.name, "Connection");
                    (r.name.clone(), r.edge.clone(), owner.id)
                })
                .collect();
            let mut expected: Vec<(String, String, u64)> = slab
                .retainers
                .iter()
                .map(|r| {
                    let class = snapshot::heapsnapshot::part_class(&r.part).to_string();
                    (
                        class,
                        r.label.to_string(),
                        connection_node_id(r.connection) as u64,
                    )
                })
                .collect();
            shown.sort();
            expected.sort();
            assert_eq!(shown, expected, "{what}: slab {} retainers", slab.id);
            labels.extend(
                shown
                    .into_iter()
                    .map(|(class, label, _)| format!("{class}: {label}")),
            );
        }
    }
    assert!(pinned >= PINNING, "{what}: {pinned} pinned slabs");
    assert!(
        labels
            .iter()
            .any(|l| l.starts_with("UpgradeRequest: upgrade request of connection ")),
        "{what}: {labels:?}"
    );
    // A connection's retained size: its own bytes, its kept parts, and the slabs
    // only it holds.
    for c in &snap.connections.list {
        let o = view.object("Connection", connection_node_id(c.id));
        assert_eq!(o.self_size, c.own_bytes);
        let parts: u64 = snap
            .pools
            .iter()
            .flat_map(|p| &p.slabs)
            .flat_map(|s| &s.retainers)
            .filter(|r| r.connection == c.id)
            .map(|r| r.bytes)
            .sum();
        let alone: u64 = snap
            .pools
            .iter()
            .flat_map(|p| &p.slabs)
            .filter(|s| slab_holders(s) == BTreeSet::from([Some(c.id)]))
            .map(|s| s.size)
            .sum();
        assert_eq!(
            o.retained,
            c.own_bytes + parts + alone,
            "{what}: connection {}",
            c.id
        );
    }
}

/// Asserts DevTools' view of a warp-stack server's file against its JSON snapshot.
fn check_allocations(what: &str, snap: &Snapshot, view: &Loaded) {
    let allocations = &snap.pinned_allocations.allocations;
    assert!(allocations.len() >= PINNING, "{what}: {allocations:?}");
    let class = view
        .summary
        .get("Allocation")
        .unwrap_or_else(|| panic!("{what}: no Allocation class"));
    assert_eq!(class.count, allocations.len() as u64);
    assert_eq!(class.self_size, snap.pinned_allocations.pinned_bytes);
    for a in allocations {
        let o = view.object(
            "Allocation",
            snapshot::heapsnapshot::allocation_node_id(a.id),
        );
        assert_eq!((o.self_size, o.retained), (a.size, a.size));
        let mut shown: Vec<(String, String, u64)> = o
            .retainers
            .iter()
            .map(|r| (r.name.clone(), r.edge.clone(), r.retainers[0].id))
            .collect();
        let mut expected: Vec<(String, String, u64)> = a
            .kept
            .iter()
            .map(|k| {
                let class = snapshot::heapsnapshot::part_class(&k.part).to_string();
                (
                    class,
                    k.label.to_string(),
                    connection_node_id(k.connection) as u64,
                )
            })
            .collect();
        shown.sort();
        expected.sort();
        assert_eq!(shown, expected, "{what}: allocation {} retainers", a.id);
        let owners: BTreeSet<u64> = a.kept.iter().map(|k| k.connection).collect();
        match (
            a.kept.as_slice(),
            owners.iter().collect::<Vec<_>>().as_slice(),
        ) {
            ([k], _) => assert_eq!(
                o.dominator.name,
                snapshot::heapsnapshot::part_class(&k.part)
            ),
            (_, [c]) => {
                assert_eq!(o.dominator.name, "Connection");
                assert_eq!(o.dominator.id, connection_node_id(**c) as u64);
            }
            _ => assert_eq!(o.dominator.name, "Process"),
        }
    }
    let kinds: BTreeSet<&str> = allocations
        .iter()
        .flat_map(|a| &a.kept)
        .map(|k| snapshot::heapsnapshot::part_class(&k.part))
        .collect();
    assert!(kinds.contains("HeaderValue"), "{what}: {kinds:?}");
    if what.starts_with("wss") {
        assert!(kinds.contains("Message"), "{what}: {kinds:?}");
    }
}

/// The file's total, as DevTools sums it, is the allocator's allocated bytes when
/// the file was made: between the JSON snapshots around it, give or take what
/// answering them allocates.
fn check_total(what: &str, snap: &Snapshot, view: &Loaded) {
    let allocated = snap
        .process
        .allocator
        .allocated_bytes
        .expect("readable on Linux");
    let slack = 2 << 20;
    assert!(
        view.total.abs_diff(allocated) < slack,
        "{what}: DevTools' total {} vs allocated {allocated}",
        view.total
    );
}

/// What the Comparison view must show between two snapshots of one server: the
/// objects of `class` gone and new, by the JSON's own ids and sizes.
fn check_diff(
    what: &str,
    diff: &HashMap<String, ClassDiff>,
    class: &str,
    gone: &BTreeMap<u32, u64>,
    new: &BTreeMap<u32, u64>,
) {
    let d = diff.get(class);
    let (removed, removed_size, added, added_size) = d.map_or((0, 0, 0, 0), |d| {
        (d.removed, d.removed_size, d.added, d.added_size)
    });
    assert_eq!(removed, gone.len() as u64, "{what}: {class} deleted");
    assert_eq!(
        removed_size,
        gone.values().sum::<u64>(),
        "{what}: {class} freed size"
    );
    assert_eq!(added, new.len() as u64, "{what}: {class} new");
    assert_eq!(
        added_size,
        new.values().sum::<u64>(),
        "{what}: {class} new size"
    );
    if let Some(d) = d {
        let ids: BTreeSet<u64> = d.deleted_ids.iter().copied().collect();
        assert_eq!(
            ids,
            gone.keys().map(|k| *k as u64).collect(),
            "{what}: {class} deleted ids"
        );
        let ids: BTreeSet<u64> = d.added_ids.iter().copied().collect();
        assert_eq!(
            ids,
            new.keys().map(|k| *k as u64).collect(),
            "{what}: {class} new ids"
        );
    }
}

/// The objects of a snapshot by node id and self size, per class.
fn objects(snap: &Snapshot) -> HashMap<&'static str, BTreeMap<u32, u64>> {
    let mut out: HashMap<&'static str, BTreeMap<u32, u64>> = HashMap::new();
    for (i, pool) in snap.pools.iter().enumerate() {
        for s in &pool.slabs {
            out.entry("Slab")
                .or_default()
                .insert(slab_node_id(pool_slot(&pool.name, i), s.id), s.size);
        }
    }
    let slab_allocations: BTreeSet<u64> = snap
        .pools
        .iter()
        .flat_map(|p| &p.slabs)
        .filter_map(|s| s.allocation_id)
        .collect();
    for a in &snap.pinned_allocations.allocations {
        if !slab_allocations.contains(&a.id) {
            out.entry("Allocation")
                .or_default()
                .insert(snapshot::heapsnapshot::allocation_node_id(a.id), a.size);
        }
    }
    for c in &snap.connections.list {
        out.entry("Connection")
            .or_default()
            .insert(connection_node_id(c.id), c.own_bytes);
    }
    out
}

fn difference(a: &BTreeMap<u32, u64>, b: &BTreeMap<u32, u64>) -> BTreeMap<u32, u64> {
    a.iter()
        .filter(|(k, _)| !b.contains_key(k))
        .map(|(k, v)| (*k, *v))
        .collect()
}

async fn run(stack: Stack) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let servers = start(stack).await;
    let mut chromium = devtools().await;
    let pinning = servers.pin(stack).await;
    let name = |role: &str, when: &str| format!("{}-{role}-{when}", stack.as_str());
    let mut before = Vec::new();
    for (role, server) in [("proxy", &servers.proxy), ("wss", &servers.wss)] {
        let (snap, file) = take(server).await;
        assert_eq!(snap.role, role);
        assert!(
            snap.connections.list.len() >= PINNING,
            "{role}: {:?}",
            snap.connections.list
        );
        let view = load(&mut chromium, &name(role, "before"), &file).await;
        let what = format!("{role} on {stack}");
        check_total(&what, &snap, &view);
        match stack {
            Stack::Slab => check_slabs(&what, &snap, &view),
            Stack::Warp | Stack::Socketio => check_allocations(&what, &snap, &view),
        }
        if stack == Stack::Slab && role == "wss" {
            let buffer = snap.pool("buffer").expect("the wss's buffer pool");
            let kept = buffer.slabs.iter().filter(|s| !s.retainers.is_empty());
            assert!(
                kept.count() >= PINNING,
                "{what}: buffer chunks kept by copies"
            );
        }
        std::fs::write(
            target_dir().join(format!("e2e/{}.heapsnapshot", name(role, "before"))),
            &file,
        )
        .ok();
        before.push((role, server, snap, view.nodes));
    }

    // Close the pinning connections; wait until each server has let go of them.
    for mut ws in pinning {
        ws.close(None).await.unwrap();
    }
    for (role, server, snap0, _) in &before {
        let pinned: BTreeSet<u64> = snap0.connections.list.iter().map(|c| c.id).collect();
        wait_until(
            &format!("the {role} frees what the pinning connections held"),
            || async {
                let s = client::fetch::fetch(server.snapshot_addr).await.unwrap();
                s.connections.list.iter().all(|c| !pinned.contains(&c.id))
                    && s.pools
                        .iter()
                        .flat_map(|p| &p.slabs)
                        .all(|sl| sl.retainers.is_empty())
                    && s.pinned_allocations.allocations.is_empty()
            },
        )
        .await;
        let (snap1, file) = take(server).await;
        load(&mut chromium, &name(role, "after"), &file).await;
        let diff = diff(&mut chromium, &name(role, "before"), &name(role, "after")).await;
        let (a, b) = (objects(snap0), objects(&snap1));
        let what = format!("{role} on {stack}: Comparison");
        for class in ["Slab", "Allocation", "Connection"] {
            let empty = BTreeMap::new();
            let (a, b) = (
                a.get(class).unwrap_or(&empty),
                b.get(class).unwrap_or(&empty),
            );
            let gone = difference(a, b);
            check_diff(&what, &diff, class, &gone, &difference(b, a));
            if class == "Connection" {
                assert!(gone.len() >= PINNING, "{what}: {gone:?}");
            }
        }
        let freed = diff.get("Slab").map_or(0, |d| d.removed_size)
            + diff.get("Allocation").map_or(0, |d| d.removed_size);
        assert!(freed > 0, "{what}: nothing freed");
        eprintln!("{what}: {freed} bytes of slabs and allocations deleted; {diff:?}");
    }
    // memlab, a second reader, on the first file of the proxy.
    if stack == Stack::Slab {
        let file = target_dir().join(format!("e2e/{}.heapsnapshot", name("proxy", "before")));
        memlab(&file, &before[0].2, before[0].3).await;
    }
}

/// Loads `file` in memlab and checks it against the JSON snapshot taken with it.
async fn memlab(file: &Path, snap: &Snapshot, devtools_nodes: u64) {
    let install = Command::new(repo_root().join("scripts/memlab-install"))
        .status()
        .await
        .expect("scripts/memlab-install runs");
    assert!(install.success(), "scripts/memlab-install failed");
    let out = Command::new("node")
        .arg(repo_root().join("e2e/memlab/read.js"))
        .arg(file)
        .env("NODE_PATH", target_dir().join("memlab/node_modules"))
        .output()
        .await
        .expect("node runs");
    assert!(
        out.status.success(),
        "memlab: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["nodes"].as_u64(),
        Some(devtools_nodes),
        "memlab and DevTools count the same nodes"
    );
    let total = v["total_self_size"].as_u64().unwrap();
    assert!(
        total.abs_diff(
            snap.process
                .allocator
                .allocated_bytes
                .expect("readable on Linux")
        ) < 2 << 20,
        "memlab's total {total}"
    );
    let slabs = v["slabs"].as_array().unwrap();
    assert_eq!(slabs.len() as u64, snap.totals.live_slabs);
    // A pinned slab's path from the root runs through its connection.
    let tls = snap.pool("tls").unwrap();
    let slot = pool_slot(
        "tls",
        snap.pools.iter().position(|p| p.name == "tls").unwrap(),
    );
    let slab = tls
        .slabs
        .iter()
        .find(|s| !s.current && !s.retainers.is_empty() && slab_holders(s).len() == 1)
        .expect("a slab pinned by one connection");
    let c = slab.retainers[0].connection;
    let m = slabs
        .iter()
        .find(|s| s["id"] == slab_node_id(slot, slab.id))
        .unwrap();
    assert_eq!(m["self_size"].as_u64(), Some(slab.size));
    assert_eq!(m["retained_size"].as_u64(), Some(slab.size));
    let dominator = match slab.retainers.as_slice() {
        [one] => snapshot::heapsnapshot::part_class(&one.part),
        _ => "Connection",
    };
    assert_eq!(m["dominator"]["name"].as_str(), Some(dominator), "{m}");
    let path: Vec<String> = m["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap_or("").to_string())
        .collect();
    let ids: Vec<u64> = m["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        ids.contains(&(connection_node_id(c) as u64)),
        "memlab's path {path:?}"
    );
    assert_eq!(path.last().map(String::as_str), Some("Slab"), "{path:?}");
    eprintln!(
        "memlab: {} nodes, total {total}, slab path {path:?}",
        v["nodes"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devtools_shows_the_slab_stacks_retainers_and_comparison() {
    run(Stack::Slab).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devtools_shows_the_warp_stacks_pinned_allocations() {
    run(Stack::Warp).await;
}
