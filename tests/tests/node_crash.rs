//! A node killed with SIGKILL — after approvals commit but before anything is sealed or
//! confirmed, and again in the middle of publishing — loses nothing: after restart exactly the
//! approvals it acknowledged (and the one a kill cut off, if it committed) reach the queue,
//! each once, in order, on an unbroken chain; a batch re-sent after a restart is byte for byte
//! the batch sealed before the kill (re-sends are allowed, gaps and re-signed batches are not).

use std::collections::BTreeSet;
use std::time::Duration;

use rix_tests::tokens::{REVIEWER, SUBMITTER};
use rix_tests::*;

const RIX: &str = env!("CARGO_BIN_EXE_rix-e2e");

async fn killed_node_publishes_every_approval_after_restart(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let node_id = unique("crash");
    let queue = QueueTap::bind(&node_id).await;
    let http = reqwest::Client::new();
    // A linger of ten minutes: approvals commit to the outbox; only full batches are sealed.
    let mut node = NodeProcess::start(
        RIX,
        dir.path(),
        NodeSpec::new(&node_id, "530000")
            .with_database(database_url)
            .with_broker(amqp_url())
            .with_batches(7, 600_000),
    );
    let ids = submit_batch(
        &http,
        &node.url,
        SUBMITTER,
        "achievements",
        vec![fixture("achievement"); 60],
    )
    .await;

    // The approvals the node acknowledged (200), phase by phase.
    let mut acknowledged: Vec<String> = Vec::new();

    // 1. Approvals committed, the last ones not sealed: SIGKILL.
    for id in &ids[..10] {
        approve(&http, &node.url, "achievements", id).await;
        acknowledged.push(id.clone());
    }
    node.kill();
    // The node connects to the broker at start, so the one full batch (7 of the 10) may have
    // been confirmed already; the 3 still lingering cannot have been.
    assert!(
        queue.depth().await <= 1,
        "only a full batch could have been published"
    );

    // 2. Restart with a short linger; kill again while it publishes the next approvals.
    node.set_env("RIX_BATCH_LINGER_MS", "5");
    node.restart();
    // The restarted node first publishes what phase 1 left sealed: once that is on the queue,
    // its publisher is connected and new batches flow within milliseconds.
    let resent = poll_until("the restarted node publishes", WITHIN, || async {
        match queue.depth().await {
            0 => Err("nothing on the queue".to_owned()),
            n => Ok(n),
        }
    })
    .await;
    // Approvals stream in; halfway the task hands over to the kill and waits for it, so the
    // kill always lands with approvals committed and more still to come, however fast or
    // loaded the machine (a watcher racing 40 quick approvals sometimes saw all 40 done).
    let (halfway, at_halfway) = tokio::sync::oneshot::channel::<()>();
    let (killed, on_killed) = tokio::sync::oneshot::channel::<()>();
    let approvals = {
        let batch: Vec<String> = ids[10..50].to_vec();
        let (http, base) = (http.clone(), node.url.clone());
        tokio::spawn(async move {
            let mut done = Vec::new();
            let mut halfway = Some(halfway);
            let mut on_killed = Some(on_killed);
            for (i, id) in batch.into_iter().enumerate() {
                if i == 20 {
                    let _ = halfway.take().unwrap().send(());
                    let _ = on_killed.take().unwrap().await;
                }
                match try_approve(&http, &base, "achievements", &id).await {
                    Ok((200, _)) => done.push(id),
                    // Cut off by the kill: it may have committed unanswered.
                    Ok((status, _)) if status >= 500 => return (done, Some(id)),
                    Ok((status, body)) => panic!("approve {id}: {status} {body}"),
                    Err(_) => return (done, Some(id)),
                }
            }
            (done, None)
        })
    };
    at_halfway.await.unwrap();
    // Batches are flowing (some confirmed on the queue since the restart) when the kill lands.
    poll_until("batches flow after the restart", WITHIN, || async {
        match queue.depth().await {
            n if n > resent => Ok(()),
            n => Err(format!("{n} on the queue")),
        }
    })
    .await;
    node.kill();
    let _ = killed.send(());
    let (done, cut_off) = approvals.await.unwrap();
    assert!(
        (1..40).contains(&done.len()),
        "the kill should land mid-stream; {} of 40 approvals had completed",
        done.len()
    );
    acknowledged.extend(done);

    // 3. Back up: every acknowledged approval stands; the one the kill cut off committed with
    // its outbox entry or not at all. Approve what still waits (each answered 200).
    node.restart();
    for id in &acknowledged {
        let record = get_record(&http, &node.url, "achievements", id, REVIEWER).await;
        assert_ne!(
            record["state"], "submitted",
            "{id} was acknowledged: {record}"
        );
    }
    let mut unanswered = Vec::new();
    if let Some(id) = cut_off {
        let record = get_record(&http, &node.url, "achievements", &id, REVIEWER).await;
        if record["state"] != "submitted" {
            unanswered.push(id);
        }
    }
    let waiting: Vec<String> = ids
        .iter()
        .filter(|id| !acknowledged.contains(id) && !unanswered.contains(id))
        .cloned()
        .collect();
    let approved_now = approve_waiting(&http, &node.url, "achievements", &waiting).await;
    assert_eq!(
        approved_now,
        waiting.len(),
        "all of {waiting:?} were still waiting"
    );
    acknowledged.extend(waiting);
    assert_eq!(
        acknowledged.len() + unanswered.len(),
        60,
        "every record approved once: {} acknowledged, {unanswered:?} committed unanswered",
        acknowledged.len()
    );
    let log = node_log(&http, &node, true).await;

    let batches = queue.drain_batches_until(60, Duration::from_secs(60)).await;
    assert_eq!(queue.depth().await, 0, "nothing after the last batch");
    // Every delivery, re-sends included, is the batch the node sealed, byte for byte.
    let resends = assert_deliveries_are_the_log(&batches, &log);
    let entries = verify_log(&node_id, &node.key, batches);
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=60).collect::<Vec<u64>>(),
        "every seq once, in order"
    );
    let published: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let distinct: BTreeSet<&str> = published.iter().copied().collect();
    assert_eq!(distinct.len(), 60, "no record published twice");
    let approved: BTreeSet<&str> = acknowledged
        .iter()
        .chain(&unanswered)
        .map(String::as_str)
        .collect();
    assert_eq!(
        distinct, approved,
        "published: exactly the acknowledged approvals and the one committed unanswered"
    );
    eprintln!(
        "{} approvals acknowledged, {} committed unanswered; {resends} batches re-sent",
        acknowledged.len(),
        unanswered.len()
    );
    node.kill();
    queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_sqlite_node_loses_nothing() {
    killed_node_publishes_every_approval_after_restart(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_postgres_node_loses_nothing() {
    killed_node_publishes_every_approval_after_restart(Some(fresh_postgres_database())).await;
}
