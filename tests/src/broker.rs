//! The test broker from the outside: `rabbitmqctl` on its node, and broker URLs.

use std::process::{Command, Output};

/// Runs `rabbitmqctl ARGS` against the test broker's node; panics with its output on failure;
/// returns its standard output.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = rabbitmqctl_output(args);
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// [`rabbitmqctl`] that may fail (clean-up after a test, passed or not): the whole output.
pub fn rabbitmqctl_output(args: &[&str]) -> Output {
    Command::new("rabbitmqctl")
        .args(args)
        .env("RABBITMQ_NODENAME", "rabbit@localhost")
        .output()
        .expect("rabbitmqctl is installed by ops/install-deps.sh")
}

/// The virtual host an `amqp://…/VHOST` URL names (`/` when it names none).
pub fn vhost_of(amqp_url: &str) -> String {
    let rest = amqp_url.split_once("://").map_or(amqp_url, |(_, r)| r);
    match rest.split_once('/') {
        Some((_, v)) if !v.is_empty() => {
            let v = v.split('?').next().unwrap_or(v);
            v.replace("%2f", "/").replace("%2F", "/")
        }
        _ => "/".to_owned(),
    }
}

/// A broker URL where nothing listens (a port bound and released): a node given it has lost
/// its broker.
pub fn unreachable_amqp_url() -> String {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("amqp://guest:guest@{}/%2f", dead.local_addr().unwrap());
    drop(dead);
    url
}
