//! Progress reporting: an indicatif bar with rate and ETA when stderr is a terminal, plain
//! periodic lines (every few seconds) otherwise, nothing when quiet (tests).

use std::{
    io::IsTerminal,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bar on a TTY, lines otherwise.
    Auto,
    /// Periodic plain lines.
    Lines,
    Quiet,
}

/// A progress reporter for one phase (validate, write, embed, ...). Cheap to update from
/// several tasks.
pub struct Progress {
    label: String,
    total: Option<u64>,
    done: AtomicU64,
    started: Instant,
    bar: Option<ProgressBar>,
    lines: bool,
    last_line: Mutex<Instant>,
}

const LINE_EVERY: Duration = Duration::from_secs(2);

impl Progress {
    pub fn new(mode: ProgressMode, label: &str, total: Option<u64>) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bar = (mode == ProgressMode::Auto && tty).then(|| {
            let bar = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            let template = if total.is_some() {
                "{prefix:>9} [{bar:30}] {human_pos}/{human_len} {per_sec} eta {eta}"
            } else {
                "{prefix:>9} {spinner} {human_pos} rows {per_sec}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_owned());
            bar
        });
        Progress {
            label: label.to_owned(),
            total,
            done: AtomicU64::new(0),
            started: Instant::now(),
            bar,
            lines: mode == ProgressMode::Lines || (mode == ProgressMode::Auto && !tty),
            last_line: Mutex::new(Instant::now()),
        }
    }

    pub fn quiet() -> Progress {
        Progress::new(ProgressMode::Quiet, "", None)
    }

    pub fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
        } else if self.lines {
            let mut last = self.last_line.lock().expect("progress lock");
            if last.elapsed() >= LINE_EVERY {
                *last = Instant::now();
                eprintln!("{}", self.line(done));
            }
        }
    }

    fn line(&self, done: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = done as f64 / secs;
        match self.total {
            Some(t) if t > 0 => {
                let eta = if rate > 0.0 {
                    (t.saturating_sub(done)) as f64 / rate
                } else {
                    0.0
                };
                format!(
                    "{}: {done}/{t} ({:.0}%), {rate:.0}/s, eta {eta:.0}s",
                    self.label,
                    done as f64 * 100.0 / t as f64
                )
            }
            _ => format!("{}: {done}, {rate:.0}/s", self.label),
        }
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Ends the phase (clears the bar; prints a last line in line mode).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        } else if self.lines {
            eprintln!(
                "{} (done in {:.1}s)",
                self.line(self.done()),
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}
