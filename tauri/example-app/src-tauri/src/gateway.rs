// src-tauri/src/gateway.rs: the gateway sidecar, supervised by the ai-gateway-supervisor crate
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use ai_gateway_supervisor::{Event, GatewayCommand, Policy, StopCause, Supervisor};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager};

/// `bundle.externalBin` without its directory. Tauri installs it next to the app's own
/// executable. Named after the app: deb and rpm install it as /usr/bin/<name>, where two
/// apps that both ship "ai-gateway" would clash.
const SIDECAR: &str = "gateway-example-ai";

/// What the page needs to talk to the gateway (the `gateway_info` command and the
/// `gateway-ready` event).
#[derive(Clone, Serialize, Default)]
pub struct GatewayInfo {
    pub url: Option<String>,
    pub token: String,
    pub previous_exit: Option<serde_json::Value>,
    pub last_error: Option<String>,
}

#[derive(Default)]
pub struct Gateway {
    supervisor: Mutex<Option<Supervisor>>,
    info: Mutex<GatewayInfo>,
}

fn sidecar_path() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or_else(|| std::io::Error::other("the executable has no directory"))?;
    Ok(dir.join(format!("{SIDECAR}{}", std::env::consts::EXE_SUFFIX)))
}

/// A per-run token for AI_GATEWAY_TOKEN: 128 bits from the OS-seeded keys of std's
/// hasher (enough for a loopback server that lives as long as the app).
fn new_token() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let part = |salt: u64| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(salt ^ std::process::id() as u64);
        hasher.finish()
    };
    format!("{:016x}{:016x}", part(1), part(2))
}

/// Starts the gateway (`--port 0 --watch-stdin --parent-pid <ours>`, token in the
/// environment) and keeps it running by the exit-code contract.
pub fn start(app: &AppHandle) {
    let gateway = app.state::<Gateway>();
    let token = new_token();
    gateway.info.lock().unwrap().token = token.clone();
    let program = match sidecar_path() {
        Ok(path) => path,
        Err(err) => {
            gateway.info.lock().unwrap().last_error = Some(err.to_string());
            return;
        }
    };
    let command = GatewayCommand::new(program).env("AI_GATEWAY_TOKEN", token);
    let handle = app.clone();
    let supervisor = Supervisor::start(command, Policy::default(), move |event| on_event(&handle, event));
    *gateway.supervisor.lock().unwrap() = Some(supervisor);
}

fn on_event(app: &AppHandle, event: Event) {
    let gateway = app.state::<Gateway>();
    match event {
        Event::Ready(ready) => {
            let info = {
                let mut info = gateway.info.lock().unwrap();
                info.url = Some(ready.url);
                info.previous_exit = ready.previous_exit;
                info.last_error = None;
                info.clone()
            };
            let _ = app.emit("gateway-ready", info);
        }
        Event::Fatal { error, .. } => gateway.info.lock().unwrap().last_error = Some(error),
        Event::Exited { .. } => gateway.info.lock().unwrap().url = None,
        Event::Stopped(cause) if cause != StopCause::Requested => {
            let info = gateway.info.lock().unwrap().clone();
            let _ = app.emit("gateway-stopped", info);
        }
        _ => {} // stderr lines: the gateway keeps its own log file
    }
}

/// Stops the gateway for good: `shutdown` on its stdin, then at most `timeout` before its
/// process group is killed. Returns as soon as it has exited. `start` may run again
/// afterwards (after a failed update, say).
pub fn stop(app: &AppHandle, timeout: Duration) {
    let supervisor = app.state::<Gateway>().supervisor.lock().unwrap().take();
    if let Some(supervisor) = supervisor {
        supervisor.stop(timeout);
    }
}

#[tauri::command]
pub fn gateway_info(gateway: tauri::State<'_, Gateway>) -> GatewayInfo {
    gateway.info.lock().unwrap().clone()
}
