//! Memory figures of the current process from `/proc/self/status` (Linux), for the peak-memory
//! benchmark: the peak resident set (`VmHWM`, the figure `getrusage`'s `ru_maxrss` reports),
//! the current one (`VmRSS`) and its anonymous and file-backed parts (`RssAnon`, `RssFile`:
//! a memory-mapped log's touched pages are file-backed, heap and caches are anonymous).
//!
//! The kernel keeps a peak only for the total, so [`Sampler`] polls the parts from a thread
//! and keeps their maxima (a sampled peak can miss a spike shorter than its period).
//! Reading the file needs no `unsafe` code and no dependency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::rigs::BoxError;

/// One reading of `/proc/self/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// Peak resident set size (`VmHWM`).
    pub hwm_kib: u64,
    /// Resident set size now (`VmRSS`).
    pub rss_kib: u64,
    /// Anonymous resident memory now (`RssAnon`).
    pub anon_kib: u64,
    /// File-backed resident memory now (`RssFile`).
    pub file_kib: u64,
}

/// Parses the fields of [`Status`] from the text of a `status` file.
///
/// # Errors
/// A message naming a field that is missing or not a number of kB.
pub fn parse_status(text: &str) -> Result<Status, String> {
    let field = |name: &str| -> Result<u64, String> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')))
            .ok_or_else(|| format!("no {name} in /proc/self/status"))?;
        line.trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .map_err(|e| format!("{name}: {line:?} is not a number of kB ({e})"))
    };
    Ok(Status {
        hwm_kib: field("VmHWM")?,
        rss_kib: field("VmRSS")?,
        anon_kib: field("RssAnon")?,
        file_kib: field("RssFile")?,
    })
}

/// CPU time this process has used so far, all threads, user and system
/// (`CLOCK_PROCESS_CPUTIME_ID`): unlike wall time, it hardly moves when other processes load
/// the machine, so a per-receipt CPU cost compares runs made under different loads.
///
/// Under valgrind (its preload library in `LD_PRELOAD`) rustix's vDSO lookup faults, so the
/// time comes from `/proc/self/stat` instead, in clock ticks (10 ms at the usual 100 Hz);
/// callgrind counts instructions anyway.
#[must_use]
pub fn process_cpu_time() -> Duration {
    if std::env::var_os("LD_PRELOAD").is_some_and(|p| p.to_string_lossy().contains("vgpreload")) {
        return proc_stat_cpu_time().unwrap_or_default();
    }
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// `utime + stime` of `/proc/self/stat` (fields 14 and 15, after the parenthesised name),
/// assuming 100 ticks per second.
fn proc_stat_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = text.get(text.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Reads `/proc/self/status`.
///
/// # Errors
/// When the file cannot be read (not Linux) or lacks a field.
pub fn status() -> Result<Status, BoxError> {
    let text = std::fs::read_to_string("/proc/self/status")?;
    Ok(parse_status(&text)?)
}

/// The largest anonymous and file-backed resident sizes seen by a [`Sampler`], in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peaks {
    /// Largest `RssAnon` seen.
    pub anon_kib: u64,
    /// Largest `RssFile` seen.
    pub file_kib: u64,
    /// Readings taken.
    pub readings: u64,
}

/// A thread that reads [`status`] every `period` and keeps the largest parts.
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Peaks>,
}

impl Sampler {
    /// Starts sampling every `period`.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn start(period: Duration) -> Result<Sampler, BoxError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                let mut peaks = Peaks::default();
                loop {
                    if let Ok(s) = status() {
                        peaks.anon_kib = peaks.anon_kib.max(s.anon_kib);
                        peaks.file_kib = peaks.file_kib.max(s.file_kib);
                        peaks.readings += 1;
                    }
                    if flag.load(Ordering::Relaxed) {
                        return peaks;
                    }
                    std::thread::sleep(period);
                }
            })?;
        Ok(Sampler { stop, handle })
    }

    /// Stops the thread (after one last reading) and returns the peaks.
    ///
    /// # Errors
    /// When the thread panicked.
    pub fn finish(self) -> Result<Peaks, BoxError> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .map_err(|_| "the RSS sampler panicked".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_status_fields() -> Result<(), String> {
        let text = "Name:\tbench\nVmPeak:\t  900 kB\nVmHWM:\t    5120 kB\nVmRSS:\t    4096 kB\n\
                    RssAnon:\t    1024 kB\nRssFile:\t    3072 kB\nRssShmem:\t       0 kB\n";
        assert_eq!(
            parse_status(text)?,
            Status {
                hwm_kib: 5120,
                rss_kib: 4096,
                anon_kib: 1024,
                file_kib: 3072,
            }
        );
        assert!(parse_status("VmHWM: 1 kB\n").is_err());
        Ok(())
    }

    #[test]
    fn reads_this_process() -> Result<(), BoxError> {
        let sampler = Sampler::start(Duration::from_millis(1))?;
        let now = status()?;
        assert!(now.hwm_kib >= now.rss_kib && now.rss_kib > 0, "{now:?}");
        let peaks = sampler.finish()?;
        assert!(peaks.readings >= 1 && peaks.anon_kib > 0, "{peaks:?}");
        Ok(())
    }
}
