//! `bench`: the benchmark of our servers against the peers (run by `scripts/bench`,
//! which installs the peers and builds everything first).
//!
//! - `bench run [--quick]`: every stack, the headline and the allocation probe;
//!   writes `results.json` and `tables.md` to `--out` and prints the tables.
//! - `bench report RESULTS`: prints the tables of a results file again.
//! - `bench check RESULTS`: exits 1, naming what is missing, unless every peer
//!   started and every figure was produced (what `--quick` checks in CI).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use bench::results::{Meta, Plan, Results};
use bench::scenario;
use bench::stacks::{Env, Ports, ProxyKind, Stack, WssKind};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Runs the comparison (run from the repository root).
    Run {
        /// Small sizes, for CI: checks that everything runs, measures nothing.
        #[arg(long)]
        quick: bool,
        /// Where results, logs and nginx prefixes go [target/bench, target/bench/quick].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only the stacks of these names (repeatable): `ours`, `node`, `nginx -> ours`,
        /// `nginx -> node ws`, `node http-proxy -> ours`, `ours -> warp::ws`, `ours (retain)`,
        /// `ours-warp`, `ours-warp (4 KiB read buffer)`, `ours-warp (retain)`,
        /// `ours-warp (retain, 4 KiB read buffer)`, `ours-warp (fixes on)`,
        /// `ours-warp (retain, fixes on)`, `ours-warp (4 KiB read buffer, fixes on)`,
        /// `plain ws -> bun`, `plain ws -> ours`,
        /// `ours -> bun`, `haproxy -> ours`.
        #[arg(long)]
        only: Vec<String>,
        /// Skip the headline experiment.
        #[arg(long)]
        no_headline: bool,
        /// Skip the allocation probe.
        #[arg(long)]
        no_probe: bool,
        /// The command to name as the one that reproduces the run.
        #[arg(long)]
        command: Option<String>,
    },
    /// Prints the tables of a results file.
    Report {
        results: PathBuf,
        /// Also writes them into this Markdown file, between its bench markers.
        #[arg(long, value_name = "FILE")]
        splice: Option<PathBuf>,
    },
    /// Exits 1 unless every peer started and every figure was produced.
    Check { results: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Report { results, splice } => match read(&results) {
            Ok(r) => {
                let tables = bench::report::render(&r);
                match splice {
                    Some(file) => match splice_into(&file, &tables) {
                        Ok(()) => {
                            eprintln!("bench: tables written into {}", file.display());
                            ExitCode::SUCCESS
                        }
                        Err(e) => fail(&e),
                    },
                    None => {
                        print!("{tables}");
                        ExitCode::SUCCESS
                    }
                }
            }
            Err(e) => fail(&e),
        },
        Cmd::Check { results } => match read(&results) {
            Ok(r) => {
                let missing = bench::report::missing(&r);
                if missing.is_empty() {
                    println!(
                        "bench check: every peer started and every figure was produced ({} stacks, {} headline rows, {} probes)",
                        r.stacks.len(),
                        r.headline.len(),
                        r.probe.len()
                    );
                    ExitCode::SUCCESS
                } else {
                    eprintln!("bench check: {} problem(s):", missing.len());
                    for m in missing {
                        eprintln!("  - {}", m.replace('\n', "\n    "));
                    }
                    ExitCode::FAILURE
                }
            }
            Err(e) => fail(&e),
        },
        Cmd::Run {
            quick,
            out,
            only,
            no_headline,
            no_probe,
            command,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            // Children are started from this (main) thread: their parent-death signal
            // is tied to it.
            let outcome = runtime.block_on(async {
                tokio::select! {
                    r = run(quick, out, only, !no_headline, !no_probe, command) => r,
                    _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
                }
            });
            match outcome {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
    }
}

/// The error on one line, with what it was doing at each step (`{:#}`).
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: bench: {e:#}");
    ExitCode::FAILURE
}

/// Markers in docs/results/benchmarks.md between which `report --splice` writes the tables.
const BEGIN: &str = "<!-- BEGIN tables written by scripts/bench -->";
const END: &str = "<!-- END tables written by scripts/bench -->";

fn splice_into(file: &Path, tables: &str) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| file.display().to_string())?;
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        bail!("{}: no markers {BEGIN} ... {END}", file.display());
    };
    if e < b {
        bail!("{}: markers out of order", file.display());
    }
    let out = format!("{}{BEGIN}\n\n{tables}\n{}", &text[..b], &text[e..]);
    std::fs::write(file, out).with_context(|| format!("cannot write {}", file.display()))
}

