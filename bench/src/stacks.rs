//! The stacks under test: a TLS websocket proxy in front of a websocket server, each
//! either ours or a peer's, started as child processes and stopped again.
//!
//! Every stack gets its own ports (far from the playground's defaults, so a running
//! `scripts/play` or soak is not disturbed), the same certificate (the one our proxy
//! makes, in the bench's own `cert_dir`) and the same settings: head mode, echo.
//!
//! Our servers come in two stacks, the same `wss` and `proxy` binaries: the slab
//! stack (`ours`) and the warp stack (`ours-warp`: `--wss_stack warp` /
//! `--proxy_stack warp`, on warp, hyper, tungstenite and tokio-rustls), the latter
//! optionally with a smaller websocket read buffer (`--ws_read_buffer_size`).
//!
//! A stack without a proxy ([`ProxyKind::None`], `plain ws -> bun`) is its wss alone:
//! the client speaks plain ws to it, and it has no proxy process.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use testkit::ChildGuard;

use crate::procfs;

/// Which TLS proxy a stack has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyKind {
    /// `target/*/proxy`: the slab-pool proxy on tokio-rustls.
    Ours,
    /// `target/*/proxy --proxy_stack warp`: our proxy on warp/hyper over tokio-rustls.
    #[serde(rename = "ours-warp")]
    OursWarp,
    /// `bench/peers/node/proxy.js`: http-proxy 1.18 behind Node's https server.
    Node,
    /// Debian's nginx with `bench/peers/nginx/nginx.conf.in`.
    Nginx,
    /// Debian's HAProxy with `bench/peers/haproxy/haproxy.cfg.in`.
    Haproxy,
    /// No proxy: the client speaks plain ws to the wss.
    None,
}

/// Which websocket server a stack has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WssKind {
    /// `target/*/wss`: the slab-pool wss.
    Ours,
    /// `target/*/wss --wss_stack warp`: our wss on `warp::ws()` (tungstenite).
    #[serde(rename = "ours-warp")]
    OursWarp,
    /// `bench/peers/node/wss.js`: ws 8.
    Node,
    /// `target/*/warp-wss`: `warp::ws` with its default buffers.
    Warp,
    /// `bench/peers/bun/wss.js`: `Bun.serve`'s websocket server (uWebSockets).
    Bun,
}

impl ProxyKind {
    pub fn label(self) -> &'static str {
        match self {
            ProxyKind::Ours => "ours",
            ProxyKind::OursWarp => "ours-warp",
            ProxyKind::Node => "node http-proxy",
            ProxyKind::Nginx => "nginx",
            ProxyKind::Haproxy => "haproxy",
            ProxyKind::None => "plain ws",
        }
    }

    /// Our `proxy` binary, on either stack (it has our snapshot and settings).
    pub fn is_ours(self) -> bool {
        matches!(self, ProxyKind::Ours | ProxyKind::OursWarp)
    }

    /// Whether there is a proxy process at all.
    pub fn exists(self) -> bool {
        self != ProxyKind::None
    }

    /// Whether it serves a snapshot (ours and the Node peer's).
    pub fn has_snapshot(self) -> bool {
        matches!(
            self,
            ProxyKind::Ours | ProxyKind::OursWarp | ProxyKind::Node
        )
    }

    /// TCP sockets of one websocket through it, the client's included: the client's,
    /// the proxy's two and the wss's; the client's and the wss's without a proxy.
    pub fn sockets_per_websocket(self) -> u64 {
        if self.exists() {
            4
        } else {
            2
        }
    }
}

impl WssKind {
    pub fn label(self) -> &'static str {
        match self {
            WssKind::Ours => "ours",
            WssKind::OursWarp => "ours-warp",
            WssKind::Node => "node ws",
            WssKind::Warp => "warp::ws",
            WssKind::Bun => "bun",
        }
    }

    /// Our `wss` binary, on either stack (it has our snapshot and settings).
    pub fn is_ours(self) -> bool {
        matches!(self, WssKind::Ours | WssKind::OursWarp)
    }
}

