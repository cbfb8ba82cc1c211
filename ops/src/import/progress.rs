//! The progress bar of `rix import`: rows/s, accepted and refused so far, and the ETA when the
//! total is known (text inputs, counted first); a spinner with the counts otherwise. Drawn on
//! stderr only when asked (the CLI asks when stderr is a terminal), so tests, CI logs and
//! pipes get the summary alone.
//!
//! What it may not touch: the counts (it shows them) or stdout (the summary's).

use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::count;
use super::summary::Counts;

/// Rows per second, whole.
fn rate(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{:.0} rows/s", state.per_sec());
}

/// The bar, or nothing.
pub(super) struct Progress {
    bar: ProgressBar,
    /// Lines of the inputs already done, when the total is known.
    base: Option<u64>,
    dry_run: bool,
}

impl Progress {
    /// A bar over `total` rows (a spinner without), drawn only if `enabled`.
    pub(super) fn new(enabled: bool, total: Option<u64>, dry_run: bool) -> Progress {
        if !enabled {
            return Progress {
                bar: ProgressBar::hidden(),
                base: None,
                dry_run,
            };
        }
        let (bar, base) = match total {
            Some(total) => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows · {rate} · ETA {eta} · {msg}",
                    )
                    .expect("a valid template")
                    .with_key("rate", rate),
                );
                (bar, Some(0))
            }
            None => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {pos} rows · {rate} · {msg}",
                    )
                    .expect("a valid template")
                    .with_key("rate", rate),
                );
                (bar, None)
            }
        };
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar, base, dry_run }
    }

    /// A row was read; `line` is its row (line) number in its input.
    pub(super) fn row(&self, line: u64) {
        match self.base {
            Some(base) => self.bar.set_position(base + line),
            None => self.bar.inc(1),
        }
    }

    /// An input is done.
    pub(super) fn file_done(&mut self, path: &Path) {
        if let Some(base) = &mut self.base {
            *base += count::lines(path).unwrap_or(0);
            self.bar.set_position(*base);
        }
    }

    /// The counts so far.
    pub(super) fn counts(&self, c: &Counts) {
        if self.bar.is_hidden() {
            return;
        }
        self.bar.set_message(if self.dry_run {
            format!("mapped {} · refused {}", c.mapped, c.refused_mapping)
        } else {
            format!(
                "accepted {} · duplicates {} · refused {}",
                c.accepted,
                c.duplicates,
                c.refused()
            )
        });
    }

    /// Runs `f` (which prints) with the bar out of the way.
    pub(super) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Clears the bar.
    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
