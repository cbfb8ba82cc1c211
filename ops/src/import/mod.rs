//! `rix import`: a province's existing records into its node — a dry run that shows what a
//! mapping makes of the first rows and counts what every row would become, then the import
//! itself, resumable and safe to run twice (issue 14, DESIGN.md §9).
//!
//! The path of a row: a source ([`rix_adapters::source`]: workbooks, CSV/TSV, XML, JSON
//! Lines, or a platform's paged API) → the mapping ([`rix_adapters::mapping`]) → refused rows
//! to the error report (CSV with a BOM and JSON Lines, [`rix_adapters::report`]) → records to
//! the node's import endpoint in chunks ([`rix_adapters::push`]) → the node's refusals to the
//! same report, tied to their rows.
//!
//! Why it is built so:
//! - **Resumable, and the report first.** Files are pushed a chunk at a time; after the node
//!   has answered a chunk (two are on their way at a time, answered in order), its refusals
//!   (and the mapping's refusals of the same rows) are written and flushed to the report,
//!   *then* the checkpoint ([`Checkpoint`], default
//!   `<first input>.rix-checkpoint.json`) moves past those rows. A run killed at any point
//!   resumes where the checkpoint stands, appending to the same report; nothing refused is
//!   missing from it (a row at the kill may be reported twice, never not at all) and the
//!   node's per-row keys register nothing twice. A run that reaches the end removes the
//!   checkpoint. A platform's API keeps its own modified-since checkpoint instead, saved only
//!   once every page has been read and pushed.
//! - **Every row accounted for** ([`Summary`]): rows read = skipped (titles, headers, blank
//!   and note rows) + mapped + refused by the mapping; mapped = accepted + duplicates + refused
//!   by the node (+ pushed by an earlier run, on a resumed one). Exit code 0 only when every
//!   row was accepted (a duplicate is), 2 when some were refused, 1 when the import could not
//!   go on (unreadable file, bad mapping, node unreachable, the whole request refused).
//! - **The dry run is the same loop** without a node: the first rows side by side
//!   (`dry_run`), then every row mapped and counted, so its numbers are the import's.
//!
//! What it may not touch: a record's meaning (the mapping's), the node's rules (it says what
//! the node answered), and any file but its report, its checkpoint and the platform's
//! checkpoint. Secrets: the token is sent to the node only, never printed or written.

mod count;
mod dry_run;
pub mod fixtures;
mod progress;
mod summary;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use rix_adapters::mapping::{Mapper, Mapping};
use rix_adapters::outcome::{MappedRecord, RowError};
use rix_adapters::push::{
    Checkpoint, ItemResult, NodeClient, PushError, PushFailed, PushOptions, PushOutcome,
    PushedItem, file_fingerprint,
};
use rix_adapters::report::ErrorReport;
use rix_adapters::row::{Origin, SourceRow};
use rix_adapters::source::{self, Format, HttpSource, HttpSourceConfig, SheetRef, SourceOptions};
use rix_schema::SecrecyLevel;

pub use summary::{Counts, FileSummary, Summary};

/// Rows shown side by side by a dry run unless told otherwise.
pub const DEFAULT_DRY_RUN_ROWS: usize = 5;

/// Chunks on their way to the node at once. With one, the node sat idle while the client took
/// in an answer and sent the next chunk, and the node then parsed it: a third of the time at
/// 100,000 rows. With two, the node checks the next chunk's records while it writes this one's.
/// Answers are still taken in order. The node may write two chunks in either order: a key or a
/// historical number used in both is registered from whichever came first, the other answered
/// as a duplicate or a number taken, and `--approve` numbers them in that order.
const IN_FLIGHT: usize = 2;

