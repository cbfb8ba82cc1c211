//! `ops/rabbitmq/definitions.json` matches what the code declares: imported into a broker
//! (a throw-away virtual host of the test broker, so nobody else's queues are touched), a node
//! publishes and a gateway consuming from the pre-declared production queue `rix.gateway`
//! takes every batch in — a queue declared with other arguments than the gateway's would
//! instead fail its declare with PRECONDITION_FAILED and the gateway would never consume.
//!
//! And the queue is as closed as the feed (DESIGN.md §4): the file's broker users are least
//! privileged, and the real broker enforces it — a node's user publishes only under its own
//! routing keys and reads nothing, the gateway's user consumes its queue and cannot publish
//! records — while the node and the gateway work under exactly those users.

use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use rix_gateway::consume::ConsumerConfig;
use rix_tests::*;
use serde_json::{Value, json};

const RIX: &str = env!("CARGO_BIN_EXE_rix-e2e");
const DEFINITIONS: &str = include_str!("../../ops/rabbitmq/definitions.json");

fn definitions() -> Value {
    serde_json::from_str(DEFINITIONS).expect("definitions.json is JSON")
}

fn named<'a>(defs: &'a Value, section: &str, name: &str) -> &'a Value {
    defs[section]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("definitions.json has no {section} entry {name}"))
}

#[test]
fn definitions_name_what_the_gateway_and_the_nodes_declare() {
    let defs = definitions();
    let consumer = ConsumerConfig::new("amqp://unused");
    let gateway = rix_gateway::config::Config::default();
    assert_eq!(gateway.amqp_queue, consumer.queue);
    assert_eq!(gateway.amqp_exchange, consumer.exchange);

    let exchange = named(&defs, "exchanges", &consumer.exchange);
    assert_eq!(exchange["type"], "topic");
    assert_eq!(exchange["durable"], true);
    let dlx = named(&defs, "exchanges", &consumer.dead_letter_exchange);
    assert_eq!(dlx["type"], "fanout");
    assert_eq!(dlx["durable"], true);

    // Exactly the arguments the consumer declares, nothing more: any difference is a
    // PRECONDITION_FAILED at the gateway's declare. Limits belong in policies.
    let queue = named(&defs, "queues", &consumer.queue);
    assert_eq!(queue["durable"], true);
    assert_eq!(
        queue["arguments"],
        json!({
            "x-dead-letter-exchange": consumer.dead_letter_exchange,
            "x-queue-type": consumer.queue_type.as_str(),
        })
    );
    let dead = named(&defs, "queues", &consumer.dead_letter_queue);
    assert_eq!(dead["durable"], true);
    assert_eq!(
        dead["arguments"],
        json!({"x-queue-type": consumer.queue_type.as_str()})
    );

    let bindings = defs["bindings"].as_array().unwrap();
    let bound = |source: &str, queue: &str, key: &str| {
        bindings.iter().any(|b| {
            b["source"] == source
                && b["destination"] == queue
                && b["destination_type"] == "queue"
                && b["routing_key"] == key
        })
    };
    assert!(bound(
        &consumer.exchange,
        &consumer.queue,
        &consumer.binding_key
    ));
    assert!(bound(
        &consumer.dead_letter_exchange,
        &consumer.dead_letter_queue,
        ""
    ));

    // The node's default exchange, from its annotated example.
    let node_example = include_str!("../../ops/config/node.example.toml");
    assert!(node_example.contains(&format!("amqp_exchange = \"{}\"", consumer.exchange)));
}