/// One stack: which proxy in front of which wss, and the settings both get.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stack {
    pub name: String,
    pub proxy: ProxyKind,
    pub wss: WssKind,
    /// Head mode of our servers and of the Node peers (`retain`, `copy`, `drop`).
    pub head: String,
    pub echo: bool,
    /// `ws_read_buffer_size` of our servers, when not their default (warp stack only).
    #[serde(default)]
    pub ws_read_buffer_size: Option<usize>,
    /// More settings of our servers (config keys and values, given to both), and
    /// the words that name them in the stack's name.
    #[serde(default)]
    pub settings: Vec<(String, String)>,
    #[serde(default)]
    pub settings_label: Option<String>,
}

impl Stack {
    pub fn new(proxy: ProxyKind, wss: WssKind, head: &str, echo: bool) -> Stack {
        let mut stack = Stack {
            name: String::new(),
            proxy,
            wss,
            head: head.to_string(),
            echo,
            ws_read_buffer_size: None,
            settings: Vec::new(),
            settings_label: None,
        };
        stack.name = stack.make_name();
        stack
    }

    /// The same stack with our servers' websocket read buffer set to `bytes`.
    pub fn with_read_buffer(mut self, bytes: usize) -> Stack {
        self.ws_read_buffer_size = Some(bytes);
        self.name = self.make_name();
        self
    }

    /// The same stack with `settings` given to our servers, named by `label`.
    pub fn with_settings(mut self, label: &str, settings: &[(&str, &str)]) -> Stack {
        self.settings = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.settings_label = Some(label.to_string());
        self.name = self.make_name();
        self
    }

    /// `ours`, `node`, `nginx -> ours`, `ours-warp (retain, 4 KiB read buffer)`.
    fn make_name(&self) -> String {
        let (proxy, wss) = (self.proxy, self.wss);
        let mut name = if proxy == ProxyKind::Ours && wss == WssKind::Ours {
            "ours".to_string()
        } else if proxy == ProxyKind::OursWarp && wss == WssKind::OursWarp {
            "ours-warp".to_string()
        } else if proxy == ProxyKind::Node && wss == WssKind::Node {
            "node".to_string()
        } else {
            format!("{} -> {}", proxy.label(), wss.label())
        };
        let mut qualifiers = Vec::new();
        if self.head != "drop" {
            qualifiers.push(self.head.clone());
        }
        if let Some(bytes) = self.ws_read_buffer_size {
            qualifiers.push(if bytes % 1024 == 0 {
                format!("{} KiB read buffer", bytes / 1024)
            } else {
                format!("{bytes} B read buffer")
            });
        }
        qualifiers.extend(self.settings_label.clone());
        if !qualifiers.is_empty() {
            name.push_str(&format!(" ({})", qualifiers.join(", ")));
        }
        name
    }
}

/// The ports of one stack.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Ports {
    pub proxy: u16,
    pub proxy_snapshot: u16,
    pub wss: u16,
    pub wss_snapshot: u16,
}

impl Ports {
    /// Ports of the `i`th stack of a run: 19000 + 10 i and up, below the ephemeral range.
    pub fn nth(i: usize) -> Ports {
        let base = 19000 + 10 * i as u16;
        Ports {
            proxy: base,
            proxy_snapshot: base + 1,
            wss: base + 2,
            wss_snapshot: base + 3,
        }
    }
}

/// Where the programs and files are.
#[derive(Debug, Clone)]
pub struct Env {
    /// The repository root: working directory of every server (config.json is there).
    pub root: PathBuf,
    /// Where `wss`, `proxy` and `warp-wss` were built.
    pub bin_dir: PathBuf,
    pub node: PathBuf,
    pub nginx: PathBuf,
    /// `bench/peers/bun/node_modules/.bin/bun` unless `BENCH_BUN` says otherwise.
    pub bun: PathBuf,
    pub haproxy: PathBuf,
    /// Logs, nginx prefixes, results.
    pub work: PathBuf,
    /// The certificate every proxy uses and the client trusts.
    pub cert_dir: PathBuf,
}

impl Env {
    pub fn logs(&self) -> PathBuf {
        self.work.join("logs")
    }

    /// Our servers' config as far as TLS goes: the bench's certificate directory.
    pub fn tls_config(&self) -> runtime::config::Config {
        runtime::config::Config {
            cert_dir: self.cert_dir.clone(),
            ..Default::default()
        }
    }

    /// The certificate chain and key every proxy uses (runtime's names in `cert_dir`).
    pub fn certificate(&self) -> (PathBuf, PathBuf) {
        runtime::tls::cert_paths(&self.tls_config())
    }
}

