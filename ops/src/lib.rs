//! `rix`, the operator CLI of the exchange.
//!
//! The CLI lives in this library so that the end-to-end tests (`tests/`) can build the very
//! same program as their own binary and run it as real processes; `src/main.rs` only calls
//! [`main`].
//!
//! Each subcommand is a thin edge over the library crates: it parses arguments, calls one
//! library function, and reports errors with enough context to act on. Subcommands arrive with
//! the issues that build what they drive (`node serve`, `gateway serve`, `trust`, `demo`…); the
//! CLI lists only what works today.
//!
//! What it may not touch: rules and rows. The trust store, consumer tokens, the search index
//! and the services themselves are reached through the functions `rix_gateway` and `rix_node`
//! export, so the CLI and a running service can never disagree about what a row means. Its own
//! SQL touches scratch databases only: emptying a benchmark's, creating the demo's, loading the
//! search benchmark's baselines. It is the one crate besides the end-to-end tests that may
//! depend on both services (DESIGN.md §2).

pub mod bench;
pub mod bench_backfill;
pub mod bench_e2e;
pub mod bench_export;
pub mod bench_generate;
pub mod bench_import;
pub mod bench_portal;
pub mod bench_search;
pub mod demo;
pub mod import;
pub mod loadgen;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use rix_schema::RecordKind;
use rix_schema::signing::SigningKey;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "rix",
    version,
    about = "Operator CLI of rix, the national S&T results exchange"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole exchange in this process: a gateway and three nodes (the Ministry of
    /// Science and Technology, Yunnan, Liaoning) seeded with generated records through the
    /// nodes' APIs; prints what to try and runs until Ctrl-C.
    ///
    /// Everything is kept in the data dir, and a second run reuses it (same keys, tokens and
    /// records). DIR/demo.json lists every URL and one bearer token per role.
    Demo {
        /// Where keys, databases, tokens, the log and demo.json are kept.
        #[arg(long, default_value = "./rix-demo")]
        data_dir: PathBuf,
        /// Publish over RabbitMQ at this URL (amqp://…); the signed feeds stay on as gap fill.
        #[arg(long)]
        amqp: Option<String>,
        /// Keep the catalogue and the nodes' records on this PostgreSQL server (postgres://…);
        /// the databases rix_demo_gateway, rix_demo_most, rix_demo_prov_530000 and
        /// rix_demo_prov_210000 are created there if missing.
        #[arg(long)]
        postgres: Option<String>,
        /// Verify search, merge, links and the secrecy filters, print a summary, stop and exit
        /// (non-zero on failure).
        #[arg(long)]
        check: bool,
        /// Records to register over the three nodes (a reused data dir keeps its number).
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(60..=100_000))]
        records: u64,
        /// The gateway's port; the nodes take the next three. A taken port falls back to a free
        /// one; 0 takes free ports throughout.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Longest wait, in seconds, for the gateway to take in and index the records.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Register generated records at a running node through its HTTP API (batch submit, then
    /// bulk approval) and print the rates. Re-running the same command registers nothing twice
    /// (idempotency keys); move --start or change --seed for more.
    Loadgen {
        /// The node's base URL.
        #[arg(long)]
        node: String,
        /// A submitter token (give its institution with --institution) or an admin token.
        #[arg(long, env = "RIX_SUBMITTER_TOKEN")]
        submitter_token: String,
        /// A reviewer (or admin) token.
        #[arg(long, env = "RIX_REVIEWER_TOKEN")]
        reviewer_token: String,
        /// How many records.
        #[arg(long)]
        count: u64,
        /// Which kind.
        #[arg(long, value_enum, default_value = "achievement")]
        kind: loadgen::LoadKind,
        /// Generator profile: a province's region code (530000) or `most` (the ministry).
        #[arg(long, default_value = "530000", value_parser = loadgen::parse_profile)]
        profile: rix_schema::sample::NodeProfile,
        /// Generator seed.
        #[arg(long, default_value_t = 20161)]
        seed: u64,
        /// Index of the first generated record.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Records per submit and per approval request (1–1000).
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// The submitter token's institution (USCC): every record names it, as the node
        /// requires. It must be one the profile generates.
        #[arg(long)]
        institution: Option<String>,
    },
    /// Import existing records (spreadsheets, CSV, XML, JSON Lines, a platform's API) into a
    /// node through a mapping: rows → records validated locally → the node's import endpoint,
    /// once per row however often it runs.
    ///
    /// Run it first with --dry-run (no node needed): the first rows' source values beside the
    /// record fields they become, the header found, the columns no field reads and those
    /// missing, then every row mapped and counted. Then without it, with the node and a token:
    /// refused rows go to an error report (PREFIX.csv with a BOM for Excel, PREFIX.jsonl) and
    /// never block the others; rows with a 批准登记号 are imported as approved under it (an
    /// admin token); new records go to review, or are approved at once with --approve (a
    /// reviewer's or admin token); records classified 秘密 and above stay at the node. An
    /// interrupted import resumes from its checkpoint; running it twice registers nothing
    /// twice. Exit code 0 when every row was accepted (duplicates are), 2 when some rows were
    /// refused, 1 when the import could not go on.
    Import {
        /// The mapping: a TOML file, or a shipped mapping's name (achievement-form,
        /// achievement-xml, funded-project-list, jsonl-achievement, jsonl-funded-project).
        #[arg(long, value_name = "FILE|NAME")]
        mapping: String,
        /// Map and count only, showing the first rows side by side; nothing is sent.
        #[arg(long)]
        dry_run: bool,
        /// Dry run: how many rows to show side by side.
        #[arg(long, value_name = "N", default_value_t = import::DEFAULT_DRY_RUN_ROWS)]
        rows: usize,
        /// The node's base URL (https://node.example:8081).
        #[arg(long, value_name = "URL")]
        node: Option<String>,
        /// The node's bearer token: a submitter's (records to review), a reviewer's (with
        /// --approve) or an administrator's (also rows with a 批准登记号).
        #[arg(long, value_name = "T", env = "RIX_NODE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Approve new records in the same request (a reviewer's or admin token); without it
        /// they are submitted for review.
        #[arg(long)]
        approve: bool,
        /// Send new records to review (the default; says so in scripts).
        #[arg(long, conflicts_with = "approve")]
        submit: bool,
        /// The CA (PEM) that issued the node's TLS certificate, if not a public one.
        #[arg(long, value_name = "PEM")]
        ca_file: Option<PathBuf>,
        /// The error report: PREFIX.csv and PREFIX.jsonl [default: <first file>.errors; a dry
        /// run writes one only when given this].
        #[arg(long, value_name = "PATH_PREFIX")]
        errors: Option<PathBuf>,
        /// The checkpoint of an interrupted import [default: <first file>.rix-checkpoint.json,
        /// removed when the import finishes]; for a platform's API, its modified-since mark.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The files' encoding (gbk, gb18030, utf-8, utf-16le…) instead of the mapping's or
        /// the guess.
        #[arg(long, value_name = "E")]
        encoding: Option<String>,
        /// Workbooks: a sheet to read, by name or by position from 1 (name:2019 for a sheet
        /// named 2019); repeat for several. Default: the mapping's, else every visible sheet.
        #[arg(long = "sheet", value_name = "S", value_parser = import::parse_sheet)]
        sheets: Vec<rix_adapters::source::SheetRef>,
        /// The files' format (xlsx, xls, ods, csv, tsv, xml, jsonl) instead of the mapping's
        /// or the extension's.
        #[arg(long, value_name = "F", value_parser = import::parse_format)]
        format: Option<rix_adapters::source::Format>,
        /// CSV/TSV: the field delimiter.
        #[arg(long, value_name = "C")]
        delimiter: Option<char>,
        /// XML: the record element (a name, or a path /列表/成果).
        #[arg(long, value_name = "ELEMENT")]
        record: Option<String>,
        /// Records per request to the node (1–1000).
        #[arg(long, value_name = "N", default_value_t = rix_adapters::push::DEFAULT_CHUNK_SIZE,
              value_parser = import::parse_chunk)]
        chunk: usize,
        /// Requests made for one chunk at most, the first included: connection failures, 5xx
        /// and 429 are retried with backoff (Retry-After honoured).
        #[arg(long, value_name = "N", default_value_t = 8,
              value_parser = clap::value_parser!(u32).range(1..=100))]
        attempts: u32,
        /// The files to import (none when the mapping's [source] is a platform's API).
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Write import fixtures: a 科技成果登记表 workbook, a GBK 科技计划项目 CSV and an XML export,
    /// made from generated records with the messes real files have (and, with --broken, rows
    /// broken on purpose), plus expected.json with what importing them must give. A template
    /// to fill in, or files to try `rix import` on.
    ImportFixtures {
        /// Where to write them.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Achievements in the workbook (the XML gets a quarter as many, at least one; the CSV
        /// a third as many projects).
        #[arg(long, value_name = "N", default_value_t = 40)]
        records: u64,
        /// The province (its region code) whose records and 批准登记号 they are: import them
        /// into a node with this registration issuer.
        #[arg(long, default_value = "530000", value_parser = loadgen::parse_profile)]
        province: rix_schema::sample::NodeProfile,
        /// Generator seed.
        #[arg(long, default_value_t = 20161)]
        seed: u64,
        /// Add one broken row per kind of failure.
        #[arg(long)]
        broken: bool,
    },
    /// Generate a node's Ed25519 signing key.
    ///
    /// Writes KEY (PKCS#8 PEM, mode 0600) and KEY.pub (SubjectPublicKeyInfo PEM) and prints the
    /// key id and the raw public key in base64: give those to the gateway operator for
    /// `rix trust add`. Refuses to overwrite an existing key, because a node that loses its key
    /// can no longer extend its signed chain under the same trust entry.
    Keygen {
        /// Where to write the private key.
        #[arg(long, default_value = "node.key.pem")]
        out: PathBuf,
    },
    /// Validate record files (JSON) against the common schema and print every error with its
    /// JSON Pointer. Exits non-zero if any file is invalid.
    Validate {
        /// Record kind: achievement or funded_project.
        #[arg(long)]
        kind: RecordKind,
        /// JSON files, each holding one record.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Measure throughput end to end (numbers for ops/BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Manage the gateway's trust store: which nodes may publish and with which keys.
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
    /// Manage the gateway's consumer tokens (who may read internal records, commercial or
    /// personal fields).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Run the national gateway.
    Gateway {
        #[command(subcommand)]
        command: GatewayCommand,
    },
    /// Run a registration node (a ministry's or a province's).
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The sample generator alone: achievements and funded projects made per second on one
    /// thread (every other benchmark, the demo and loadgen start with it).
    Generate {
        /// Records of each kind.
        #[arg(long, default_value_t = 200_000)]
        records: u64,
    },
    /// Importing a province's existing records: generated 登记表 workbooks and GBK project
    /// lists read, mapped and validated (rows per second and per CPU second, peak RSS per
    /// phase), and with --push imported into a node started in this process, beside the node's
    /// plain batch submit of the same records (SQLite, and PostgreSQL with --postgres).
    Import {
        /// Rows per file.
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        /// Where the fixture files are kept; files already written there for this size are
        /// reused.
        #[arg(long, default_value = "target/bench-import")]
        data_dir: PathBuf,
        /// Also import into a node, beside batch submit (SQLite in a temporary directory).
        #[arg(long)]
        push: bool,
        /// With --push, also on PostgreSQL: a server URL; the database rix_bench_import is
        /// created there and emptied before each phase.
        #[arg(long)]
        postgres: Option<String>,
        /// Only `form` (the XLSX) or `csv` (the GBK project list).
        #[arg(long)]
        only: Option<String>,
    },
    /// Search over a large generated catalogue through a gateway process's HTTP API, side by
    /// side with PostgreSQL (ILIKE, pg_trgm) and SQLite FTS5 on the same data: latency
    /// quantiles, index build time, gateway memory, recall of two-character Chinese terms.
    Search {
        /// Records in the catalogue (achievements and projects, 3 : 1).
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Publishing nodes the records come from.
        #[arg(long, default_value_t = 8)]
        nodes: usize,
        /// Where the catalogue, the index and the baselines are kept; a catalogue already
        /// filled there with the same size is reused.
        #[arg(long, default_value = "target/bench-search")]
        data_dir: PathBuf,
        /// Timed queries per engine (slow baselines stop after a minute).
        #[arg(long, default_value_t = 2000)]
        queries: usize,
        /// PostgreSQL database for the PostgreSQL baselines (its tables docs, prog, mode are
        /// replaced); without it those rows are skipped.
        #[arg(long)]
        postgres: Option<String>,
    },
    /// The portal's search page against the JSON API on the search bench's catalogue (filled
    /// or reused in the same data dir), through a gateway process: latency quantiles side by
    /// side, their ratio, and the page's weight.
    Portal {
        /// Records in the catalogue (as `rix bench search` fills it).
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Publishing nodes the records come from.
        #[arg(long, default_value_t = 8)]
        nodes: usize,
        /// The search bench's data dir; its catalogue and index are reused when there.
        #[arg(long, default_value = "target/bench-search")]
        data_dir: PathBuf,
        /// Timed requests per endpoint (the API, the page, the htmx results region).
        #[arg(long, default_value_t = 2000)]
        queries: usize,
    },
    /// A ministry's bulk pull: full anonymous exports (JSON Lines, CSV) of the search bench's
    /// catalogue (filled or reused in the same data dir) through a gateway process, beside the
    /// catalogue's own read of the same entries, and search pages' latency by depth.
    Export {
        /// Records in the catalogue (as `rix bench search` fills it).
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Publishing nodes the records come from.
        #[arg(long, default_value_t = 8)]
        nodes: usize,
        /// The search bench's data dir; its catalogue and index are reused when there.
        #[arg(long, default_value = "target/bench-search")]
        data_dir: PathBuf,
        /// Rounds of (JSON Lines export, CSV export, the catalogue's own read).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Search pages of 100 walked by cursor for the latency by depth.
        #[arg(long, default_value_t = 200)]
        pages: usize,
        /// PostgreSQL server URL: the same catalogue filled in a database of the bench's own
        /// there (`rix_bench_export`), exported through a gateway on it, beside `psql \copy`.
        #[arg(long)]
        postgres: Option<String>,
    },
    /// The whole exchange end to end: N `rix node serve` processes, the signed feeds (or
    /// RabbitMQ), a `rix gateway serve` process and its search index. Records are registered
    /// at the nodes (batch submit, bulk approve) at an offered rate; the harness records, per
    /// record, approval → searchable at the gateway. Reports records/s end to end, freshness
    /// p50/p99/max and peak memory.
    E2e {
        /// Node processes (one province each, past the 31 provinces a central department).
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// Records in all, spread over the nodes.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Offered load: approvals per second across all nodes (0: as fast as they answer).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// RabbitMQ URL: nodes publish there and the gateway consumes (the feeds stay on as
        /// gap fill); without it the signed feeds are the only transport.
        #[arg(long)]
        amqp: Option<String>,
        /// PostgreSQL server URL: the gateway's catalogue in a database of the bench's own
        /// there (`rix_bench_e2e`, emptied first); the nodes stay on SQLite.
        #[arg(long)]
        postgres: Option<String>,
        /// Where configs, keys, databases and logs are kept (emptied at the start; with
        /// --backfill, nodes filled by a run of the same size are kept and reused).
        #[arg(long, default_value = "target/bench-e2e")]
        data_dir: PathBuf,
        /// Records per submit and per approve request.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Concurrent submit+approve requests per node.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        /// The gateway's pause between feed polls of a caught-up node, ms (the gateway's own
        /// default is 2000).
        #[arg(long, default_value_t = 250)]
        pull_interval_ms: u64,
        /// Backfill instead: fill the nodes first with no gateway running (kept in the data dir
        /// and reused by the next run of the same size), then time an empty gateway pulling
        /// every feed until the last record is searchable. Up to 40 nodes (the 31 provinces,
        /// then central departments).
        #[arg(long)]
        backfill: bool,
    },
    /// The gateway's ingest pipeline alone (verify, chain check, validate, secrecy gate, apply
    /// with merge and change stream) on pre-signed batches of generated achievements. With
    /// --postgres, SQLite and PostgreSQL are measured side by side (alternating, run by run).
    Ingest {
        /// Records per run.
        #[arg(long, default_value_t = 20000)]
        records: u64,
        /// Entries per batch.
        #[arg(long, default_value_t = 500)]
        batch_entries: usize,
        /// Runs (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Catalogue in this PostgreSQL database (emptied before each run).
        #[arg(long)]
        postgres: Option<String>,
        /// Measure from a warm RabbitMQ queue through the gateway's consumer (else the
        /// pipeline alone).
        #[arg(long)]
        amqp: Option<String>,
        /// Only `sqlite` or `postgres` (with --postgres, both by default).
        #[arg(long)]
        only: Option<String>,
    },
    /// A node from API to confirmed publish: batch-submit generated achievements, approve each
    /// with concurrent reviewers over HTTP, stop the clock when every approval is published.
    /// Prints each run and the median approvals per second; with --postgres, SQLite and
    /// PostgreSQL are measured side by side (alternating, run by run) and printed together.
    Node {
        /// Records per run.
        #[arg(long, default_value_t = 5000)]
        records: u64,
        /// Concurrent approve requests.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Runs (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Node batch size.
        #[arg(long, default_value_t = 500)]
        batch_max_entries: usize,
        /// Records per approve request: 1 is one request per record, more uses the bulk
        /// approval endpoint (POST /v1/achievements/approve).
        #[arg(long, default_value_t = 1)]
        approve_batch: usize,
        /// Publish to RabbitMQ at this URL (else the feed is the only transport).
        #[arg(long)]
        amqp: Option<String>,
        /// Also (or with --only postgres, only) store in this PostgreSQL database, emptied
        /// before each run; SQLite is always in a temporary directory.
        #[arg(long)]
        postgres: Option<String>,
        /// Only `sqlite` or `postgres` (default: SQLite, and PostgreSQL when --postgres is given).
        #[arg(long)]
        only: Option<String>,
    },
}

