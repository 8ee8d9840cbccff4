//! Child processes: a guard that ends and reaps its child when it drops, and a
//! child's output read line by line on a thread of its own.

use std::io::{BufRead, BufReader, Read};
use std::ops::{Deref, DerefMut};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A child process that is ended and reaped when the guard drops (a test that
/// fails, or a tool that returns early, leaves no process behind, nor a zombie).
///
/// By default the end is SIGKILL. [`ChildGuard::stop_with`] asks politely first:
/// a signal (SIGINT, as Ctrl-C; SIGTERM), then SIGKILL only if the child is still
/// running after a grace period. The guard dereferences to the [`Child`], for its
/// pid, its pipes and `wait`.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    /// The signal sent first when the guard ends the child, and how long it has to
    /// exit after it before SIGKILL.
    polite: Option<(libc::c_int, Duration)>,
}

/// How often [`ChildGuard::wait_for`] looks whether the child has exited.
const EXIT_POLL: Duration = Duration::from_millis(10);

impl ChildGuard {
    /// Guards `child`: SIGKILL and reaped when the guard drops.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard {
            child,
            polite: None,
        }
    }

    /// Spawns `cmd` and guards the child.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<ChildGuard> {
        cmd.spawn().map(ChildGuard::new)
    }

    /// The same guard, ending the child with `signal` first and SIGKILL only if it
    /// is still running `grace` later.
    pub fn stop_with(mut self, signal: libc::c_int, grace: Duration) -> ChildGuard {
        self.polite = Some((signal, grace));
        self
    }

    /// Sends `signal` to the child, unless it has exited already (then nothing: its
    /// pid may be another process's once it is reaped).
    pub fn signal(&mut self, signal: libc::c_int) -> std::io::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(self.child.id())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        // SAFETY: kill(2) takes plain integers; `pid` is our child's, which has not
        // been reaped (try_wait above), so it names no other process.
        if unsafe { libc::kill(pid, signal) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// SIGINT, as Ctrl-C in a terminal.
    pub fn interrupt(&mut self) -> std::io::Result<()> {
        self.signal(libc::SIGINT)
    }

    /// Waits at most `bound` for the child to exit: its status, or `None` if it is
    /// still running.
    pub fn wait_for(&mut self, bound: Duration) -> std::io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(EXIT_POLL);
        }
    }

    /// Ends the child as dropping the guard does (the polite signal and its grace,
    /// if set, then SIGKILL) and reaps it; its exit status, if it could be read.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some((signal, grace)) = self.polite {
            if self.signal(signal).is_ok() {
                if let Ok(Some(status)) = self.wait_for(grace) {
                    return Some(status);
                }
            }
        }
        // Nothing happens to a child that has exited already.
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Deref for ChildGuard {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes the child `cmd` starts die (SIGKILL) when the thread that started it dies:
/// for the children of a long-running tool, which a crash or a kill of the tool
/// must not leave behind (a guard only runs when the tool unwinds).
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe; it only asks for SIGKILL when the parent
    // dies, and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

/// A stream of text (a child's stderr or stdout) read line by line on a thread of
/// its own: every wait on it is bounded, and the writer never blocks on a full pipe
/// (the thread reads to the end, whether anyone looks at the lines or not).
///
/// It keeps every line it has read. [`Lines::find`] and [`Lines::rest`] go through
/// them in order, each line once; [`Lines::so_far`] gives them all.
#[derive(Debug)]
pub struct Lines {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    rx: Receiver<String>,
    /// Every line read so far.
    seen: Vec<String>,
    /// The first line that `find` and `rest` have not gone past.
    next: usize,
    /// Whether the stream has ended (its writer closed it) and every line is in `seen`.
    ended: bool,
}

impl Lines {
    /// Reads `stream` on a new thread, until it ends. A line that is not UTF-8 is
    /// read lossily; `\n` and `\r\n` end a line and are not part of it.
    pub fn read(stream: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if line.ends_with(b"\n") {
                            line.pop();
                            if line.ends_with(b"\r") {
                                line.pop();
                            }
                        }
                        // Read on when nobody listens any more: the writer must not block.
                        let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
                    }
                }
            }
        });
        Lines {
            state: Mutex::new(State {
                rx,
                seen: Vec::new(),
                next: 0,
                ended: false,
            }),
        }
    }

    /// The child's stderr, which must have been piped (`Stdio::piped()`).
    pub fn stderr(child: &mut Child) -> Lines {
        Lines::read(child.stderr.take().expect("the child's stderr is piped"))
    }

    /// The child's stdout, which must have been piped (`Stdio::piped()`).
    pub fn stdout(child: &mut Child) -> Lines {
        Lines::read(child.stdout.take().expect("the child's stdout is piped"))
    }

    /// The first line not gone past yet that contains `what`, waiting for it at most
    /// `bound`; the lines before it are gone past too. When none comes within the
    /// bound (or the stream ends first): the lines gone past meanwhile.
    pub fn find(&self, what: &str, bound: Duration) -> Result<String, Vec<String>> {
        let deadline = Instant::now() + bound;
        let mut state = self.state();
        let start = state.next;
        loop {
            while state.next < state.seen.len() {
                state.next += 1;
                let line = &state.seen[state.next - 1];
                if line.contains(what) {
                    return Ok(line.clone());
                }
            }
            if !state.one_more(deadline) {
                return Err(state.seen[start..].to_vec());
            }
        }
    }

    /// [`Lines::find`], panicking with what it saw when no such line comes.
    pub fn line_with(&self, what: &str, bound: Duration) -> String {
        self.find(what, bound)
            .unwrap_or_else(|seen| panic!("no line with {what:?} within {bound:?}; saw {seen:?}"))
    }

    /// The lines not gone past yet, up to the end of the stream (waiting for it at
    /// most `bound`); goes past them.
    pub fn rest(&self, bound: Duration) -> Vec<String> {
        let deadline = Instant::now() + bound;
        let mut state = self.state();
        while state.one_more(deadline) {}
        let rest = state.seen[state.next..].to_vec();
        state.next = state.seen.len();
        rest
    }

    /// Waits at most `bound` for the end of the stream (the writer closed it, as a
    /// child's pipes close when it exits); whether it ended.
    pub fn wait_end(&self, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        let mut state = self.state();
        while state.one_more(deadline) {}
        state.ended
    }

    /// Every line read so far, without waiting.
    pub fn so_far(&self) -> Vec<String> {
        let mut state = self.state();
        state.take_ready();
        state.seen.clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held left whole lines only: read on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Takes the lines read already, without waiting.
    fn take_ready(&mut self) {
        while !self.ended {
            match self.rx.try_recv() {
                Ok(line) => self.seen.push(line),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.ended = true,
            }
        }
    }

    /// Waits until `deadline` for one more line; false once the stream has ended or
    /// the deadline has passed.
    fn one_more(&mut self, deadline: Instant) -> bool {
        if self.ended {
            return false;
        }
        match self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(line) => {
                self.seen.push(line);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                self.ended = true;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    /// Whether a process with this pid exists (a zombie counts: it is not reaped).
    fn exists(pid: u32) -> bool {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn a_dropped_guard_kills_and_reaps_its_child() {
        let guard = ChildGuard::spawn(&mut sh("exec sleep 60")).unwrap();
        let pid = guard.id();
        assert!(exists(pid));
        drop(guard);
        assert!(!exists(pid), "process {pid} still there (or a zombie)");
    }

    #[test]
    fn a_polite_guard_asks_first_and_kills_only_after_the_grace() {
        let bound = Duration::from_secs(10);
        // Exits with code 7 on SIGINT, once it says it is ready to. It waits in the
        // `wait` builtin, which a trapped signal interrupts at once. SIGINT is set back
        // to its default in the child first: a test run started in the background
        // (`scripts/test &`) ignores it, and a shell may not trap a signal ignored on
        // entry (it failed so in CI: exit None after the bound, not 7).
        let script = "trap 'kill $!; exit 7' INT; echo ready; sleep 60 & wait";
        let mut cmd = sh(script);
        // SAFETY: signal() is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut polite = ChildGuard::spawn(cmd.stdout(Stdio::piped()))
            .unwrap()
            .stop_with(libc::SIGINT, bound);
        Lines::stdout(&mut polite).line_with("ready", bound);
        assert_eq!(polite.stop().and_then(|s| s.code()), Some(7));
        // One that ignores it is killed once the grace has passed.
        let script = "trap '' INT; echo ready; while :; do sleep 0.05; done";
        let mut deaf = ChildGuard::spawn(sh(script).stdout(Stdio::piped()))
            .unwrap()
            .stop_with(libc::SIGINT, Duration::from_millis(300));
        Lines::stdout(&mut deaf).line_with("ready", bound);
        let started = Instant::now();
        let status = deaf.stop().unwrap();
        assert_eq!(status.code(), None, "{status:?}");
        assert!(started.elapsed() >= Duration::from_millis(300));
        // Signalling an exited child does nothing.
        assert!(deaf.interrupt().is_ok());
    }

    #[test]
    fn wait_for_gives_up_at_its_bound() {
        let mut guard = ChildGuard::spawn(&mut sh("exec sleep 60")).unwrap();
        assert_eq!(guard.wait_for(Duration::from_millis(50)).unwrap(), None);
        let mut quick = ChildGuard::spawn(&mut sh("exit 3")).unwrap();
        let status = quick.wait_for(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(status.code(), Some(3));
    }

    #[test]
    fn lines_are_found_in_order_each_once_and_the_rest_read_to_the_end() {
        let mut child = sh("echo one; echo two; printf 'three\\r\\nfour'")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Lines::stdout(&mut child);
        let bound = Duration::from_secs(10);
        assert_eq!(lines.find("tw", bound), Ok("two".to_string()));
        assert_eq!(lines.rest(bound), vec!["three", "four"]);
        assert!(lines.wait_end(bound));
        // "one" was gone past on the way, and so is every line now.
        assert_eq!(lines.find("one", bound), Err(vec![]));
        assert_eq!(lines.so_far(), vec!["one", "two", "three", "four"]);
        child.wait().unwrap();
    }

    #[test]
    fn a_line_that_does_not_come_is_an_error_listing_what_came() {
        let mut child = ChildGuard::spawn(
            sh("echo starting >&2; exec sleep 60")
                .stderr(Stdio::piped())
                .stdout(Stdio::null()),
        )
        .unwrap();
        let lines = Lines::stderr(&mut child);
        let started = Instant::now();
        let seen = lines.find("ready", Duration::from_millis(200)).unwrap_err();
        assert_eq!(seen, vec!["starting"]);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(!lines.wait_end(Duration::from_millis(10)));
    }
}
