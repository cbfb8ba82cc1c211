//! What an import did, counted per input and in total, and the table and notes it ends with.
//!
//! Every row is accounted for: rows = skipped + mapped + refused by the mapping, and mapped =
//! accepted + duplicates + refused by the node + pushed by an earlier run (a resumed import);
//! a run that stopped part way leaves the difference unpushed, its checkpoint says where.
//!
//! What it may not touch: how the rows were counted (the import loop counts them).

use std::io::{self, Write};
use std::path::PathBuf;

use unicode_width::UnicodeWidthStr;

/// The counts of one input (or of all of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Rows read, blank rows between rows of a sheet included.
    pub rows: u64,
    /// Title, header, blank and note rows: not data.
    pub skipped: u64,
    /// Data rows that became a valid record.
    pub mapped: u64,
    /// Data rows refused by the mapping (or that the source could not read).
    pub refused_mapping: u64,
    /// Records registered by this run.
    pub accepted: u64,
    /// Of those, approved (historical 批准登记号, or `--approve`).
    pub approved: u64,
    /// Records the node already had (by their source key).
    pub duplicates: u64,
    /// Of those, records whose source changed since they were first imported: the node kept
    /// the first version.
    pub changed: u64,
    /// Records the node refused.
    pub refused_node: u64,
    /// Records classified 秘密 and above, registered at the node (now or before) and never
    /// leaving it; in a dry run, the mapped records that are.
    pub classified: u64,
    /// Records an earlier run pushed (the checkpoint covers their rows).
    pub earlier: u64,
    /// Node refusals because the token is not an administrator's while the row carries a
    /// 批准登记号.
    pub needs_admin: u64,
    /// Node refusals because a reviewer's token was used without `--approve`.
    pub needs_approve: u64,
    /// Lines written to the error report.
    pub report_lines: u64,
    /// Seconds spent on the input.
    pub seconds: f64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.rows += other.rows;
        self.skipped += other.skipped;
        self.mapped += other.mapped;
        self.refused_mapping += other.refused_mapping;
        self.accepted += other.accepted;
        self.approved += other.approved;
        self.duplicates += other.duplicates;
        self.changed += other.changed;
        self.refused_node += other.refused_node;
        self.classified += other.classified;
        self.earlier += other.earlier;
        self.needs_admin += other.needs_admin;
        self.needs_approve += other.needs_approve;
        self.report_lines += other.report_lines;
        self.seconds += other.seconds;
    }

    /// Rows refused, by the mapping or by the node.
    pub fn refused(&self) -> u64 {
        self.refused_mapping + self.refused_node
    }

    /// Rows per second over the input.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.rows as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// One input's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileSummary {
    /// The file (as given) or the platform's URL.
    pub name: String,
    /// What became of its rows.
    pub counts: Counts,
}

/// What a run of `rix import` did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// A dry run: nothing was sent.
    pub dry_run: bool,
    /// The run went on from an earlier run's checkpoint.
    pub resumed: bool,
    /// Per input, in order.
    pub files: Vec<FileSummary>,
    /// Over all inputs.
    pub total: Counts,
    /// The error report (CSV, JSON Lines), if anything was written to it.
    pub report: Option<(PathBuf, PathBuf)>,
    /// The checkpoint left for the next run (the run stopped part way).
    pub checkpoint: Option<PathBuf>,
    /// Why the run stopped part way.
    pub failure: Option<String>,
}

impl Summary {
    /// The counts over the inputs read so far.
    pub fn total_so_far(&self) -> Counts {
        let mut total = Counts::default();
        for f in &self.files {
            total.add(&f.counts);
        }
        total
    }

    /// 0: every row accepted (a duplicate is); 2: some refused; 1: the run stopped part way.
    pub fn exit_code(&self) -> i32 {
        if self.failure.is_some() {
            1
        } else if self.total.refused() > 0 {
            2
        } else {
            0
        }
    }

