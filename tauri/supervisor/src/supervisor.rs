//! The supervision loop: start, read the control lines, restart by the exit-code table,
//! and a stop after which nothing is ever started again.
//!
//! One thread owns the child process and runs the loop. Every start happens under the
//! same lock that `stop()` takes to set `stopping`, so a stop either comes before a start
//! (which then does not happen) or after it (and then stops that process). The backoff
//! sleep is a wait on the condition variable that `stop()` notifies, so a stop during
//! the backoff ends the loop at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use crate::control::{parse_line, Control, Ready};
use crate::policy::{decide, Backoff, Decision, Exit};
use crate::process;

/// What to run. The supervisor appends `--port <port> --watch-stdin --parent-pid <own pid>`
/// to `args`.
#[derive(Clone, Debug)]
pub struct GatewayCommand {
    pub program: PathBuf,
    /// Arguments before the supervisor's own (`["-m", "app"]` for the source tree,
    /// `["--config", path]`, ...).
    pub args: Vec<String>,
    /// Extra environment, e.g. `AI_GATEWAY_TOKEN` (never put secrets in `args`).
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// The port of the first start; 0 (the default) lets the OS choose. After an exit
    /// with 75 (cannot bind) the next start uses 0.
    pub port: u16,
}

impl GatewayCommand {
    pub fn new(program: impl Into<PathBuf>) -> GatewayCommand {
        GatewayCommand { program: program.into(), args: Vec::new(), env: Vec::new(), cwd: None, port: 0 }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> GatewayCommand {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> GatewayCommand {
        self.env.push((key.into(), value.into()));
        self
    }

    fn argv(&self, port: u16) -> Vec<String> {
        let mut argv = self.args.clone();
        argv.extend([
            "--port".to_owned(),
            port.to_string(),
            "--watch-stdin".to_owned(),
            "--parent-pid".to_owned(),
            std::process::id().to_string(),
        ]);
        argv
    }
}

/// Timing of restarts and stops.
#[derive(Clone, Debug)]
pub struct Policy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A run that lasted this long was healthy: the next failure starts the backoff over.
    pub healthy_after: Duration,
    /// Give up after this many failed runs in a row (none of them healthy).
    pub max_failures: u32,
    /// After an exit, how long the rest of the process group (a onefile build's Python
    /// child) may take to end on its own before it is killed.
    pub cleanup_grace: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            healthy_after: Duration::from_secs(30),
            max_failures: 8,
            cleanup_grace: Duration::from_secs(3),
        }
    }
}

/// Why the supervisor ended (the last event it sends).
#[derive(Clone, Debug, PartialEq)]
pub enum StopCause {
    /// `stop()` was called.
    Requested,
    /// The gateway exited in a way that asks not to be restarted (0, 64, 78).
    Exited(Exit),
    /// Too many failed runs in a row; the last one ended like this.
    GaveUp(Exit),
    /// The program could not be started at all (missing file, no permission).
    SpawnFailed(String),
}

/// Everything the supervisor reports, in order, from its own threads.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Spawned { pid: u32, args: Vec<String> },
    Ready(Ready),
    /// The run failed before `ready` (the error to show for 64 and 78).
    Fatal { code: i64, error: String },
    /// One line of the gateway's stderr (its log); always read, as a full pipe would
    /// block the gateway.
    Stderr(String),
    Exited { pid: u32, exit: Exit, decision: Decision },
    /// The next start comes after `delay`, unless `stop()` comes first.
    Backoff { delay: Duration, failures: u32 },
    Stopped(StopCause),
}

type Callback = dyn Fn(Event) + Send + Sync;

#[derive(Default)]
struct State {
    stopping: bool,
    /// Set by `stop()` when the graceful wait is over: the loop thread kills the child.
    kill: bool,
    finished: bool,
    stdin: Option<ChildStdin>,
    pid: Option<u32>,
    ready: Option<Ready>,
    last_exit: Option<Exit>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    loop_thread: Mutex<Option<ThreadId>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // a panic in an event callback must not make the gateway unstoppable
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running supervisor. Cloning gives another handle to the same one.
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
}

