//! Starts, supervises and stops the ai-gateway sidecar, with no Tauri dependency.
//!
//! ```no_run
//! use std::time::Duration;
//! use ai_gateway_supervisor::{GatewayCommand, Policy, Supervisor, Event};
//!
//! let command = GatewayCommand::new("binaries/ai-gateway").env("AI_GATEWAY_TOKEN", "secret");
//! let supervisor = Supervisor::start(command, Policy::default(), |event| {
//!     if let Event::Ready(ready) = event {
//!         println!("gateway at {}", ready.url);
//!     }
//! });
//! // when the app quits:
//! supervisor.stop(Duration::from_secs(3));
//! ```
//!
//! The gateway's contract (exit codes, control lines) is in the repository's
//! `tauri-sidecar.md`.

mod control;
mod policy;
mod process;
mod supervisor;

pub use control::{parse_line, Control, Ready};
pub use policy::{code, decide, Backoff, Decision, Exit};
pub use process::kill_group;
pub use supervisor::{Event, GatewayCommand, Policy, StopCause, Supervisor};
