//! The status line on stderr while sampling (`run`, `attach`, `record` on a terminal, without
//! `-q`): elapsed time, samples, late samples, the GIL's held share so far. Gone before the
//! report is printed.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::model::Record;
use crate::words::pct;

/// The line is rewritten at most this often; indicatif redraws the spinner on its own thread.
const UPDATE_EVERY: Duration = Duration::from_millis(250);

/// Counts what the status line shows, from the records as they go by.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub samples: u64,
    pub late: u64,
    pub gil_readings: u64,
    pub gil_locked: u64,
}

impl Counts {
    pub fn record(&mut self, record: &Record) {
        match record {
            Record::Sample(sample) => {
                self.samples += 1;
                if let Some(gil) = sample.gil {
                    self.gil_readings += 1;
                    self.gil_locked += u64::from(gil.locked);
                }
            }
            Record::Late { count } => self.late += u64::from(*count),
            _ => {}
        }
    }

    /// `1234 samples · 0 late · GIL held 97%`.
    pub fn message(&self) -> String {
        let gil = if self.gil_readings == 0 {
            "GIL not read yet".to_string()
        } else {
            format!(
                "GIL held {}",
                pct(self.gil_locked as f64 / self.gil_readings as f64)
            )
        };
        format!("{} samples · {} late · {gil}", self.samples, self.late)
    }
}

/// The status line itself.
pub struct StatusLine {
    bar: ProgressBar,
    counts: Counts,
    updated: Instant,
}

impl StatusLine {
    /// Starts drawing on stderr.
    pub fn start(what: &str) -> StatusLine {
        let bar = ProgressBar::new_spinner();
        let style = ProgressStyle::with_template("{spinner} {prefix} {elapsed} · {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(what.to_string());
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_millis(200));
        StatusLine {
            bar,
            counts: Counts::default(),
            updated: Instant::now(),
        }
    }

    pub fn record(&mut self, record: &Record) {
        self.counts.record(record);
        if self.updated.elapsed() >= UPDATE_EVERY {
            self.updated = Instant::now();
            self.bar.set_message(self.counts.message());
        }
    }

    /// Clears the line, leaving the terminal as it was.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GilReading, Sample};

    #[test]
    fn counts_samples_late_ones_and_the_gil() {
        let mut counts = Counts::default();
        assert_eq!(counts.message(), "0 samples · 0 late · GIL not read yet");
        for locked in [true, true, true, false] {
            counts.record(&Record::Sample(Sample {
                t_ns: 0,
                process_cpu_ns: None,
                gil: Some(GilReading {
                    locked,
                    holder_tid: None,
                    switch_number: None,
                    enabled: None,
                }),
                threads: vec![],
            }));
        }
        counts.record(&Record::Late { count: 3 });
        assert_eq!(counts.message(), "4 samples · 3 late · GIL held 75%");
    }
}
