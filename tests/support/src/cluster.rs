//! The local three-node RabbitMQ cluster of `ops/rabbitmq-cluster.sh`, for the tests of broker
//! failover: started (or found running) through the ops script, as every test service is, and
//! its nodes stopped and started again through it.
//!
//! The cluster is separate from the single test broker (`amqp_url`): its own node names
//! (`rix-c1@localhost`…), ports (AMQP 5701–5703), data and Erlang cookie. Tests leave it
//! running, as they leave the other test services; `ops/rabbitmq-cluster.sh stop` stops it.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The cluster, as the ops script reports it.
pub struct BrokerCluster {
    script: PathBuf,
    /// The AMQP URLs of its three nodes, in node order (`amqp://guest:guest@127.0.0.1:5701/%2f`…).
    pub urls: Vec<String>,
}

impl BrokerCluster {
    /// Runs `ops/rabbitmq-cluster.sh start` (a no-op when the cluster is up) and reads the URLs
    /// it wrote; panics with the script's output if it fails.
    pub fn start() -> BrokerCluster {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ops/rabbitmq-cluster.sh");
        let cluster = BrokerCluster {
            script,
            urls: Vec::new(),
        };
        cluster.run(&["start"]);
        let dir =
            std::env::var("RIX_CLUSTER_DIR").unwrap_or_else(|_| "/var/tmp/rix-cluster".into());
        let env = std::fs::read_to_string(PathBuf::from(&dir).join("env")).unwrap_or_else(|e| {
            panic!("{dir}/env (written by ops/rabbitmq-cluster.sh start): {e}")
        });
        let list = env
            .lines()
            .find_map(|l| l.strip_prefix("export RIX_TEST_CLUSTER_AMQP_URLS="))
            .unwrap_or_else(|| panic!("no RIX_TEST_CLUSTER_AMQP_URLS in {dir}/env:\n{env}"))
            .trim_matches('\'');
        BrokerCluster {
            urls: list.split(',').map(str::to_owned).collect(),
            ..cluster
        }
    }

    /// The three URLs comma-separated: what a node's or a gateway's `amqp_url` takes.
    pub fn url_list(&self) -> String {
        self.urls.join(",")
    }

    /// Stops the broker on node `n` (1–3): its clients lose their connections.
    pub fn stop_node(&self, n: u8) {
        self.run(&["stop-node", &n.to_string()]);
    }

    /// Kills node `n`'s Erlang VM with SIGKILL: a crash, its clients and peers see the
    /// connections drop.
    pub fn kill_node(&self, n: u8) {
        self.run(&["kill-node", &n.to_string()]);
    }

    /// Starts the broker on node `n` again (its whole VM after [`BrokerCluster::kill_node`])
    /// and waits until it has booted.
    pub fn start_node(&self, n: u8) {
        self.run(&["start-node", &n.to_string()]);
    }

    /// `rabbitmqctl ARGS` against node `n`; its standard output.
    pub fn ctl(&self, n: u8, args: &[&str]) -> String {
        let mut all = vec!["ctl".to_owned(), n.to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        String::from_utf8_lossy(&self.run(&all).stdout).into_owned()
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(&self.script)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.script.display()));
        assert!(
            out.status.success(),
            "ops/rabbitmq-cluster.sh {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}
