//! `client audit` against our own servers, each a real process (the audit measures
//! `/proc/PID`): what it finds on the warp stack in `retain` and in `copy`, on the
//! slab stack, what its head probe says of each stack in `retain` and in `drop`,
//! the live `audit` section of its snapshot, and each way it can stop
//! early (a wrong pid, a target that refuses, a process that exits mid-audit, a
//! level above the open-file limit): a clear message, exit code 1, the figures
//! taken so far in the JSON.
//!
//! Small levels (20 to 60 websockets) keep it fast; the figures asserted are the
//! ones the libraries' code explains (docs/guide/warp-stack.md, "What pins what").

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use client::audit::probe::{ProbeProcess, Verdict};
use client::audit::report::{AuditReport, Step};

mod common;
use common::Program;
use testkit::Lines;

/// The longest an audit of a test may take.
const AUDIT_BOUND: Duration = Duration::from_secs(150);

/// Our wss as a process on an ephemeral port, on `stack` with head mode `head`;
/// returns it and its URL.
fn wss(dir: &Path, stack: &str, head: &str) -> (Program, String) {
    let mut p = Program::start(
        env!("CARGO_BIN_EXE_wss"),
        dir,
        &[
            "--wss_port",
            "0",
            "--wss_heapdump_port",
            "0",
            "--wss_stack",
            stack,
            "--wss_head",
            head,
            "--max_connections",
            "0",
            "--cert_dir",
            &dir.join("certs").display().to_string(),
        ],
    );
    let line = p.line_with("listening on ws://");
    let addr = line
        .split("listening on ws://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (p, format!("ws://{addr}/"))
}

/// The audit's command line: `target`, `pids`, `levels`, JSON and chart in `dir`.
fn audit_command(dir: &Path, target: &str, pids: &[u32], levels: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_client"));
    cmd.current_dir(dir)
        .env("RUST_LOG", "info")
        .args(["audit", "--target", target, "--levels", levels])
        .args(["--rate", "400", "--settle", "12", "--no-progress"])
        .args(["--client_heapdump_port", "0"])
        .arg("--json")
        .arg(dir.join("audit.json"))
        .arg("--chart")
        .arg(dir.join("audit.svg"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for pid in pids {
        cmd.args(["--pid", &pid.to_string()]);
    }
    cmd
}

/// What an audit run left: its exit code, stdout, stderr and JSON (if written).
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    report: Option<AuditReport>,
}

/// Waits (bounded) for an audit started with [`audit_command`] and reads what it left.
fn finish(child: Child, dir: &Path) -> Outcome {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(AUDIT_BOUND)
        .unwrap_or_else(|_| {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("the audit did not end within {AUDIT_BOUND:?}")
        })
        .unwrap();
    let report = std::fs::read(dir.join("audit.json"))
        .ok()
        .map(|j| serde_json::from_slice(&j).expect("the audit's JSON reads"));
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report,
    }
}

/// An audit of `pid` (one level, 20 websockets) once its idle step has ended: its
/// websockets are open and have been read.
fn audit_past_idle(dir: &Path, target: &str, pid: u32) -> Child {
    let mut child = audit_command(dir, target, &[pid], "20").spawn().unwrap();
    Lines::stderr(&mut child)
        .find("audit: 20 connections, idle", AUDIT_BOUND)
        .unwrap_or_else(|seen| panic!("the idle step did not end; saw {seen:#?}"));
    child
}

fn run_audit(dir: &Path, target: &str, pids: &[u32], levels: &str) -> Outcome {
    finish(
        audit_command(dir, target, pids, levels).spawn().unwrap(),
        dir,
    )
}

/// Every figure of a level that went to its end is there and sane.
fn assert_complete(r: &AuditReport, o: &Outcome) {
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    assert!(r.error.is_none(), "{:?}", r.error);
    for level in &r.levels {
        for p in &level.processes {
            for step in Step::ALL {
                let rss = p.rss_at(step).unwrap_or(0);
                assert!(
                    rss > 1 << 20,
                    "{} at {}: rss {rss}",
                    step.name(),
                    level.connections
                );
            }
            assert!(p.pss_bytes.is_some_and(|pss| pss > 0));
            assert!(p.returned_percent.is_some(), "{p:?}");
        }
        assert!(level
            .sockstat
            .idle
            .is_some_and(|s| s.tcp_inuse >= level.connections));
    }
    assert!(o.stdout.contains("KB/conn idle"), "{}", o.stdout);
}

/// The warp stack keeps the first message's view in `retain`: the 128 KiB read
/// buffer it lies in stays beside the one that replaces it once the traffic has
/// filled it, so the traffic step leaves tens of KB more per connection; in
/// `copy` the buffer is reused and the traffic leaves nothing. The audit sees both.
#[test]
fn on_the_warp_stack_the_audit_sees_retain_keep_a_buffer_per_connection_and_copy_none() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (retain, retain_url) = wss(dirs[0].path(), "warp", "retain");
    let (copy, copy_url) = wss(dirs[1].path(), "warp", "copy");
    // Both at once: two processes, measured each on its own.
    let a = audit_command(dirs[0].path(), &retain_url, &[retain.child.id()], "40")
        .spawn()
        .unwrap();
    let b = audit_command(dirs[1].path(), &copy_url, &[copy.child.id()], "40")
        .spawn()
        .unwrap();
    let (ra, rb) = (finish(a, dirs[0].path()), finish(b, dirs[1].path()));
    let (r_retain, r_copy) = (ra.report.as_ref().unwrap(), rb.report.as_ref().unwrap());
    assert_complete(r_retain, &ra);
    assert_complete(r_copy, &rb);
    for (r, dir) in [(r_retain, &dirs[0]), (r_copy, &dirs[1])] {
        assert_eq!(
            r.levels.iter().map(|l| l.connections).collect::<Vec<_>>(),
            [40]
        );
        let svg = std::fs::read_to_string(dir.path().join("audit.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("process "), "{svg}");
    }
    let top = |r: &AuditReport| r.levels[0].processes[0].clone();
    let (kept, copied) = (top(r_retain), top(r_copy));
    let (kt, ct) = (
        kept.after_traffic_kb_per_connection.unwrap(),
        copied.after_traffic_kb_per_connection.unwrap(),
    );
    // Idle, each websocket's 128 KiB read buffer is resident in both modes.
    for p in [&kept, &copied] {
        let idle = p.kb_per_connection.unwrap();
        assert!(idle > 80.0, "idle {idle} KB per connection: {p:?}");
    }
    assert!(
        kt > 40.0,
        "retain: the traffic left only {kt} KB per connection"
    );
    assert!(ct < 15.0, "copy: the traffic left {ct} KB per connection");
    assert!(
        kt > ct + 30.0,
        "retain {kt} vs copy {ct} KB per connection after the traffic"
    );
    assert!(
        ra.stdout
            .contains("256 KiB of traffic on each connection left"),
        "{}",
        ra.stdout
    );
    // Closing gives most of it back in both.
    for p in [&kept, &copied] {
        let back = p.returned_percent.unwrap();
        assert!(back > 60.0, "{back} % given back: {p:?}");
    }
}

/// The slab stack's wss reads through its shared slab pool: no per-connection read
/// buffer, so an idle websocket costs a few KB (the warp stack's: over 80). The
/// traffic cycles 1 MiB slabs through the allocator, which keeps some freed pages
/// for a while: it adds less than the 64 KiB buffer a kept view pins on the warp
/// stack, and nothing per connection is kept by it.
#[test]
fn on_the_slab_stack_an_idle_websocket_costs_a_few_kb() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = wss(dir.path(), "slab", "retain");
    // Two levels: the first includes what the process allocates once, on its
    // first connections and its first traffic; the second shows the steady cost.
    let o = run_audit(dir.path(), &url, &[server.child.id()], "20,60");
    let r = o.report.as_ref().unwrap();
    assert_complete(r, &o);
    let p = &r.levels[1].processes[0];
    let (idle, marginal, traffic) = (
        p.kb_per_connection.unwrap(),
        p.marginal_kb_per_connection.unwrap(),
        p.after_traffic_kb_per_connection.unwrap(),
    );
    assert!(idle < 40.0, "idle {idle} KB per connection: {p:?}");
    assert!(
        marginal < 40.0,
        "marginal {marginal} KB per connection: {p:?}"
    );
    assert!(
        traffic < 50.0,
        "traffic left {traffic} KB per connection: {p:?}"
    );
}

/// The head probe's audit of `pid` at one level of `level` websockets (little
/// traffic: the probe is what is tested), with `extra` arguments.
fn probe_command(dir: &Path, target: &str, pid: u32, level: &str, extra: &[&str]) -> Command {
    let mut cmd = audit_command(dir, target, &[pid], level);
    cmd.args(["--traffic-bytes", "16384", "--head-probe"])
        .args(extra);
    cmd
}

/// The probe of one process, from an audit that went to its end: every pass read.
fn probed(o: &Outcome, level: u64) -> ProbeProcess {
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    let r = o.report.as_ref().unwrap();
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.settings.head_probe_header_bytes, Some(12 << 10));
    let h = r
        .head_probe
        .as_ref()
        .expect("the probe's figures in the JSON");
    assert_eq!((h.connections, h.header_bytes), (level, 12 << 10));
    assert_eq!(h.threshold_kb_per_connection, 3.07);
    let p = h.processes[0].clone();
    for rss in [
        p.before_rss_bytes,
        p.small_rss_bytes,
        p.large_rss_bytes,
        p.small_again_rss_bytes,
        p.after_close_rss_bytes,
    ] {
        assert!(rss.is_some_and(|b| b > 1 << 20), "{p:?}");
    }
    assert!(p.pss_kb_per_connection.is_some(), "{p:?}");
    assert!(o.stdout.contains("head probe: "), "{}", o.stdout);
    p
}

