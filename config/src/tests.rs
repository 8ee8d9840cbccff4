//! Tests of config text parsing, checking, overrides, the key table and docs/reference/config.md's
//! config.json table (which must list the keys and defaults of this crate).

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::*;

/// The seed's config.json (shared/seed/config.json), byte for byte.
const SEED: &str = r#"{
	"proxy_port": 8600,
	"proxy_heapdump_port": 8601,
	"proxy_target": {
		"host": "localhost",
		"port": 8800
	},
	"wss_port": 8800,
	"wss_heapdump_port": 8801,
	"client_heapdump_port": 8802,
	"client_dataSize": 1000000,
	"client_dataDelay": 1000,
	"client_connectionspersecond": 1,
	"client_maxConnections": 100
}
"#;

fn owned(overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `text` as the file `FILE`, with `overrides` as flags.
fn load(text: &str, overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
    from_text(Path::new("FILE"), text, &owned(overrides))
}

/// Loads `text` expecting a failure; returns the (one-line) message.
fn error(text: &str, overrides: &[(&str, &str)]) -> String {
    let msg = load(text, overrides)
        .expect_err("expected the config to be refused")
        .to_string();
    assert!(!msg.contains('\n'), "one line expected: {msg}");
    msg
}

/// The seed's file with `key` set to `value` (JSON).
fn seed_with(key: &str, value: Value) -> String {
    let mut object: Map<String, Value> = serde_json::from_str(SEED).unwrap();
    object.insert(key.to_string(), value);
    serde_json::to_string_pretty(&object).unwrap()
}

/// Asserts one message naming the file, the key and what is expected.
fn assert_names(msg: &str, key: &str, expected: &[&str]) {
    let prefix = format!("FILE: key \"{key}\": ");
    assert!(
        msg.starts_with(&prefix),
        "{msg:?} should start with {prefix:?}"
    );
    for e in expected {
        assert!(msg.contains(e), "{msg:?} should mention {e:?}");
    }
}

#[test]
fn the_seed_and_an_empty_object_load_to_exactly_the_defaults() {
    let object = parse_object(Path::new("FILE"), SEED).unwrap();
    assert!(unknown_keys(&object).is_empty());
    assert_eq!(load(SEED, &[]).unwrap(), Config::default());
    assert_eq!(load("{}", &[]).unwrap(), Config::default());
}

#[test]
fn defaults_are_the_seeds_values() {
    let c = Config::default();
    assert_eq!((c.proxy_port, c.proxy_heapdump_port), (8600, 8601));
    assert_eq!(
        (c.wss_port, c.wss_heapdump_port, c.client_heapdump_port),
        (8800, 8801, 8802)
    );
    assert_eq!(
        c.proxy_target,
        Target {
            host: "localhost".into(),
            port: 8800
        }
    );
    assert_eq!(c.client_data_size, 1_000_000);
    assert_eq!(c.client_data_delay, 1000);
    assert_eq!(c.client_connections_per_second, 1.0);
    assert_eq!(c.client_max_connections, 100);
    assert_eq!((c.tcp_slab_size, c.tls_slab_size), (1 << 20, 10 << 20));
    assert_eq!(
        (c.wss_head, c.proxy_head),
        (HeadMode::Retain, HeadMode::Retain)
    );
    assert!(c.bind.is_loopback() && c.snapshot_bind.is_loopback());
}

/// The memory guard's default is a quarter of this machine's RAM, read from /proc.
#[test]
fn memory_limit_defaults_to_a_quarter_of_ram() {
    let ram = physical_memory().expect("/proc/meminfo has MemTotal");
    assert!(ram > 0);
    assert_eq!(Config::default().memory_limit, ram / 4);
}

/// `KEYS` (the `--help` list and the override flags) and the `Config` fields are the
/// same set of keys, and the defaults written back out load unchanged.
#[test]
fn keys_match_the_config_fields() {
    let value = serde_json::to_value(Config::default()).unwrap();
    let object = value.as_object().unwrap();
    let mut fields: Vec<String> = Vec::new();
    for (k, v) in object {
        match v {
            Value::Object(inner) => fields.extend(inner.keys().map(|i| format!("{k}.{i}"))),
            _ => fields.push(k.clone()),
        }
    }
    let mut keys: Vec<String> = KEYS.iter().map(|(k, _)| k.to_string()).collect();
    fields.sort();
    keys.sort();
    assert_eq!(fields, keys);
    assert!(unknown_keys(object).is_empty());

    let text = serde_json::to_string_pretty(&value).unwrap();
    assert_eq!(load(&text, &[]).unwrap(), Config::default());
}

#[test]
fn defaults_are_shown_from_the_config() {
    assert_eq!(default_text("proxy_port").as_deref(), Some("8600"));
    assert_eq!(
        default_text("proxy_target.host").as_deref(),
        Some("localhost")
    );
    assert_eq!(default_text("proxy_target.port").as_deref(), Some("8800"));
    // A float default that is whole shows as the seed writes it.
    assert_eq!(
        default_text("client_connectionspersecond").as_deref(),
        Some("1")
    );
    assert_eq!(default_text("wss_head").as_deref(), Some("retain"));
    assert_eq!(default_text("tls_cert").as_deref(), Some("null"));
    assert_eq!(default_text("proxy_tls").as_deref(), Some("true"));
    assert_eq!(
        default_text("cors_origins").as_deref(),
        Some(r#"["http://localhost","http://127.0.0.1","http://[::1]"]"#)
    );
    let memory = default_text("memory_limit").unwrap();
    assert_eq!(
        memory,
        format!("a quarter of RAM, here {}", Config::default().memory_limit)
    );
    assert_eq!(default_text("proxy_target"), default_text("proxy_target"));
    assert_eq!(default_text("no_such_key"), None);
    assert_eq!(default_value("proxy_target.nope"), None);

    let help = help_texts();
    assert_eq!(help.len(), KEYS.len());
    for ((key, meaning), (help_key, line)) in KEYS.iter().zip(&help) {
        assert_eq!(key, help_key);
        let default = default_text(key).unwrap();
        assert_eq!(line, &format!("{meaning} [{default}]"));
    }
}

#[test]
fn bad_json_names_the_file_and_position() {
    let msg = error("{\n  \"proxy_port\": 8600,\n}\n", &[]);
    assert!(msg.starts_with("FILE: not valid JSON: "), "{msg}");
    assert!(msg.contains("line 3 column 1"), "{msg}");

    let msg = error("", &[]);
    assert!(msg.starts_with("FILE: not valid JSON: "), "{msg}");
}

#[test]
fn a_non_object_is_refused() {
    let msg = error("[8600, 8601]", &[]);
    assert_eq!(
        msg,
        "FILE: expected a JSON object { \"key\": value, ... }, found an array"
    );
    let msg = error("\"proxy_port\"", &[]);
    assert!(msg.ends_with("found a string"), "{msg}");
}

#[test]
fn a_bad_head_mode_is_named() {
    let msg = error(&seed_with("wss_head", json!("keep")), &[]);
    assert_names(
        &msg,
        "wss_head",
        &["keep", "retain", "copy", "copy_unpooled", "drop"],
    );
    let msg = error(&seed_with("proxy_head", json!(true)), &[]);
    assert_names(&msg, "proxy_head", &["boolean"]);
}

#[test]
fn a_bad_stack_is_named() {
    let msg = error(&seed_with("wss_stack", json!("tokio")), &[]);
    assert_names(&msg, "wss_stack", &["tokio", "slab", "warp"]);
}

#[test]
fn a_port_out_of_range_is_named() {
    let msg = error(&seed_with("proxy_port", json!(70000)), &[]);
    assert_names(
        &msg,
        "proxy_port",
        &["expected a port number 0-65535", "70000"],
    );
}

#[test]
fn a_port_that_is_not_a_number_is_named() {
    let msg = error(&seed_with("proxy_port", json!("x")), &[]);
    assert_names(&msg, "proxy_port", &["expected a port number 0-65535"]);
    let msg = error(&seed_with("wss_heapdump_port", json!(-1)), &[]);
    assert_names(
        &msg,
        "wss_heapdump_port",
        &["expected a port number 0-65535"],
    );
}

#[test]
fn zero_connections_per_second_is_refused() {
    let msg = error(&seed_with("client_connectionspersecond", json!(0)), &[]);
    assert_names(
        &msg,
        "client_connectionspersecond",
        &["expected a number above 0", "got 0"],
    );
    let msg = error(&seed_with("client_connectionspersecond", json!(-2.5)), &[]);
    assert_names(&msg, "client_connectionspersecond", &["above 0"]);
    let msg = error(
        &seed_with("client_connectionspersecond", json!("fast")),
        &[],
    );
    assert_names(
        &msg,
        "client_connectionspersecond",
        &["expected a number above 0"],
    );
}

#[test]
fn connections_per_second_below_one_is_accepted() {
    let c = load(&seed_with("client_connectionspersecond", json!(0.25)), &[]).unwrap();
    assert_eq!(c.client_connections_per_second, 0.25);
}

#[test]
fn a_bad_nested_value_names_the_inner_key() {
    let msg = error(&seed_with("proxy_target", json!({"host": 1})), &[]);
    assert_names(&msg, "proxy_target.host", &["expected a string"]);
    let msg = error(
        &seed_with("proxy_target", json!({"host": "localhost", "port": 65536})),
        &[],
    );
    assert_names(&msg, "proxy_target.port", &["65536"]);
}

#[test]
fn a_read_larger_than_a_slab_is_refused() {
    let msg = error(&seed_with("read_size", json!(2 << 20)), &[]);
    assert_names(
        &msg,
        "read_size",
        &["at most the smaller slab size (1048576 bytes)", "2097152"],
    );

    let mut object: Map<String, Value> = serde_json::from_str(SEED).unwrap();
    object.insert("tls_slab_size".into(), json!(4096));
    object.insert("read_size".into(), json!(8192));
    let msg = error(&Value::Object(object).to_string(), &[]);
    assert_names(&msg, "read_size", &["(4096 bytes)", "8192"]);

    // Equal to the smaller slab is fine.
    let c = load(&seed_with("read_size", json!(1 << 20)), &[]).unwrap();
    assert_eq!(c.read_size, 1 << 20);
}

#[test]
fn the_buffer_pool_is_off_at_0_and_its_threshold_must_fit_a_chunk() {
    let c = load(&seed_with("buffer_pool_size", json!(0)), &[]).unwrap();
    assert_eq!(c.buffer_pool_size, 0, "0 turns the pool off");
    let msg = error(&seed_with("buffer_pool_size", json!(32)), &[]);
    assert_names(
        &msg,
        "buffer_pool_size",
        &["0 (off)", "64 to 1048576", "32"],
    );
    // Node 0.8's rule, anything up to the pool size, is the largest threshold.
    let c = load(&seed_with("buffer_pool_threshold", json!(8193)), &[]).unwrap();
    assert_eq!((c.buffer_pool_size, c.buffer_pool_threshold), (8192, 8193));
    let msg = error(&seed_with("buffer_pool_threshold", json!(8194)), &[]);
    assert_names(
        &msg,
        "buffer_pool_threshold",
        &["1 to buffer_pool_size + 1 (8193", "8194"],
    );
    let msg = error(&seed_with("buffer_pool_threshold", json!(0)), &[]);
    assert_names(&msg, "buffer_pool_threshold", &["got 0"]);
    // With the pool off the threshold is not used, so not checked.
    let c = load(
        &seed_with("buffer_pool_threshold", json!(1 << 20)),
        &[("buffer_pool_size", "0")],
    )
    .unwrap();
    assert_eq!(c.buffer_pool_size, 0);
}

/// The warp proxy's lean settings: their defaults keep today's behaviour, each takes
/// its range, and a value out of it (or of the wrong type) is named with what is expected.
#[test]
fn the_warp_proxy_settings_default_to_todays_behaviour_and_are_checked() {
    let c = Config::default();
    assert_eq!(c.proxy_copy_buffer_size, 8192, "tokio's copy buffer");
    assert!(!c.proxy_copy_on_readable && !c.proxy_release_upgrade);
    assert_eq!(c.proxy_tls_tickets, 2, "rustls's default");
    assert_eq!(c.proxy_tls_buffer_limit, 64 << 10, "rustls's default");
    let c = load(
        SEED,
        &[
            ("proxy_copy_buffer_size", "1024"),
            ("proxy_copy_on_readable", "true"),
            ("proxy_release_upgrade", "true"),
            ("proxy_tls_tickets", "0"),
            ("proxy_tls_buffer_limit", "16384"),
        ],
    )
    .unwrap();
    assert_eq!(
        (
            c.proxy_copy_buffer_size,
            c.proxy_copy_on_readable,
            c.proxy_release_upgrade,
            c.proxy_tls_tickets,
            c.proxy_tls_buffer_limit
        ),
        (1024, true, true, 0, 16384)
    );
    for (key, value, expected) in [
        (
            "proxy_copy_buffer_size",
            json!(0),
            ["64 to 1048576", "got 0"],
        ),
        (
            "proxy_copy_buffer_size",
            json!(2 << 20),
            ["64 to 1048576", "got 2097152"],
        ),
        (
            "proxy_copy_buffer_size",
            json!("8k"),
            ["a size in bytes", "64 to 1048576"],
        ),
        ("proxy_tls_tickets", json!(9), ["0 to 8", "got 9"]),
        (
            "proxy_tls_tickets",
            json!(-1),
            ["a count of tickets", "0 to 8"],
        ),
        (
            "proxy_tls_buffer_limit",
            json!(100),
            ["1024 to 67108864", "got 100"],
        ),
    ] {
        let msg = error(&seed_with(key, value), &[]);
        assert_names(&msg, key, &expected);
    }
    let msg = error(&seed_with("proxy_copy_on_readable", json!("yes")), &[]);
    assert_names(&msg, "proxy_copy_on_readable", &["expected a boolean"]);
    let msg = error(SEED, &[("proxy_release_upgrade", "1")]);
    assert!(
        msg.starts_with("command line --proxy_release_upgrade: "),
        "{msg}"
    );
}

#[test]
fn a_slab_size_out_of_range_is_named() {
    let msg = error(&seed_with("tcp_slab_size", json!(100)), &[]);
    assert_names(&msg, "tcp_slab_size", &["1024 to 1073741824", "100"]);
}

#[test]
fn pin_message_sizes_are_checked_against_each_other() {
    let msg = error(
        r#"{"client_pinDataBytes": 10, "client_pinDataMessageSize": 0}"#,
        &[],
    );
    assert_eq!(
        msg,
        "FILE: key \"client_pinDataMessageSize\": expected a size above 0 when \
         client_pinDataBytes is set"
    );
    let msg = error(
        r#"{"client_pinMessageSize": 2000, "max_message_size": 1000}"#,
        &[],
    );
    assert_eq!(
        msg,
        "FILE: key \"client_pinMessageSize\": expected at most max_message_size \
         (1000 bytes), got 2000"
    );
    // A zero message size is fine while no data bytes are asked for.
    let c = load(r#"{"client_pinDataMessageSize": 0}"#, &[]).unwrap();
    assert_eq!(c.client_pin_data_message_size, 0);
}

#[test]
fn a_cert_without_its_key_is_refused() {
    let msg = error(&seed_with("tls_cert", json!("cert.pem")), &[]);
    assert_names(
        &msg,
        "tls_cert",
        &["tls_cert and tls_key both set or both null"],
    );

    let mut object: Map<String, Value> = serde_json::from_str(SEED).unwrap();
    object.insert("tls_cert".into(), json!("cert.pem"));
    object.insert("tls_key".into(), json!("key.pem"));
    let c = load(&Value::Object(object).to_string(), &[]).unwrap();
    assert_eq!(c.tls_cert, Some(PathBuf::from("cert.pem")));
    assert_eq!(c.tls_key, Some(PathBuf::from("key.pem")));
}

#[test]
fn a_bad_bind_address_is_named() {
    let msg = error(&seed_with("bind", json!("localhost:80")), &[]);
    assert_names(&msg, "bind", &["IP address"]);
}

#[test]
fn unknown_keys_are_reported_and_do_not_fail() {
    let mut object: Map<String, Value> = serde_json::from_str(SEED).unwrap();
    object.insert("proxy_heapdump".into(), json!(1));
    object.insert("zz_future".into(), json!({"a": [1]}));
    let text = Value::Object(object).to_string();
    let parsed = parse_object(Path::new("FILE"), &text).unwrap();
    let mut unknown = unknown_keys(&parsed);
    unknown.sort();
    assert_eq!(unknown, ["proxy_heapdump", "zz_future"]);
    assert_eq!(load(&text, &[]).unwrap(), Config::default());
}

#[test]
fn new_keys_override_the_defaults() {
    let mut object: Map<String, Value> = serde_json::from_str(SEED).unwrap();
    object.insert("wss_head".into(), json!("drop"));
    object.insert("proxy_head".into(), json!("copy"));
    object.insert("wss_echo".into(), json!(true));
    object.insert("bind".into(), json!("0.0.0.0"));
    object.insert("read_size".into(), json!(4096));
    let c = load(&Value::Object(object).to_string(), &[]).unwrap();
    assert_eq!(c.wss_head, HeadMode::Drop);
    assert_eq!(c.proxy_head, HeadMode::Copy);
    assert!(c.wss_echo);
    assert_eq!(c.bind, std::net::IpAddr::from([0, 0, 0, 0]));
    assert_eq!(c.read_size, 4096);
}

#[test]
fn overrides_apply_over_the_text() {
    let c = load(
        SEED,
        &[
            ("wss_head", "copy"),
            ("proxy_target.port", "9000"),
            ("proxy_tls", "false"),
        ],
    )
    .unwrap();
    let expected = Config {
        wss_head: HeadMode::Copy,
        proxy_target: Target {
            host: "localhost".into(),
            port: 9000,
        },
        proxy_tls: false,
        ..Config::default()
    };
    assert_eq!(c, expected);

    // The flag wins over the file's value.
    let c = load(
        &seed_with("wss_head", json!("drop")),
        &[("wss_head", "copy")],
    )
    .unwrap();
    assert_eq!(c.wss_head, HeadMode::Copy);
    let c = load(SEED, &[("client_connectionspersecond", "0.5")]).unwrap();
    assert_eq!(c.client_connections_per_second, 0.5);
    let c = load(SEED, &[("proxy_target.host", "127.0.0.1")]).unwrap();
    assert_eq!(c.proxy_target.host, "127.0.0.1");
}

/// A nested key set on the command line (or in a file) keeps the other nested key's
/// default, as with no config file at all.
#[test]
fn a_partial_proxy_target_keeps_the_default_for_the_rest() {
    let c = load("{}", &[("proxy_target.port", "9000")]).unwrap();
    assert_eq!(
        c.proxy_target,
        Target {
            host: "localhost".into(),
            port: 9000
        }
    );
    let c = load(r#"{"proxy_target": {"host": "wss.internal"}}"#, &[]).unwrap();
    assert_eq!(
        c.proxy_target,
        Target {
            host: "wss.internal".into(),
            port: 8800
        }
    );
}

#[test]
fn a_bad_override_names_the_flag() {
    let msg = error(SEED, &[("proxy_port", "x")]);
    assert!(
        msg.starts_with("command line --proxy_port: expected a port number"),
        "{msg}"
    );

    let msg = error(SEED, &[("wss_head", "keep")]);
    assert!(msg.starts_with("command line --wss_head: "), "{msg}");
    assert!(msg.contains("keep") && msg.contains("retain"), "{msg}");

    let msg = error(SEED, &[("proxy_target.port", "70000")]);
    assert!(
        msg.starts_with("command line --proxy_target.port: "),
        "{msg}"
    );
    assert!(msg.contains("70000"), "{msg}");

    let msg = error(SEED, &[("client_connectionspersecond", "0")]);
    assert!(
        msg.starts_with("command line --client_connectionspersecond: "),
        "{msg}"
    );

    let msg = error(SEED, &[("proxy_tls", "yes")]);
    assert!(msg.starts_with("command line --proxy_tls: "), "{msg}");
    assert!(msg.contains("boolean"), "{msg}");
}

/// A rule that spans keys, broken by a flag, names the flag, not the file.
#[test]
fn a_bad_override_caught_by_a_cross_key_rule_names_the_flag() {
    let msg = error(SEED, &[("read_size", "2097152")]);
    assert!(msg.starts_with("command line --read_size: "), "{msg}");
    assert!(msg.contains("at most the smaller slab size"), "{msg}");
}

#[test]
fn the_file_is_named_even_with_other_overrides() {
    let msg = error(
        &seed_with("proxy_port", json!(70000)),
        &[("wss_port", "9000")],
    );
    assert_names(&msg, "proxy_port", &["70000"]);
}

#[test]
fn override_values_are_typed_like_json() {
    assert_eq!(override_value("9000"), json!(9000));
    assert_eq!(override_value("0.25"), json!(0.25));
    assert_eq!(override_value("false"), json!(false));
    assert_eq!(override_value("null"), Value::Null);
    assert_eq!(override_value("copy"), json!("copy"));
    assert_eq!(override_value("127.0.0.1"), json!("127.0.0.1"));
    // Only scalars are parsed; anything else is the text itself.
    assert_eq!(override_value("\"quoted\""), json!("\"quoted\""));
    assert_eq!(override_value("{\"a\":1}"), json!("{\"a\":1}"));
}

#[test]
fn set_path_makes_and_replaces_inner_objects() {
    let mut object = Map::new();
    set_path(&mut object, "proxy_target.port", json!(9000));
    set_path(&mut object, "wss_head", json!("copy"));
    assert_eq!(
        Value::Object(object.clone()),
        json!({"proxy_target": {"port": 9000}, "wss_head": "copy"})
    );
    object.insert("proxy_target".into(), json!("broken"));
    set_path(&mut object, "proxy_target.host", json!("h"));
    assert_eq!(object["proxy_target"], json!({"host": "h"}));
}

/// One row of docs/reference/config.md's table: its keys and its default cell.
struct Row {
    keys: Vec<String>,
    default: String,
}

/// The rows of the config.json table in docs/reference/config.md.
fn readme_rows() -> Vec<Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reference/config.md");
    let section = std::fs::read_to_string(&path).expect("docs/reference/config.md is readable");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            assert!(cells.len() >= 3, "a row of three cells: {line}");
            Row {
                keys: cells[0]
                    .split(", ")
                    .map(|k| k.trim().trim_matches('`').to_string())
                    .collect(),
                default: cells[1].trim().to_string(),
            }
        })
        .collect()
}

/// A default as docs/reference/config.md writes it, as JSON: `code` and bare text are JSON when they
/// parse as JSON (numbers, `true`, `null`, objects, arrays), strings otherwise.
fn readme_value(cell: &str) -> Value {
    let text = cell
        .strip_prefix('`')
        .and_then(|c| c.strip_suffix('`'))
        .unwrap_or(cell);
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Two defaults are the same: numbers by value (1 is 1.0), the rest exactly.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// docs/reference/config.md's table has a row for every key of `KEYS` (a nested key by
/// its top-level name) and no row for a key that does not exist.
#[test]
fn readme_table_lists_every_key() {
    let mut in_table: Vec<String> = readme_rows().into_iter().flat_map(|r| r.keys).collect();
    in_table.sort_unstable();
    let mut keys: Vec<String> = KEYS
        .iter()
        .map(|(k, _)| k.split('.').next().unwrap_or(k).to_string())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(
        in_table, keys,
        "docs/reference/config.md's table vs config::KEYS"
    );
}

/// Each row's default is `Config::default()`'s value for each of its keys;
/// `memory_limit`, machine-dependent, is written "a quarter of RAM".
#[test]
fn readme_table_gives_the_defaults() {
    for row in readme_rows() {
        for key in &row.keys {
            if key == "memory_limit" {
                assert_eq!(
                    row.default, "a quarter of RAM",
                    "docs/reference/config.md's {key} row"
                );
                continue;
            }
            let expected = default_value(key).unwrap_or_else(|| panic!("{key} has a default"));
            let written = readme_value(&row.default);
            assert!(
                same_value(&written, &expected),
                "docs/reference/config.md gives {key} the default {} ({written}), the config {expected}",
                row.default
            );
        }
    }
}