/// What `rix import` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The mapping: a TOML file, or a shipped mapping's name (`achievement-form`).
    pub mapping: String,
    /// The files to import, in order; none for a mapping whose `[source]` is a platform's API.
    pub inputs: Vec<PathBuf>,
    /// Map and count only; no node.
    pub dry_run: bool,
    /// Dry run: rows shown side by side.
    pub rows: usize,
    /// The node's base URL.
    pub node: Option<String>,
    /// The node's bearer token.
    pub token: Option<String>,
    /// Approve new records in the same request (a reviewer's or an administrator's token).
    pub approve: bool,
    /// The CA that issued the node's certificate (PEM).
    pub ca_file: Option<PathBuf>,
    /// Where the error report goes: PREFIX.csv and PREFIX.jsonl (default `<first
    /// input>.errors`; a dry run writes one only when given this).
    pub errors: Option<PathBuf>,
    /// The checkpoint file (default `<first input>.rix-checkpoint.json`; for a platform's API,
    /// overrides its `incremental.checkpoint`).
    pub checkpoint: Option<PathBuf>,
    /// Overrides the mapping's `[source] encoding`.
    pub encoding: Option<String>,
    /// Overrides the mapping's `[source] sheets`: a name, or a position from 1.
    pub sheets: Vec<SheetRef>,
    /// Overrides the mapping's `[source] format`.
    pub format: Option<Format>,
    /// Overrides the mapping's `[source] delimiter`.
    pub delimiter: Option<char>,
    /// Overrides the mapping's `[source] record` (the XML record element).
    pub record: Option<String>,
    /// Records per request (default 500).
    pub chunk: Option<usize>,
    /// Requests made for one chunk at most, the first included (default 8): connection
    /// failures, 5xx and 429 are retried with backoff.
    pub attempts: Option<u32>,
    /// Draw the progress bar (on stderr; only meaningful on a terminal).
    pub progress: bool,
}

/// Parses `--sheet`: a number is a position from 1 (`2`), `name:2019` a sheet named 2019,
/// anything else a name.
pub fn parse_sheet(text: &str) -> Result<SheetRef, String> {
    if let Some(name) = text.strip_prefix("name:") {
        return Ok(SheetRef::Name(name.to_owned()));
    }
    match text.parse::<usize>() {
        Ok(0) => Err("sheets are counted from 1".to_owned()),
        Ok(n) => Ok(SheetRef::Position(n)),
        Err(_) => Ok(SheetRef::Name(text.to_owned())),
    }
}

/// Parses `--chunk`: 1 to the node's most records per request.
pub fn parse_chunk(text: &str) -> Result<usize, String> {
    let max = rix_adapters::push::MAX_CHUNK_SIZE;
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("give a number of records from 1 to {max}")),
    }
}

/// Parses `--format` (`xlsx`, `xls`, `ods`, `csv`, `tsv`, `xml`, `jsonl`).
pub fn parse_format(text: &str) -> Result<Format, String> {
    serde_json::from_value(serde_json::Value::String(text.to_ascii_lowercase())).map_err(|_| {
        format!("{text:?} is not a format: give xlsx, xls, ods, csv, tsv, xml or jsonl")
    })
}

/// Reads the mapping: a file if one exists at that path, else a shipped mapping by name.
pub fn load_mapping(name: &str) -> Result<(Mapping, Option<PathBuf>)> {
    let path = Path::new(name);
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the mapping {}", path.display()))?;
        let mapping = Mapping::from_toml(&text)
            .with_context(|| format!("the mapping {} cannot be used", path.display()))?;
        return Ok((mapping, Some(path.to_owned())));
    }
    match rix_adapters::mapping::shipped(name) {
        Some(m) => Ok((
            m.with_context(|| format!("the shipped mapping {name}"))?,
            None,
        )),
        None => {
            let names: Vec<&str> = rix_adapters::mapping::SHIPPED
                .iter()
                .map(|(f, _)| f.trim_end_matches(".toml"))
                .collect();
            bail!(
                "no mapping file {name} and no shipped mapping of that name; give a TOML file or one of: {}",
                names.join(", ")
            )
        }
    }
}

/// Where the rows come from.
enum Input {
    Files(SourceOptions),
    Http(Box<HttpSourceConfig>),
}

