//! Tests of the snapshot types, their JSON, and `snapshot.schema.json`.
//!
//! The schema checks run with `cargo test -p snapshot --features validate`.

use super::*;
use serde_json::{json, Value};

fn retainer(connection: u64, part: &str, bytes: u64) -> Retainer {
    Retainer::new(connection, part, bytes)
}

/// A proxy holding two pinned websockets in retain mode: two TLS slabs and two TCP slabs
/// are alive, pinned by the upgrade requests and heads of connections 17 and 18.
fn proxy_snapshot() -> Snapshot {
    let tls = Pool {
        name: "tls".into(),
        slab_size: 10 << 20,
        read_size: 64 << 10,
        live_slabs: 2,
        slabs_allocated_total: 5,
        slabs_freed_total: 3,
        reads_total: 1234,
        bytes_read_total: 40_000_000,
        retained_bytes: 20 << 20,
        referenced_bytes: 1200,
        slabs: vec![
            Slab {
                unlisted_retainers: 0,
                id: 3,
                size: 10 << 20,
                age_ms: 60_000,
                current: false,
                handed_out_bytes: 10 << 20,
                referenced_bytes: 600,
                views: 2,
                retainers: vec![
                    retainer(17, "upgrade request", 580),
                    retainer(17, "upgrade head", 20),
                ],
                allocation_bytes: None,
                allocation_id: None,
            },
            Slab {
                unlisted_retainers: 0,
                id: 4,
                size: 10 << 20,
                age_ms: 1_500,
                current: true,
                handed_out_bytes: 300_000,
                referenced_bytes: 600,
                views: 2,
                retainers: vec![
                    retainer(18, "upgrade request", 580),
                    retainer(18, "upgrade head", 20),
                ],
                allocation_bytes: None,
                allocation_id: None,
            },
        ],
    };
    let tcp = Pool {
        name: "tcp".into(),
        slab_size: 1 << 20,
        read_size: 64 << 10,
        live_slabs: 1,
        slabs_allocated_total: 40,
        slabs_freed_total: 39,
        reads_total: 800,
        bytes_read_total: 41_000_000,
        retained_bytes: 1 << 20,
        referenced_bytes: 0,
        slabs: vec![Slab {
            unlisted_retainers: 0,
            id: 39,
            size: 1 << 20,
            age_ms: 200,
            current: true,
            handed_out_bytes: 70_000,
            referenced_bytes: 0,
            views: 0,
            retainers: vec![],
            allocation_bytes: None,
            allocation_id: None,
        }],
    };
    Snapshot {
        schema_version: SCHEMA_VERSION,
        role: "proxy".into(),
        taken_at_ms: 1_750_000_000_000,
        took_us: 85,
        process: Process {
            pid: 4242,
            uptime_ms: 61_000,
            rss_bytes: Some(48_000_000),
            allocator: Allocator {
                name: "jemalloc".into(),
                allocated_bytes: Some(23_000_000),
                active_bytes: Some(24_000_000),
                resident_bytes: Some(30_000_000),
                mapped_bytes: Some(40_000_000),
                retained_bytes: Some(5_000_000),
            },
            unreadable: vec![],
        },
        settings: Settings {
            head_mode: Some(HeadMode::Retain),
            head_mode_applies_to: "new connections".into(),
            stack: Some(Stack::Slab),
            tls: true,
            echo: false,
            read_size: 64 << 10,
        },
        connections: Connections {
            unlisted: 0,
            open: 3,
            accepted_total: 10,
            closed_total: 7,
            failed_total: 1,
            open_by_head_mode: OpenByHeadMode {
                retain: 2,
                copy: 1,
                copy_unpooled: 0,
                drop: 0,
            },
            list: vec![],
        },
        guard: Default::default(),
        pools: vec![tls, tcp],
        totals: Totals {
            retained_bytes: (20 << 20) + (1 << 20),
            referenced_bytes: 1200,
            retained_per_referenced: Some(((20u64 << 20) + (1 << 20)) as f64 / 1200.0),
            live_slabs: 3,
        },
        pinned_allocations: PinnedAllocations {
            unlisted_allocations: 0,
            unlisted_parts: 0,
            registry: AllocationRegistry {
                enabled: true,
                threshold_bytes: 4096,
                tracked: 40,
                tracked_bytes: 30 << 20,
                capacity: 1 << 17,
                overflowed_total: 0,
            },
            allocations: vec![PinnedAllocation {
                id: 901,
                size: 10 << 20,
                age_ms: 60_000,
                kept_bytes: 600,
                kept: vec![
                    retainer(17, "upgrade request", 580),
                    retainer(17, "upgrade head", 20),
                ],
            }],
            pinned_bytes: 10 << 20,
            kept_bytes: 600,
            unattributed_parts: 0,
            unattributed_bytes: 0,
        },
        client: None,
        audit: None,
    }
}

