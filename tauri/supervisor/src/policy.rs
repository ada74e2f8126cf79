//! What an exit asks of the supervisor, and how long to wait before the next start.
//! Pure: no processes, no clock (jitter comes from a seed the caller owns).

use std::process::ExitStatus;
use std::time::Duration;

/// How one run of the gateway ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal (POSIX only; on Windows a killed process has a code).
    Signal(i32),
}

impl Exit {
    pub fn from_status(status: ExitStatus) -> Exit {
        if let Some(code) = status.code() {
            return Exit::Code(code);
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(signal) = status.signal() {
                return Exit::Signal(signal);
            }
        }
        Exit::Signal(0)
    }
}

/// The gateway's exit codes (its contract with every supervisor).
pub mod code {
    pub const OK: i32 = 0;
    pub const USAGE: i32 = 64;
    pub const INTERNAL: i32 = 70;
    pub const CANNOT_BIND: i32 = 75;
    pub const CONFIG: i32 = 78;
}

/// What to do after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Stopped on purpose (0), or a mistake a restart cannot fix (64, 78).
    Stop,
    /// Start it again after a backoff; `fresh_port` asks for `--port 0` (after 75).
    Restart { fresh_port: bool },
}

/// The exit-code table of the contract: 0, 64 and 78 stop; 75 restarts on an ephemeral
/// port; 70, any other code and a kill restart with backoff. On Windows a process killed
/// by `TerminateProcess` (Task Manager) usually ends with code 1, which restarts too.
pub fn decide(exit: Exit) -> Decision {
    match exit {
        Exit::Code(code::OK) | Exit::Code(code::USAGE) | Exit::Code(code::CONFIG) => Decision::Stop,
        Exit::Code(code::CANNOT_BIND) => Decision::Restart { fresh_port: true },
        Exit::Code(_) | Exit::Signal(_) => Decision::Restart { fresh_port: false },
    }
}

/// Capped exponential backoff with "full jitter" in the upper half: each delay is drawn
/// from [d/2, d] where d doubles from `initial` up to `max`, so many apps crashing
/// together do not restart in lockstep.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    seed: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Backoff {
        let initial = initial.min(max);
        Backoff { initial, max, current: initial, seed }
    }

    /// The next delay; the one after it is twice as long (up to `max`).
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = ceiling / 2;
        let span = (ceiling - half).as_nanos() as u64;
        let jitter = if span == 0 { 0 } else { self.random() % (span + 1) };
        half + Duration::from_nanos(jitter)
    }

    /// After a healthy run the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }

    fn random(&mut self) -> u64 {
        // splitmix64: jitter needs spread, not cryptographic quality
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(decide(Exit::Code(0)), Decision::Stop);
        assert_eq!(decide(Exit::Code(64)), Decision::Stop);
        assert_eq!(decide(Exit::Code(78)), Decision::Stop);
        assert_eq!(decide(Exit::Code(70)), Decision::Restart { fresh_port: false });
        assert_eq!(decide(Exit::Code(75)), Decision::Restart { fresh_port: true });
        assert_eq!(decide(Exit::Code(1)), Decision::Restart { fresh_port: false });
        assert_eq!(decide(Exit::Signal(9)), Decision::Restart { fresh_port: false });
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000), 42);
        let ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
        for ceiling in ceilings {
            let delay = backoff.next_delay();
            let ceiling = Duration::from_millis(ceiling);
            assert!(delay >= ceiling / 2 && delay <= ceiling, "{delay:?} outside [{:?}, {ceiling:?}]", ceiling / 2);
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_delays() {
        let delays: std::collections::HashSet<_> = (1..20u64)
            .map(|seed| Backoff::new(Duration::from_secs(1), Duration::from_secs(1), seed).next_delay())
            .collect();
        assert!(delays.len() > 10, "only {} distinct delays", delays.len());
    }
}