/// The mapping's `[source]` as the source's own options, with the command line's overrides:
/// a table with `url` describes a platform's API ([`HttpSourceConfig`]), any other a file's
/// reading ([`SourceOptions`]).
fn source_input(
    mapping: &Mapping,
    mapping_file: Option<&Path>,
    options: &ImportOptions,
) -> Result<Input> {
    let table = mapping.source().cloned().unwrap_or_default();
    if table.contains_key("url") {
        let mut config: HttpSourceConfig = toml::Value::Table(table)
            .try_into()
            .context("the mapping's [source] (a platform's API) cannot be used")?;
        if let Some(incremental) = &mut config.incremental {
            if let Some(path) = &options.checkpoint {
                incremental.checkpoint = path.clone();
            } else if incremental.checkpoint.is_relative()
                && let Some(dir) = mapping_file.and_then(Path::parent)
            {
                // Relative to the mapping file, which is where an operator keeps its state.
                incremental.checkpoint = dir.join(&incremental.checkpoint);
            }
        }
        return Ok(Input::Http(Box::new(config)));
    }
    let mut file: SourceOptions = toml::Value::Table(table)
        .try_into()
        .context("the mapping's [source] cannot be used")?;
    if options.format.is_some() {
        file.format = options.format;
    }
    if options.encoding.is_some() {
        file.encoding.clone_from(&options.encoding);
    }
    if !options.sheets.is_empty() {
        file.sheets.clone_from(&options.sheets);
    }
    if options.delimiter.is_some() {
        file.delimiter = options.delimiter;
    }
    if options.record.is_some() {
        file.record.clone_from(&options.record);
    }
    Ok(Input::Files(file))
}

/// `PREFIX.csv` and `PREFIX.jsonl`.
fn report_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let with = |ext: &str| {
        let mut p = prefix.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    (with(".csv"), with(".jsonl"))
}

fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Runs `rix import` (or its dry run) as `options` say, writing what a person reads to `out`.
///
/// `Err` when nothing could start (a bad mapping or option, a missing node URL). Otherwise the
/// [`Summary`], whose [`Summary::failure`] says why an import stopped part way (a file that
/// cannot be read, a node that cannot be reached or refuses the whole request): what was done
/// until then is counted, reported and checkpointed.
pub fn run(options: &ImportOptions, out: &mut dyn Write) -> Result<Summary> {
    let (mapping, mapping_file) = load_mapping(&options.mapping)?;
    let input = source_input(&mapping, mapping_file.as_deref(), options)?;
    match (&input, options.inputs.is_empty()) {
        (Input::Files(_), true) => bail!(
            "give the files to import (the mapping {} reads files; its [source] has no url)",
            mapping.name()
        ),
        (Input::Http(_), false) => bail!(
            "the mapping {} reads a platform's API ([source] url); give no files",
            mapping.name()
        ),
        _ => {}
    }
    let node = if options.dry_run {
        None
    } else {
        let url = options.node.as_deref().context(
            "give the node with --node URL and --token T (or RIX_NODE_TOKEN), or --dry-run",
        )?;
        let token = options
            .token
            .as_deref()
            .context("give the node's bearer token with --token T (or RIX_NODE_TOKEN)")?;
        let mut push_options = PushOptions {
            ca_file: options.ca_file.clone(),
            chunk_size: options
                .chunk
                .unwrap_or(rix_adapters::push::DEFAULT_CHUNK_SIZE),
            ..PushOptions::default()
        };
        if let Some(attempts) = options.attempts {
            push_options.retry.max_attempts = attempts.max(1);
        }
        Some(
            NodeClient::with_options(url, token, push_options)
                .context("the node client cannot be set up")?,
        )
    };
    // One worker: a chunk's push runs there while this thread reads and maps the next.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut run = Run::new(&mapping, options, node, runtime, out)?;
    writeln!(
        run.out,
        "mapping {} ({}){}",
        mapping.name(),
        mapping.kind(),
        mapping
            .description()
            .map(|d| format!(": {d}"))
            .unwrap_or_default()
    )?;
    let result = match input {
        Input::Files(file_options) => run.files(&file_options),
        Input::Http(config) => run.http(*config),
    };
    run.finish(result)
}