/// The client: no pools, no head mode, nothing referenced so a null ratio.
fn client_snapshot() -> Snapshot {
    let mut s = proxy_snapshot();
    s.role = "client".into();
    s.settings.head_mode = None;
    s.settings.tls = false;
    s.connections.open_by_head_mode = OpenByHeadMode::default();
    s.pools.clear();
    s.totals = Totals {
        retained_bytes: 0,
        referenced_bytes: 0,
        retained_per_referenced: None,
        live_slabs: 0,
    };
    s.client = Some(ClientTraffic {
        pin_traffic_done: 100,
        pin_messages_sent: 200,
        pin_bytes_sent: 100 * 33_000,
    });
    s
}

#[test]
fn serializes_with_the_documented_field_names() {
    let v = serde_json::to_value(proxy_snapshot()).unwrap();
    assert_eq!(v["role"], "proxy");
    assert_eq!(v["settings"]["head_mode"], "retain");
    assert_eq!(v["pools"][0]["name"], "tls");
    assert_eq!(
        v["pools"][0]["slabs"][0]["retainers"][1]["part"],
        "upgrade head"
    );
    assert_eq!(
        v["pools"][0]["slabs"][0]["retainers"][1]["label"],
        "upgrade head of connection 17"
    );
    assert_eq!(v["connections"]["open_by_head_mode"]["copy"], 1);

    let c = serde_json::to_value(client_snapshot()).unwrap();
    assert_eq!(c["settings"]["head_mode"], Value::Null);
    assert_eq!(c["totals"]["retained_per_referenced"], Value::Null);
    assert_eq!(c["pools"], json!([]));
}

#[test]
fn round_trips_through_json() {
    for s in [proxy_snapshot(), client_snapshot()] {
        let text = serde_json::to_string_pretty(&s).unwrap();
        let back: Snapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        let value = serde_json::to_value(&s).unwrap();
        let back: Snapshot = serde_json::from_value(value).unwrap();
        assert_eq!(back, s);
    }
}

/// A proxy whose RSS and allocated bytes could not be read: null, with the reasons.
fn unreadable_snapshot() -> Snapshot {
    let mut s = proxy_snapshot();
    s.process.rss_bytes = None;
    s.process.allocator.allocated_bytes = None;
    s.process.unreadable = vec![
        Unreadable {
            figure: figure::RSS.into(),
            reason: "reading /proc/self/status: Permission denied (os error 13)".into(),
        },
        Unreadable {
            figure: figure::ALLOCATED.into(),
            reason: "jemalloc stats.allocated: Invalid argument".into(),
        },
    ];
    s
}