/// Where the trust store is: the gateway's config (its database), or a database URL.
#[derive(clap::Args)]
struct CatalogueArgs {
    /// The gateway's config file (its database_url or data_dir is used).
    #[arg(long, required_unless_present = "database")]
    config: Option<PathBuf>,
    /// The catalogue database instead: postgres://… or a SQLite path.
    #[arg(long, env = "RIX_DATABASE_URL")]
    database: Option<String>,
}

impl CatalogueArgs {
    fn open(&self) -> Result<rix_gateway::db::Db> {
        let db = match (&self.database, &self.config) {
            (Some(url), _) => rix_gateway::db::Db::open(url, 2)?,
            (None, Some(config)) => rix_gateway::config::Config::load(config)?.open_database()?,
            (None, None) => bail!("give --config (the gateway's config) or --database"),
        };
        Ok(db)
    }

    /// How the gateway reaches nodes: the `[pull]` timeouts and TLS material of its config
    /// (the defaults with --database alone).
    fn puller_config(&self) -> Result<rix_gateway::pull::PullConfig> {
        Ok(match &self.config {
            Some(config) => rix_gateway::config::Config::load(config)?.pull.puller(),
            None => rix_gateway::pull::PullConfig::default(),
        })
    }
}

#[derive(Subcommand)]
enum TrustCommand {
    /// Trust a node's public key (adding the node if new).
    ///
    /// For a node's first key. Later keys come with `rix trust rotate`, which takes their
    /// windows from the node. Batches are verified against the key named in their header,
    /// within its validity window.
    Add {
        #[command(flatten)]
        catalogue: CatalogueArgs,
        /// Node id (prov-530000, most…).
        #[arg(long)]
        node: String,
        /// The public key: base64 as `rix keygen` prints it, or the path of its .pub PEM file.
        #[arg(long)]
        key: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// The node's base URL, for pulling its signed feed (https://node.example.cn).
        #[arg(long)]
        feed_url: Option<String>,
        /// A file holding the bearer token the node enrolled this gateway with (its [[gateways]]
        /// entry); the puller presents it on the node's feed. `-` reads it from stdin. Stored
        /// with the feed URL, never printed. Re-run with a new file to rotate it.
        #[arg(long, value_name = "FILE")]
        feed_token_file: Option<PathBuf>,
        /// Batches created before this RFC 3339 time are refused.
        #[arg(long)]
        valid_from: Option<String>,
        /// Batches created at or after this RFC 3339 time are refused.
        #[arg(long)]
        valid_until: Option<String>,
    },
    /// List trusted nodes and keys (JSON with --json).
    List {
        #[command(flatten)]
        catalogue: CatalogueArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take a node's key rotation from the node itself: read its GET /v1/keys (every key it
    /// ever signed with, each with the window its batch chain gives it) and apply the windows.
    ///
    /// New keys are trusted from the node's window start; the old key is closed at the switch
    /// time, the created_at of the first batch the node signed with the new key. Running it
    /// again changes nothing. Refuses, changing nothing, an inconsistent answer (another node,
    /// a key id that is not its key's, overlapping windows), a key id the store holds with
    /// another public key, and a list of which no key is trusted yet.
    Rotate {
        #[command(flatten)]
        catalogue: CatalogueArgs,
        /// Node id.
        #[arg(long)]
        node: String,
        /// The node's base URL (default: the feed URL the trust store holds for it).
        #[arg(long)]
        node_url: Option<String>,
        /// Print what was done as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: every batch it ever signed is refused from now on — or, with
    /// --compromised-since, only the batches dated from then on.
    ///
    /// A plain revocation refuses the key's history too, so a catalogue rebuilt from the feeds
    /// loses what the node published under it. With --compromised-since T the batches it signed
    /// before T stay accepted (a batch cannot be dated before the one it follows, so nobody can
    /// slip one in before T later).
    Revoke {
        #[command(flatten)]
        catalogue: CatalogueArgs,
        /// Node id.
        #[arg(long)]
        node: String,
        /// Key id (ed25519:…), as `rix trust list` shows.
        #[arg(long)]
        key_id: String,
        /// Refuse only the batches created at or after this RFC 3339 time (the first moment
        /// the key may have been in other hands; for a retired key, its switch time).
        #[arg(long, value_name = "T")]
        compromised_since: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a bearer token for a consumer (a ministry, an analyst) and print it once; only
    /// its SHA-256 is stored. Without a token a consumer reads as `public`.
    Add {
        #[command(flatten)]
        catalogue: CatalogueArgs,
        /// Who holds it (shown in the read audit).
        #[arg(long)]
        name: String,
        /// Comma list of internal, commercial, personal.
        #[arg(long, default_value = "public")]
        entitlements: rix_schema::sensitivity::Entitlements,
    },
    /// List consumers and their entitlements (never the tokens).
    List {
        #[command(flatten)]
        catalogue: CatalogueArgs,
    },
    /// Revoke every token of a consumer at once.
    Revoke {
        #[command(flatten)]
        catalogue: CatalogueArgs,
        /// The consumer's name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum GatewayCommand {
    /// Serve the gateway: consume batches from RabbitMQ (if amqp_url is set), pull every
    /// trusted node's signed feed (gap fill, catch-up, backfill, or the whole transport), keep
    /// the national catalogue and its search index, and serve the read APIs (/v1/search,
    /// /v1/records, /v1/changes, /v1/export, /v1/stats) through the access filter. Trust nodes
    /// first with `rix trust add`; consumer tokens come from `rix token add`.
    ///
    /// Reads the TOML config (annotated example: ops/config/gateway.example.toml); RIX_LISTEN,
    /// RIX_DATA_DIR, RIX_DATABASE_URL and RIX_AMQP_URL override it. Stops cleanly on SIGINT or
    /// SIGTERM.
    Serve {
        /// The gateway's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Rebuild the search index from the catalogue, from scratch (run with the gateway
    /// stopped, or on a replica taken out of the load balancer). The index is derived data:
    /// this is also the answer to a lost or corrupt index.
    Reindex {
        /// The gateway's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Take a bulk snapshot now: per view (public, and each entitlement set in the config's
    /// [snapshots] views) every entry in gzip JSON Lines, and a manifest with its counts, SHA-256,
    /// schema version and the sealed `changes_after` to follow /v1/changes from. Written under
    /// [snapshots] dir (default {data_dir}/snapshots), served at /v1/snapshots; the newest
    /// [snapshots] keep are kept. Safe beside a running gateway.
    Snapshot {
        /// The gateway's config file.
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Serve the node: registration and review API, signed feed, RabbitMQ publishing.
    ///
    /// Reads the TOML config (annotated example: ops/config/node.example.toml); every key can
    /// be overridden by a RIX_* environment variable (RIX_LISTEN, RIX_DATABASE_URL,
    /// RIX_AMQP_URL, RIX_SIGNING_KEY…). Runs migrations at start. Stops cleanly on SIGINT or
    /// SIGTERM: in-flight requests finish and sealed batches are published first.
    Serve {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
    },
}

/// Parses the command line and runs the subcommand.
pub fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Demo {
            data_dir,
            amqp,
            postgres,
            check,
            records,
            port,
            timeout,
        } => demo::run(demo::Options {
            data_dir,
            amqp,
            postgres,
            check,
            records,
            port,
            timeout_secs: timeout,
        }),
        Command::Loadgen {
            node,
            submitter_token,
            reviewer_token,
            count,
            kind,
            profile,
            seed,
            start,
            batch,
            institution,
        } => tokio::runtime::Runtime::new()
            .context("starting the async runtime")?
            .block_on(loadgen::run(loadgen::Options {
                target: loadgen::Target {
                    url: node,
                    submitter_token,
                    reviewer_token,
                },
                count,
                start,
                kind: kind.into(),
                profile,
                seed,
                batch,
                institution,
            })),
        Command::Import {
            mapping,
            dry_run,
            rows,
            node,
            token,
            approve,
            submit: _,
            ca_file,
            errors,
            checkpoint,
            encoding,
            sheets,
            format,
            delimiter,
            record,
            chunk,
            attempts,
            files,
        } => {
            use std::io::IsTerminal as _;
            let options = import::ImportOptions {
                mapping,
                inputs: files,
                dry_run,
                rows,
                node,
                token,
                approve,
                ca_file,
                errors,
                checkpoint,
                encoding,
                sheets,
                format,
                delimiter,
                record,
                chunk: Some(chunk),
                attempts: Some(attempts),
                progress: std::io::stderr().is_terminal(),
            };
            let mut stdout = std::io::stdout().lock();
            let summary = import::run(&options, &mut stdout)?;
            stdout.flush()?;
            drop(stdout);
            if let Some(failure) = &summary.failure {
                bail!("the import stopped: {failure}");
            }
            match summary.exit_code() {
                0 => Ok(()),
                code => std::process::exit(code),
            }
        }
        Command::ImportFixtures {
            out,
            records,
            province,
            seed,
            broken,
        } => {
            let spec = import::fixtures::FixtureSpec {
                config: rix_schema::sample::SampleConfig {
                    seed,
                    node: province,
                    ..import::fixtures::FixtureSpec::default().config
                },
                form_achievements: records,
                xml_achievements: (records / 4).max(1),
                projects: (records / 3).max(1),
                broken,
            };
            let files = import::fixtures::write_all(&out, &spec)
                .with_context(|| format!("writing fixtures to {}", out.display()))?;
            for f in &files {
                println!(
                    "{}: {} record(s), {} broken row(s) — rix import --mapping {} --dry-run {}",
                    f.path.display(),
                    f.records.len(),
                    f.refusals.len(),
                    f.mapping,
                    f.path.display()
                );
            }
            println!(
                "{}: what importing them must give",
                out.join("expected.json").display()
            );
            Ok(())
        }
        Command::Keygen { out } => keygen(&out),
        Command::Validate { kind, files } => validate(kind, &files),
        Command::Node {
            command: NodeCommand::Serve { config },
        } => node_serve(&config),
        Command::Trust { command } => trust(command),
        Command::Token { command } => token(command),
        Command::Gateway {
            command: GatewayCommand::Serve { config },
        } => gateway_serve(&config),
        Command::Gateway {
            command: GatewayCommand::Snapshot { config },
        } => {
            let config = rix_gateway::config::Config::load(&config)?;
            let db = config.open_database()?;
            let snapshots = rix_gateway::snapshot::Snapshots::of_config(&config)?;
            let started = std::time::Instant::now();
            let taken = snapshots.take(&db)?;
            for m in &taken.manifests {
                println!(
                    "{}: view {} — {} entries, {} bytes, sha256 {}",
                    m.id, m.view, m.counts["total"], m.files[0].size, m.files[0].sha256
                );
            }
            println!(
                "snapshot written to {} in {:.1} s{}",
                taken.dir.display(),
                started.elapsed().as_secs_f64(),
                if taken.pruned.is_empty() {
                    String::new()
                } else {
                    format!("; removed {}", taken.pruned.join(", "))
                }
            );
            Ok(())
        }
        Command::Gateway {
            command: GatewayCommand::Reindex { config },
        } => {
            let config = rix_gateway::config::Config::load(&config)?;
            let db = config.open_database()?;
            let index =
                rix_gateway::search::SearchIndex::open_or_rebuild(&config.data_dir.join("search"))?;
            let started = std::time::Instant::now();
            let report = index.rebuild(&db)?;
            println!(
                "search index rebuilt: {} entries indexed from {} changes in {:.1} s",
                report.indexed,
                report.changes,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Bench {
            command:
                BenchCommand::Ingest {
                    records,
                    batch_entries,
                    runs,
                    postgres,
                    amqp,
                    only,
                },
        } => bench_ingest(
            records,
            batch_entries,
            runs,
            measured_backends(only.as_deref(), postgres)?,
            amqp,
        ),
        Command::Bench {
            command:
                BenchCommand::E2e {
                    nodes,
                    records,
                    rate,
                    amqp,
                    postgres,
                    data_dir,
                    batch,
                    concurrency,
                    pull_interval_ms,
                    backfill,
                },
        } => bench_e2e::run(&bench_e2e::E2eBench {
            nodes,
            records,
            rate,
            amqp,
            postgres,
            dir: data_dir,
            batch,
            concurrency,
            pull_interval_ms,
            backfill,
        }),
        Command::Bench {
            command: BenchCommand::Generate { records },
        } => bench_generate::run(records),
        Command::Bench {
            command:
                BenchCommand::Import {
                    rows,
                    data_dir,
                    push,
                    postgres,
                    only,
                },
        } => bench_import::run(&bench_import::ImportBench {
            rows,
            data_dir,
            push,
            postgres,
            only,
        }),
        Command::Bench {
            command:
                BenchCommand::Search {
                    records,
                    nodes,
                    data_dir,
                    queries,
                    postgres,
                },
        } => bench_search::run(&bench_search::SearchBench {
            records,
            nodes,
            dir: data_dir,
            postgres,
            queries,
        }),
        Command::Bench {
            command:
                BenchCommand::Portal {
                    records,
                    nodes,
                    data_dir,
                    queries,
                },
        } => bench_portal::run(&bench_portal::PortalBench {
            records,
            nodes,
            dir: data_dir,
            queries,
        }),
        Command::Bench {
            command:
                BenchCommand::Export {
                    records,
                    nodes,
                    data_dir,
                    rounds,
                    pages,
                    postgres,
                },
        } => bench_export::run(&bench_export::ExportBench {
            records,
            nodes,
            dir: data_dir,
            rounds,
            pages,
            postgres,
        }),
        Command::Bench {
            command:
                BenchCommand::Node {
                    records,
                    concurrency,
                    runs,
                    batch_max_entries,
                    approve_batch,
                    amqp,
                    postgres,
                    only,
                },
        } => bench_node(
            bench::NodeBench {
                approve_batch,
                records,
                concurrency,
                submit_batch: 1000,
                amqp,
                postgres: None,
                batch_max_entries,
            },
            postgres,
            only.as_deref(),
            runs,
        ),
    }
}

fn bench_node(
    spec: bench::NodeBench,
    postgres: Option<String>,
    only: Option<&str>,
    runs: usize,
) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let transport = if spec.amqp.is_some() {
        "RabbitMQ"
    } else {
        "feed only"
    };
    let backends = measured_backends(only, postgres)?;
    println!(
        "rix bench node: {} records/run, {} concurrent reviewers, {} per approve request, {}, {transport}",
        spec.records,
        spec.concurrency,
        spec.approve_batch,
        backend_names(&backends)
    );
    side_by_side("approve→published", &backends, runs, |run, name, url| {
        let spec = bench::NodeBench {
            postgres: url,
            ..spec.clone()
        };
        let r = runtime.block_on(bench::node(&spec))?;
        let rate = r.records as f64 / r.approve_to_published_secs;
        println!(
            "run {run} {name}: submit {:.0} rec/s; approve→published {:.0} rec/s ({} log entries in {:.2} s; approvals answered in {:.2} s)",
            r.records as f64 / r.submit_secs,
            rate,
            r.published,
            r.approve_to_published_secs,
            r.approve_secs
        );
        Ok(rate)
    })
}

/// `rix bench ingest`: the gateway's ingest on each backend.
fn bench_ingest(
    records: u64,
    batch_entries: usize,
    runs: usize,
    backends: Vec<(&'static str, Option<String>)>,
    amqp: Option<String>,
) -> Result<()> {
    println!(
        "rix bench ingest: {records} records in batches of {batch_entries}, {}, {}",
        backend_names(&backends),
        if amqp.is_some() {
            "from a warm RabbitMQ queue through the consumer"
        } else {
            "pipeline only (prepare and commit on two threads)"
        }
    );
    side_by_side("ingest", &backends, runs, |run, name, url| {
        let spec = bench::IngestBench {
            records,
            batch_entries,
            postgres: url,
        };
        let (n, secs) = match &amqp {
            Some(amqp) => {
                tokio::runtime::Runtime::new()?.block_on(bench::ingest_from_queue(&spec, amqp))?
            }
            None => bench::ingest_pipeline(&spec)?,
        };
        println!(
            "run {run} {name}: {n} entries in {secs:.2} s = {:.0} records/s",
            n as f64 / secs
        );
        Ok(n as f64 / secs)
    })
}

/// The backends a benchmark measures: SQLite, and PostgreSQL at `postgres` beside it unless
/// `only` names one.
fn measured_backends(
    only: Option<&str>,
    postgres: Option<String>,
) -> Result<Vec<(&'static str, Option<String>)>> {
    Ok(match (only, postgres) {
        (Some("sqlite"), _) => vec![("SQLite", None)],
        (Some("postgres"), Some(url)) => vec![("PostgreSQL", Some(url))],
        (Some("postgres"), None) => bail!("--only postgres needs --postgres URL"),
        (Some(other), _) => bail!("--only is sqlite or postgres, not {other:?}"),
        (None, Some(url)) => vec![("SQLite", None), ("PostgreSQL", Some(url))],
        (None, None) => vec![("SQLite", None)],
    })
}

fn backend_names(backends: &[(&str, Option<String>)]) -> String {
    let names: Vec<&str> = backends.iter().map(|(name, _)| *name).collect();
    names.join(" and ")
}

/// Runs `measure` (run number, backend name, PostgreSQL URL or `None` for SQLite → records/s)
/// `runs` times on each backend, alternating between them run by run so that both meet the
/// same load on a shared machine, the PostgreSQL database emptied before each run; then prints
/// each backend's median `what` rate and its range.
fn side_by_side(
    what: &str,
    backends: &[(&str, Option<String>)],
    runs: usize,
    mut measure: impl FnMut(usize, &str, Option<String>) -> Result<f64>,
) -> Result<()> {
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); backends.len()];
    for run in 1..=runs.max(1) {
        for ((name, url), rates) in backends.iter().zip(&mut rates) {
            if let Some(pg) = url {
                reset_postgres(pg)?;
            }
            rates.push(measure(run, name, url.clone())?);
        }
    }
    println!("median {what}, records/s (range):");
    for ((name, _), rates) in backends.iter().zip(&mut rates) {
        rates.sort_by(f64::total_cmp);
        println!(
            "  {name:<10} {:>6.0}  ({:.0}–{:.0})",
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1]
        );
    }
    Ok(())
}

/// Empties the benchmark's PostgreSQL database so every run starts alike.
fn reset_postgres(url: &str) -> Result<()> {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let mut conn = diesel::PgConnection::establish(url)
        .with_context(|| format!("connecting to {}", rix_node::db::redact_url(url)))?;
    conn.batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        .context("resetting the benchmark database")?;
    Ok(())
}

fn trust(command: TrustCommand) -> Result<()> {
    use rix_gateway::trust;
    match command {
        TrustCommand::Add {
            catalogue,
            node,
            key,
            name,
            feed_url,
            feed_token_file,
            valid_from,
            valid_until,
        } => {
            let feed_token = match &feed_token_file {
                None => None,
                Some(path) => {
                    let token = read_secret(path)?;
                    trust::check_feed_token(&token)?;
                    Some(token)
                }
            };
            let text = if Path::new(&key).is_file() {
                fs::read_to_string(&key).with_context(|| format!("reading {key}"))?
            } else {
                key
            };
            let public = trust::parse_public_key(&text)?;
            let db = catalogue.open()?;
            let key_id = trust::add(
                &db,
                &node,
                name.as_deref(),
                feed_url.as_deref(),
                &public,
                valid_from.as_deref(),
                valid_until.as_deref(),
            )?;
            println!("trusted {key_id} for node {node}");
            if let Some(token) = &feed_token {
                trust::set_feed_token(&db, &node, Some(token))?;
                println!(
                    "stored the feed token for node {node} (the puller presents it on its feed)"
                );
            }
        }
        TrustCommand::List { catalogue, json } => {
            let nodes = trust::list(&catalogue.open()?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&nodes)?);
            } else {
                for n in nodes {
                    println!(
                        "{}  {}  feed: {}  feed token: {}",
                        n.node_id,
                        n.name.as_deref().unwrap_or("-"),
                        n.feed_url.as_deref().unwrap_or("-"),
                        if n.feed_token_set { "set" } else { "none" }
                    );
                    for k in n.keys {
                        let window = format!(
                            "valid {} .. {}",
                            k.valid_from.as_deref().unwrap_or("always"),
                            k.valid_until.as_deref().unwrap_or("open")
                        );
                        let state = match (&k.revoked_at, &k.compromised_since) {
                            (Some(at), _) => format!("REVOKED at {at}"),
                            (None, Some(since)) => {
                                format!("{window}  COMPROMISED since {since}")
                            }
                            (None, None) => window,
                        };
                        println!("    {}  {}  {state}", k.key_id, k.public_key);
                    }
                }
            }
        }
        TrustCommand::Rotate {
            catalogue,
            node,
            node_url,
            json,
        } => {
            let db = catalogue.open()?;
            let url = match node_url {
                Some(url) => url,
                None => trust::node_url(&db, &node)?,
            };
            let client = rix_gateway::pull::http_client(&catalogue.puller_config()?)?;
            let listed = tokio::runtime::Runtime::new()
                .context("starting the async runtime")?
                .block_on(trust::fetch_node_keys(&client, &url))?;
            let report = trust::rotate(&db, &node, &listed)
                .with_context(|| format!("rotating the keys of node {node} from {url}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "node {node} lists {} key(s) at {url}/v1/keys",
                    listed.keys.len()
                );
                if report.steps.is_empty() {
                    println!("nothing to change: the trust store holds the node's key windows");
                }
                for step in &report.steps {
                    println!("  {step}");
                }
                for note in &report.notes {
                    println!("  note: {note}");
                }
            }
        }
        TrustCommand::Revoke {
            catalogue,
            node,
            key_id,
            compromised_since,
        } => {
            let db = catalogue.open()?;
            match compromised_since {
                None => {
                    trust::revoke(&db, &node, &key_id)?;
                    println!(
                        "revoked {key_id} of node {node}: every batch it signed is refused from now on"
                    );
                }
                Some(since) => {
                    let since = trust::mark_compromised(&db, &node, &key_id, &since)?;
                    println!(
                        "{key_id} of node {node} is compromised since {since}: batches it signed from then on are refused, earlier ones stay accepted"
                    );
                }
            }
        }
    }
    Ok(())
}

/// A secret from a file (or stdin for `-`), trimmed of the line end editors add.
fn read_secret(path: &Path) -> Result<String> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("reading the feed token from stdin")?;
        text
    } else {
        fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let token = text.trim().to_owned();
    if token.is_empty() {
        bail!("{} holds no token", path.display());
    }
    Ok(token)
}

fn token(command: TokenCommand) -> Result<()> {
    use rix_gateway::access;
    match command {
        TokenCommand::Add {
            catalogue,
            name,
            entitlements,
        } => {
            let token = access::add_token(&catalogue.open()?, &name, entitlements)?;
            println!("{token}");
            eprintln!("token for {name} ({entitlements}); shown once, keep it secret");
        }
        TokenCommand::List { catalogue } => {
            for (name, entitlements, created, revoked) in access::list_tokens(&catalogue.open()?)? {
                let state = revoked.map_or("active".to_owned(), |at| format!("REVOKED at {at}"));
                println!("{name}  {entitlements}  created {created}  {state}");
            }
        }
        TokenCommand::Revoke { catalogue, name } => {
            let n = access::revoke_tokens(&catalogue.open()?, &name)?;
            if n == 0 {
                bail!("{name} has no active token; `rix token list` shows the consumers");
            }
            println!("revoked {n} token(s) of {name}");
        }
    }
    Ok(())
}

/// Logs of the services: `RIX_LOG` filters (default `info`); `RIX_LOG_FORMAT=json` writes one
/// JSON object per line (for a log collector), anything else text. Colour only on a terminal:
/// journald and log files would otherwise keep the escape codes.
fn init_logging() {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("RIX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = match std::env::var("RIX_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().try_init(),
        _ => builder.try_init(),
    };
}

fn gateway_serve(config: &Path) -> Result<()> {
    init_logging();
    let config = rix_gateway::config::Config::load(config)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let gateway = rix_gateway::serve::start(config).await?;
        println!("gateway listening on {}", gateway.url());
        gateway.run_until_signalled().await;
        Ok(())
    })
}

