//! Tests of `config.json` loading, checking and command-line overrides.

use super::*;
use clap::error::ErrorKind;
use serde_json::json;
use tempfile::TempDir;

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

/// A config file in its own temporary folder (removed when the guard drops).
struct File {
    _dir: TempDir,
    path: PathBuf,
}

fn file(text: &str) -> File {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, text).unwrap();
    File { _dir: dir, path }
}

fn args(f: &File, overrides: &[(&str, &str)]) -> ConfigArgs {
    ConfigArgs {
        path: Some(f.path.clone()),
        overrides: overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn load(text: &str, overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let f = file(text);
    args(&f, overrides).load()
}

/// Loads `text` (with the seed's other keys) expecting a failure; returns the message
/// with the temporary path replaced by `FILE`.
fn error(text: &str, overrides: &[(&str, &str)]) -> String {
    let f = file(text);
    let err = args(&f, overrides)
        .load()
        .expect_err("expected the config to be refused");
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "one line expected: {msg}");
    msg.replace(&f.path.display().to_string(), "FILE")
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
fn seed_file_loads_to_exactly_the_defaults() {
    let f = file(SEED);
    let object = parse_object(&f.path, SEED).unwrap();
    assert!(unknown_keys(&object).is_empty());
    assert_eq!(args(&f, &[]).load().unwrap(), Config::default());
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
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.json");
    let err = ConfigArgs {
        path: Some(path.clone()),
        overrides: vec![],
    }
    .load()
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(&format!(
            "{}: cannot read the config file: ",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn a_bad_head_mode_is_named() {
    let msg = error(&seed_with("wss_head", json!("keep")), &[]);
    assert_names(&msg, "wss_head", &["keep", "retain", "copy", "drop"]);
    let msg = error(&seed_with("proxy_head", json!(true)), &[]);
    assert_names(&msg, "proxy_head", &["boolean"]);
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
fn a_slab_size_out_of_range_is_named() {
    let msg = error(&seed_with("tcp_slab_size", json!(100)), &[]);
    assert_names(&msg, "tcp_slab_size", &["1024 to 1073741824", "100"]);
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
    let f = file(&text);
    let parsed = parse_object(&f.path, &text).unwrap();
    let mut unknown = unknown_keys(&parsed);
    unknown.sort();
    assert_eq!(unknown, ["proxy_heapdump", "zz_future"]);
    assert_eq!(args(&f, &[]).load().unwrap(), Config::default());
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
    assert_eq!(c.bind, IpAddr::from([0, 0, 0, 0]));
    assert_eq!(c.read_size, 4096);
    assert_eq!(c.head_mode(crate::Role::Wss), HeadMode::Drop);
    assert_eq!(c.head_mode(crate::Role::Proxy), HeadMode::Copy);
}

#[test]
fn overrides_apply_over_the_file() {
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

fn command() -> Command {
    ConfigArgs::augment_args(Command::new("wss"))
}

#[test]
fn help_lists_every_key() {
    let help = command().render_long_help().to_string();
    assert!(help.contains("--config <PATH>"), "{help}");
    for (key, meaning) in KEYS {
        assert!(
            help.contains(&format!("--{key} <VALUE>")),
            "--{key} missing from:\n{help}"
        );
        assert!(help.contains(meaning), "{meaning:?} missing from:\n{help}");
    }
    let err = command()
        .try_get_matches_from(["wss", "--help"])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DisplayHelp);
}

#[test]
fn flags_become_overrides() {
    let f = file(SEED);
    let m = command()
        .try_get_matches_from([
            "wss",
            "--config",
            f.path.to_str().unwrap(),
            "--wss_head",
            "copy",
            "--proxy_target.port",
            "9000",
            "--proxy_tls=false",
        ])
        .unwrap();
    let a = ConfigArgs::from_arg_matches(&m).unwrap();
    assert_eq!(a.path.as_deref(), Some(f.path.as_path()));
    let mut overrides = a.overrides.clone();
    overrides.sort();
    assert_eq!(
        overrides,
        [
            ("proxy_target.port".to_string(), "9000".to_string()),
            ("proxy_tls".to_string(), "false".to_string()),
            ("wss_head".to_string(), "copy".to_string()),
        ]
    );
    let c = a.load().unwrap();
    assert_eq!(c.wss_head, HeadMode::Copy);
    assert_eq!(c.proxy_target.port, 9000);
    assert!(!c.proxy_tls);

    let none =
        ConfigArgs::from_arg_matches(&command().try_get_matches_from(["wss"]).unwrap()).unwrap();
    assert!(none.path.is_none() && none.overrides.is_empty());

    let err = command()
        .try_get_matches_from(["wss", "--proxy_prot", "1"])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownArgument);
}

/// README.md's config.json table has a row for every key of `KEYS` (a nested key
/// by its top-level name) and no row for a key that does not exist.
#[test]
fn readme_table_lists_every_key() {
    let readme = include_str!("../../../README.md");
    let table = readme
        .split("\n## config.json\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has a config.json section");
    let mut in_table: Vec<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split(" |").next())
        .flat_map(|cell| cell.split(", "))
        .map(|k| k.trim_matches('`'))
        .collect();
    in_table.sort_unstable();
    let mut keys: Vec<&str> = KEYS
        .iter()
        .map(|(k, _)| k.split('.').next().unwrap_or(k))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(
        in_table, keys,
        "README.md's config.json table vs config::KEYS"
    );
}
