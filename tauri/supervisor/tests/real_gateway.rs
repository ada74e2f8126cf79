//! The supervisor against the real gateway: the source tree (`python -m app`) and, when
//! `AI_GATEWAY_BINARY` names it, the frozen onefile binary.
//!
//! `AI_GATEWAY_PYTHON` is the Python that runs the source tree (default: the repository's
//! `.venv`); the repository root is two levels above this crate. Every wait is bounded.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ai_gateway_supervisor::{Decision, Event, Exit, GatewayCommand, Policy, StopCause, Supervisor};

fn repo_root() -> PathBuf {
    // not canonicalize(): on Windows it yields \\?\ paths that some programs mishandle
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().parent().unwrap().to_path_buf()
}

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("AI_GATEWAY_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = repo_root().join(if cfg!(windows) { ".venv/Scripts/python.exe" } else { ".venv/bin/python" });
    assert!(venv.exists(), "set AI_GATEWAY_PYTHON or create the repository's .venv");
    venv
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Flavor {
    Source,
    Frozen,
}

fn flavors() -> Vec<Flavor> {
    let mut all = vec![Flavor::Source];
    if frozen_binary().is_some() {
        all.push(Flavor::Frozen);
    } else {
        eprintln!("AI_GATEWAY_BINARY is not set: the frozen binary is not exercised");
    }
    all
}

fn frozen_binary() -> Option<PathBuf> {
    std::env::var_os("AI_GATEWAY_BINARY").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// A private directory, removed at drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir()
            .join(format!("sup-test-{}-{}", std::process::id(), COUNT.fetch_add(1, Ordering::SeqCst)));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn command(flavor: Flavor, scratch: &Scratch) -> GatewayCommand {
    let mut command = match flavor {
        Flavor::Source => GatewayCommand::new(python()).arg("-m").arg("app"),
        Flavor::Frozen => GatewayCommand::new(frozen_binary().unwrap()),
    };
    command.cwd = Some(repo_root());
    let logs = scratch.0.join("logs");
    // the onefile build extracts under TMPDIR: a private one shows what it leaves behind
    let tmp = scratch.0.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    command.arg("--log-dir").arg(logs.to_str().unwrap()).env("TMPDIR", tmp.to_str().unwrap())
}

fn quick_policy() -> Policy {
    Policy { initial_backoff: Duration::from_millis(50), max_backoff: Duration::from_millis(400), ..Policy::default() }
}

/// A supervisor and the events it sent, in order.
struct Run {
    supervisor: Supervisor,
    events: Receiver<Event>,
    seen: Vec<Event>,
}

impl Run {
    fn start(command: GatewayCommand, policy: Policy) -> Run {
        let (tx, rx) = channel();
        let tx = Mutex::new(tx);
        let supervisor = Supervisor::start(command, policy, move |event| {
            let _ = tx.lock().unwrap().send(event);
        });
        Run { supervisor, events: rx, seen: Vec::new() }
    }

    /// The next event (stderr lines aside) that `pred` accepts; panics after `timeout`.
    fn expect(&mut self, timeout: Duration, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    let hit = pred(&event);
                    if !matches!(event, Event::Stderr(_)) || hit {
                        self.seen.push(event.clone());
                    }
                    if hit {
                        return event;
                    }
                }
                Err(_) => panic!("no {what} within {timeout:?}; events: {:#?}", self.seen),
            }
        }
    }

    fn ready(&mut self) -> ai_gateway_supervisor::Ready {
        match self.expect(Duration::from_secs(30), "ready", |e| matches!(e, Event::Ready(_))) {
            Event::Ready(ready) => ready,
            _ => unreachable!(),
        }
    }

    /// Collects whatever arrives within `window` (used to show that nothing does).
    fn drain(&mut self, window: Duration) {
        let deadline = Instant::now() + window;
        while let Ok(event) = self.events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if !matches!(event, Event::Stderr(_)) {
                self.seen.push(event);
            }
        }
    }

    fn spawns(&self) -> usize {
        self.seen.iter().filter(|e| matches!(e, Event::Spawned { .. })).count()
    }

    fn spawned_pids(&self) -> Vec<u32> {
        self.seen.iter().filter_map(|e| if let Event::Spawned { pid, .. } = e { Some(*pid) } else { None }).collect()
    }
}