fn read(path: &Path) -> Result<Results> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a results file", path.display()))
}

async fn run(
    quick: bool,
    out: Option<PathBuf>,
    only: Vec<String>,
    headline: bool,
    probe: bool,
    command: Option<String>,
) -> Result<()> {
    let started = Instant::now();
    let planned = scenario::stacks();
    if let Some(unknown) = only
        .iter()
        .find(|name| !planned.iter().any(|p| &p.stack.name == *name))
    {
        let names: Vec<&str> = planned.iter().map(|p| p.stack.name.as_str()).collect();
        bail!(
            "--only {unknown:?}: no such stack (the stacks: {})",
            names.join(", ")
        );
    }
    let root = std::env::current_dir().context("the working directory")?;
    let out = out.map(|o| root.join(o)).unwrap_or_else(|| {
        if quick {
            root.join("target/bench/quick")
        } else {
            root.join("target/bench")
        }
    });
    let bin_dir = std::env::current_exe()
        .context("the bench's own path")?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let env = Env {
        root: root.clone(),
        bin_dir,
        node: std::env::var_os("BENCH_NODE").map_or_else(|| "node".into(), PathBuf::from),
        nginx: std::env::var_os("BENCH_NGINX").map_or_else(|| "nginx".into(), PathBuf::from),
        bun: std::env::var_os("BENCH_BUN").map_or_else(
            || root.join("bench/peers/bun/node_modules/.bin/bun"),
            PathBuf::from,
        ),
        haproxy: std::env::var_os("BENCH_HAPROXY").map_or_else(|| "haproxy".into(), PathBuf::from),
        work: out.clone(),
        cert_dir: out.join("certs"),
    };
    std::fs::create_dir_all(env.logs()).with_context(|| env.logs().display().to_string())?;
    let tls = scenario::client_tls(&env)?;
    let plan = if quick { Plan::quick() } else { Plan::full() };
    let mut results = Results {
        meta: Meta {
            date: sh("date", &["-u", "+%Y-%m-%d %H:%M"]),
            quick,
            command: command.unwrap_or_else(|| {
                if quick {
                    "scripts/bench --quick"
                } else {
                    "scripts/bench"
                }
                .to_string()
            }),
            machine: machine(),
            versions: versions(&env),
            plan: plan.clone(),
            only: only.clone(),
            seconds: 0.0,
        },
        ..Default::default()
    };

    let selected = |s: &Stack| only.is_empty() || only.contains(&s.name);
    for (i, planned) in planned.into_iter().enumerate() {
        let stack = &planned.stack;
        if !selected(stack) {
            continue;
        }
        let r = scenario::memory_and_load(
            &env,
            &plan,
            &planned,
            Ports::nth(i),
            &tls,
            &mut results.snapshot_cost,
        )
        .await;
        if let Some(e) = &r.error {
            eprintln!("bench:    FAILED: {e}");
            results.errors.push(format!("{}: {e}", stack.name));
        }
        results.stacks.push(r);
    }

    if headline {
        let runs = [
            Stack::new(ProxyKind::Ours, WssKind::Ours, "retain", false),
            Stack::new(ProxyKind::Ours, WssKind::Ours, "copy", false),
            Stack::new(ProxyKind::Ours, WssKind::Ours, "drop", false),
            Stack::new(ProxyKind::Node, WssKind::Node, "retain", false),
            Stack::new(ProxyKind::Node, WssKind::Node, "drop", false),
            Stack::new(ProxyKind::OursWarp, WssKind::OursWarp, "retain", false),
            Stack::new(ProxyKind::OursWarp, WssKind::OursWarp, "copy", false),
            Stack::new(ProxyKind::OursWarp, WssKind::OursWarp, "drop", false),
        ];
        for (k, stack) in runs.iter().enumerate() {
            match scenario::headline(&env, &plan, stack, Ports::nth(20 + k), &tls).await {
                Ok(rows) => results.headline.extend(rows),
                Err(e) => {
                    eprintln!("bench:    FAILED: {e:#}");
                    results
                        .errors
                        .push(format!("headline {}: {e:#}", stack.name));
                }
            }
        }
    }

    if probe {
        match scenario::probe(&env, &plan, Ports::nth(30), &tls).await {
            Ok(p) => results.probe = p,
            Err(e) => {
                eprintln!("bench:    FAILED: {e:#}");
                results.errors.push(format!("allocation probe: {e:#}"));
            }
        }
    }

    results.meta.seconds = started.elapsed().as_secs_f64();
    let json = serde_json::to_string_pretty(&results).expect("serializable");
    let path = out.join("results.json");
    std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
    let tables = bench::report::render(&results);
    let tables_path = out.join("tables.md");
    std::fs::write(&tables_path, &tables)
        .with_context(|| format!("cannot write {}", tables_path.display()))?;
    println!("{tables}");
    eprintln!(
        "bench: results in {} and {} ({:.0} s)",
        path.display(),
        tables_path.display(),
        results.meta.seconds
    );
    Ok(())
}