fn node_serve(config: &Path) -> Result<()> {
    init_logging();
    let config = rix_node::Config::load(config)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let node = rix_node::start(config).await?;
        println!("node listening on {}", node.url());
        node.run_until_signalled().await;
        Ok(())
    })
}

fn keygen(out: &Path) -> Result<()> {
    let public_path = PathBuf::from(format!("{}.pub", out.display()));
    for path in [out, public_path.as_path()] {
        if path.exists() {
            bail!(
                "{} already exists; move it away first if you really mean to replace this node's key \
                 (the gateway must then trust the new key: rix trust add)",
                path.display()
            );
        }
    }
    let key = SigningKey::generate().context("generating an Ed25519 key with OpenSSL")?;
    let pem = key.to_pkcs8_pem()?;
    write_private(out, pem.as_bytes())
        .with_context(|| format!("writing the private key to {}", out.display()))?;
    fs::write(&public_path, key.verifying_key().to_spki_pem()?)
        .with_context(|| format!("writing the public key to {}", public_path.display()))?;
    println!("private key: {} (keep it secret)", out.display());
    println!("public key:  {}", public_path.display());
    println!("key id:      {}", key.key_id());
    println!(
        "public key (raw, base64): {}",
        key.verifying_key().to_base64()
    );
    Ok(())
}

/// Creates the file readable by its owner only, before any secret byte is written.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

fn validate(kind: RecordKind, files: &[PathBuf]) -> Result<()> {
    let mut invalid = 0;
    for file in files {
        let text =
            fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let record: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                invalid += 1;
                println!("{}: not JSON: {e}", file.display());
                continue;
            }
        };
        match rix_schema::validate_record(kind, &record) {
            Ok(()) => println!("{}: valid {kind}", file.display()),
            Err(errors) => {
                invalid += 1;
                for error in errors {
                    println!("{}: {error}", file.display());
                }
            }
        }
    }
    if invalid > 0 {
        bail!(
            "{invalid} of {} files are not valid {kind} records",
            files.len()
        );
    }
    Ok(())
}
