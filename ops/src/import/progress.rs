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
        Progress::drawn_on(ProgressDrawTarget::stderr, total, dry_run)
    }

    /// A bar drawn on the targets `target` makes (stderr; a test's terminal).
    fn drawn_on(
        target: impl Fn() -> ProgressDrawTarget,
        total: Option<u64>,
        dry_run: bool,
    ) -> Progress {
        let (bar, base) = match total {
            Some(total) => {
                let bar = ProgressBar::with_draw_target(Some(total), target());
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
                let bar = ProgressBar::with_draw_target(None, target());
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use indicatif::TermLike;

    use super::*;

    /// A terminal that keeps what is written to it.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            200
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().expect("not poisoned").push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_bar_shows_rows_per_second_accepted_refused_and_the_eta() {
        let screen = Screen::default();
        let drawn = screen.clone();
        let progress = Progress::drawn_on(
            move || ProgressDrawTarget::term_like(Box::new(drawn.clone())),
            Some(1000),
            false,
        );
        progress.row(400);
        progress.counts(&Counts {
            accepted: 390,
            duplicates: 3,
            refused_node: 4,
            refused_mapping: 2,
            ..Counts::default()
        });
        progress.bar.tick();
        let text = screen.0.lock().expect("not poisoned").clone();
        for part in [
            "400/1000 rows",
            "rows/s",
            "ETA",
            "accepted 390",
            "duplicates 3",
            "refused 6",
        ] {
            assert!(text.contains(part), "{part:?} is not on the bar: {text}");
        }
        progress.finish();
    }
}