/// A child process, stopped (SIGTERM, then SIGKILL after [`STOP_GRACE`]) and waited
/// for when dropped.
pub struct Child {
    pub name: String,
    child: ChildGuard,
    pub log: PathBuf,
}

/// How long a stack's process has to exit on SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

impl Child {
    /// Starts `cmd` with its output in `log`; the child dies with the bench if it dies.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Child> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone().with_context(|| log.display().to_string())?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = ChildGuard::spawn(testkit::die_with_parent(&mut cmd))
            .with_context(|| format!("cannot start {name} ({cmd:?})"))?
            .stop_with(libc::SIGTERM, STOP_GRACE);
        Ok(Child {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process and its children (nginx's workers).
    pub fn pids(&self) -> Vec<u32> {
        procfs::with_children(self.pid())
    }

    pub fn rss(&self) -> u64 {
        procfs::rss_sum(&self.pids())
    }

    pub fn cpu_ticks(&self) -> u64 {
        procfs::cpu_sum(&self.pids())
    }

    /// `Some(why)` once the process has ended.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "{} exited ({status}); its log {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 15)
            )),
            Ok(None) => None,
            Err(e) => Some(format!("{}: {e}", self.name)),
        }
    }

    /// SIGTERM, then SIGKILL after [`STOP_GRACE`] (what dropping it does).
    pub fn stop(&mut self) {
        self.child.stop();
    }
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A stack whose processes (proxy, if it has one, and wss) are up and listening.
pub struct Running {
    pub stack: Stack,
    pub ports: Ports,
    pub proxy: Option<Child>,
    pub wss: Child,
}

impl Running {
    /// Snapshot address of our proxy (or the Node peer's), if it has one.
    pub fn proxy_snapshot(&self) -> Option<SocketAddr> {
        self.stack
            .proxy
            .has_snapshot()
            .then(|| SocketAddr::from(([127, 0, 0, 1], self.ports.proxy_snapshot)))
    }

    /// Snapshot address of our wss (or the Node or Bun peer's), if it has one.
    pub fn wss_snapshot(&self) -> Option<SocketAddr> {
        (self.stack.wss != WssKind::Warp)
            .then(|| SocketAddr::from(([127, 0, 0, 1], self.ports.wss_snapshot)))
    }

    /// Where the client connects: the proxy, or the wss of a stack without one.
    pub fn client_port(&self) -> u16 {
        if self.stack.proxy.exists() {
            self.ports.proxy
        } else {
            self.ports.wss
        }
    }

    /// RSS of the proxy (its children included), 0 without a proxy.
    pub fn proxy_rss(&self) -> u64 {
        self.proxy.as_ref().map_or(0, Child::rss)
    }

    /// CPU ticks of the proxy (its children included), 0 without a proxy.
    pub fn proxy_cpu_ticks(&self) -> u64 {
        self.proxy.as_ref().map_or(0, Child::cpu_ticks)
    }

    /// An error if a process has ended.
    pub fn check_alive(&mut self) -> Result<()> {
        for child in self.proxy.iter_mut().chain([&mut self.wss]) {
            if let Some(why) = child.exited() {
                bail!(why);
            }
        }
        Ok(())
    }
}

fn flag(cmd: &mut Command, key: &str, value: impl ToString) {
    cmd.arg(format!("--{key}")).arg(value.to_string());
}

/// Starts the stack's wss, then its proxy, and waits (bounded) until both listen.
pub async fn start(env: &Env, stack: &Stack, ports: Ports) -> Result<Running> {
    std::fs::create_dir_all(env.logs()).with_context(|| env.logs().display().to_string())?;
    let slug = slug(&stack.name);
    let wss = start_wss(
        env,
        stack,
        ports,
        &env.logs().join(format!("{slug}.wss.log")),
    )?;
    let mut wss = wss;
    wait_listening(&mut wss, ports.wss).await?;
    let proxy = if stack.proxy.exists() {
        let proxy_log = env.logs().join(format!("{slug}.proxy.log"));
        let mut proxy = start_proxy(env, stack, ports, &proxy_log, &slug)?;
        wait_listening(&mut proxy, ports.proxy).await?;
        if stack.proxy.has_snapshot() {
            wait_listening(&mut proxy, ports.proxy_snapshot).await?;
        }
        Some(proxy)
    } else {
        None
    };
    let mut running = Running {
        stack: stack.clone(),
        ports,
        proxy,
        wss,
    };
    if stack.wss != WssKind::Warp {
        wait_listening(&mut running.wss, ports.wss_snapshot).await?;
    }
    Ok(running)
}

