// src-tauri/src/lib.rs
mod gateway;
mod self_test;
#[cfg(feature = "updater")]
pub mod update;

use std::time::Duration;

use tauri::{Manager, RunEvent};

pub fn run() {
    let builder = tauri::Builder::default().plugin(tauri_plugin_shell::init());
    #[cfg(feature = "updater")]
    let builder = builder.plugin(tauri_plugin_updater::Builder::new().build());
    builder
        .manage(gateway::Gateway::default())
        .invoke_handler(tauri::generate_handler![
            gateway::gateway_info,
            self_test::self_test_enabled,
            self_test::self_test_done
        ])
        .setup(|app| {
            gateway::start(app.handle());
            self_test::arm(app.handle());
            Ok(())
        })
        .build(tauri::generate_context!())
        .expect("error while building the app")
        .run(|app, event| {
            if let RunEvent::Exit = event {
                // Exit comes before Tauri hides the windows: hide them first, so the wait
                // for the gateway (usually a fraction of a second) never shows as a frozen window
                for window in app.webview_windows().values() {
                    let _ = window.hide();
                }
                gateway::stop(app, Duration::from_secs(3));
            }
        });
}
