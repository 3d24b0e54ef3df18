//! What `/proc` says about the server process: CPU time used, resident memory, threads.

use std::fs;
use std::time::Duration;

/// User plus system CPU time that process `pid` has used so far (`/proc/PID/stat`).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The command name (field 2) may hold spaces and parentheses; fields are counted after
    // its closing parenthesis, where field 3 (state) comes first.
    let after_name = &stat[stat.rfind(')').expect("a comm field") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    assert!(per_second > 0, "sysconf(_SC_CLK_TCK)");
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

/// Resident memory of process `pid` in bytes (`VmRSS` in `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> u64 {
    status_field(pid, "VmRSS") * 1024
}

/// The number of threads of process `pid` (`Threads` in `/proc/PID/status`).
pub fn threads(pid: u32) -> u64 {
    status_field(pid, "Threads")
}

/// A numeric field of `/proc/PID/status` (kB for sizes).
fn status_field(pid: u32, name: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let line = status
        .lines()
        .find(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(':'))
        })
        .unwrap_or_else(|| panic!("no {name} line"));
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not a number: {line}"))
}

/// Bytes as MiB with one decimal, for outcome lines.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// A process as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    /// Its id.
    pub pid: u32,
    /// `R`, `S`, `Z` (a zombie: exited, not reaped), ...
    pub state: char,
    /// Its parent.
    pub ppid: u32,
    /// Its process group.
    pub pgrp: u32,
}

/// Every process on the machine now (those that exit while being read are left out).
pub fn processes() -> Vec<Process> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("list /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after_name = &stat[stat.rfind(')').expect("a comm field") + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        found.push(Process {
            pid,
            state: fields[0].chars().next().unwrap_or('?'),
            ppid: fields[1].parse().unwrap_or(0),
            pgrp: fields[2].parse().unwrap_or(0),
        });
    }
    found
}

/// The children of `pid`, zombies included.
pub fn children_of(pid: u32) -> Vec<Process> {
    processes().into_iter().filter(|p| p.ppid == pid).collect()
}

/// The processes of group `pgrp` that are still running (not zombies).
pub fn running_in_group(pgrp: u32) -> Vec<Process> {
    processes()
        .into_iter()
        .filter(|p| p.pgrp == pgrp && p.state != 'Z')
        .collect()
}
