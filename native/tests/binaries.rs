//! The binaries as a user runs them: config errors, startup, Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

fn run_with_config(bin: &str, config: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    Command::new(bin).current_dir(dir.path()).output().unwrap()
}

#[test]
fn a_broken_config_stops_every_binary_with_one_clear_message_and_code_2() {
    for bin in [
        env!("CARGO_BIN_EXE_wss"),
        env!("CARGO_BIN_EXE_proxy"),
        env!("CARGO_BIN_EXE_client"),
    ] {
        for (config, expected) in [
            ("{ \"wss_port\": 8800,", "config.json: not valid JSON"),
            (
                "{ \"wss_head\": \"keep\" }",
                "config.json: key \"wss_head\": unknown variant `keep`",
            ),
            (
                "{ \"proxy_port\": 70000 }",
                "config.json: key \"proxy_port\": expected a port number",
            ),
            (
                "{ \"client_dataSize\": \"big\" }",
                "config.json: key \"client_dataSize\"",
            ),
            ("[1, 2]", "expected a JSON object"),
        ] {
            let out = run_with_config(bin, config);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{bin} with {config}: {stderr}");
            assert!(stderr.contains(expected), "{bin} with {config}: {stderr}");
            assert_eq!(
                stderr.lines().filter(|l| l.starts_with("error:")).count(),
                1,
                "{stderr}"
            );
        }
    }
}

#[test]
fn help_lists_every_config_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_proxy"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for (key, _) in runtime::config::KEYS {
        assert!(
            help.contains(&format!("--{key}")),
            "--{key} missing from:\n{help}"
        );
    }
}

#[test]
fn the_wss_starts_on_a_free_port_and_stops_cleanly_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wss"))
        .current_dir(dir.path())
        .args([
            "--wss_port",
            "0",
            "--wss_heapdump_port",
            "0",
            "--unknown_is_not_a_flag",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // An unknown flag is a usage error (clap's code 2), not a crash.
    assert_eq!(child.wait().unwrap().code(), Some(2));

    std::fs::write(
        dir.path().join("config.json"),
        r#"{"wss_port": 0, "wss_heapdump_port": 0, "extra_key": 1}"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wss"))
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let start = Instant::now();
    while !seen.iter().any(|l: &String| l.contains("wss listening on")) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no startup line: {seen:?}"
        );
        seen.push(lines.next().expect("stderr open").unwrap());
    }
    assert!(
        seen.iter().any(|l| l.contains("unknown key \"extra_key\"")),
        "{seen:?}"
    );
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

/// Both servers on both stacks start on free ports, say which stack they run, and
/// stop with exit code 0 on Ctrl-C.
#[test]
fn every_server_on_every_stack_stops_cleanly_on_ctrl_c() {
    for (bin, stack_key) in [
        (env!("CARGO_BIN_EXE_wss"), "--wss_stack"),
        (env!("CARGO_BIN_EXE_proxy"), "--proxy_stack"),
    ] {
        for stack in ["slab", "warp"] {
            let dir = tempfile::tempdir().unwrap();
            let ports = ["--wss_port", "0", "--wss_heapdump_port", "0"];
            let more = ["--proxy_port", "0", "--proxy_heapdump_port", "0"];
            let args: Vec<&str> = [stack_key, stack]
                .iter()
                .chain(&ports)
                .chain(&more)
                .copied()
                .collect();
            let mut server = common::Program::start(bin, dir.path(), &args);
            let listening = server.line_with("listening on");
            assert_eq!(
                listening.contains("warp"),
                stack == "warp",
                "{bin} {stack}: the startup line names the stack: {listening}"
            );
            let (code, rest) = server.interrupt();
            assert_eq!(code, Some(0), "{bin} {stack}: {rest:?}");
            assert!(
                rest.iter().any(|l| l.contains("stopped")),
                "{bin} {stack}: {rest:?}"
            );
        }
    }
}