/// A file-name form of a stack's name: `nginx -> node ws` is `nginx-node-ws`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

fn start_wss(env: &Env, stack: &Stack, ports: Ports, log: &Path) -> Result<Child> {
    let (name, mut cmd) = match stack.wss {
        WssKind::Ours => ("our wss", Command::new(env.bin_dir.join("wss"))),
        WssKind::OursWarp => ("our wss on warp", Command::new(env.bin_dir.join("wss"))),
        WssKind::Warp => ("warp-wss", Command::new(env.bin_dir.join("warp-wss"))),
        WssKind::Node => {
            let mut cmd = Command::new(&env.node);
            cmd.arg(env.root.join("bench/peers/node/wss.js"));
            ("node wss", cmd)
        }
        WssKind::Bun => {
            let mut cmd = Command::new(&env.bun);
            cmd.arg(env.root.join("bench/peers/bun/wss.js"));
            ("bun wss", cmd)
        }
    };
    cmd.current_dir(&env.root).env("RUST_LOG", "warn");
    flag(&mut cmd, "wss_port", ports.wss);
    flag(&mut cmd, "wss_echo", stack.echo);
    flag(&mut cmd, "bind", "127.0.0.1");
    if stack.wss != WssKind::Warp {
        flag(&mut cmd, "wss_heapdump_port", ports.wss_snapshot);
        flag(&mut cmd, "wss_head", &stack.head);
        flag(&mut cmd, "snapshot_bind", "127.0.0.1");
    }
    if stack.wss.is_ours() {
        flag(&mut cmd, "max_connections", 0);
        ours_stack_flags(&mut cmd, stack, stack.wss == WssKind::OursWarp, "wss_stack");
    }
    Child::spawn(name, cmd, log)
}

fn start_proxy(env: &Env, stack: &Stack, ports: Ports, log: &Path, slug: &str) -> Result<Child> {
    let (cert, key) = env.certificate();
    let (name, mut cmd) = match stack.proxy {
        ProxyKind::Ours => ("our proxy", Command::new(env.bin_dir.join("proxy"))),
        ProxyKind::OursWarp => ("our proxy on warp", Command::new(env.bin_dir.join("proxy"))),
        ProxyKind::Node => {
            let mut cmd = Command::new(&env.node);
            cmd.arg(env.root.join("bench/peers/node/proxy.js"));
            ("node proxy", cmd)
        }
        ProxyKind::Nginx => {
            let prefix = env.work.join(format!("nginx-{slug}"));
            let conf = write_nginx_conf(env, &prefix, ports, &cert, &key)?;
            let mut cmd = Command::new(&env.nginx);
            cmd.arg("-p")
                .arg(format!("{}/", prefix.display()))
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg("stderr");
            return Child::spawn("nginx", cmd, log);
        }
        ProxyKind::Haproxy => {
            let dir = env.work.join(format!("haproxy-{slug}"));
            let settings = HaproxySettings {
                threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
                maxconn: haproxy_maxconn(open_file_limit()?),
            };
            let conf = write_haproxy_conf(env, &dir, ports, &cert, &key, settings)?;
            let mut cmd = Command::new(&env.haproxy);
            cmd.arg("-db").arg("-f").arg(&conf);
            return Child::spawn("haproxy", cmd, log);
        }
        ProxyKind::None => bail!("{}: a stack without a proxy has none to start", stack.name),
    };
    cmd.current_dir(&env.root).env("RUST_LOG", "warn");
    flag(&mut cmd, "proxy_port", ports.proxy);
    flag(&mut cmd, "proxy_heapdump_port", ports.proxy_snapshot);
    flag(&mut cmd, "proxy_target.host", "127.0.0.1");
    flag(&mut cmd, "proxy_target.port", ports.wss);
    flag(&mut cmd, "proxy_head", &stack.head);
    flag(&mut cmd, "proxy_tls", true);
    flag(&mut cmd, "cert_dir", env.cert_dir.display());
    flag(&mut cmd, "bind", "127.0.0.1");
    flag(&mut cmd, "snapshot_bind", "127.0.0.1");
    if stack.proxy.is_ours() {
        flag(&mut cmd, "max_connections", 0);
        ours_stack_flags(
            &mut cmd,
            stack,
            stack.proxy == ProxyKind::OursWarp,
            "proxy_stack",
        );
    }
    Child::spawn(name, cmd, log)
}

