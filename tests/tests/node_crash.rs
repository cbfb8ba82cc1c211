//! A node killed with SIGKILL — after approvals commit but before anything is sealed or
//! confirmed, and again in the middle of publishing — loses nothing: after restart every
//! approved record reaches the queue, in order, on an unbroken chain (re-sent batches are
//! allowed, gaps are not).

use std::collections::BTreeSet;
use std::time::Duration;

use rix_tests::tokens::SUBMITTER;
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

    // 1. Approvals committed, the last ones not sealed: SIGKILL.
    for id in &ids[..10] {
        approve(&http, &node.url, "achievements", id).await;
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
    let mut resent = 0;
    for _ in 0..2000 {
        resent = queue.depth().await;
        if resent >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Approvals stream in; halfway the task hands over to the kill and waits for it, so the
    // kill always lands with approvals committed and more still to come, however fast or
    // loaded the machine (a watcher racing 40 quick approvals sometimes saw all 40 done).
    let (halfway, at_halfway) = tokio::sync::oneshot::channel::<()>();
    let (killed, on_killed) = tokio::sync::oneshot::channel::<()>();
    let approvals = {
        let batch: Vec<String> = ids[10..50].to_vec();
        let (http, base) = (http.clone(), node.url.clone());
        tokio::spawn(async move {
            let mut done = 0;
            let mut halfway = Some(halfway);
            let mut on_killed = Some(on_killed);
            for (i, id) in batch.into_iter().enumerate() {
                if i == 20 {
                    let _ = halfway.take().unwrap().send(());
                    let _ = on_killed.take().unwrap().await;
                }
                match try_approve(&http, &base, "achievements", &id).await {
                    Ok((200, _)) => done += 1,
                    _ => break, // cut off by the kill
                }
            }
            done
        })
    };
    at_halfway.await.unwrap();
    // Batches are flowing (some confirmed on the queue since the restart) when the kill lands.
    for _ in 0..2000 {
        if queue.depth().await > resent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.kill();
    let _ = killed.send(());
    let done_before_kill = approvals.await.unwrap();
    assert!(
        (1..40).contains(&done_before_kill),
        "the kill should land mid-stream; {done_before_kill} of 40 approvals had completed"
    );

    // 3. Back up: approve whatever is still waiting, then everything must be published.
    node.restart();
    approve_waiting(&http, &node.url, "achievements", &ids).await;
    assert_eq!(ids.len(), 60);
    wait_node_published(&http, &node, 60).await;

    let batches = queue.drain_batches_until(60, Duration::from_secs(60)).await;
    let entries = verify_log(&node_id, &node.key, batches);
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=60).collect::<Vec<u64>>(),
        "every seq once, in order"
    );
    let published: BTreeSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let all: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(published, all, "every approved record was published");
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
