//! This process's resources (`mod8_process_*` on `/metrics`), read from `/proc/self` on
//! Linux — local file reads, no dependency. Elsewhere every figure is `None` and the
//! families are rendered without samples.

/// Linux reports CPU times in clock ticks of `USER_HZ`, fixed at 100 per second in the
/// kernel's user-space ABI on every architecture Linux supports.
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of the process's resources; a figure that could not be read is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// Resident memory in bytes (`VmRSS`).
    pub resident_memory_bytes: Option<u64>,
    /// Virtual memory in bytes (`VmSize`).
    pub virtual_memory_bytes: Option<u64>,
    /// User and system CPU time spent, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
    /// OS threads.
    pub threads: Option<u64>,
}

impl ProcessStats {
    /// Reads `/proc/self` now (a handful of small files).
    pub fn read() -> Self {
        if !cfg!(target_os = "linux") {
            return Self::default();
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib = |field: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|k| k * 1024)
        };
        let threads = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok());
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let (cpu_seconds, start_ticks) = parse_stat(&stat);
        let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        let start_time_seconds = match (boot_time, start_ticks) {
            (Some(boot), Some(ticks)) => Some(boot as f64 + ticks as f64 / TICKS_PER_SECOND),
            _ => None,
        };
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.count() as u64);
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| {
                limits
                    .lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3))
                    .and_then(|v| v.parse().ok())
            });
        Self {
            resident_memory_bytes: kib("VmRSS"),
            virtual_memory_bytes: kib("VmSize"),
            cpu_seconds,
            open_fds,
            max_fds,
            start_time_seconds,
            threads,
        }
    }
}

/// CPU seconds (utime + stime) and the start time in ticks after boot, from the text of
/// `/proc/self/stat`. The command name (field 2) is in parentheses and may hold spaces, so
/// fields are counted after its closing parenthesis.
fn parse_stat(stat: &str) -> (Option<f64>, Option<u64>) {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return (None, None);
    };
    // `rest` starts at field 3 (state): utime is field 14, stime 15, starttime 22.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let cpu = match (field(14), field(15)) {
        (Some(user), Some(system)) => Some((user + system) as f64 / TICKS_PER_SECOND),
        _ => None,
    };
    (cpu, field(22))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (mod8 (serve)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 50 0 0 20 0 \
                    9 0 12345 100000000 2000 18446744073709551615";
        assert_eq!(parse_stat(stat), (Some(2.0), Some(12345)));
        assert_eq!(parse_stat("garbage"), (None, None));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let stats = ProcessStats::read();
        assert!(stats.resident_memory_bytes.unwrap() > 0, "{stats:?}");
        assert!(stats.open_fds.unwrap() > 0, "{stats:?}");
        assert!(stats.max_fds.unwrap() > 0, "{stats:?}");
        assert!(stats.cpu_seconds.is_some(), "{stats:?}");
        let started = stats.start_time_seconds.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            started <= now + 1.0 && started > now - 86_400.0 * 365.0,
            "{started} vs {now}"
        );
    }
}