/// Runs the probe at 200 websockets against our wss on `stack` in `retain` and in
/// `drop`, both at once; the two processes' probes.
fn probe_retain_and_drop(stack: &str) -> (ProbeProcess, ProbeProcess, String) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (retain, retain_url) = wss(dirs[0].path(), stack, "retain");
    let (dropping, drop_url) = wss(dirs[1].path(), stack, "drop");
    let a = probe_command(dirs[0].path(), &retain_url, retain.child.id(), "200", &[])
        .spawn()
        .unwrap();
    let b = probe_command(dirs[1].path(), &drop_url, dropping.child.id(), "200", &[])
        .spawn()
        .unwrap();
    let (ra, rb) = (finish(a, dirs[0].path()), finish(b, dirs[1].path()));
    let (kept, dropped) = (probed(&ra, 200), probed(&rb, 200));
    let said = format!("{}\n{}", ra.stdout, rb.stdout);
    assert!(
        ra.stdout.contains("(wss) keeps its request head (about"),
        "{}",
        ra.stdout
    );
    assert!(
        rb.stdout.contains("(wss) does not keep its request head"),
        "{}",
        rb.stdout
    );
    (kept, dropped, said)
}

/// The decisive case: on the warp stack in `retain` the kept `HeaderValue`s pin
/// hyper's read buffer, which a 12 KiB cookie makes larger, so the large requests'
/// websockets hold more than half the header per connection beyond the small ones'
/// (measured 12.8 KB at 200 websockets); in `drop` nothing is kept (measured +0.6).
#[test]
fn the_head_probe_finds_the_warp_wss_keeps_its_request_head_in_retain_and_not_in_drop() {
    let (k, d) = probe_verdicts("warp");
    assert!(k > d + 5.0, "retain {k} vs drop {d} KB per connection");
}