/// A command's output (stdout, else stderr), trimmed; empty if it cannot run.
fn sh(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(o) => {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text).trim().to_string()
        }
        Err(_) => String::new(),
    }
}

fn machine() -> BTreeMap<String, String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .unwrap_or("?")
        .trim_matches('"')
        .to_string();
    BTreeMap::from([
        ("cpu".into(), cpu),
        (
            "cores".into(),
            std::thread::available_parallelism()
                .map(|n| n.get().to_string())
                .unwrap_or_default(),
        ),
        (
            "memory".into(),
            format!("{:.0} GiB", mem_kb as f64 / 1048576.0),
        ),
        ("os".into(), os),
        (
            "kernel".into(),
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
        ("open files".into(), sh("sh", &["-c", "ulimit -n"])),
    ])
}

fn versions(env: &Env) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert(
        "rustc".into(),
        sh("rustc", &["--version"]).replace("rustc ", ""),
    );
    let lock = std::fs::read_to_string(env.root.join("Cargo.lock")).unwrap_or_default();
    for krate in [
        "tokio",
        "rustls",
        "tokio-rustls",
        "tungstenite",
        "warp",
        "hyper",
    ] {
        if let Some(ver) = lock_version(&lock, krate) {
            v.insert(krate.into(), ver);
        }
    }
    v.insert(
        "node".into(),
        sh(&env.node.to_string_lossy(), &["--version"]),
    );
    for pkg in ["ws", "http-proxy"] {
        let path = env
            .root
            .join(format!("bench/peers/node/node_modules/{pkg}/package.json"));
        let ver = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|j| j["version"].as_str().map(str::to_string));
        if let Some(ver) = ver {
            v.insert(pkg.into(), ver);
        }
    }
    let bun = sh(&env.bun.to_string_lossy(), &["--version"]);
    if !bun.is_empty() {
        v.insert("bun".into(), bun);
    }
    let haproxy = sh(&env.haproxy.to_string_lossy(), &["-vv"]);
    if let Some(ver) = haproxy
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("HAProxy version "))
    {
        v.insert(
            "haproxy".into(),
            ver.split_whitespace().next().unwrap_or("").to_string(),
        );
    }
    if let Some(ssl) = haproxy
        .lines()
        .find_map(|l| l.trim().strip_prefix("Running on OpenSSL version : "))
    {
        v.insert(
            "haproxy's OpenSSL".into(),
            ssl.split_whitespace().nth(1).unwrap_or("").to_string(),
        );
    }
    let nginx = sh(&env.nginx.to_string_lossy(), &["-V"]);
    if let Some(ver) = nginx.lines().next().and_then(|l| l.split('/').nth(1)) {
        v.insert("nginx".into(), ver.trim().to_string());
    }
    if let Some(ssl) = nginx
        .lines()
        .find_map(|l| l.strip_prefix("built with OpenSSL "))
    {
        v.insert(
            "nginx's OpenSSL".into(),
            ssl.split_whitespace().next().unwrap_or("").to_string(),
        );
    }
    v
}

/// The versions of `krate` in Cargo.lock (`0.30.0 and 0.29.0` when there are several).
fn lock_version(lock: &str, krate: &str) -> Option<String> {
    let needle = format!("name = \"{krate}\"\nversion = \"");
    let mut versions: Vec<&str> = lock
        .match_indices(&needle)
        .filter_map(|(at, _)| lock[at + needle.len()..].split('"').next())
        .collect();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    (!versions.is_empty()).then(|| versions.join(" and "))
}
