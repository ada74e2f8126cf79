// src-tauri/src/update.rs: install an update without a gateway holding its file
use std::time::Duration;

use tauri::AppHandle;
use tauri_plugin_updater::UpdaterExt;

use crate::gateway;

/// Downloads first, with the gateway still serving: a failed download changes nothing.
/// On Windows the gateway is stopped in `on_before_exit`, which the updater calls right
/// before it starts the installer and exits. On macOS and Linux `install` replaces the
/// files in place (a running gateway does not block that); the gateway is stopped before
/// the restart.
pub async fn install_update(app: AppHandle) -> tauri_plugin_updater::Result<bool> {
    let handle = app.clone();
    let updater = app
        .updater_builder()
        .on_before_exit(move || {
            gateway::stop(&handle, Duration::from_secs(3));
            handle.cleanup_before_exit(); // what the default hook did
        })
        .build()?;
    let Some(update) = updater.check().await? else { return Ok(false) };
    let bytes = update.download(|_chunk, _total| {}, || {}).await?;
    update.install(bytes)?;
    gateway::stop(&app, Duration::from_secs(3));
    app.restart();
}
