//! Gateway replicas (issue 17): three `rix gateway serve` processes on one PostgreSQL
//! catalogue, consuming one quorum queue and each pulling the nodes' feeds, while two nodes
//! publish a stream of approvals. One replica is SIGKILLed mid-stream and started again.
//!
//! What must hold once everything has settled (every node's log confirmed, every replica at
//! each node's head with its index at the last change, the queue empty, and all of it still so
//! after a quiet window: `rix_tests::settle`): every logged entry applied exactly once
//! (one change per `(node, id, version)`, whichever replica or transport got it first), change
//! ids gap-free from 1, every record at the gateway with the bytes its node signed, and every
//! replica answering the same search with the same results in the same order.

use std::collections::BTreeSet;

use diesel::prelude::*;
use rix_tests::*;
use serde_json::Value;

const RIX: &str = env!("CARGO_BIN_EXE_rix-e2e");

fn node_spec<'a>(node_id: &'a str, issuer: &'a str) -> NodeSpec<'a> {
    NodeSpec::new(node_id, issuer)
        .with_broker(amqp_url())
        .with_batches(20, 10)
}

#[derive(QueryableByName)]
struct ChangeRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    change_id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    node_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    version: i64,
}

/// Registers and approves `records` at `node` in rounds of `round`, returning the ids.
async fn stream(
    http: &reqwest::Client,
    node_url: &str,
    records: Vec<Value>,
    round: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in records.chunks(round) {
        ids.extend(register_approved(http, node_url, "achievements", chunk.to_vec()).await);
    }
    ids
}

/// Every hit of the whole catalogue on one replica, in its order.
async fn search_order(http: &reqwest::Client, gateway: &GatewayProcess) -> Vec<String> {
    let (total, items) = gateway_search(http, &gateway.url, "sort=date")
        .await
        .unwrap();
    assert_eq!(total as usize, items.len(), "{}", gateway.url);
    items
        .iter()
        .map(|h| h["unified_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_catalogue_apply_every_entry_once_and_answer_alike() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let yunnan_id = unique("prov-530000");
    let liaoning_id = unique("prov-210000");
    let yunnan = NodeProcess::start(RIX, dir.path(), node_spec(&yunnan_id, "530000"));
    let liaoning = NodeProcess::start(RIX, dir.path(), node_spec(&liaoning_id, "210000"));
    let database_url = fresh_postgres_database();
    let queue = unique("rix.gateway.replicas");
    let spec = || GatewaySpec {
        database_url: Some(database_url.clone()),
        amqp_url: Some(amqp_url()),
        amqp_queue: Some(queue.clone()),
        ..GatewaySpec::default()
    };
    // The trust store is in the shared catalogue: trusting the nodes once is enough for all.
    let mut replicas: Vec<GatewayProcess> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let home = dir.path().join(name);
            std::fs::create_dir_all(&home).unwrap();
            GatewayProcess::prepare(RIX, &home, spec())
        })
        .collect();
    replicas[0].trust(&yunnan);
    replicas[0].trust(&liaoning);
    for r in &mut replicas {
        r.restart();
    }

    let yn = public_achievements("530000", 0, 60);
    let ln = public_achievements("210000", 0, 60);
    // The stream runs while replica b is killed and, later, started again.
    let publishing = {
        let (http, yn_url, ln_url) = (http.clone(), yunnan.url.clone(), liaoning.url.clone());
        tokio::spawn(async move {
            let (y, l) = tokio::join!(stream(&http, &yn_url, yn, 6), stream(&http, &ln_url, ln, 6));
            (y, l)
        })
    };
    // Killed once the stream is well under way.
    let catalogue = replicas[0].catalogue();
    poll_until("a dozen changes applied", WITHIN, || async {
        let mut conn = catalogue.conn().map_err(|e| e.to_string())?;
        let n = diesel::sql_query("SELECT count(*) AS n FROM changes")
            .get_result::<Count>(&mut conn)
            .map_err(|e| e.to_string())?
            .n;
        if n >= 12 {
            Ok(())
        } else {
            Err(format!("{n} changes"))
        }
    })
    .await;
    replicas[1].kill();
    let (yn_ids, ln_ids) = publishing.await.unwrap();
    assert_eq!((yn_ids.len(), ln_ids.len()), (60, 60));
    replicas[1].restart();

    // Settled: each node's whole log confirmed by the broker, every replica at each node's
    // head with its index at the last change and its queue empty, and still so after a quiet
    // window. Then the catalogue holds exactly the logs: every batch, every entry's bytes,
    // one change per entry.
    let yunnan_log = node_log(&http, &yunnan, true).await;
    let liaoning_log = node_log(&http, &liaoning, true).await;
    assert_eq!((yunnan_log.last_seq(), liaoning_log.last_seq()), (60, 60));
    let mut rests = Vec::new();
    for r in &replicas {
        rests.push(settle(&http, r, &[&yunnan_log, &liaoning_log]).await);
    }
    assert_catalogue_holds(&replicas[0], &[&yunnan_log, &liaoning_log]);

    // Exactly once, gap-free, from 1.
    let mut conn = catalogue.conn().unwrap();
    let changes: Vec<ChangeRow> =
        diesel::sql_query("SELECT change_id, node_id, id, version FROM changes ORDER BY change_id")
            .load(&mut conn)
            .unwrap();
    let ids: Vec<i64> = changes.iter().map(|c| c.change_id).collect();
    assert_eq!(ids, (1..=120).collect::<Vec<i64>>(), "change ids gap-free");
    let applied: BTreeSet<(&str, &str, i64)> = changes
        .iter()
        .map(|c| (c.node_id.as_str(), c.id.as_str(), c.version))
        .collect();
    assert_eq!(applied.len(), 120, "no entry applied twice");
    let want: BTreeSet<(&str, &str, i64)> = yn_ids
        .iter()
        .map(|id| (yunnan_id.as_str(), id.as_str(), 1))
        .chain(
            ln_ids
                .iter()
                .map(|id| (liaoning_id.as_str(), id.as_str(), 1)),
        )
        .collect();
    assert_eq!(applied, want, "exactly the approved records");

    // Any replica answers the whole catalogue alike, in the same order.
    let mut orders = Vec::new();
    for r in &replicas {
        orders.push(search_order(&http, r).await);
    }
    assert_eq!(orders[0].len(), 120);
    assert_eq!(orders[0], orders[1], "replica b answers as a does");
    assert_eq!(orders[0], orders[2], "replica c answers as a does");

    let duplicates: f64 = rests.iter().map(|r| r.duplicates).sum();
    assert!(
        rests
            .iter()
            .all(|r| r.changes == 120 && r.refused == 0 && r.quarantined == 0),
        "{rests:?}"
    );
    eprintln!(
        "3 replicas, one killed mid-stream: 120 entries applied once, change ids 1–120; \
         {duplicates} duplicate batches recognised by the replicas since their last start"
    );
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}
