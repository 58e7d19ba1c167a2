//! Latency summaries (HdrHistogram, microsecond resolution) and per-process CPU and memory read
//! from `/proc/<pid>/stat` and `/proc/<pid>/status`.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency the histograms hold (60 s); anything slower is clamped there.
const MAX_MICROS: u64 = 60_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, latency: Duration) {
    h.saturating_record((latency.as_micros() as u64).clamp(1, MAX_MICROS));
}

/// Quantiles drawn in the latency plot.
pub const CURVE_QUANTILES: &[f64] = &[
    0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999,
];

#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// (quantile, latency ms) points of the percentile distribution.
    pub curve: Vec<(f64, f64)>,
}

impl LatencySummary {
    pub fn from_histogram(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            curve: CURVE_QUANTILES
                .iter()
                .map(|&q| (q, ms(h.value_at_quantile(q))))
                .collect(),
        }
    }
}

/// Linux reports CPU times in clock ticks of `USER_HZ`, which is 100 on every mainstream arch.
const TICKS_PER_SEC: f64 = 100.0;

/// utime + stime (ticks) from the text of `/proc/<pid>/stat`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS in kB from the text of `/proc/<pid>/status`.
pub fn parse_rss_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

pub fn cpu_ticks(pid: u32) -> Option<u64> {
    parse_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

pub fn rss_kb(pid: u32) -> Option<u64> {
    parse_rss_kb(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// A named process whose CPU use is reported per phase.
#[derive(Debug, Clone)]
pub struct Process {
    pub name: String,
    pub pid: u32,
}

/// (busy, total) jiffies of all CPUs from the text of `/proc/stat` (busy excludes idle and iowait).
pub fn parse_machine_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    let total: u64 = v.iter().take(8).sum();
    Some((total - v[3] - v[4], total))
}

fn machine_ticks() -> Option<(u64, u64)> {
    parse_machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// CPU counters of several processes (and of the whole machine) at one instant.
pub struct CpuMark {
    at: Instant,
    ticks: Vec<Option<u64>>,
    machine: Option<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CpuUse {
    pub process: String,
    /// Percent of one core over the phase (200 = both cores of a 2-core machine).
    pub percent_of_core: f64,
}

impl CpuMark {
    /// Time since the mark was taken.
    pub fn elapsed(&self) -> std::time::Duration {
        self.at.elapsed()
    }
}

pub fn cpu_mark(procs: &[Process]) -> CpuMark {
    CpuMark {
        at: Instant::now(),
        ticks: procs.iter().map(|p| cpu_ticks(p.pid)).collect(),
        machine: machine_ticks(),
    }
}

/// CPU used since `mark` by each process, then by the whole machine (`all`: every process,
/// including ones outside the benchmark, in percent of one core).
pub fn cpu_since(procs: &[Process], mark: &CpuMark) -> Vec<CpuUse> {
    let secs = mark.at.elapsed().as_secs_f64().max(1e-3);
    let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let machine = match (mark.machine, machine_ticks()) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some(CpuUse {
            process: "all".into(),
            percent_of_core: (b1.saturating_sub(b0)) as f64 / (t1 - t0) as f64 * cpus * 100.0,
        }),
        _ => None,
    };
    procs
        .iter()
        .zip(&mark.ticks)
        .filter_map(|(p, before)| {
            let delta = cpu_ticks(p.pid)?.checked_sub((*before)?)?;
            Some(CpuUse {
                process: p.name.clone(),
                percent_of_core: delta as f64 / TICKS_PER_SEC / secs * 100.0,
            })
        })
        .chain(machine)
        .collect()
}

/// Resident memory of a process sampled over a sustained run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct RssSeries {
    pub process: String,
    /// (seconds since the first sample, kB)
    pub samples: Vec<(f64, u64)>,
}

impl RssSeries {
    pub fn first_kb(&self) -> Option<u64> {
        self.samples.first().map(|s| s.1)
    }
    pub fn last_kb(&self) -> Option<u64> {
        self.samples.last().map(|s| s.1)
    }
    pub fn max_kb(&self) -> Option<u64> {
        self.samples.iter().map(|s| s.1).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_a_tricky_name() {
        let stat = "4242 (redis server) S 1 4242 4242 0 -1 4194560 2893 0 0 0 1234 567 0 0 20 0 5 0 \
                    9876 123456 789 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_cpu_ticks(&own).is_some(), "{own}");
    }

    #[test]
    fn parses_machine_cpu() {
        let stat = "cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 50 2 25 400 10 1 1 0 0 0\n";
        assert_eq!(parse_machine_ticks(stat), Some((160, 980)));
        assert_eq!(parse_machine_ticks("intr 1 2"), None);
        let procs = [Process {
            name: "self".into(),
            pid: std::process::id(),
        }];
        let mark = cpu_mark(&procs);
        let used = cpu_since(&procs, &mark);
        assert_eq!(used.first().map(|u| u.process.as_str()), Some("self"));
    }

    #[test]
    fn parses_vm_rss() {
        assert_eq!(
            parse_rss_kb("Name:\tx\nVmPeak:\t  9 kB\nVmRSS:\t   52344 kB\n"),
            Some(52344)
        );
        assert!(rss_kb(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn summarises_a_histogram() {
        let mut h = new_histogram();
        for ms in 1..=1000u64 {
            record(&mut h, Duration::from_micros(ms * 100));
        }
        let s = LatencySummary::from_histogram(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{}", s.p50_ms);
        assert!((s.p99_ms - 99.0).abs() < 0.1, "{}", s.p99_ms);
        assert!((s.max_ms - 100.0).abs() < 0.1, "{}", s.max_ms);
        assert_eq!(s.curve.len(), CURVE_QUANTILES.len());
        assert_eq!(
            LatencySummary::from_histogram(&new_histogram()),
            LatencySummary::default()
        );
    }
}
