//! `ops/rabbitmq/definitions.json` matches what the code declares: imported into a broker
//! (a throw-away virtual host of the test broker, so nobody else's queues are touched), a node
//! publishes and a gateway consuming from the pre-declared production queue `rix.gateway`
//! takes every batch in — a queue declared with other arguments than the gateway's would
//! instead fail its declare with PRECONDITION_FAILED and the gateway would never consume.

use std::time::Duration;

use rix_gateway::consume::ConsumerConfig;
use rix_schema::SecrecyLevel;
use rix_schema::sample::{NodeProfile, SampleConfig, SampleGenerator};
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

/// Deletes the virtual host when the test ends, passed or not.
struct VhostGuard(String);

impl Drop for VhostGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.0])
            .env("RABBITMQ_NODENAME", "rabbit@localhost")
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_consumes_from_the_queue_the_definitions_declare() {
    let vhost = unique("rix-definitions");
    // The file as an operator imports it, moved into our own virtual host.
    let mut defs = definitions();
    for section in ["exchanges", "queues", "bindings", "policies"] {
        for item in defs[section].as_array_mut().unwrap() {
            assert_eq!(item["vhost"], "/", "the file targets the default vhost");
            item["vhost"] = json!(vhost);
        }
    }
    defs["vhosts"] = json!([{ "name": vhost }]);
    defs["permissions"] = json!([{
        "user": "guest", "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"
    }]);
    // rabbitmqctl runs as the rabbitmq user: the file must be readable to it.
    let file = std::env::temp_dir().join(format!("{vhost}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(&defs).unwrap()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _guard = VhostGuard(vhost.clone());
    rabbitmqctl(&["import_definitions", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
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

    let (base, _) = amqp_url()
        .rsplit_once('/')
        .map(|(b, v)| (b.to_owned(), v.to_owned()))
        .unwrap();
    let url = format!("{base}/{vhost}");
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node_id = unique("prov-530000");
    let node = NodeProcess::start(
        RIX,
        dir.path(),
        NodeSpec {
            node_id: &node_id,
            issuer: "530000",
            database_url: None,
            amqp_url: Some(url.clone()),
            max_entries: 5,
            linger_ms: 5,
        },
    );
    // The production queue name, and feeds polled only once a minute: the broker is the path.
    let gateway = GatewayProcess::start_with(
        RIX,
        dir.path(),
        GatewaySpec {
            amqp_url: Some(url),
            amqp_queue: Some("rix.gateway".into()),
            pull_interval_ms: Some(60_000),
            ..GatewaySpec::default()
        },
        &[&node],
    );
    let generator = SampleGenerator::new(SampleConfig {
        node: NodeProfile::province("530000"),
        ..SampleConfig::default()
    });
    let docs: Vec<Value> = (0..)
        .map(|i| generator.achievement(i))
        .filter(|a| a.secrecy.level == SecrecyLevel::Public)
        .take(12)
        .map(|a| as_submission(serde_json::to_value(a).unwrap()))
        .collect();
    let ids = register_approved(&http, &node, "achievements", docs).await;
    wait_node_published(&http, &node, ids.len() as i64).await;
    poll_until(
        "the gateway applies every batch from the broker",
        Duration::from_secs(60),
        || async {
            let changes = gateway_changes(&http, &gateway.url, "").await?;
            if changes.len() == ids.len() {
                Ok(())
            } else {
                Err(format!(
                    "{} changes; log:\n{}",
                    changes.len(),
                    gateway.log()
                ))
            }
        },
    )
    .await;
    assert_eq!(
        metric(&http, &gateway.url, "rix_gateway_broker_connected").await,
        1.0
    );
    assert!(
        metric(
            &http,
            &gateway.url,
            "rix_gateway_batches_applied_total{transport=\"amqp\"}"
        )
        .await
            > 0.0,
        "applied from the pre-declared queue"
    );
    assert!(
        !gateway.log().contains("PRECONDITION_FAILED"),
        "{}",
        gateway.log()
    );
}