#[cfg(unix)]
fn alive(pid: u32) -> bool {
    // a zombie counts as gone: it runs nothing
    if unsafe { libc::kill(pid as libc::pid_t, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => true,
    }
}

#[cfg(unix)]
fn gone_within(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

#[cfg(unix)]
fn sigkill(pid: u32) {
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// One HTTP/1.1 request on a fresh connection; the whole answer as text.
fn http(url: &str, method: &str, path: &str, body: &str) -> String {
    let host = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                    Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

fn mei_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().map(|e| e.path())
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("_MEI")).collect()
        })
        .unwrap_or_default()
}

#[test]
fn ready_then_a_graceful_stop_exits_0() {
    for flavor in flavors() {
        let scratch = Scratch::new();
        let mut run = Run::start(command(flavor, &scratch), quick_policy());
        let ready = run.ready();
        assert!(http(&ready.url, "GET", "/health", "").starts_with("HTTP/1.1 200"), "{flavor:?}");
        assert_eq!(run.supervisor.ready().map(|r| r.url), Some(ready.url.clone()));
        let started = Instant::now();
        assert_eq!(run.supervisor.stop(Duration::from_secs(10)), Some(Exit::Code(0)), "{flavor:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "stop took {:?}", started.elapsed());
        run.expect(Duration::from_secs(5), "stopped", |e| *e == Event::Stopped(StopCause::Requested));
        assert!(run.supervisor.is_finished());
        #[cfg(unix)]
        assert!(gone_within(ready.pid, Duration::from_secs(5)), "{flavor:?}: gateway still running");
        assert_eq!(run.spawns(), 1);
    }
}

#[cfg(unix)]
#[test]
fn a_killed_gateway_is_restarted() {
    for flavor in flavors() {
        let scratch = Scratch::new();
        let mut run = Run::start(command(flavor, &scratch), quick_policy());
        let first = run.ready();
        let spawned = run.supervisor.spawned_pid().unwrap();
        sigkill(spawned); // the bootloader, for the frozen build
        run.expect(Duration::from_secs(10), "exit by SIGKILL", |e| {
            matches!(e, Event::Exited { exit: Exit::Signal(9), decision: Decision::Restart { fresh_port: false }, .. })
        });
        run.expect(Duration::from_secs(5), "backoff", |e| matches!(e, Event::Backoff { failures: 1, .. }));
        let second = run.ready();
        assert_ne!(first.pid, second.pid);
        assert!(gone_within(first.pid, Duration::from_secs(5)), "{flavor:?}: the first gateway outlived its kill");
        if flavor == Flavor::Source {
            // the killed run could not say why it ended: the next one reports it
            assert_eq!(second.previous_exit.as_ref().unwrap()["reason"], "unclean");
        }
        assert!(http(&second.url, "GET", "/health", "").starts_with("HTTP/1.1 200"));
        assert_eq!(run.supervisor.stop(Duration::from_secs(10)), Some(Exit::Code(0)));
        assert_eq!(run.spawns(), 2);
    }
}

#[test]
fn an_internal_error_70_is_restarted() {
    // A fault can be injected into the source tree only (tests/helpers/crashing_gateway.py
    // runs the real serve loop and makes it raise); the frozen binary has no such hook.
    let scratch = Scratch::new();
    let logs = scratch.0.join("logs");
    let command = GatewayCommand::new(python())
        .arg("-m").arg("tests.helpers.crashing_gateway").arg("main").arg(logs.to_str().unwrap());
    let command = GatewayCommand { cwd: Some(repo_root()), ..command };
    let mut run = Run::start(command, quick_policy());
    run.ready();
    run.expect(Duration::from_secs(15), "fatal 70", |e| matches!(e, Event::Fatal { code: 70, .. }));
    run.expect(Duration::from_secs(10), "exit 70", |e| {
        matches!(e, Event::Exited { exit: Exit::Code(70), decision: Decision::Restart { fresh_port: false }, .. })
    });
    run.expect(Duration::from_secs(5), "backoff", |e| matches!(e, Event::Backoff { .. }));
    run.ready();
    run.supervisor.stop(Duration::from_secs(10));
    assert!(run.spawns() >= 2);
    // the crash record of each failed run is there
    assert!(std::fs::read_dir(&logs).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with("crash-")));
}