/// On the slab stack the head is a view into the shared 1 MiB slab: in `retain` the
/// slabs a 12 KiB request filled stay pinned by the views (measured 11.4 KB per
/// connection at 200 websockets); in `drop` the slab is reused and nothing is kept
/// (measured +0.7).
#[test]
fn the_head_probe_finds_the_slab_wss_keeps_its_request_head_in_retain_and_not_in_drop() {
    probe_verdicts("slab");
}

/// The head probe of `stack`'s wss in `retain` and in `drop`: "keeps" over 6 KB per
/// connection, and "does not keep" within 3 KB of nothing; the KB per connection of each.
fn probe_verdicts(stack: &str) -> (f64, f64) {
    let (kept, dropped, said) = probe_retain_and_drop(stack);
    let (k, d) = (
        kept.kb_per_connection.unwrap(),
        dropped.kb_per_connection.unwrap(),
    );
    assert_eq!(kept.verdict, Some(Verdict::KeepsRequestHead), "{said}");
    assert_eq!(
        dropped.verdict,
        Some(Verdict::DoesNotKeepRequestHead),
        "{said}"
    );
    assert!(k > 6.0, "retain: {k} KB per connection: {kept:?}");
    assert!(d.abs() < 3.0, "drop: {d} KB per connection: {dropped:?}");
    (k, d)
}