    /// The summary table and the notes under it.
    pub fn print(&self, out: &mut dyn Write) -> io::Result<()> {
        let headers: &[&str] = if self.dry_run {
            &[
                "input",
                "rows",
                "skipped",
                "mapped",
                "refused",
                "classified",
                "rows/s",
            ]
        } else {
            &[
                "input",
                "rows",
                "skipped",
                "mapped",
                "refused:mapping",
                "accepted",
                "approved",
                "duplicates",
                "changed",
                "refused:node",
                "classified",
                "earlier",
                "rows/s",
            ]
        };
        let line = |name: &str, c: &Counts| -> Vec<String> {
            let mut cells = vec![
                name.to_owned(),
                c.rows.to_string(),
                c.skipped.to_string(),
                c.mapped.to_string(),
                c.refused_mapping.to_string(),
            ];
            if !self.dry_run {
                cells.extend([
                    c.accepted.to_string(),
                    c.approved.to_string(),
                    c.duplicates.to_string(),
                    c.changed.to_string(),
                    c.refused_node.to_string(),
                ]);
            }
            cells.push(c.classified.to_string());
            if !self.dry_run {
                cells.push(c.earlier.to_string());
            }
            cells.push(format!("{:.0}", c.rate()));
            cells
        };
        let mut rows: Vec<Vec<String>> = vec![headers.iter().map(|h| (*h).to_owned()).collect()];
        for f in &self.files {
            rows.push(line(&f.name, &f.counts));
        }
        if self.files.len() > 1 {
            rows.push(line("total", &self.total));
        }
        let widths: Vec<usize> = (0..headers.len())
            .map(|c| rows.iter().map(|r| r[c].width()).max().unwrap_or(0))
            .collect();
        writeln!(out)?;
        writeln!(
            out,
            "{}",
            if self.dry_run {
                "dry run: what an import would do (nothing was sent)"
            } else {
                "import summary"
            }
        )?;
        for (i, row) in rows.iter().enumerate() {
            let mut text = String::new();
            for (c, cell) in row.iter().enumerate() {
                let pad = widths[c] - cell.width();
                if c == 0 {
                    text.push_str(cell);
                    text.push_str(&" ".repeat(pad));
                } else {
                    text.push_str("  ");
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                }
            }
            writeln!(out, "{}", text.trim_end())?;
            if i == 0 || (self.files.len() > 1 && i == rows.len() - 2) {
                writeln!(
                    out,
                    "{}",
                    "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
                )?;
            }
        }
        let t = &self.total;
        writeln!(out)?;
        if !self.dry_run {
            writeln!(
                out,
                "changed: duplicates whose source was edited since; earlier: pushed by an earlier run (checkpoint)"
            )?;
        }
        if self.resumed {
            writeln!(
                out,
                "resumed from the checkpoint: {} record(s) were pushed by an earlier run (the rows refused then are in the report already)",
                t.earlier
            )?;
        }
        if self.dry_run {
            writeln!(
                out,
                "{} record(s) would be sent, {} row(s) would be refused",
                t.mapped, t.refused_mapping
            )?;
        }
        if t.classified > 0 {
            writeln!(
                out,
                "{} record(s) are classified 秘密 or above: {}, exactly as for online registration",
                t.classified,
                if self.dry_run {
                    "they would be registered at the node and never leave it"
                } else {
                    "registered at the node, they never leave it (no feed, no gateway)"
                }
            )?;
        }
        if t.changed > 0 {
            writeln!(
                out,
                "warning: {} duplicate(s) changed in the source since they were first imported; the node kept the first version — revise those records at the node if the change is right",
                t.changed
            )?;
        }
        if t.needs_admin > 0 {
            writeln!(
                out,
                "{} row(s) carry a 批准登记号 and were refused because the token is not an administrator's: import them with an admin token (rows already imported are not registered twice)",
                t.needs_admin
            )?;
        }
        if t.needs_approve > 0 {
            writeln!(
                out,
                "{} row(s) were refused because a reviewer's token imports only with --approve: add --approve, or use a submitter's or an admin token to send them to review",
                t.needs_approve
            )?;
        }
        if let Some((csv, jsonl)) = &self.report {
            writeln!(
                out,
                "refused rows, with their column, pointer and reason: {} (Excel) and {}",
                csv.display(),
                jsonl.display()
            )?;
        }
        if let Some(failure) = &self.failure {
            writeln!(out, "stopped: {failure}")?;
            if let Some(cp) = &self.checkpoint {
                writeln!(
                    out,
                    "run the same command again to resume from {} (nothing is registered twice)",
                    cp.display()
                )?;
            }
        } else if !self.dry_run && t.refused() == 0 {
            writeln!(out, "every row was accepted")?;
        }
        Ok(())
    }
}