/// One row waiting for its chunk to be pushed: a record (the next of [`Run::records`], which
/// are kept apart so that the push borrows them as they are) or a row the mapping refused.
enum Pending {
    Record { file: usize },
    Refused { file: usize, errors: Vec<RowError> },
}

/// A chunk on its way to the node: the push (which hands its records back with the answers)
/// and what its answers are to be matched with.
struct InFlight {
    push: tokio::task::JoinHandle<(Vec<MappedRecord>, Result<PushOutcome, PushFailed>)>,
    pending: Vec<Pending>,
    span_last: BTreeMap<(String, Option<String>), Origin>,
}

/// The state of one `rix import` run.
struct Run<'a> {
    options: &'a ImportOptions,
    mapper: Mapper<'a>,
    node: Option<NodeClient>,
    runtime: tokio::runtime::Runtime,
    out: &'a mut dyn Write,
    summary: Summary,
    /// The report, opened at its first error.
    report: Option<ErrorReport>,
    report_paths: Option<(PathBuf, PathBuf)>,
    /// Append to an existing report (a resumed import).
    append_report: bool,
    checkpoint: Option<Checkpoint>,
    /// Per table: the row the checkpoint says an earlier run finished.
    covered: BTreeMap<(String, Option<String>), u64>,
    pending: Vec<Pending>,
    /// The records of `pending`, in order.
    records: Vec<MappedRecord>,
    /// Per table: the last row read since the last checkpoint save.
    span_last: BTreeMap<(String, Option<String>), Origin>,
    /// The chunks being pushed while the next is read, oldest first (at most [`IN_FLIGHT`]).
    in_flight: VecDeque<InFlight>,
    /// A chunk's push failed: the answers of the chunks sent after it are still counted, but
    /// the checkpoint stays before the failed chunk's unanswered rows.
    push_failed: bool,
    /// Per table: the last row read (for blank rows between rows of a sheet).
    last_row: BTreeMap<(String, Option<String>), u64>,
    progress: progress::Progress,
    dry: dry_run::DryRun,
    tables_seen: HashSet<(String, Option<String>)>,
    chunk: usize,
}