/// A probe header over the server's limit (`max_header_bytes`, 16 KiB): the large
/// pass cannot open, the audit says why and what to do, and keeps what it read.
#[test]
fn a_probe_header_the_server_refuses_stops_the_large_pass_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = wss(dir.path(), "slab", "drop");
    let mut cmd = probe_command(
        dir.path(),
        &url,
        server.child.id(),
        "20",
        &["--probe-header-bytes", "20000"],
    );
    let o = finish(cmd.spawn().unwrap(), dir.path());
    assert_eq!(o.code, Some(1), "{}\n{}", o.stdout, o.stderr);
    let r = o.report.unwrap();
    let e = r.error.as_ref().unwrap();
    assert_eq!((e.step.as_str(), e.level), ("head_probe_large", Some(20)));
    assert!(
        e.message.contains("431") && e.message.contains("lower --probe-header-bytes"),
        "{e:?}"
    );
    assert!(
        o.stderr.contains("lower --probe-header-bytes"),
        "{}",
        o.stderr
    );
    let p = &r.head_probe.as_ref().unwrap().processes[0];
    assert!(
        p.small_rss_bytes.is_some() && p.large_rss_bytes.is_none(),
        "{p:?}"
    );
    assert!(p.verdict.is_none());
    // The levels before it went to their end.
    assert!(r.levels[0].processes[0].after_close_rss_bytes.is_some());
}

/// Through our TLS proxy (warp stack) in front of our wss: a `wss://` target whose
/// self-signed certificate is trusted with `--ca`, and two processes measured, each
/// on its own. Without `--ca` (or `--insecure`) the certificate is refused, clearly.
#[test]
fn through_our_tls_proxy_both_processes_are_measured() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ws_url) = wss(dir.path(), "warp", "copy");
    let wss_port = ws_url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let certs = dir.path().join("certs");
    let mut proxy = Program::start(
        env!("CARGO_BIN_EXE_proxy"),
        dir.path(),
        &[
            "--proxy_port",
            "0",
            "--proxy_heapdump_port",
            "0",
            "--proxy_stack",
            "warp",
            "--proxy_head",
            "copy",
            "--proxy_target.host",
            "127.0.0.1",
            "--proxy_target.port",
            &wss_port,
            "--max_connections",
            "0",
            "--cert_dir",
            &certs.display().to_string(),
        ],
    );
    let line = proxy.line_with("listening on wss://");
    let port = line
        .split("listening on wss://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.rsplit(':').next())
        .unwrap()
        .to_string();
    let url = format!("wss://localhost:{port}/");
    let pids = [proxy.child.id(), server.child.id()];

    let refused = run_audit(dir.path(), &url, &pids, "20");
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    let e = refused.report.unwrap().error.unwrap();
    assert!(
        e.message.contains("TLS handshake") && e.message.contains("--insecure"),
        "{e:?}"
    );

    let mut cmd = audit_command(dir.path(), &url, &pids, "20");
    cmd.arg("--ca").arg(certs.join("localhost.pem"));
    let o = finish(cmd.spawn().unwrap(), dir.path());
    let r = o.report.as_ref().unwrap();
    assert_complete(r, &o);
    let level = &r.levels[0];
    assert_eq!(
        level.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
        pids
    );
    assert_eq!(
        level
            .processes
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["proxy", "wss"]
    );
    // Every websocket through the proxy is one for the wss behind it too.
    for p in &level.processes {
        let idle = p.kb_per_connection.unwrap();
        assert!(idle > 0.0, "{} idle {idle} KB per connection", p.name);
    }
}

