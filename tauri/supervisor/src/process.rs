//! Spawning the gateway in a group of its own, and ending that whole group.
//!
//! A onefile build is two processes (a bootloader and the Python child). Killing only the
//! pid we spawned leaves the child running, so the gateway starts as the leader of a new
//! process group (POSIX) and a stop kills the group. On Windows, `taskkill /T` ends the
//! tree while the bootloader is alive; once it is gone, the child stops by itself within
//! about 2 s (its stdin closes and it watches its parent). A Job Object with
//! `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE` would make that immediate; it needs the
//! `windows-sys` crate, which this crate leaves out to stay dependency-free
//! (tauri-plugin-shell's `set_process_group(true)` does it for apps that spawn through it).

use std::process::{Child, Command};

/// Configures `command` so the gateway gets its own process group (POSIX) and no console
/// window (Windows).
pub fn isolate(command: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        command.creation_flags(CREATE_NO_WINDOW | CREATE_NEW_PROCESS_GROUP);
    }
}

/// Kills every process in the group the gateway leads (its pid is the group id).
/// Harmless when they are all gone already.
pub fn kill_group(pid: u32) {
    #[cfg(unix)]
    unsafe {
        // SAFETY: plain syscalls on a pid we spawned; errors (ESRCH) mean nothing is left.
        libc::killpg(pid as libc::pid_t, libc::SIGKILL);
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        let _ = Command::new("taskkill")
            .args(["/PID", &pid.to_string(), "/T", "/F"])
            .creation_flags(CREATE_NO_WINDOW)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Kills the spawned process and its group, then reaps it.
pub fn kill_child(child: &mut Child) {
    kill_group(child.id());
    let _ = child.kill();
    let _ = child.wait();
}