#[test]
fn cannot_bind_75_restarts_on_a_fresh_port() {
    for flavor in flavors() {
        let scratch = Scratch::new();
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut command = command(flavor, &scratch);
        command.port = taken.local_addr().unwrap().port();
        let mut run = Run::start(command, quick_policy());
        run.expect(Duration::from_secs(30), "fatal 75", |e| matches!(e, Event::Fatal { code: 75, .. }));
        run.expect(Duration::from_secs(10), "exit 75", |e| {
            matches!(e, Event::Exited { exit: Exit::Code(75), decision: Decision::Restart { fresh_port: true }, .. })
        });
        let Event::Spawned { args, .. } = run.expect(Duration::from_secs(10), "second start", |e| {
            matches!(e, Event::Spawned { .. })
        }) else { unreachable!() };
        let at = args.iter().position(|a| a == "--port").unwrap();
        assert_eq!(args[at + 1], "0", "{flavor:?}: {args:?}");
        let ready = run.ready();
        assert_ne!(ready.port, taken.local_addr().unwrap().port());
        assert_eq!(run.supervisor.stop(Duration::from_secs(10)), Some(Exit::Code(0)));
    }
}

/// Starts, expects an exit with `code` that is not restarted, and no second start.
fn expect_no_restart(mut run: Run, code: i32, fatal: bool) {
    if fatal {
        run.expect(Duration::from_secs(30), "fatal", |e| matches!(e, Event::Fatal { code: c, .. } if *c == code as i64));
    }
    run.expect(Duration::from_secs(30), "exit", |e| {
        matches!(e, Event::Exited { exit: Exit::Code(c), decision: Decision::Stop, .. } if *c == code)
    });
    run.expect(Duration::from_secs(5), "stopped", |e| *e == Event::Stopped(StopCause::Exited(Exit::Code(code))));
    assert!(run.supervisor.wait_finished(Duration::from_secs(1)));
    run.drain(Duration::from_millis(800));
    assert_eq!(run.spawns(), 1, "restarted after {code}: {:#?}", run.seen);
}

#[test]
fn exits_0_64_and_78_are_not_restarted() {
    for flavor in flavors() {
        // 0: stopped on purpose (here through the admin route)
        let scratch = Scratch::new();
        let mut run = Run::start(command(flavor, &scratch), quick_policy());
        let ready = run.ready();
        assert!(http(&ready.url, "POST", "/admin/shutdown", "").starts_with("HTTP/1.1 2"));
        expect_no_restart(run, 0, false);

        // 64: a bad command line
        let scratch = Scratch::new();
        let run = Run::start(command(flavor, &scratch).arg("--no-such-flag"), quick_policy());
        expect_no_restart(run, 64, true);

        // 78: an invalid configuration
        let scratch = Scratch::new();
        let config = scratch.0.join("bad.toml");
        std::fs::write(&config, "[timeouts]\nconnect = \"soon\"\n").unwrap();
        let run = Run::start(command(flavor, &scratch).arg("--config").arg(config.to_str().unwrap()), quick_policy());
        expect_no_restart(run, 78, true);
    }
}

#[cfg(unix)]
#[test]
fn a_stop_during_the_backoff_ends_it_and_nothing_starts_again() {
    for flavor in flavors() {
        let scratch = Scratch::new();
        let policy = Policy { initial_backoff: Duration::from_secs(20), max_backoff: Duration::from_secs(20),
                              ..Policy::default() };
        let mut run = Run::start(command(flavor, &scratch), policy);
        run.ready();
        sigkill(run.supervisor.spawned_pid().unwrap());
        run.expect(Duration::from_secs(10), "backoff", |e| matches!(e, Event::Backoff { .. }));
        let started = Instant::now();
        assert_eq!(run.supervisor.stop(Duration::from_secs(10)), Some(Exit::Signal(9)));
        assert!(started.elapsed() < Duration::from_secs(1), "the stop waited out the backoff: {:?}", started.elapsed());
        run.expect(Duration::from_secs(2), "stopped", |e| *e == Event::Stopped(StopCause::Requested));
        run.drain(Duration::from_secs(1));
        assert_eq!(run.spawns(), 1, "{flavor:?}: started again after the stop");
    }
}

