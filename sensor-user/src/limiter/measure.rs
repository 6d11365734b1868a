//! Reading the load from `/proc`: the parsers are pure (tested on text), [`Meter`] reads the
//! files and turns two CPU samples into the share that was idle between them.

use std::path::{Path, PathBuf};

use super::Load;

/// Cumulative CPU time of the whole host (the `cpu` line of `/proc/stat`), in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// idle + iowait: time no task wanted the CPU.
    pub idle: u64,
    /// user + nice + system + idle + iowait + irq + softirq + steal (guest time is inside user).
    pub total: u64,
}

impl CpuTimes {
    /// The share idle from `before` to `self`; `None` when no time passed (or the counters went
    /// back, as after a CPU hot-unplug).
    pub fn free_since(&self, before: &Self) -> Option<f64> {
        let total = self.total.checked_sub(before.total)?;
        let idle = self.idle.checked_sub(before.idle)?;
        (total > 0).then(|| (idle as f64 / total as f64).clamp(0.0, 1.0))
    }
}

/// The `cpu` line of `/proc/stat`.
pub fn parse_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .take(8)
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = fields[..] else {
        return None;
    };
    Some(CpuTimes {
        idle: idle.saturating_add(iowait),
        total: [user, nice, system, idle, iowait, irq, softirq, steal]
            .into_iter()
            .fold(0_u64, u64::saturating_add),
    })
}

/// `MemAvailable / MemTotal` of `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Option<f64> {
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))?
            .split_ascii_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable")?;
    (total > 0).then(|| (available as f64 / total as f64).clamp(0.0, 1.0))
}

/// Resident bytes from `/proc/self/statm` (its second field, in pages).
pub fn parse_statm(text: &str, page_bytes: u64) -> Option<u64> {
    let pages: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(page_bytes))
}

/// Why a measurement failed: a file that would not read or parse.
#[derive(Debug, thiserror::Error)]
#[error("reading the load from {path}: {reason}")]
pub struct MeasureError {
    pub path: String,
    pub reason: String,
}

/// Reads the load from a proc file system (`/proc`, or another root in tests of the reader).
#[derive(Debug)]
pub struct Meter {
    root: PathBuf,
    page_bytes: u64,
    last_cpu: Option<CpuTimes>,
}

impl Meter {
    pub fn new(root: &Path) -> Self {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Self {
            root: root.to_owned(),
            page_bytes: u64::try_from(page)
                .ok()
                .filter(|&bytes| bytes > 0)
                .unwrap_or(4096),
            last_cpu: None,
        }
    }

    fn read<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, MeasureError> {
        let path = self.root.join(name);
        let error = |reason: String| MeasureError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|error_| error(error_.to_string()))?;
        parse(&text).ok_or_else(|| error("unexpected contents".to_owned()))
    }

    /// The load since the previous call; `Ok(None)` on the first (CPU share needs two samples).
    pub fn sample(&mut self) -> Result<Option<Load>, MeasureError> {
        let cpu = self.read("stat", parse_stat)?;
        let memory_free = self.read("meminfo", parse_meminfo)?;
        let page_bytes = self.page_bytes;
        let own_bytes = self.read("self/statm", |text| parse_statm(text, page_bytes))?;
        let before = self.last_cpu.replace(cpu);
        Ok(before
            .and_then(|before| cpu.free_since(&before))
            .map(|cpu_free| Load {
                cpu_free,
                memory_free,
                own_bytes,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Trimmed from a real /proc/stat of this kind of machine (two CPUs).
    const STAT: &str = "cpu  4705 356 584 3699176 23 0 24 0 0 0\n\
                        cpu0 1393 280 283 1849791 15 0 13 0 0 0\n\
                        cpu1 3312 76 301 1849385 8 0 11 0 0 0\n\
                        intr 114930548 20 9 0 0\nctxt 1990473\n";

    #[test]
    fn cpu_share_comes_from_the_difference_of_two_samples() {
        let before = parse_stat(STAT).expect("parses");
        assert_eq!(before.idle, 3_699_176 + 23);
        assert_eq!(before.total, 4705 + 356 + 584 + 3_699_176 + 23 + 24);
        // 100 ticks later: 30 idle, 70 busy.
        let after = CpuTimes {
            idle: before.idle + 30,
            total: before.total + 100,
        };
        let free = after.free_since(&before).expect("time passed");
        assert!((free - 0.30).abs() < 1e-9, "{free}");
        assert_eq!(before.free_since(&before), None, "no time passed");
        assert_eq!(before.free_since(&after), None, "counters went back");
        assert_eq!(parse_stat("cpu0 1 2 3\n"), None, "no aggregate line");
        assert_eq!(parse_stat("cpu  1 2 x 4 5 6 7 8\n"), None);
    }

    #[test]
    fn memory_share_and_resident_bytes() {
        let meminfo = "MemTotal:       24000000 kB\nMemFree:  1000 kB\n\
                       MemAvailable:    6000000 kB\nBuffers: 1 kB\n";
        assert_eq!(parse_meminfo(meminfo), Some(0.25));
        assert_eq!(parse_meminfo("MemTotal: 10 kB\n"), None, "no MemAvailable");
        assert_eq!(
            parse_statm("1000 250 30 1 0 300 0\n", 4096),
            Some(250 * 4096)
        );
        assert_eq!(parse_statm("1000\n", 4096), None);
    }

    #[test]
    fn the_meter_reads_this_machine() {
        let mut meter = Meter::new(Path::new("/proc"));
        assert_eq!(meter.sample().expect("first sample"), None);
        // Burn a little CPU so the tick counter moves (100 Hz ticks).
        let start = std::time::Instant::now();
        let mut load = None;
        while load.is_none() && start.elapsed() < std::time::Duration::from_secs(5) {
            std::hint::black_box((0..100_000_u64).sum::<u64>());
            load = meter.sample().expect("sample");
        }
        let load = load.expect("the CPU counters moved within 5 s");
        assert!((0.0..=1.0).contains(&load.cpu_free));
        assert!(load.memory_free > 0.0 && load.memory_free < 1.0);
        assert!(
            load.own_bytes > 1 << 20,
            "a test process holds more than 1 MiB"
        );
        let missing = Meter::new(Path::new("/nonexistent")).sample();
        assert!(
            missing
                .expect_err("no such root")
                .to_string()
                .contains("/nonexistent/stat")
        );
    }
}