#[test]
fn unreadable_figures_are_null_with_their_reasons_and_round_trip() {
    let s = unreadable_snapshot();
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["process"]["rss_bytes"], Value::Null);
    assert_eq!(v["process"]["allocator"]["allocated_bytes"], Value::Null);
    assert_eq!(v["process"]["allocator"]["active_bytes"], 24_000_000);
    assert_eq!(
        v["process"]["unreadable"],
        json!([
            {"figure": "process.rss_bytes",
             "reason": "reading /proc/self/status: Permission denied (os error 13)"},
            {"figure": "process.allocator.allocated_bytes",
             "reason": "jemalloc stats.allocated: Invalid argument"},
        ])
    );
    let back: Snapshot = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
    assert_eq!(
        back.process.why_unreadable(figure::RSS),
        "reading /proc/self/status: Permission denied (os error 13)"
    );
    assert_eq!(
        back.process.why_unreadable(figure::ACTIVE),
        "no reason recorded"
    );
    // Every readable snapshot still writes the list, empty.
    let v = serde_json::to_value(proxy_snapshot()).unwrap();
    assert_eq!(v["process"]["unreadable"], json!([]));
}

#[test]
fn an_older_snapshot_with_plain_numbers_and_no_list_still_reads() {
    let mut old = serde_json::to_value(proxy_snapshot()).unwrap();
    old["schema_version"] = json!(2);
    old["process"].as_object_mut().unwrap().remove("unreadable");
    assert_eq!(old["process"]["rss_bytes"], 48_000_000);
    let back: Snapshot = serde_json::from_value(old).unwrap();
    assert_eq!(back.process.rss_bytes, Some(48_000_000));
    assert_eq!(back.process.allocator.retained_bytes, Some(5_000_000));
    assert!(back.process.unreadable.is_empty());
}

#[test]
fn figures_names_every_nullable_figure_by_its_json_path() {
    let s = unreadable_snapshot();
    let v = serde_json::to_value(&s).unwrap();
    for (name, value) in s.process.figures() {
        let pointer = format!("/{}", name.replace('.', "/"));
        assert_eq!(v.pointer(&pointer), Some(&json!(value)), "{name}");
    }
}

#[test]
fn pool_finds_by_name() {
    let s = proxy_snapshot();
    assert_eq!(s.pool("tcp").unwrap().slab_size, 1 << 20);
    assert_eq!(s.pool("tls").unwrap().live_slabs, 2);
    assert!(s.pool("udp").is_none());
    assert!(client_snapshot().pool("tcp").is_none());
}

#[test]
fn head_mode_from_str_and_display_round_trip() {
    for m in HeadMode::ALL {
        assert_eq!(m.to_string(), m.as_str());
        assert_eq!(m.as_str().parse::<HeadMode>(), Ok(m));
        // The JSON name is the same as the config and command-line name.
        assert_eq!(
            serde_json::to_value(m).unwrap(),
            Value::String(m.to_string())
        );
        assert_eq!(
            serde_json::from_value::<HeadMode>(json!(m.as_str())).unwrap(),
            m
        );
    }
    assert_eq!(
        HeadMode::ALL.map(HeadMode::as_str),
        ["retain", "copy", "copy_unpooled", "drop"]
    );
}

#[test]
fn head_mode_rejects_other_names() {
    assert_eq!(
        "keep".parse::<HeadMode>(),
        Err("expected one of retain, copy, copy_unpooled, drop; got \"keep\"".to_string())
    );
    // Case matters, as in JSON.
    let err = "Retain".parse::<HeadMode>().unwrap_err();
    assert!(err.contains("\"Retain\""), "{err}");
    assert!("".parse::<HeadMode>().is_err());
    assert!(serde_json::from_value::<HeadMode>(json!("Retain")).is_err());
}

/// Every property the schema defines is named in docs/reference/snapshot.md's table
/// (as a field, a dotted path or a list in backticks), so the reference cannot fall
/// behind the schema, which the types are tested against.
#[test]
fn the_reference_names_every_property_of_the_schema() {
    let schema: Value = serde_json::from_str(SCHEMA_JSON).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reference/snapshot.md");
    let doc = std::fs::read_to_string(path).expect("docs/reference/snapshot.md is readable");
    let named: std::collections::BTreeSet<&str> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| l.split('`').skip(1).step_by(2))
        .flat_map(|code| code.split(|c: char| !(c.is_alphanumeric() || c == '_')))
        .filter(|w| !w.is_empty())
        .collect();
    fn properties<'a>(v: &'a Value, out: &mut std::collections::BTreeSet<&'a str>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get("properties") {
                    out.extend(props.keys().map(String::as_str));
                }
                map.values().for_each(|v| properties(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| properties(v, out)),
            _ => {}
        }
    }
    let mut defined = std::collections::BTreeSet::new();
    properties(&schema, &mut defined);
    let missing: Vec<_> = defined.difference(&named).collect();
    assert!(
        missing.is_empty(),
        "docs/reference/snapshot.md does not name {missing:?}"
    );
}

