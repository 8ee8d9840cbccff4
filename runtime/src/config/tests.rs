//! Tests of what native adds to the `config` crate: reading the file, the flags and
//! their help, and the keys a role reads. Parsing and checking are tested in the
//! `config` crate itself.

use super::*;
use clap::error::ErrorKind;
use serde_json::{json, Value};
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

/// Loads `text` from a file expecting a failure; returns the message with the
/// temporary path replaced by `FILE`.
fn error(text: &str, overrides: &[(&str, &str)]) -> String {
    let f = file(text);
    let err = args(&f, overrides)
        .load()
        .expect_err("expected the config to be refused");
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "one line expected: {msg}");
    msg.replace(&f.path.display().to_string(), "FILE")
}

#[test]
fn seed_file_loads_to_exactly_the_defaults() {
    assert_eq!(load(SEED, &[]).unwrap(), Config::default());
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

/// A bad file names the file's own path and the key; a bad flag names the flag.
#[test]
fn errors_name_the_file_or_the_flag() {
    let msg = error("{\n  \"proxy_port\": 8600,\n}\n", &[]);
    assert!(msg.starts_with("FILE: not valid JSON: "), "{msg}");
    let msg = error(r#"{"proxy_port": 70000}"#, &[("wss_port", "9000")]);
    assert!(
        msg.starts_with("FILE: key \"proxy_port\": expected a port number 0-65535"),
        "{msg}"
    );
    let msg = error(SEED, &[("read_size", "2097152")]);
    assert!(msg.starts_with("command line --read_size: "), "{msg}");
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
    let mut object: serde_json::Map<String, Value> = serde_json::from_str(SEED).unwrap();
    object.insert("wss_head".into(), json!("drop"));
    let c = load(&Value::Object(object).to_string(), &[("wss_head", "copy")]).unwrap();
    assert_eq!(c.wss_head, HeadMode::Copy);
}

#[test]
fn a_role_reads_its_own_keys() {
    let c = load(
        r#"{"wss_head": "drop", "proxy_head": "copy", "wss_stack": "warp"}"#,
        &[],
    )
    .unwrap();
    assert_eq!(c.head_mode(Role::Wss), HeadMode::Drop);
    assert_eq!(c.head_mode(Role::Proxy), HeadMode::Copy);
    assert_eq!(c.stack(Role::Wss), Stack::Warp);
    assert_eq!(c.stack(Role::Proxy), Stack::Slab);
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

/// The help of each key's flag, as clap renders it, ends with the default the
/// `config` crate computes from `Config::default()`.
#[test]
fn help_gives_each_keys_computed_default() {
    for help in [
        command().render_long_help().to_string(),
        command().render_help().to_string(),
    ] {
        for (key, _) in KEYS {
            let flag = format!("--{key} <VALUE>");
            let start = help
                .find(&flag)
                .unwrap_or_else(|| panic!("{flag} missing from:\n{help}"));
            // The flag's help runs to the next flag, heading or the end.
            let text = help[start + flag.len()..]
                .lines()
                .enumerate()
                .take_while(|(i, l)| {
                    *i == 0 || (l.starts_with(' ') && !l.trim_start().starts_with('-'))
                })
                .flat_map(|(_, l)| l.split_whitespace())
                .collect::<Vec<_>>()
                .join(" ");
            let default = default_text(key).expect("a key of KEYS has a default");
            assert!(
                text.ends_with(&format!("[{default}]")),
                "--{key}'s help {text:?} should end with [{default}]"
            );
        }
    }
    let help = command().render_long_help().to_string();
    assert!(
        help.contains("[a quarter of RAM, here "),
        "memory_limit's default is explained:\n{help}"
    );
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