/// While an audit runs, its snapshot port reports the audited process's figures.
#[test]
fn the_client_snapshot_reports_the_audited_processes_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = wss(dir.path(), "warp", "copy");
    let pid = server.child.id();
    let mut cmd = audit_command(dir.path(), &url, &[pid], "20");
    cmd.stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // The snapshot's address from the audit's first line.
    let lines = Lines::stderr(&mut child);
    let marker = "snapshot at http://";
    let line = lines
        .find(marker, common::BOUND)
        .unwrap_or_else(|seen| panic!("the audit says where its snapshot is; saw {seen:#?}"));
    let addr = line.split(marker).nth(1).unwrap();
    let addr = addr.trim_end_matches("/snapshot").trim().to_string();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let seen = rt.block_on(async {
        let deadline = Instant::now() + common::BOUND;
        loop {
            let json = client::fetch::get_json(addr, "/snapshot").await;
            if let Ok(json) = json {
                if json["audit"]["processes"][0]["rss_bytes"]
                    .as_u64()
                    .unwrap_or(0)
                    > 0
                    && json["audit"]["connections_open"].as_u64().unwrap_or(0) > 0
                {
                    return json;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no live audit figures in the snapshot"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert_eq!(snapshot::validate(&seen), Ok(()), "{seen:#}");
    assert_eq!(seen["role"], "client");
    assert_eq!(seen["audit"]["processes"][0]["pid"], pid);
    assert_eq!(seen["audit"]["target"], url.as_str());
    assert_eq!(seen["audit"]["level"], 20);
    // The figure is the process's own, as the kernel has it.
    let rss = seen["audit"]["processes"][0]["rss_bytes"].as_u64().unwrap();
    let now = runtime::procfs::rss_bytes(pid).unwrap();
    assert!(
        rss > now / 2 && rss < now * 2,
        "snapshot {rss}, /proc {now}"
    );
    // Prometheus sees the same figures on the client's /metrics, by pid.
    let metrics = rt
        .block_on(client::fetch::get_text(addr, "/metrics"))
        .unwrap();
    let sample = |name: &str| -> Option<f64> {
        let prefix = format!("{name}{{");
        metrics
            .lines()
            .find(|l| l.starts_with(&prefix) && l.contains(&format!("pid=\"{pid}\"")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let exposed = sample("audit_process_resident_memory_bytes")
        .unwrap_or_else(|| panic!("no audited RSS for pid {pid} in:\n{metrics}"));
    assert!(
        exposed > now as f64 / 2.0 && exposed < now as f64 * 2.0,
        "/metrics {exposed}, /proc {now}"
    );
    assert!(metrics.contains("audit_connections_open{"), "{metrics}");
    let o = finish(child, dir.path());
    assert_eq!(o.code, Some(0), "{}", o.stdout);
}

#[test]
fn a_wrong_pid_stops_at_once_with_a_clear_message_and_code_1() {
    let dir = tempfile::tempdir().unwrap();
    // Above the kernel's pid_max ceiling (4194304): no process has it.
    let o = run_audit(dir.path(), "ws://127.0.0.1:9/", &[4_999_999], "20");
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(
        o.stderr.contains("--pid 4999999: no such process"),
        "{}",
        o.stderr
    );
    let r = o.report.unwrap();
    let e = r.error.unwrap();
    assert_eq!(e.step, "start");
    assert!(r.levels.is_empty() && r.baseline.is_none());
}

#[test]
fn a_target_that_refuses_ends_the_idle_step_keeping_the_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port();
    let url = format!("ws://127.0.0.1:{port}/");
    let o = run_audit(dir.path(), &url, &[std::process::id()], "20");
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    let r = o.report.unwrap();
    let e = r.error.as_ref().unwrap();
    assert_eq!((e.step.as_str(), e.level), ("idle", Some(20)));
    assert!(
        e.message.contains("cannot connect to 127.0.0.1") && e.message.contains("refused"),
        "{e:?}"
    );
    assert!(o.stderr.contains(&e.message), "{}", o.stderr);
    // What was read before it is kept.
    assert!(r.baseline.as_ref().unwrap().processes[0].rss_bytes > 0);
    assert!(r.levels[0].processes[0].before_rss_bytes.is_some());
    assert!(r.levels[0].processes[0].rss_bytes.is_none());
}

/// The server killed once the level's websockets are open and read: the next step
/// says the process has exited, and the figures read until then are in the JSON.
#[test]
fn a_process_that_exits_mid_audit_ends_the_step_keeping_the_levels_done() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = wss(dir.path(), "warp", "copy");
    let pid = server.child.id();
    let child = audit_past_idle(dir.path(), &url, pid);
    // The websockets are open and read: kill the server under them.
    server.child.kill().unwrap();
    let o = finish(child, dir.path());
    assert_eq!(o.code, Some(1), "{}", o.stdout);
    let r = o.report.unwrap();
    let e = r.error.as_ref().unwrap();
    assert_eq!((e.step.as_str(), e.level), ("after_message", Some(20)));
    assert!(
        e.message
            .contains(&format!("process {pid} (wss) has exited")),
        "{e:?}"
    );
    let p = &r.levels[0].processes[0];
    assert!(
        p.rss_bytes.is_some() && p.kb_per_connection.is_some(),
        "{p:?}"
    );
    assert!(p.after_message_rss_bytes.is_none() && p.after_close_rss_bytes.is_none());
}

/// Ctrl-C mid-audit: the step in progress ends, the figures so far are written.
#[test]
fn an_interrupted_audit_keeps_what_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = wss(dir.path(), "warp", "copy");
    let child = audit_past_idle(dir.path(), &url, server.child.id());
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let o = finish(child, dir.path());
    assert_eq!(o.code, Some(1));
    let r = o.report.unwrap();
    let e = r.error.as_ref().unwrap();
    assert!(e.message.contains("interrupted"), "{e:?}");
    assert_eq!((e.step.as_str(), e.level), ("after_message", Some(20)));
    assert!(r.levels[0].processes[0].rss_bytes.is_some());
}

/// A level that needs more descriptors than the audit may open stops before it
/// opens any, with the limit in the message; the levels below it are kept.
#[test]
fn a_level_above_the_open_file_limit_ends_with_the_limit_in_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = wss(dir.path(), "slab", "copy");
    let mut cmd = audit_command(dir.path(), &url, &[server.child.id()], "20,500");
    // SAFETY: setrlimit is async-signal-safe; the child gets 200 files, hard too.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 200,
                rlim_max: 200,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = finish(cmd.spawn().unwrap(), dir.path());
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    let r = o.report.unwrap();
    let e = r.error.as_ref().unwrap();
    assert_eq!((e.step.as_str(), e.level), ("idle", Some(500)));
    assert!(
        e.message.contains("500 websockets need 564 open files")
            && e.message.contains("may open 200"),
        "{e:?}"
    );
    assert!(r.levels[0].processes[0].after_close_rss_bytes.is_some());
}

#[test]
fn options_that_cannot_work_exit_2_before_measuring() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (
            vec!["--target", "http://x/", "--pid", "1"],
            "ws:// or wss://",
        ),
        (
            vec!["--target", "ws://x/", "--pid", "1", "--levels", "100,20"],
            "--levels must increase",
        ),
        (
            vec!["--target", "ws://x/", "--pid", "1", "--chart", "c.png"],
            "SVG",
        ),
        (
            vec![
                "--target",
                "ws://x/",
                "--pid",
                "1",
                "--head-probe",
                "--probe-header-bytes",
                "10",
            ],
            "--probe-header-bytes must be from 1024",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_client"))
            .current_dir(dir.path())
            .arg("audit")
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
