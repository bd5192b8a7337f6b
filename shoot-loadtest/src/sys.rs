//! Process and kernel figures: open-file limit, server RSS and CPU, socket memory.

use std::sync::OnceLock;

/// Nanoseconds of the machine's monotonic clock (`CLOCK_MONOTONIC`): the same clock stamps
/// and reads messages, and it is shared by every process on the machine, so a message one
/// load process stamps can be timed by another (`bigroom --processes`).
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Raises this process's open-file soft limit to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// Resident memory of `pid` in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&status)
}

/// Resident anonymous memory of `pid` in bytes (`RssAnon`: the heap and stacks; `VmRSS`
/// less the resident pages of mapped files, which are shared with the kernel's page cache,
/// such as SQLite's memory map of its database).
pub fn rss_anon_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kib(&status, "RssAnon:").map(|kib| kib * 1024)
}

fn parse_vmrss(status: &str) -> Option<u64> {
    status_kib(status, "VmRSS:").map(|kib| kib * 1024)
}

/// The KiB figure of the `/proc/PID/status` line starting with `field`.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Summed resident memory of `pids` (`VmRSS`); `None` without pids or when one is gone.
pub fn rss_total(pids: &[u32]) -> Option<u64> {
    sum(pids, rss_bytes)
}

/// Summed resident anonymous memory of `pids` (see [`rss_anon_bytes`]).
pub fn rss_anon_total(pids: &[u32]) -> Option<u64> {
    sum(pids, rss_anon_bytes)
}

/// Summed user + system CPU seconds of `pids`.
pub fn cpu_total(pids: &[u32]) -> Option<f64> {
    sum(pids, cpu_seconds)
}

fn sum<T: std::iter::Sum>(pids: &[u32], f: impl Fn(u32) -> Option<T>) -> Option<T> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| f(p)).sum()
}

/// User + system CPU seconds of `pid`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_ticks(&stat).map(|t| t as f64 / clock_ticks())
}

fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// TCP socket buffer memory of the whole machine in bytes (`/proc/net/sockstat` `TCP: … mem`,
/// in pages), plus the number of TCP sockets in use.
pub fn tcp_sockstat() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    parse_sockstat(&s)
}

fn parse_sockstat(s: &str) -> Option<(u64, u64)> {
    let line = s.lines().find(|l| l.starts_with("TCP:"))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let field = |name: &str| {
        f.iter()
            .position(|x| *x == name)
            .and_then(|i| f.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("mem")? * 4096, field("inuse")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_is_monotonic_and_sums_need_every_pid() {
        let (a, b) = (now_ns(), now_ns());
        assert!(a > 0 && b >= a);
        let me = std::process::id();
        assert!(rss_total(&[]).is_none());
        let one = rss_total(&[me]).unwrap();
        assert!(rss_total(&[me, me]).unwrap() >= one);
        assert!(cpu_total(&[me]).is_some());
        // pid 0 has no /proc entry: a vanished process makes the total unknown, not smaller.
        assert!(rss_total(&[me, 0]).is_none());
    }

    #[test]
    fn parses_proc_formats() {
        assert_eq!(
            parse_vmrss("Name:\tx\nVmRSS:\t  1234 kB\n"),
            Some(1234 * 1024)
        );
        let status = "VmRSS:\t  1234 kB\nRssAnon:\t  1000 kB\nRssFile:\t   234 kB\n";
        assert_eq!(status_kib(status, "RssAnon:"), Some(1000));
        assert_eq!(status_kib(status, "RssShmem:"), None);
        let stat = "42 (shoot server) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 8 0";
        assert_eq!(parse_stat_ticks(stat), Some(300));
        let sock =
            "sockets: used 10\nTCP: inuse 7 orphan 0 tw 3 alloc 9 mem 5\nUDP: inuse 1 mem 0\n";
        assert_eq!(parse_sockstat(sock), Some((5 * 4096, 7)));
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(rss_bytes(me).unwrap() > 0);
        assert!(cpu_seconds(me).is_some());
        assert!(now_ns() <= now_ns());
    }
}