/// The stack key (`wss_stack` / `proxy_stack`) of one of our servers, the stack's
/// websocket read buffer if it sets one, and its other settings.
fn ours_stack_flags(cmd: &mut Command, stack: &Stack, warp: bool, key: &str) {
    flag(cmd, key, if warp { "warp" } else { "slab" });
    if let Some(bytes) = stack.ws_read_buffer_size {
        flag(cmd, "ws_read_buffer_size", bytes);
    }
    for (key, value) in &stack.settings {
        flag(cmd, key, value);
    }
}

/// nginx's config for `ports`, from `bench/peers/nginx/nginx.conf.in`, in a fresh prefix.
pub fn write_nginx_conf(
    env: &Env,
    prefix: &Path,
    ports: Ports,
    cert: &Path,
    key: &Path,
) -> Result<PathBuf> {
    let template_path = env.root.join("bench/peers/nginx/nginx.conf.in");
    let template = std::fs::read_to_string(&template_path)
        .with_context(|| format!("cannot read {}", template_path.display()))?;
    let conf = render_nginx(&template, ports, cert, key);
    for dir in ["tmp", "logs"] {
        std::fs::create_dir_all(prefix.join(dir))
            .with_context(|| format!("cannot create {}", prefix.join(dir).display()))?;
    }
    let path = prefix.join("nginx.conf");
    std::fs::write(&path, conf).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The template with its `@...@` values filled in.
pub fn render_nginx(template: &str, ports: Ports, cert: &Path, key: &Path) -> String {
    template
        .replace("@LISTEN@", &format!("127.0.0.1:{}", ports.proxy))
        .replace("@UPSTREAM@", &format!("127.0.0.1:{}", ports.wss))
        .replace("@CERT@", &cert.display().to_string())
        .replace("@KEY@", &key.display().to_string())
}

/// What HAProxy's template gets besides ports and the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaproxySettings {
    /// `nbthread`: one per core.
    pub threads: usize,
    /// `maxconn` (global and per frontend), see [`haproxy_maxconn`].
    pub maxconn: u64,
}

/// HAProxy's `maxconn` within an open-file limit of `nofile`: each websocket holds
/// two descriptors (client and upstream) and HAProxy wants a few more of its own
/// (listeners, pollers, logs); it sizes its descriptor table from `maxconn` and warns
/// when the limit is below it.
pub fn haproxy_maxconn(nofile: u64) -> u64 {
    (nofile.saturating_sub(200) / 2).max(100)
}

/// This process's soft open-file limit (the one its children inherit).
pub fn open_file_limit() -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    Ok(limit.rlim_cur)
}