#[cfg(unix)]
#[test]
fn stops_racing_restarts_never_leave_a_gateway_behind() {
    let flavor = Flavor::Source;
    for round in 0..4u64 {
        let scratch = Scratch::new();
        let policy = Policy { initial_backoff: Duration::from_millis(1 + round * 3),
                              max_backoff: Duration::from_millis(20), ..Policy::default() };
        let mut run = Run::start(command(flavor, &scratch), policy);
        let ready = run.ready();
        sigkill(run.supervisor.spawned_pid().unwrap());
        std::thread::sleep(Duration::from_millis(round * 40));
        run.supervisor.stop(Duration::from_secs(10));
        run.expect(Duration::from_secs(5), "stopped", |e| matches!(e, Event::Stopped(_)));
        run.drain(Duration::from_millis(300));
        assert!(matches!(run.seen.last(), Some(Event::Stopped(StopCause::Requested))), "{:#?}", run.seen);
        assert!(gone_within(ready.pid, Duration::from_secs(5)));
        for pid in run.spawned_pids() {
            assert!(gone_within(pid, Duration::from_secs(5)), "round {round}: pid {pid} still runs");
        }
    }
}

#[test]
fn a_stop_with_a_stream_in_flight_drains_it_and_exits_0() {
    for flavor in flavors() {
        let scratch = Scratch::new();
        let fake_model = repo_root().join("tests/helpers/fake_model.py");
        let config = scratch.0.join("config.toml");
        std::fs::write(&config, format!(
            "[server]\ndrain_seconds = 1\n\n[providers.local]\ntype = \"process\"\ncommand = [{:?}, {:?}]\nmodels = [\"slow\"]\n",
            python().to_str().unwrap(), fake_model.to_str().unwrap())).unwrap();
        let mut run = Run::start(command(flavor, &scratch).arg("--config").arg(config.to_str().unwrap()),
                                 quick_policy());
        let ready = run.ready();
        let host = ready.url.trim_start_matches("http://").to_owned();
        let mut stream = TcpStream::connect(&host).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let body = r#"{"model":"slow","stream":true,"messages":[{"role":"user","content":"go"}]}"#;
        write!(stream, "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                        Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&received).contains("tick") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "stream closed early: {}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&buf[..n]);
        }
        let started = Instant::now();
        let supervisor = run.supervisor.clone();
        let stopper = std::thread::spawn(move || supervisor.stop(Duration::from_secs(15)));
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(stopper.join().unwrap(), Some(Exit::Code(0)), "{flavor:?}: not a graceful stop");
        assert!(started.elapsed() < Duration::from_secs(10), "stop took {:?}", started.elapsed());
        let text = String::from_utf8_lossy(&received);
        // an honest end: the in-band error, never a [DONE] that would look like success
        assert!(text.contains("gateway_stopping") && !text.contains("[DONE]"), "{flavor:?}: {text}");
    }
}

#[cfg(unix)]
#[test]
fn a_gateway_that_ignores_the_stop_is_killed_with_its_whole_group() {
    let scratch = Scratch::new();
    let pid_file = scratch.0.join("grandchild.pid");
    // `sh` stands in for a onefile bootloader: it has a child of its own, and it ignores
    // the `shutdown` line. The supervisor's arguments land in $0.. and are ignored.
    let script = format!("sleep 60 & echo $! > {}; while true; do sleep 1; done", pid_file.display());
    let command = GatewayCommand::new("/bin/sh").arg("-c").arg(script);
    let mut run = Run::start(command, quick_policy());
    run.expect(Duration::from_secs(5), "spawned", |e| matches!(e, Event::Spawned { .. }));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pid_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let grandchild: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let started = Instant::now();
    assert_eq!(run.supervisor.stop(Duration::from_millis(500)), Some(Exit::Signal(9)));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(gone_within(grandchild, Duration::from_secs(3)), "the group's other process survived");
}