impl<'a> Run<'a> {
    fn new(
        mapping: &'a Mapping,
        options: &'a ImportOptions,
        node: Option<NodeClient>,
        runtime: tokio::runtime::Runtime,
        out: &'a mut dyn Write,
    ) -> Result<Run<'a>> {
        let first = options.inputs.first();
        let report_prefix = match (&options.errors, first, options.dry_run) {
            (Some(prefix), _, _) => Some(prefix.clone()),
            (None, _, true) => None,
            (None, Some(first), false) => Some(beside(first, ".errors")),
            (None, None, false) => Some(PathBuf::from(format!("{}.errors", mapping.name()))),
        };
        let report_paths = report_prefix.as_deref().map(report_paths);
        let mut checkpoint = None;
        let mut append_report = false;
        if !options.dry_run
            && let Some(first) = first
        {
            let path = options
                .checkpoint
                .clone()
                .unwrap_or_else(|| beside(first, ".rix-checkpoint.json"));
            let cp = Checkpoint::open(&path)
                .with_context(|| format!("reading the checkpoint {}", path.display()))?;
            // Resumed when the checkpoint has progress on an input that has not changed since.
            append_report = cp.sources().any(|s| {
                s.rows_through > 0
                    && options
                        .inputs
                        .iter()
                        .any(|i| i.display().to_string() == s.file)
                    && file_fingerprint(Path::new(&s.file)).ok() == s.fingerprint
            });
            checkpoint = Some(cp);
        }
        if !append_report
            && !options.dry_run
            && let Some((csv, jsonl)) = &report_paths
        {
            // The report of an earlier, finished import of the same input would mislead.
            for p in [csv, jsonl] {
                if p.exists() {
                    std::fs::remove_file(p)
                        .with_context(|| format!("removing the old report {}", p.display()))?;
                }
            }
        }
        // Counting lines reads the files once more: only for a bar someone watches.
        let total = if options.progress && !options.inputs.is_empty() {
            count::total_rows(&options.inputs)
        } else {
            None
        };
        let progress = progress::Progress::new(options.progress, total, options.dry_run);
        Ok(Run {
            options,
            mapper: mapping.mapper(),
            node,
            runtime,
            out,
            summary: Summary {
                dry_run: options.dry_run,
                resumed: append_report,
                ..Summary::default()
            },
            report: None,
            report_paths,
            append_report,
            checkpoint,
            covered: BTreeMap::new(),
            pending: Vec::new(),
            records: Vec::new(),
            span_last: BTreeMap::new(),
            in_flight: VecDeque::new(),
            push_failed: false,
            last_row: BTreeMap::new(),
            progress,
            dry: dry_run::DryRun::new(options.rows),
            tables_seen: HashSet::new(),
            chunk: options
                .chunk
                .unwrap_or(rix_adapters::push::DEFAULT_CHUNK_SIZE)
                .max(1),
        })
    }

    /// Every input file, in order.
    fn files(&mut self, file_options: &SourceOptions) -> Result<()> {
        for path in &self.options.inputs {
            let name = path.display().to_string();
            self.summary.files.push(FileSummary {
                name: name.clone(),
                counts: Counts::default(),
            });
            let file = self.summary.files.len() - 1;
            let started = Instant::now();
            let fingerprint = file_fingerprint(path).ok();
            let rows =
                source::open(path, file_options).with_context(|| format!("cannot read {name}"))?;
            let mut outcome = Ok(());
            for row in rows {
                match row {
                    Ok(row) => {
                        if let Err(e) = self.row(file, row, fingerprint.as_deref()) {
                            outcome = Err(e);
                            break;
                        }
                    }
                    Err(e) => match e.row_origin().cloned() {
                        Some(origin) => {
                            let errors = vec![unreadable_row(origin.clone(), &e)];
                            let counts = &mut self.summary.files[file].counts;
                            counts.rows += 1;
                            counts.refused_mapping += 1;
                            self.begin_table(&origin, fingerprint.as_deref());
                            if !self.is_covered(&origin) {
                                self.refused(file, errors)?;
                            }
                            self.note_row(&origin);
                        }
                        None => {
                            outcome = Err(anyhow!(e)).with_context(|| format!("reading {name}"));
                            break;
                        }
                    },
                }
                if self.records.len() >= self.chunk {
                    self.flush()?;
                }
            }
            // What was read before a failure is still pushed and checkpointed.
            let flushed = self.flush().and_then(|()| self.settle());
            self.summary.files[file].counts.seconds = started.elapsed().as_secs_f64();
            self.progress.file_done(path);
            outcome?;
            flushed?;
        }
        Ok(())
    }

    /// A platform's API, a page at a time; its checkpoint saved once everything is pushed.
    fn http(&mut self, config: HttpSourceConfig) -> Result<()> {
        let url = config.url.clone();
        self.summary.files.push(FileSummary {
            name: url.clone(),
            counts: Counts::default(),
        });
        let started = Instant::now();
        let mut source = HttpSource::new(config).context("the platform source cannot be set up")?;
        if let Some(mark) = source.modified_since() {
            writeln!(self.out, "asking {url} for what changed since {mark}")?;
        }
        let result = (|| -> Result<()> {
            loop {
                let page = self
                    .runtime
                    .block_on(source.next_page())
                    .with_context(|| format!("reading {url}"))?;
                let Some(rows) = page else { break };
                for row in rows {
                    self.row(0, row, None)?;
                    if self.records.len() >= self.chunk {
                        self.flush()?;
                    }
                }
                self.flush()?;
            }
            Ok(())
        })();
        let flushed = self.flush().and_then(|()| self.settle());
        self.summary.files[0].counts.seconds = started.elapsed().as_secs_f64();
        result?;
        flushed?;
        if !self.options.dry_run {
            source
                .save_checkpoint()
                .context("saving the platform's checkpoint")?;
            if let Some(mark) = source.high_water_mark() {
                writeln!(
                    self.out,
                    "next run asks {url} for what changed since {mark}"
                )?;
            }
        }
        Ok(())
    }

    /// The first row of a table: where the checkpoint says an earlier run got to.
    fn begin_table(&mut self, origin: &Origin, fingerprint: Option<&str>) {
        let key = (origin.file.clone(), origin.sheet.clone());
        if self.covered.contains_key(&key) {
            return;
        }
        let through = match &mut self.checkpoint {
            Some(cp) => cp.begin(&origin.file, origin.sheet.as_deref(), fingerprint),
            None => 0,
        };
        self.covered.insert(key, through);
    }

    fn is_covered(&self, origin: &Origin) -> bool {
        self.covered
            .get(&(origin.file.clone(), origin.sheet.clone()))
            .is_some_and(|&through| origin.row <= through)
    }

    fn note_row(&mut self, origin: &Origin) {
        let key = (origin.file.clone(), origin.sheet.clone());
        self.span_last.insert(key, origin.clone());
        self.progress.row(origin.row);
    }

    /// One row from a source.
    fn row(&mut self, file: usize, row: SourceRow, fingerprint: Option<&str>) -> Result<()> {
        let origin = row.origin.clone();
        self.begin_table(&origin, fingerprint);
        // Blank rows are not yielded; between two rows of a sheet they still were rows.
        let key = (origin.file.clone(), origin.sheet.clone());
        let blank = match (origin.sheet.is_some(), self.last_row.get(&key)) {
            (true, Some(&last)) if origin.row > last + 1 => origin.row - last - 1,
            _ => 0,
        };
        self.last_row.insert(key.clone(), origin.row);
        {
            let counts = &mut self.summary.files[file].counts;
            counts.rows += 1 + blank;
            counts.skipped += blank;
        }
        let outcome = if self.options.dry_run && self.dry.wants_more() {
            match self.mapper.map_explained(&row) {
                Some((mapped, lines)) => {
                    self.dry
                        .show(&mut *self.out, &self.progress, &origin, &mapped, &lines)?;
                    Some(mapped)
                }
                None => None,
            }
        } else {
            self.mapper.map(&row)
        };
        // A table's header is final at its first data row (a second header row may follow
        // the first).
        if outcome.is_some() && !self.tables_seen.contains(&key) && self.mapper.header().is_some() {
            self.tables_seen.insert(key);
            if self.options.dry_run {
                self.dry
                    .header(&mut *self.out, &self.progress, &self.mapper, &origin)?;
            }
        }
        let covered = self.is_covered(&origin);
        let counts = &mut self.summary.files[file].counts;
        match outcome {
            None => counts.skipped += 1,
            Some(Ok(record)) => {
                counts.mapped += 1;
                if self.options.dry_run {
                    if is_classified(&record) {
                        counts.classified += 1;
                    }
                } else if covered {
                    counts.earlier += 1;
                } else {
                    self.pending.push(Pending::Record { file });
                    self.records.push(record);
                }
            }
            Some(Err(errors)) => {
                counts.refused_mapping += 1;
                if !covered {
                    self.refused(file, errors)?;
                }
            }
        }
        self.note_row(&origin);
        Ok(())
    }

    /// A row refused before any node saw it: to the report now (dry run) or with its chunk.
    fn refused(&mut self, file: usize, errors: Vec<RowError>) -> Result<()> {
        if self.options.dry_run {
            self.write_report(file, &errors)
        } else {
            self.pending.push(Pending::Refused { file, errors });
            Ok(())
        }
    }

    fn write_report(&mut self, file: usize, errors: &[RowError]) -> Result<()> {
        let Some((csv, jsonl)) = &self.report_paths else {
            return Ok(());
        };
        if self.report.is_none() {
            let opened = if self.append_report {
                ErrorReport::append(csv, jsonl)
            } else {
                ErrorReport::create(csv, jsonl)
            };
            self.report = Some(
                opened.with_context(|| format!("creating the error report {}", csv.display()))?,
            );
            self.summary.report = Some((csv.clone(), jsonl.clone()));
        }
        let report = self.report.as_mut().expect("opened above");
        report
            .refused(errors)
            .with_context(|| format!("writing the error report {}", csv.display()))?;
        self.summary.files[file].counts.report_lines += errors.len() as u64;
        Ok(())
    }

    /// Sends the pending records on their way, first taking in the answers of the oldest chunk
    /// if [`IN_FLIGHT`] are on their way already. [`Run::settle`] waits for the rest.
    fn flush(&mut self) -> Result<()> {
        if self.options.dry_run {
            self.progress.counts(&self.summary.total_so_far());
            return Ok(());
        }
        let records = std::mem::take(&mut self.records);
        let pending = std::mem::take(&mut self.pending);
        let span_last = std::mem::take(&mut self.span_last);
        if records.is_empty() {
            // Refused rows alone: reported after the chunks before them.
            self.settle()?;
            return self.answered(records, Vec::new(), None, pending, span_last);
        }
        while self.in_flight.len() >= IN_FLIGHT {
            self.settle_oldest()?;
        }
        let node = self.node.clone().expect("an import has a node");
        let approve = self.options.approve;
        let push = self.runtime.spawn(async move {
            let result = node.push(&records, approve).await;
            (records, result)
        });
        self.in_flight.push_back(InFlight {
            push,
            pending,
            span_last,
        });
        Ok(())
    }

    /// Waits for every chunk in flight, in order, and takes in their answers; the first
    /// failure is returned once all are in.
    fn settle(&mut self) -> Result<()> {
        let mut first = Ok(());
        while !self.in_flight.is_empty() {
            let settled = self.settle_oldest();
            if first.is_ok() {
                first = settled;
            }
        }
        first
    }

    /// Waits for the oldest chunk in flight, if any, and takes in its answers.
    fn settle_oldest(&mut self) -> Result<()> {
        let Some(InFlight {
            push,
            pending,
            span_last,
        }) = self.in_flight.pop_front()
        else {
            return Ok(());
        };
        let (records, result) = self
            .runtime
            .block_on(push)
            .context("the push to the node stopped")?;
        let (answered, failure) = match result {
            Ok(outcome) => (outcome.items, None),
            Err(PushFailed { error, done }) => (done.items, Some(error)),
        };
        self.answered(records, answered, failure, pending, span_last)
    }

    /// Writes the refusals of a pushed chunk's rows and the node's answers, then moves the
    /// checkpoint past them.
    fn answered(
        &mut self,
        records: Vec<MappedRecord>,
        answered: Vec<PushedItem>,
        failure: Option<PushError>,
        pending: Vec<Pending>,
        mut span_last: BTreeMap<(String, Option<String>), Origin>,
    ) -> Result<()> {
        let mut records = records.into_iter();
        let mut answers = answered.into_iter();
        let mut done_through: BTreeMap<(String, Option<String>), Origin> = BTreeMap::new();
        let mut complete = true;
        for p in pending {
            match p {
                Pending::Refused { file, errors } => {
                    if failure.is_some() && answers.len() == 0 {
                        complete = false;
                        break;
                    }
                    let origin = errors[0].origin.clone();
                    self.write_report(file, &errors)?;
                    done_through.insert((origin.file.clone(), origin.sheet.clone()), origin);
                }
                Pending::Record { file } => {
                    let record = records.next().expect("one record per pending record");
                    let Some(item) = answers.next() else {
                        complete = false;
                        break;
                    };
                    let counts = &mut self.summary.files[file].counts;
                    match &item.result {
                        ItemResult::Accepted(r) => {
                            counts.accepted += 1;
                            if r.state == "approved" {
                                counts.approved += 1;
                            }
                        }
                        ItemResult::Duplicate { changed, .. } => {
                            counts.duplicates += 1;
                            if *changed {
                                counts.changed += 1;
                            }
                        }
                        ItemResult::Refused { status, errors } => {
                            counts.refused_node += 1;
                            if *status == 403 {
                                if errors.iter().any(|e| e.pointer == "/registration_no") {
                                    counts.needs_admin += 1;
                                } else if errors.iter().any(|e| e.message.starts_with("approve")) {
                                    counts.needs_approve += 1;
                                }
                            }
                        }
                        ItemResult::Skipped => counts.earlier += 1,
                    }
                    if item.classified
                        && matches!(
                            item.result,
                            ItemResult::Accepted(_) | ItemResult::Duplicate { .. }
                        )
                    {
                        counts.classified += 1;
                    }
                    let errors = item.row_errors();
                    if !errors.is_empty() {
                        self.write_report(file, &errors)?;
                    }
                    let origin = record.origin;
                    done_through.insert((origin.file.clone(), origin.sheet.clone()), origin);
                }
            }
        }
        if let Some(report) = &mut self.report {
            report.flush().context("writing the error report")?;
        }
        if complete {
            // Also the rows after the last record (titles, notes, blank rows).
            done_through.append(&mut span_last);
        }
        if failure.is_some() {
            self.push_failed = true;
        } else if self.push_failed {
            // Rows of an earlier chunk were left unanswered: a resumed import must send them,
            // so the checkpoint does not move past them (this chunk's rows come back as
            // duplicates).
            done_through.clear();
        }
        if let Some(cp) = &mut self.checkpoint {
            for origin in done_through.values() {
                cp.mark(origin);
            }
            cp.save()
                .with_context(|| format!("saving the checkpoint {}", cp.path().display()))?;
        }
        self.progress.counts(&self.summary.total_so_far());
        match failure {
            None => Ok(()),
            Some(e) => Err(anyhow!(e)).context("pushing to the node stopped"),
        }
    }

    /// The end: report closed, checkpoint removed after a clean run, summary printed.
    fn finish(mut self, result: Result<()>) -> Result<Summary> {
        // A chunk still in flight after a failure elsewhere is waited for, so that what the
        // node registered is counted and checkpointed.
        let settled = self.settle();
        let result = result.and(settled);
        self.progress.finish();
        if let Some(report) = self.report.take() {
            report.finish().context("closing the error report")?;
        }
        if let Err(e) = &result {
            self.summary.failure = Some(format!("{e:#}"));
        }
        if let Some(cp) = self.checkpoint.take() {
            let path = cp.path().to_owned();
            if result.is_ok() {
                cp.remove()
                    .with_context(|| format!("removing the checkpoint {}", path.display()))?;
            } else {
                self.summary.checkpoint = Some(path);
            }
        }
        if self.options.dry_run {
            self.dry.finish(&mut *self.out, &self.mapper)?;
        }
        self.summary.total = self.summary.total_so_far();
        self.summary.print(&mut *self.out)?;
        Ok(self.summary)
    }
}

fn is_classified(record: &MappedRecord) -> bool {
    SecrecyLevel::of_record(&record.record).is_none_or(|l| !l.may_leave_node())
}

/// A row the source could not read (bytes not in the file's encoding, a broken XML record,
/// a JSON Lines line that is not an object), as the report's error.
fn unreadable_row(origin: Origin, e: &source::SourceError) -> RowError {
    RowError {
        origin,
        column: None,
        pointer: String::new(),
        message_zh: format!("此行无法读取，未导入：{e}"),
        message_en: format!("the row cannot be read and was not imported: {e}"),
    }
}