/// HAProxy's config for `ports`, from `bench/peers/haproxy/haproxy.cfg.in`, in `dir`,
/// with the certificate and its key in one PEM file beside it (HAProxy's `crt`).
pub fn write_haproxy_conf(
    env: &Env,
    dir: &Path,
    ports: Ports,
    cert: &Path,
    key: &Path,
    settings: HaproxySettings,
) -> Result<PathBuf> {
    let template_path = env.root.join("bench/peers/haproxy/haproxy.cfg.in");
    let template = std::fs::read_to_string(&template_path)
        .with_context(|| format!("cannot read {}", template_path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let pem = dir.join("localhost.cert-and-key.pem");
    let mut both =
        std::fs::read_to_string(cert).with_context(|| format!("cannot read {}", cert.display()))?;
    if !both.ends_with('\n') {
        both.push('\n');
    }
    both.push_str(
        &std::fs::read_to_string(key).with_context(|| format!("cannot read {}", key.display()))?,
    );
    std::fs::write(&pem, both).with_context(|| format!("cannot write {}", pem.display()))?;
    let conf = render_haproxy(&template, ports, &pem, settings);
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// HAProxy's template with its `@...@` values filled in.
pub fn render_haproxy(
    template: &str,
    ports: Ports,
    pem: &Path,
    settings: HaproxySettings,
) -> String {
    template
        .replace("@LISTEN@", &format!("127.0.0.1:{}", ports.proxy))
        .replace("@UPSTREAM@", &format!("127.0.0.1:{}", ports.wss))
        .replace("@PEM@", &pem.display().to_string())
        .replace("@THREADS@", &settings.threads.to_string())
        .replace("@MAXCONN@", &settings.maxconn.to_string())
}

/// Waits (at most 60 s) until something accepts on 127.0.0.1:`port`, failing early if
/// the process ends.
async fn wait_listening(child: &mut Child, port: u16) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut exited = None;
    let poll = Duration::from_millis(100);
    let listening = testkit::until(Duration::from_secs(60), poll, || {
        exited = child.exited();
        let gone = exited.is_some();
        async move { gone || testkit::accepts(addr).await }
    })
    .await;
    if let Some(why) = exited {
        bail!("{} did not start: {why}", child.name);
    }
    if !listening {
        bail!(
            "{} did not listen on port {port} within 60 s; its log {}:\n{}",
            child.name,
            child.log.display(),
            tail(&child.log, 15)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_template_is_filled() {
        let template = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/nginx/nginx.conf.in"),
        )
        .unwrap();
        let conf = render_nginx(
            &template,
            Ports::nth(2),
            Path::new("/c/cert.pem"),
            Path::new("/c/key.pem"),
        );
        for placeholder in ["@LISTEN@", "@UPSTREAM@", "@CERT@", "@KEY@"] {
            assert!(!conf.contains(placeholder), "left {placeholder}: {conf}");
        }
        assert!(conf.contains("listen 127.0.0.1:19020 ssl;"));
        assert!(conf.contains("server 127.0.0.1:19022;"));
        assert!(conf.contains("ssl_certificate     /c/cert.pem;"));
    }

    #[test]
    fn haproxy_template_is_filled() {
        let template = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/haproxy/haproxy.cfg.in"),
        )
        .unwrap();
        let settings = HaproxySettings {
            threads: 2,
            maxconn: haproxy_maxconn(20_000),
        };
        let conf = render_haproxy(&template, Ports::nth(3), Path::new("/c/both.pem"), settings);
        for placeholder in ["@LISTEN@", "@UPSTREAM@", "@PEM@", "@THREADS@", "@MAXCONN@"] {
            assert!(!conf.contains(placeholder), "left {placeholder}: {conf}");
        }
        let lines: Vec<&str> = conf.lines().map(str::trim).collect();
        for line in [
            "bind 127.0.0.1:19030 ssl crt /c/both.pem",
            "server wss 127.0.0.1:19032",
            "nbthread 2",
            "maxconn 9900",
            "timeout tunnel 1h",
        ] {
            assert!(lines.contains(&line), "no {line:?} in {conf}");
        }
        // maxconn in the global section and in the defaults.
        assert_eq!(lines.iter().filter(|l| **l == "maxconn 9900").count(), 2);
    }

    #[test]
    fn haproxy_maxconn_stays_within_the_open_file_limit() {
        assert_eq!(haproxy_maxconn(20_000), 9_900);
        assert!(2 * haproxy_maxconn(20_000) + 200 <= 20_000);
        assert_eq!(haproxy_maxconn(1024), 412);
        assert_eq!(haproxy_maxconn(100), 100);
        assert!(open_file_limit().unwrap() > 0);
    }

    #[test]
    fn haproxy_gets_the_certificate_and_its_key_in_one_file() {
        let work = std::env::temp_dir().join(format!("bench-haproxy-{}", std::process::id()));
        std::fs::create_dir_all(&work).unwrap();
        let (cert, key) = (work.join("cert.pem"), work.join("key.pem"));
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----",
        )
        .unwrap();
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let env = Env {
            root: Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap()
                .to_path_buf(),
            bin_dir: work.clone(),
            node: "node".into(),
            nginx: "nginx".into(),
            bun: "bun".into(),
            haproxy: "haproxy".into(),
            work: work.clone(),
            cert_dir: work.clone(),
        };
        let settings = HaproxySettings {
            threads: 1,
            maxconn: 100,
        };
        let dir = work.join("haproxy");
        let conf = write_haproxy_conf(&env, &dir, Ports::nth(0), &cert, &key, settings).unwrap();
        let pem = std::fs::read_to_string(dir.join("localhost.cert-and-key.pem")).unwrap();
        assert_eq!(
            pem,
            "-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n"
        );
        let text = std::fs::read_to_string(conf).unwrap();
        assert!(text.contains(&format!(
            "crt {}",
            dir.join("localhost.cert-and-key.pem").display()
        )));
        std::fs::remove_dir_all(&work).unwrap();
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("nginx -> node ws"), "nginx-node-ws");
        assert_eq!(slug("ours (retain)"), "ours-retain");
    }

    #[test]
    fn stack_names() {
        assert_eq!(
            Stack::new(ProxyKind::Ours, WssKind::Ours, "drop", true).name,
            "ours"
        );
        assert_eq!(
            Stack::new(ProxyKind::Ours, WssKind::Ours, "retain", true).name,
            "ours (retain)"
        );
        assert_eq!(
            Stack::new(ProxyKind::Nginx, WssKind::Node, "drop", true).name,
            "nginx -> node ws"
        );
        let warp = |head| Stack::new(ProxyKind::OursWarp, WssKind::OursWarp, head, true);
        assert_eq!(warp("drop").name, "ours-warp");
        assert_eq!(warp("retain").name, "ours-warp (retain)");
        let small = warp("drop").with_read_buffer(4096);
        assert_eq!(small.name, "ours-warp (4 KiB read buffer)");
        assert_eq!(small.ws_read_buffer_size, Some(4096));
        assert_eq!(
            warp("retain").with_read_buffer(4096).name,
            "ours-warp (retain, 4 KiB read buffer)"
        );
        assert_eq!(
            warp("drop").with_read_buffer(1000).name,
            "ours-warp (1000 B read buffer)"
        );
        let fixed = warp("retain").with_settings("fixes on", &[("ws_idle_release_ms", "1000")]);
        assert_eq!(fixed.name, "ours-warp (retain, fixes on)");
        assert_eq!(
            fixed.settings,
            [("ws_idle_release_ms".to_string(), "1000".to_string())]
        );
        assert_eq!(
            slug("ours-warp (retain, 4 KiB read buffer)"),
            "ours-warp-retain-4-KiB-read-buffer"
        );
    }

    #[test]
    fn kinds_serialize_as_their_labels_and_old_results_still_read() {
        let s = Stack::new(ProxyKind::OursWarp, WssKind::OursWarp, "drop", true);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["proxy"], "ours-warp");
        assert_eq!(json["wss"], "ours-warp");
        let old: Stack = serde_json::from_str(
            r#"{"name":"ours","proxy":"ours","wss":"warp","head":"drop","echo":true}"#,
        )
        .unwrap();
        assert_eq!(
            (old.proxy, old.wss, old.ws_read_buffer_size),
            (ProxyKind::Ours, WssKind::Warp, None)
        );
        assert!(ProxyKind::OursWarp.is_ours() && WssKind::OursWarp.is_ours());
        assert!(!WssKind::Warp.is_ours() && !ProxyKind::Nginx.is_ours());
    }

    #[test]
    fn the_new_peers_and_stacks_without_a_proxy() {
        let bun = Stack::new(ProxyKind::None, WssKind::Bun, "drop", true);
        assert_eq!(bun.name, "plain ws -> bun");
        let json = serde_json::to_value(&bun).unwrap();
        assert_eq!(
            (json["proxy"].as_str(), json["wss"].as_str()),
            (Some("none"), Some("bun"))
        );
        assert_eq!(
            Stack::new(ProxyKind::Ours, WssKind::Bun, "drop", true).name,
            "ours -> bun"
        );
        assert_eq!(
            Stack::new(ProxyKind::Haproxy, WssKind::Ours, "drop", true).name,
            "haproxy -> ours"
        );
        assert_eq!(
            Stack::new(ProxyKind::None, WssKind::Ours, "drop", true).name,
            "plain ws -> ours"
        );
        assert!(!ProxyKind::None.exists() && ProxyKind::Haproxy.exists());
        assert!(!ProxyKind::Haproxy.has_snapshot() && !ProxyKind::None.has_snapshot());
        assert!(ProxyKind::Node.has_snapshot() && ProxyKind::Ours.has_snapshot());
        assert_eq!(ProxyKind::None.sockets_per_websocket(), 2);
        assert_eq!(ProxyKind::Haproxy.sockets_per_websocket(), 4);
        assert_eq!(slug("plain ws -> bun"), "plain-ws-bun");
    }
}
