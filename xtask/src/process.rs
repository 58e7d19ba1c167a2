//! Processes seen through Linux's /proc: who listens on a port, whether a pid is alive and what
//! it runs, and signals. xtask uses them to tell a stale pid file from a live server, to name
//! what holds a port, and to stop a server that no longer answers.

use std::{fs, process::Command};

/// True while `pid` runs. A zombie thread-group leader counts as running while other threads of
/// the process are still exiting (they hold its sockets open until the last one is gone).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let zombie = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .trim_start()
        .starts_with('Z');
    !zombie
        || fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| d.count() > 1)
            .unwrap_or(false)
}

/// The command line of `pid`, arguments joined by spaces.
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        String::from_utf8_lossy(&raw)
            .split('\0')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The executable a process runs (`/proc/PID/exe`). A binary rebuilt since the process started
/// reads as `PATH (deleted)`; the path it was started from is returned.
pub fn exe(pid: u32) -> Option<std::path::PathBuf> {
    let link = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let text = link.to_string_lossy();
    Some(match text.strip_suffix(" (deleted)") {
        Some(path) => std::path::PathBuf::from(path),
        None => link,
    })
}

/// Sends `sig` (e.g. `TERM`) with the system's `kill`; best effort.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// A process listening on a port.
#[derive(Debug, Clone)]
pub struct Holder {
    pub pid: u32,
    pub cmdline: String,
}

/// The process listening on 127.0.0.1/0.0.0.0 `port`, found through /proc (Linux; `None`
/// elsewhere or when the process belongs to another user).
pub fn holder(port: u16) -> Option<Holder> {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .flat_map(|t| listening_inodes(&t, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if inodes.iter().any(|i| target == format!("socket:[{i}]")) {
                return Some(Holder {
                    pid,
                    cmdline: cmdline(pid).unwrap_or_default(),
                });
            }
        }
    }
    None
}

/// Socket inodes listening on `port` in a /proc/net/tcp table.
pub(crate) fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = cols.get(1)?.rsplit(':').next()?;
            let listening = *cols.get(3)? == "0A";
            (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| cols.get(9).map(|s| (*s).to_owned()))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(alive(me));
        assert_eq!(exe(me), std::env::current_exe().ok());
        assert!(cmdline(me).is_some_and(|c| !c.is_empty()));
    }

    #[test]
    fn finds_listening_sockets_in_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:18BC 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0\n\
            1: 0100007F:18BC 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0\n\
            2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0\n";
        assert_eq!(listening_inodes(table, 6332), ["12345"]);
        assert_eq!(listening_inodes(table, 8080), ["999"]);
        assert!(listening_inodes(table, 6380).is_empty());
    }
}
