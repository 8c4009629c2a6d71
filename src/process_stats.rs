//! CPU time and memory of a process, from Linux's `/proc`: for `/metrics` (this process) and
//! for `heartwatch bench` (the server under test).

use std::io;

/// Linux reports CPU times in `/proc/<pid>/stat` in USER_HZ ticks, 100 per second on every
/// architecture it supports (independent of the kernel's internal HZ).
const USER_HZ: f64 = 100.0;

/// A reading of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time so far, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub rss_bytes: u64,
    /// Threads.
    pub threads: u64,
}

impl ProcessStats {
    /// Reads `pid`, or this process with `None`. Fails where there is no `/proc` (non-Linux).
    pub fn read(pid: Option<u32>) -> io::Result<Self> {
        let dir = pid.map_or_else(|| "/proc/self".to_string(), |p| format!("/proc/{p}"));
        let stat = std::fs::read_to_string(format!("{dir}/stat"))?;
        let status = std::fs::read_to_string(format!("{dir}/status"))?;
        Self::parse(&stat, &status)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc format"))
    }

    fn parse(stat: &str, status: &str) -> Option<Self> {
        // The command name (field 2) is in parentheses and may contain spaces: split after it.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // Fields 14 and 15 (utime, stime) are at 11 and 12 counting from field 3.
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line[name.len()..].split_whitespace().next()?.parse().ok()
        };
        Some(Self {
            cpu_seconds: ticks as f64 / USER_HZ,
            rss_bytes: field("VmRSS:")? * 1024,
            threads: field("Threads:")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "1234 (heart watch) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 130 0 0 20 0 5 0 100 1000 300 18446744073709551615";
        let status = "Name:\theartwatch\nVmRSS:\t   2048 kB\nThreads:\t5\n";
        let stats = ProcessStats::parse(stat, status).unwrap();
        assert_eq!(stats.cpu_seconds, 3.8);
        assert_eq!(stats.rss_bytes, 2048 * 1024);
        assert_eq!(stats.threads, 5);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let stats = ProcessStats::read(None).unwrap();
        assert!(stats.rss_bytes > 0);
        assert!(stats.threads >= 1);
    }
}