/// Every object of the schema documents each property, requires all of them and allows
/// no others: the file is the users' reference for the snapshot.
#[test]
fn schema_documents_and_requires_every_property() {
    let schema: Value = serde_json::from_str(SCHEMA_JSON).expect("schema is JSON");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(
        schema["$id"],
        "https://slab-memory.invalid/snapshot.schema.json"
    );
    assert!(schema["title"].is_string());

    let mut objects = vec![("root".to_string(), &schema)];
    for (name, def) in schema["$defs"].as_object().unwrap() {
        assert!(
            def["description"].is_string(),
            "$defs/{name} lacks a description"
        );
        if def["type"] == "object" {
            objects.push((name.clone(), def));
        }
    }
    assert_eq!(objects.len(), 1 + 18, "root and the eighteen sub-objects");
    for (name, obj) in objects {
        assert_eq!(obj["additionalProperties"], false, "{name}");
        let props = obj["properties"].as_object().unwrap();
        let mut required: Vec<&str> = obj["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
        required.sort_unstable();
        keys.sort_unstable();
        assert_eq!(required, keys, "{name}: required must list every property");
        for (key, prop) in props {
            let d = prop["description"].as_str().unwrap_or_default();
            assert!(!d.is_empty(), "{name}.{key} lacks a description");
        }
    }
}

#[cfg(feature = "validate")]
mod schema {
    use super::*;

    fn errors(v: &Value) -> Vec<String> {
        validate(v).expect_err("expected the snapshot to fail validation")
    }

    /// Asserts that validation fails and that some message names `path` and `needle`.
    fn assert_fails(v: &Value, path: &str, needle: &str) {
        let errs = errors(v);
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&format!("{path}: ")) && e.contains(needle)),
            "no error at {path} mentioning {needle:?}: {errs:#?}"
        );
    }

    #[test]
    fn realistic_snapshots_validate() {
        for s in [proxy_snapshot(), client_snapshot()] {
            let v = serde_json::to_value(&s).unwrap();
            assert_eq!(
                validate(&v),
                Ok(()),
                "{}",
                serde_json::to_string_pretty(&v).unwrap()
            );
        }
    }

    #[test]
    fn a_client_snapshot_during_an_audit_validates_and_older_ones_read() {
        let mut s = client_snapshot();
        s.audit = Some(Audit {
            target: "wss://localhost:8600/".into(),
            step: "traffic".into(),
            level: 1000,
            connections_open: 1000,
            processes: vec![
                AuditProcess {
                    pid: 4242,
                    name: "node".into(),
                    rss_bytes: 80_000_000,
                    pss_bytes: Some(78_000_000),
                },
                AuditProcess {
                    pid: 4250,
                    name: "nginx".into(),
                    rss_bytes: 20_000_000,
                    pss_bytes: None,
                },
            ],
            tcp_mem_bytes: Some(4 << 20),
            read_at_ms: 1_790_000_000_000,
        });
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(validate(&v), Ok(()), "{v:#}");
        assert_eq!(v["audit"]["processes"][1]["pss_bytes"], Value::Null);
        let mut bad = v.clone();
        bad["audit"]["step"] = json!("dancing");
        assert_fails(&bad, "/audit", "dancing");
        // A snapshot written before the section existed still reads, as null.
        let mut old = serde_json::to_value(client_snapshot()).unwrap();
        old.as_object_mut().unwrap().remove("audit");
        let back: Snapshot = serde_json::from_value(old).unwrap();
        assert_eq!(back.audit, None);
        assert_eq!(
            serde_json::to_value(proxy_snapshot()).unwrap()["audit"],
            Value::Null
        );
    }

    /// The hand-kept schema matches the types field by field: every object the schema
    /// defines is written, with exactly its properties, by some snapshot the types
    /// make (the audit's client snapshot and the proxy's cover them all), and those
    /// snapshots validate with `additionalProperties: false` and every property
    /// required. So a field added to a type but not to the schema, or to the schema
    /// but not to a type, fails here or in the validation.
    #[test]
    fn the_schema_and_the_types_have_the_same_fields() {
        let schema: Value = serde_json::from_str(SCHEMA_JSON).unwrap();
        let mut audited = client_snapshot();
        audited.audit = Some(Audit {
            target: "ws://127.0.0.1:8800/".into(),
            step: "idle".into(),
            level: 1,
            connections_open: 1,
            processes: vec![AuditProcess {
                pid: 1,
                name: "wss".into(),
                rss_bytes: 1,
                pss_bytes: None,
            }],
            tcp_mem_bytes: None,
            read_at_ms: 1,
        });
        let mut proxy = proxy_snapshot();
        proxy.connections.list = vec![OpenConnection {
            id: 17,
            peer: Some("127.0.0.1:50000".into()),
            head_mode: Some(HeadMode::Retain),
            age_ms: 1000,
            own_bytes: 400,
        }];
        let samples =
            [audited, proxy, unreadable_snapshot()].map(|s| serde_json::to_value(s).unwrap());
        // The key sets of every object the types wrote.
        fn key_sets(v: &Value, out: &mut Vec<Vec<String>>) {
            match v {
                Value::Object(map) => {
                    let mut keys: Vec<String> = map.keys().cloned().collect();
                    keys.sort_unstable();
                    out.push(keys);
                    map.values().for_each(|v| key_sets(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| key_sets(v, out)),
                _ => {}
            }
        }
        let mut written = Vec::new();
        for s in &samples {
            assert_eq!(validate(s), Ok(()), "{s:#}");
            key_sets(s, &mut written);
        }
        let mut objects = vec![("root".to_string(), &schema)];
        for (name, def) in schema["$defs"].as_object().unwrap() {
            if def["type"] == "object" {
                objects.push((name.clone(), def));
            }
        }
        for (name, obj) in objects {
            let mut keys: Vec<String> = obj["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            keys.sort_unstable();
            assert!(
                written.contains(&keys),
                "no snapshot the types make writes the schema's {name} object {keys:?}"
            );
        }
    }

    #[test]
    fn unreadable_figures_validate_only_with_a_reason() {
        let v = serde_json::to_value(unreadable_snapshot()).unwrap();
        assert_eq!(validate(&v), Ok(()), "{v:#}");
        // A null figure that the list does not explain fails, once per such figure.
        let mut bad = v.clone();
        bad["process"]["unreadable"] = json!([]);
        assert_eq!(errors(&bad).len(), 2, "{:#?}", errors(&bad));
        assert_fails(&bad, "/process/unreadable", "None of []");
        let mut bad = v.clone();
        bad["process"]["allocator"]["mapped_bytes"] = Value::Null;
        assert_eq!(errors(&bad).len(), 1, "{:#?}", errors(&bad));
        assert_fails(&bad, "/process/unreadable", "are valid");
        // A reason names a known figure.
        let mut bad = v.clone();
        bad["process"]["unreadable"][0]["figure"] = json!("process.vsize");
        assert_fails(&bad, "/process/unreadable/0/figure", "process.vsize");
    }

    #[test]
    fn every_role_and_head_mode_validates() {
        for role in ["wss", "proxy", "client"] {
            for mode in HeadMode::ALL.map(Some).into_iter().chain([None]) {
                let mut s = proxy_snapshot();
                s.role = role.into();
                s.settings.head_mode = mode;
                let v = serde_json::to_value(&s).unwrap();
                assert_eq!(validate(&v), Ok(()), "{role} {mode:?}");
            }
        }
    }

    #[test]
    fn extreme_counts_validate() {
        let mut s = proxy_snapshot();
        s.taken_at_ms = u64::MAX;
        s.process.pid = u32::MAX;
        s.totals.retained_per_referenced = Some(0.0);
        assert_eq!(validate(&serde_json::to_value(&s).unwrap()), Ok(()));
    }

    #[test]
    fn missing_field_is_named() {
        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["process"].as_object_mut().unwrap().remove("rss_bytes");
        assert_fails(&v, "/process", "rss_bytes");

        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v.as_object_mut().unwrap().remove("totals");
        assert_fails(&v, "/", "totals");

        // A null ratio must still be present.
        let mut v = serde_json::to_value(client_snapshot()).unwrap();
        v["totals"]
            .as_object_mut()
            .unwrap()
            .remove("retained_per_referenced");
        assert_fails(&v, "/totals", "retained_per_referenced");
    }

    #[test]
    fn extra_field_is_named() {
        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["pools"][1]["slabs"][0]["owner"] = json!("me");
        assert_fails(&v, "/pools/1/slabs/0", "owner");

        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["rss_mb"] = json!(48);
        assert_fails(&v, "/", "rss_mb");
    }

    #[test]
    fn negative_count_is_named() {
        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["connections"]["open"] = json!(-1);
        assert_fails(&v, "/connections/open", "minimum");

        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["pools"][0]["slabs"][1]["retainers"][0]["bytes"] = json!(-580);
        assert_fails(&v, "/pools/0/slabs/1/retainers/0/bytes", "-580");

        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["totals"]["retained_per_referenced"] = json!(-0.5);
        assert_fails(&v, "/totals/retained_per_referenced", "minimum");
    }

    #[test]
    fn wrong_types_are_named() {
        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["process"]["pid"] = json!(1.5);
        assert_fails(&v, "/process/pid", "integer");

        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["process"]["uptime_ms"] = json!("61000");
        assert_fails(&v, "/process/uptime_ms", "integer");

        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["settings"]["tls"] = json!("yes");
        assert_fails(&v, "/settings/tls", "boolean");
    }

    #[test]
    fn bad_head_mode_is_named() {
        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["settings"]["head_mode"] = json!("keep");
        assert_fails(&v, "/settings/head_mode", "keep");
        // The message starts listing what is allowed.
        assert_fails(&v, "/settings/head_mode", "is not one of \"retain\"");

        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["settings"]["head_mode"] = json!("Retain");
        assert_fails(&v, "/settings/head_mode", "Retain");
    }

    #[test]
    fn bad_enums_are_named() {
        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["role"] = json!("browser");
        assert_fails(&v, "/role", "browser");

        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["pools"][1]["name"] = json!("udp");
        assert_fails(&v, "/pools/1/name", "udp");

        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["pools"][0]["slabs"][0]["retainers"][0]["part"] = json!("header");
        assert_fails(&v, "/pools/0/slabs/0/retainers/0/part", "header");

        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["settings"]["stack"] = json!("hyper");
        assert_fails(&v, "/settings/stack", "hyper");
    }

    #[test]
    fn every_error_is_reported() {
        let mut v = serde_json::to_value(proxy_snapshot()).unwrap();
        v["connections"]["open"] = json!(-1);
        v["settings"]["head_mode"] = json!("keep");
        v["extra"] = json!(true);
        let errs = errors(&v);
        assert!(
            errs.iter().any(|e| e.starts_with("/connections/open: ")),
            "{errs:#?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with("/settings/head_mode: ")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("/: ") && e.contains("extra")),
            "{errs:#?}"
        );
    }

    #[test]
    fn not_an_object_fails() {
        assert_fails(&json!([]), "/", "object");
        assert_fails(&json!(null), "/", "object");
    }
}