impl Supervisor {
    /// Starts the gateway on a thread of its own and supervises it until `stop()` or an
    /// exit that asks not to be restarted. `on_event` runs on the supervisor's threads:
    /// keep it short, and do not call `stop()` from it expecting to wait (it returns at
    /// once there).
    pub fn start(command: GatewayCommand, policy: Policy, on_event: impl Fn(Event) + Send + Sync + 'static)
        -> Supervisor {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            loop_thread: Mutex::new(None),
        });
        let runner = Runner { shared: shared.clone(), command, policy, on_event: Arc::new(on_event) };
        let handle = thread::Builder::new()
            .name("ai-gateway-supervisor".into())
            .spawn(move || runner.run())
            .expect("cannot start the supervisor thread");
        *shared.loop_thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle.thread().id());
        Supervisor { shared }
    }

    /// The current run's `ready` line, while it is up.
    pub fn ready(&self) -> Option<Ready> {
        self.shared.lock().ready.clone()
    }

    /// The pid spawned for the current run (a onefile build's bootloader).
    pub fn spawned_pid(&self) -> Option<u32> {
        self.shared.lock().pid
    }

    /// Whether the supervisor has ended (after `Event::Stopped`).
    pub fn is_finished(&self) -> bool {
        self.shared.lock().finished
    }

    /// Stops for good: no start ever follows. Writes `shutdown` to the gateway's stdin
    /// (a graceful stop: in-flight streams get their short drain), waits up to `timeout`
    /// for it to exit, then kills its process group. Returns how the last run ended.
    /// Returns as soon as the gateway is gone; a stop during a backoff returns at once.
    pub fn stop(&self, timeout: Duration) -> Option<Exit> {
        let stdin = {
            let mut state = self.shared.lock();
            state.stopping = true;
            self.shared.wake.notify_all();
            state.stdin.take()
        };
        if let Some(mut stdin) = stdin {
            // dropping the pipe afterwards is an end of file: a second reason to stop
            let _ = stdin.write_all(b"shutdown\n").and_then(|_| stdin.flush());
        }
        let on_loop_thread =
            *self.shared.loop_thread.lock().unwrap_or_else(|p| p.into_inner()) == Some(thread::current().id());
        if on_loop_thread {
            return self.shared.lock().last_exit; // the loop ends after the callback returns
        }
        let state = self.shared.lock();
        let (mut state, _) = self
            .shared
            .wake
            .wait_timeout_while(state, timeout, |s| !s.finished)
            .unwrap_or_else(|p| p.into_inner());
        if !state.finished {
            state.kill = true;
            self.shared.wake.notify_all();
            state = self
                .shared
                .wake
                .wait_timeout_while(state, Duration::from_secs(10), |s| !s.finished)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        state.last_exit
    }

    /// Waits until the supervisor has ended by itself (an exit that is not restarted, or
    /// giving up); `false` on timeout.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        let state = self.shared.lock();
        let (state, _) = self
            .shared
            .wake
            .wait_timeout_while(state, timeout, |s| !s.finished)
            .unwrap_or_else(|p| p.into_inner());
        state.finished
    }
}

struct Runner {
    shared: Arc<Shared>,
    command: GatewayCommand,
    policy: Policy,
    on_event: Arc<Callback>,
}

