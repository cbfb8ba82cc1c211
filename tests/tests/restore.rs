//! A gateway catalogue restored from a backup under a newer search index (issue 12): the
//! operator's drill from ops/DEPLOY.md §6, with the real `pg_dump` and `pg_restore`, a real
//! node and the real `rix gateway serve`. The index notices on its own that it no longer
//! reflects the catalogue, says so (log, metric, `/healthz`), rebuilds, and searches answer what
//! the catalogue holds — no more, no less. When the node is back, the lost record comes again
//! from its feed.

use std::path::Path;
use std::process::Command;

use rix_schema::sample::{SampleConfig, SampleGenerator};
use rix_tests::*;
use serde_json::{Value, json};

const RIX: &str = env!("CARGO_BIN_EXE_rix-e2e");

/// A PostgreSQL client program: from PATH (Debian's wrappers), else the newest server's.
fn pg_program(name: &str) -> String {
    if Command::new(name).arg("--version").output().is_ok() {
        return name.to_owned();
    }
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL installed by ops/install-deps.sh")
        .filter_map(|d| d.ok().map(|d| d.path().join("bin").join(name)))
        .filter(|p| p.exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .unwrap_or_else(|| panic!("{name} not found"))
        .display()
        .to_string()
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An achievement whose title carries `word`, public.
fn achievement(sample: &SampleGenerator, i: u64, word: &str) -> Value {
    let mut v = as_public_submission(serde_json::to_value(sample.achievement(i)).unwrap());
    v["title"] = json!(format!("{word} 恢复演练成果"));
    v
}

/// How many public entries a search for `word` finds.
async fn found(http: &reqwest::Client, gateway: &GatewayProcess, word: &str) -> u64 {
    gateway_search(http, &gateway.url, &format!("q={word}"))
        .await
        .unwrap()
        .0
}

/// Waits until a search for `word` finds `n` public entries.
async fn wait_found(http: &reqwest::Client, gateway: &GatewayProcess, word: &str, n: u64) {
    wait_for_search(http, gateway, &format!("q={word}"), n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalogue_restored_under_a_newer_search_index_is_noticed_and_the_index_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let sample = SampleGenerator::new(SampleConfig::default());
    let mut node = NodeProcess::start(
        RIX,
        dir.path(),
        NodeSpec::new(&unique("restore"), "530000").with_batches(10, 100),
    );
    let database_url = fresh_postgres_database();
    let mut gateway =
        GatewayProcess::start(RIX, dir.path(), Some(database_url.clone()), None, &[&node]);

    // Three records, searchable; the nightly backup.
    let kept: Vec<Value> = (0..3)
        .map(|i| achievement(&sample, i, "KEPTRECORD"))
        .collect();
    register_approved(&http, &node.url, "achievements", kept).await;
    wait_found(&http, &gateway, "KEPTRECORD", 3).await;
    let dump = dir.path().join("catalogue.dump");
    run(
        &pg_program("pg_dump"),
        &["-Fc", "-f", dump.to_str().unwrap(), &database_url],
    );

    // A record after the backup, indexed too.
    register_approved(
        &http,
        &node.url,
        "achievements",
        vec![achievement(&sample, 3, "LOSTRECORD")],
    )
    .await;
    wait_found(&http, &gateway, "LOSTRECORD", 1).await;

    // The catalogue is lost and restored from the backup; the node is down meanwhile, so that
    // nothing refills the catalogue before we look.
    gateway.stop();
    node.stop();
    restore(&database_url, &dump);
    gateway.restart();

    // The index was ahead of the restored catalogue: it says so and rebuilds by itself.
    wait_found(&http, &gateway, "KEPTRECORD", 3).await;
    assert_eq!(found(&http, &gateway, "LOSTRECORD").await, 0);
    assert_eq!(
        metric(
            &http,
            &gateway.url,
            "rix_search_rebuilds_total{reason=\"ahead_of_catalogue\"}"
        )
        .await,
        1.0
    );
    let (_, health) = get_json(&http, &format!("{}/healthz", gateway.url))
        .await
        .unwrap();
    assert_eq!(
        health["search"]["last_rebuild"]["reason"], "ahead_of_catalogue",
        "{health:#}"
    );
    let log = gateway.log();
    assert!(
        log.contains("search index does not reflect the catalogue"),
        "the rebuild is in the log: {log}"
    );

    // The node is back: the record the backup lacked comes again from its feed, and is found.
    node.restart();
    wait_found(&http, &gateway, "LOSTRECORD", 1).await;
    assert_eq!(found(&http, &gateway, "KEPTRECORD").await, 3);
    let (_, health) = get_json(&http, &format!("{}/healthz", gateway.url))
        .await
        .unwrap();
    assert_eq!(health["search"]["state"], "current", "{health:#}");
    assert_eq!(
        health["search"]["indexed_change_id"], health["search"]["catalogue_change_id"],
        "{health:#}"
    );
}

/// `pg_restore --clean` of `dump` over the database at `url`, as DEPLOY.md §6 says.
fn restore(url: &str, dump: &Path) {
    run(
        &pg_program("pg_restore"),
        &[
            "--clean",
            "--if-exists",
            "--no-owner",
            "-d",
            url,
            dump.to_str().unwrap(),
        ],
    );
}