#[cfg(unix)]
#[test]
fn stderr_is_drained_so_a_chatty_gateway_never_blocks() {
    // 3,000 log lines (about 200 KB, three times a pipe's buffer) before the ready line
    let script = r#"i=0; while [ $i -lt 3000 ]; do echo "log line $i: padding padding padding padding padding padding" >&2; i=$((i+1)); done
echo '{"event":"ready","version":"x","pid":1,"host":"127.0.0.1","port":1,"url":"http://127.0.0.1:1","previous_exit":null}'
read line; exit 0"#;
    let command = GatewayCommand::new("/bin/sh").arg("-c").arg(script);
    let mut run = Run::start(command, quick_policy());
    let ready = run.ready();
    assert_eq!(ready.url, "http://127.0.0.1:1");
    assert_eq!(run.supervisor.stop(Duration::from_secs(5)), Some(Exit::Code(0)));
}

#[cfg(unix)]
#[test]
fn the_onefile_bootloader_killed_leaves_no_process_and_no_extraction_dir() {
    let Some(_) = frozen_binary() else {
        eprintln!("skipped: AI_GATEWAY_BINARY (a onefile build) is not set");
        return;
    };
    let scratch = Scratch::new();
    let tmp = scratch.0.join("tmp");
    let mut run = Run::start(command(Flavor::Frozen, &scratch), quick_policy());
    let mut pythons = Vec::new();
    for _ in 0..3 {
        let ready = run.ready();
        assert_ne!(Some(ready.pid), run.supervisor.spawned_pid(), "not a onefile build");
        pythons.push(ready.pid);
        sigkill(run.supervisor.spawned_pid().unwrap()); // what Task Manager and child.kill() do
        run.expect(Duration::from_secs(10), "exit by SIGKILL", |e| matches!(e, Event::Exited { exit: Exit::Signal(9), .. }));
    }
    let last = run.ready();
    for pid in &pythons {
        assert!(gone_within(*pid, Duration::from_secs(5)), "the gateway {pid} outlived its bootloader");
    }
    // the run now up removes what the killed ones left, in the background
    let deadline = Instant::now() + Duration::from_secs(10);
    while mei_dirs(&tmp).len() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(mei_dirs(&tmp).len(), 1, "leftovers: {:?}", mei_dirs(&tmp));
    assert_eq!(run.supervisor.stop(Duration::from_secs(10)), Some(Exit::Code(0)));
    assert!(gone_within(last.pid, Duration::from_secs(5)));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !mei_dirs(&tmp).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(mei_dirs(&tmp).is_empty(), "after a clean stop: {:?}", mei_dirs(&tmp));
}

#[test]
fn a_program_that_cannot_start_ends_the_supervisor_with_the_reason() {
    let command = GatewayCommand::new(std::env::temp_dir().join("no-such-gateway-here"));
    let mut run = Run::start(command, quick_policy());
    let event = run.expect(Duration::from_secs(5), "stopped", |e| matches!(e, Event::Stopped(_)));
    assert!(matches!(event, Event::Stopped(StopCause::SpawnFailed(ref why)) if why.contains("no-such-gateway-here")),
            "{event:?}");
    assert_eq!(run.spawns(), 0);
    assert_eq!(run.supervisor.stop(Duration::from_secs(1)), None);
}

#[cfg(unix)]
#[test]
fn a_gateway_that_keeps_failing_is_given_up_after_max_failures() {
    let command = GatewayCommand::new("/bin/sh").arg("-c").arg("exit 70");
    let policy = Policy { max_failures: 3, ..quick_policy() };
    let mut run = Run::start(command, policy);
    run.expect(Duration::from_secs(10), "gave up", |e| *e == Event::Stopped(StopCause::GaveUp(Exit::Code(70))));
    assert_eq!(run.spawns(), 3);
    let delays: Vec<Duration> =
        run.seen.iter().filter_map(|e| if let Event::Backoff { delay, .. } = e { Some(*delay) } else { None }).collect();
    assert_eq!(delays.len(), 2);
    assert!(delays[0] <= Duration::from_millis(50) && delays[1] <= Duration::from_millis(100), "{delays:?}");
}
