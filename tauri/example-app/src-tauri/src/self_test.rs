// A mode for CI: with AI_GATEWAY_EXAMPLE_SELF_TEST=<file>, the page chats through the
// offline `echo` model, the result goes to <file>, and the app quits by itself.
use std::time::Duration;

use tauri::AppHandle;

const ENV: &str = "AI_GATEWAY_EXAMPLE_SELF_TEST";

fn result_file() -> Option<std::path::PathBuf> {
    std::env::var_os(ENV).filter(|v| !v.is_empty()).map(Into::into)
}

#[tauri::command]
pub fn self_test_enabled() -> bool {
    result_file().is_some()
}

#[tauri::command]
pub fn self_test_done(app: AppHandle, ok: bool, detail: String) {
    if let Some(file) = result_file() {
        let _ = std::fs::write(file, format!("{} {detail}\n", if ok { "ok" } else { "failed" }));
    }
    app.exit(if ok { 0 } else { 1 });
}

/// Quits with code 2 if the page never reports (a blank page, a script error).
pub fn arm(app: &AppHandle) {
    if result_file().is_none() {
        return;
    }
    let app = app.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(120));
        if let Some(file) = result_file() {
            let _ = std::fs::write(file, "failed the page did not report within 120 s\n");
        }
        app.exit(2);
    });
}