#[test]
fn definitions_give_every_node_and_the_gateway_a_least_privileged_user() {
    let defs = definitions();
    let consumer = ConsumerConfig::new("amqp://unused");
    let users = defs["users"].as_array().unwrap();
    assert!(
        users.iter().all(|u| u["name"] != "guest"
            && u["tags"].as_array().is_some_and(|t| t.is_empty())
            && u["password_hash"] == ""),
        "no guest, no administrators, no password in the file: {users:?}"
    );
    let permission = |user: &str| {
        defs["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["user"] == user)
            .unwrap_or_else(|| panic!("no permissions for {user}"))
            .clone()
    };
    let gateway = permission("rix-gateway");
    assert_eq!(gateway["configure"], "^$");
    assert_eq!(
        gateway["write"], "^rix\\.records\\.dlx$",
        "dead-lettering only"
    );
    assert_eq!(gateway["read"], "^rix\\.gateway$", "its queue only");
    let nodes: Vec<&str> = users
        .iter()
        .filter_map(|u| u["name"].as_str()?.strip_prefix("rix-node-"))
        .collect();
    assert!(
        nodes.contains(&"prov-530000") && nodes.len() >= 3,
        "{nodes:?}"
    );
    for node in nodes {
        let user = format!("rix-node-{node}");
        let p = permission(&user);
        assert_eq!(
            (&p["configure"], &p["write"], &p["read"]),
            (&json!("^$"), &json!("^rix\\.records$"), &json!("^$")),
            "{user}"
        );
        let topic: Vec<&Value> = defs["topic_permissions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["user"] == user.as_str())
            .collect();
        assert_eq!(topic.len(), 1, "{user}");
        assert_eq!(topic[0]["exchange"], consumer.exchange.as_str());
        assert_eq!(topic[0]["write"], format!("^[a-z_]+\\.{node}$"));
        assert_eq!(topic[0]["read"], "^$");
    }
}

/// The file as an operator imports it, moved into a throw-away virtual host, its users
/// renamed `{vhost}.{name}` (users are broker-wide) and given passwords as an operator does
/// after the import (`rabbitmqctl change_password`). Everything is removed when the guard
/// drops, passed or not.
struct ImportedDefinitions {
    vhost: String,
    users: Vec<String>,
}

impl ImportedDefinitions {
    fn import(prefix: &str) -> ImportedDefinitions {
        let vhost = unique(prefix);
        let mut defs = definitions();
        for section in [
            "exchanges",
            "queues",
            "bindings",
            "policies",
            "permissions",
            "topic_permissions",
        ] {
            for item in defs[section].as_array_mut().unwrap() {
                assert_eq!(item["vhost"], "/", "the file targets the default vhost");
                item["vhost"] = json!(vhost);
                if let Some(user) = item["user"].as_str() {
                    item["user"] = json!(format!("{vhost}.{user}"));
                }
            }
        }
        let mut users = Vec::new();
        for user in defs["users"].as_array_mut().unwrap() {
            let name = format!("{vhost}.{}", user["name"].as_str().unwrap());
            user["name"] = json!(name);
            users.push(name);
        }
        defs["vhosts"] = json!([{ "name": vhost }]);
        // The test harness itself (queue clean-up, the other checks) stays the broker's guest.
        defs["permissions"].as_array_mut().unwrap().push(json!({
            "user": "guest", "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"
        }));
        let imported = ImportedDefinitions { vhost, users };
        // rabbitmqctl runs as the rabbitmq user: the file must be readable to it.
        let file = std::env::temp_dir().join(format!("{}.json", imported.vhost));
        std::fs::write(&file, serde_json::to_vec_pretty(&defs).unwrap()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        rabbitmqctl(&["import_definitions", file.to_str().unwrap()]);
        let _ = std::fs::remove_file(&file);
        for user in &imported.users {
            rabbitmqctl(&["change_password", user, &password(user)]);
        }
        imported
    }

    /// The AMQP URL of the file's user `name` (`rix-gateway`, `rix-node-prov-530000`…).
    fn url(&self, name: &str) -> String {
        let user = format!("{}.{name}", self.vhost);
        assert!(
            self.users.contains(&user),
            "definitions.json has no user {name}"
        );
        let (base, _) = amqp_url()
            .rsplit_once('/')
            .map(|(b, _)| (b.to_owned(), ()))
            .unwrap();
        let (scheme, rest) = base.split_once("://").unwrap();
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        format!(
            "{scheme}://{user}:{}@{host}/{}",
            password(&user),
            self.vhost
        )
    }
}

impl Drop for ImportedDefinitions {
    fn drop(&mut self) {
        for args in std::iter::once(vec!["delete_vhost", self.vhost.as_str()])
            .chain(self.users.iter().map(|u| vec!["delete_user", u.as_str()]))
        {
            let _ = rabbitmqctl_output(&args);
        }
    }
}

fn password(user: &str) -> String {
    format!("pw-{}", user.replace(['.', '-'], ""))
}

/// Whether the broker refused with ACCESS_REFUSED (403), closing the channel.
fn access_refused<T: std::fmt::Debug>(result: Result<T, lapin::Error>) -> bool {
    match result {
        Ok(v) => panic!("the broker allowed it: {v:?}"),
        Err(e) => {
            let refused =
                matches!(e.kind(), lapin::ErrorKind::ProtocolError(a) if a.get_id() == 403);
            assert!(refused, "refused, but not for permissions: {e}");
            refused
        }
    }
}

async fn confirming_channel(url: &str) -> (Connection, Channel) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    (connection, channel)
}

/// Publishes one message and waits for the broker's confirm (or its refusal).
async fn publish(channel: &Channel, exchange: &str, key: &str) -> Result<(), lapin::Error> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default(),
        )
        .await?
        .await?;
    assert!(confirm.is_ack(), "{confirm:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_users_may_do_only_their_own_part() {
    let defs = ImportedDefinitions::import("rix-users");
    let node = defs.url("rix-node-prov-530000");
    let gateway = defs.url("rix-gateway");

    // A node's user publishes under its own routing keys, of every kind.
    let (_c1, own) = confirming_channel(&node).await;
    publish(&own, "rix.records", "achievement.prov-530000")
        .await
        .unwrap();
    publish(&own, "rix.records", "funded_project.prov-530000")
        .await
        .unwrap();
    // Not under another node's: the broker closes the channel with ACCESS_REFUSED.
    let (_c2, forging) = confirming_channel(&node).await;
    assert!(access_refused(
        publish(&forging, "rix.records", "achievement.prov-210000").await
    ));
    let (_c3, forging) = confirming_channel(&node).await;
    assert!(access_refused(
        publish(&forging, "rix.records", "achievement.prov-530000.x").await
    ));
    // Nor to the dead-letter exchange, nor may it read the gateway's queue or make its own.
    let (_c4, dead) = confirming_channel(&node).await;
    assert!(access_refused(publish(&dead, "rix.records.dlx", "").await));
    let (_c5, reading) = confirming_channel(&node).await;
    assert!(access_refused(
        reading
            .basic_consume(
                "rix.gateway".into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
    ));
    let (_c6, declaring) = confirming_channel(&node).await;
    assert!(access_refused(
        declaring
            .queue_declare(
                "rix.node.tap".into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
    ));

    // The gateway's user cannot publish records, under any node's key…
    let (_c7, gw) = confirming_channel(&gateway).await;
    assert!(access_refused(
        publish(&gw, "rix.records", "achievement.prov-530000").await
    ));
    // …but reads its queue (the node's two messages are there), consumes it, dead-letters.
    let (_c8, gw) = confirming_channel(&gateway).await;
    let mut keys = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while keys.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the node's messages never reached the gateway's queue: {keys:?}"
        );
        match gw
            .basic_get("rix.gateway".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            Some(message) => keys.push(message.delivery.routing_key.to_string()),
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    keys.sort();
    assert_eq!(
        keys,
        ["achievement.prov-530000", "funded_project.prov-530000"]
    );
    let (_c9, gw) = confirming_channel(&gateway).await;
    gw.basic_consume(
        "rix.gateway".into(),
        "rix-test".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("the gateway's user consumes its queue");
    let (_c10, dead) = confirming_channel(&gateway).await;
    publish(&dead, "rix.records.dlx", "").await.unwrap();
}

/// The node and the gateway under the file's least-privileged users: neither may declare
/// anything, so both use the operator's topology as it is (DESIGN.md §4, issue 11).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_consumes_from_the_queue_the_definitions_declare() {
    let defs = ImportedDefinitions::import("rix-definitions");
    let vhost = defs.vhost.clone();
    let queues = rabbitmqctl(&["list_queues", "-q", "-p", &vhost, "name", "type", "policy"]);
    assert!(
        queues
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["rix.gateway", "quorum", "rix-gateway-poison"]),
        "{queues}"
    );
    assert!(
        queues
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["rix.gateway.dead", "quorum", "rix-gateway-dead-bounded"]),
        "{queues}"
    );

    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    // The node whose user the file names: the vhost is ours alone, so the id need not be unique.
    let node = NodeProcess::start(
        RIX,
        dir.path(),
        NodeSpec::new("prov-530000", "530000")
            .with_broker(defs.url("rix-node-prov-530000"))
            .with_batches(5, 5),
    );
    // The production queue name, and feeds polled only once a minute: the broker is the path.
    let gateway = GatewayProcess::start_with(
        RIX,
        dir.path(),
        GatewaySpec {
            amqp_url: Some(defs.url("rix-gateway")),
            amqp_queue: Some("rix.gateway".into()),
            pull_interval_ms: Some(60_000),
            ..GatewaySpec::default()
        },
        &[&node],
    );
    let docs = public_achievements("530000", 0, 12);
    let ids = register_approved(&http, &node.url, "achievements", docs).await;
    wait_node_published(&http, &node, ids.len() as i64).await;
    // Every batch, applied from the broker.
    let changes = wait_for_changes(&http, &gateway, "", ids.len()).await;
    assert_eq!(changes.len(), ids.len());
    assert_eq!(
        metric(&http, &gateway.url, "rix_gateway_broker_connected").await,
        1.0
    );
    assert!(
        batches_applied(&http, &gateway.url, "amqp").await > 0.0,
        "applied from the pre-declared queue"
    );
    assert!(
        !gateway.log().contains("PRECONDITION_FAILED"),
        "{}",
        gateway.log()
    );
    // Neither could declare: both fell back to the operator's topology, and said so.
    assert!(
        gateway.log().contains("may not declare"),
        "{}",
        gateway.log()
    );
    assert!(node.log().contains("may not declare"), "{}", node.log());
    let _ = vhost;
}