impl Runner {
    fn run(self) {
        let seed = (std::process::id() as u64) << 32 ^ nanos_now();
        let mut backoff = Backoff::new(self.policy.initial_backoff, self.policy.max_backoff, seed);
        let mut port = self.command.port;
        let mut failures = 0u32;
        let cause = loop {
            let (mut child, args) = {
                // the start and the `stopping` check share one lock: no start after a stop
                let mut state = self.shared.lock();
                if state.stopping {
                    break StopCause::Requested;
                }
                let args = self.command.argv(port);
                match self.spawn(&args) {
                    Ok(mut child) => {
                        state.stdin = child.stdin.take();
                        state.pid = Some(child.id());
                        (child, args)
                    }
                    Err(err) => break StopCause::SpawnFailed(format!("{}: {err}", self.command.program.display())),
                }
            };
            let pid = child.id();
            (self.on_event)(Event::Spawned { pid, args });
            let started = Instant::now();
            let stdout_done = self.read_streams(&mut child);
            let exit = self.wait_exit(&mut child);
            self.shared.lock().last_exit = Some(exit);
            self.clean_up(pid, stdout_done);

            let decision = decide(exit);
            (self.on_event)(Event::Exited { pid, exit, decision });
            if self.shared.lock().stopping {
                break StopCause::Requested;
            }
            let Decision::Restart { fresh_port } = decision else { break StopCause::Exited(exit) };
            if fresh_port {
                port = 0;
            }
            if started.elapsed() >= self.policy.healthy_after {
                failures = 0;
                backoff.reset();
            }
            failures += 1;
            if failures >= self.policy.max_failures {
                break StopCause::GaveUp(exit);
            }
            let delay = backoff.next_delay();
            (self.on_event)(Event::Backoff { delay, failures });
            let state = self.shared.lock();
            let (state, _) = self
                .shared
                .wake
                .wait_timeout_while(state, delay, |s| !s.stopping)
                .unwrap_or_else(|p| p.into_inner());
            if state.stopping {
                break StopCause::Requested;
            }
        };
        (self.on_event)(Event::Stopped(cause));
        let mut state = self.shared.lock();
        state.finished = true;
        self.shared.wake.notify_all();
    }

    fn spawn(&self, args: &[String]) -> std::io::Result<Child> {
        let mut command = Command::new(&self.command.program);
        command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (key, value) in &self.command.env {
            command.env(key, value);
        }
        if let Some(cwd) = &self.command.cwd {
            command.current_dir(cwd);
        }
        process::isolate(&mut command);
        command.spawn()
    }

    /// One thread per pipe, for the whole run: stdout carries the control lines; stderr
    /// is always drained. The receiver hears when stdout reached its end.
    fn read_streams(&self, child: &mut Child) -> mpsc::Receiver<()> {
        let (done_tx, done_rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            let shared = self.shared.clone();
            let on_event = self.on_event.clone();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    match parse_line(&line) {
                        Some(Control::Ready(ready)) => {
                            shared.lock().ready = Some(ready.clone());
                            on_event(Event::Ready(ready));
                        }
                        Some(Control::Fatal { code, error }) => on_event(Event::Fatal { code, error }),
                        _ => {}
                    }
                }
                let _ = done_tx.send(());
            });
        }
        if let Some(stderr) = child.stderr.take() {
            let on_event = self.on_event.clone();
            thread::spawn(move || {
                let mut reader = BufReader::new(stderr);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    // bytes, not `lines()`: a log line that is not UTF-8 must not stop the drain
                    match reader.by_ref().take(64 * 1024).read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => on_event(Event::Stderr(String::from_utf8_lossy(&buf).trim_end().to_owned())),
                    }
                }
            });
        }
        done_rx
    }

    /// Polls the child until it exits, killing it when `stop()` has run out of patience.
    fn wait_exit(&self, child: &mut Child) -> Exit {
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Exit::from_status(status),
                Ok(None) => {}
                Err(_) => {
                    process::kill_child(child);
                    return child.wait().map(Exit::from_status).unwrap_or(Exit::Signal(0));
                }
            }
            let state = self.shared.lock();
            if state.kill {
                drop(state);
                process::kill_child(child);
                continue;
            }
            let _ = self.shared.wake.wait_timeout(state, Duration::from_millis(20));
        }
    }

    /// After the spawned process exited: close its stdin (a onefile build's Python child
    /// stops on that end of file), give the group a moment to end by itself (its stdout
    /// closes when it does), then kill what is left.
    fn clean_up(&self, pid: u32, stdout_done: mpsc::Receiver<()>) {
        {
            let mut state = self.shared.lock();
            state.stdin = None;
            state.pid = None;
            state.ready = None;
        }
        let _ = stdout_done.recv_timeout(self.policy.cleanup_grace);
        // POSIX: while any member lives, the group id names no one else (a reused pid would
        // also have to lead a group of its own to be hit). Windows has no such id: once the spawned process is reaped its pid may be reused,
        // so nothing is killed by pid here (the gateway ends itself on stdin EOF).
        #[cfg(unix)]
        process::kill_group(pid);
        #[cfg(not(unix))]
        let _ = pid;
    }
}

fn nanos_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
