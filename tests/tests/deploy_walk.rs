//! ops/DEPLOY.md, walked command by command (issue 12).
//!
//! Every shell command in the guide's ` ```sh ` blocks is taken in order and either run as
//! written — with `/etc/rix`, `/var/lib/rix`, `/usr/local/bin/rix`, `/etc/systemd/system`,
//! `/backup` and `/root` moved under one walk directory, and `rix` being this build's binary
//! — or replaced by what does its job on a machine without systemd, or set aside with the
//! reason and what covers it instead. A command the table below does not know fails the walk:
//! whoever adds a command to the guide says here how it is checked.
//!
//! Run as root (as CI runs), the walk is the real thing: it creates the `rix` system user when
//! the machine lacks it, gives the directories their documented owners and modes, and runs the
//! `runuser -u rix --` commands as `rix` — so a key path `rix` may not write, or a directory
//! the guide forgot to create, fails here. The services are then started as their systemd
//! units would start them (the unit's `User=` and `ExecStart=`), after `systemd-analyze verify`
//! has accepted the units without a word.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use rix_tests::*;

const RIX: &str = env!("CARGO_BIN_EXE_rix-e2e");
const DEPLOY: &str = include_str!("../../ops/DEPLOY.md");
/// The admin token the walk puts in `/etc/rix/node.env` to register records.
const WALK_ADMIN_TOKEN: &str = "walk-admin-token-0123456789abcdef";

/// How the walk takes one command of the guide.
enum How {
    /// As written (paths moved, `rix` this build's).
    Run,
    /// As written, then a step of the walk's own (an edit the guide asks of the operator).
    RunThen(fn(&mut Walk)),
    /// This shell command instead: what does the same job here.
    Instead(&'static str),
    /// Done by the walk itself (starting services as their units would).
    Walk(fn(&mut Walk, &str)),
    /// Not on this machine: why, and what checks it instead.
    NotHere(&'static str),
}

/// The first rule whose prefix a command starts with decides.
const RULES: &[(&str, How)] = &[
    (
        "cargo build --release",
        How::NotHere(
            "the test suite builds these sources; the walk installs the rix binary this build made",
        ),
    ),
    (
        "install -m 0755 target/release/rix /usr/local/bin/rix",
        How::Walk(Walk::install_binary),
    ),
    ("useradd --system", How::Walk(Walk::add_user)),
    ("install -d", How::Run),
    (
        "install -m 0640 -g rix ops/config/node.example.toml",
        How::RunThen(Walk::edit_node_config),
    ),
    (
        "install -m 0640 -g rix ops/config/gateway.example.toml",
        How::RunThen(Walk::edit_gateway_config),
    ),
    (
        "rabbitmqctl import_definitions",
        How::NotHere(
            "imports the federation's users and the shared rix.gateway queue into the broker every test uses; tests/tests/rabbitmq_definitions.rs imports the same file into a virtual host of its own and checks every permission",
        ),
    ),
    (
        "rabbitmqctl change_password",
        How::NotHere("the users exist only after the import above"),
    ),
    (
        "rabbitmqctl delete_user guest",
        How::NotHere("the test broker keeps guest for the other tests"),
    ),
    ("NODE=", How::Walk(Walk::name_enrolled_node)),
    (
        "rix import --mapping achievement-form --dry-run",
        How::Walk(Walk::import_dry_run),
    ),
    (
        "RIX_NODE_TOKEN=$(cat admin-token) rix import",
        How::NotHere(
            "the walk's gateway counts what its node publishes; tests/tests/import.rs imports the same workbook layout into a node process with an admin token and --approve — twice, killed and resumed — and follows the records to a gateway's search",
        ),
    ),
    ("rabbitmqctl add_user", How::Run),
    ("rabbitmqctl set_permissions", How::Run),
    ("rabbitmqctl set_topic_permissions", How::Run),
    (
        "rabbitmqctl list_topic_permissions",
        How::Walk(Walk::check_topic_permissions),
    ),
    ("install -m 0644 ops/systemd/", How::Run),
    ("systemctl daemon-reload", How::Walk(Walk::verify_units)),
    (
        "systemctl enable --now rix-node",
        How::Walk(Walk::start_unit),
    ),
    (
        "systemctl enable --now rix-gateway@",
        How::Walk(Walk::verify_instances),
    ),
    (
        "systemctl enable --now rix-gateway",
        How::Walk(Walk::start_unit),
    ),
    (
        "runuser -u rix -- rix keygen --out /etc/rix/keys/node.key.pem",
        How::RunThen(Walk::hand_over_public_key),
    ),
    (
        "runuser -u rix -- sh -c 'umask 077; cat > /etc/rix/feed-tokens/prov-530000'",
        How::Instead(
            "printf %s change-me-national-gateway-feed-token | runuser -u rix -- sh -c 'umask 077; cat > /etc/rix/feed-tokens/prov-530000'",
        ),
    ),
    (
        "systemctl restart rix-node",
        How::Walk(Walk::restart_node_on_its_new_key),
    ),
    (
        "runuser -u rix -- rix trust rotate",
        How::Walk(Walk::rotate),
    ),
    (
        "runuser -u rix -- rix trust revoke",
        How::Walk(Walk::revoke_old_key),
    ),
    ("runuser -u rix -- rix ", How::Run),
    ("sqlite3 /var/lib/rix/node/node.db", How::Run),
    (
        "psql rix_catalogue -Atc",
        How::Instead(
            "sqlite3 /var/lib/rix/gateway/catalogue.db \"SELECT value FROM catalogue_meta WHERE name = 'entry_name_key'\" > /root/entry_name_key",
        ),
    ),
    (
        "psql rix_catalogue -c",
        How::Instead(
            "sqlite3 /var/lib/rix/gateway/catalogue.db \"UPDATE catalogue_meta SET value = '$(cat /root/entry_name_key)' WHERE name = 'entry_name_key'\"",
        ),
    ),
];

/// The shell commands of the guide's ` ```sh ` blocks, in order: continuation lines joined,
/// comment lines and trailing comments dropped.
fn documented_commands(markdown: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in markdown.lines() {
        if let Some(fence) = line.trim_start().strip_prefix("```") {
            in_sh = !in_sh && fence.trim() == "sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = strip_comment(line);
        let code = code.trim_end();
        if let Some(head) = code.strip_suffix('\\') {
            pending.push_str(head.trim_end());
            pending.push(' ');
            continue;
        }
        pending.push_str(code.trim_start());
        let command = std::mem::take(&mut pending).trim().to_owned();
        if !command.is_empty() {
            commands.push(command);
        }
    }
    commands
}

/// `line` without a `# comment` (a `#` after whitespace, outside quotes).
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && previous.is_whitespace() => return &line[..i],
            _ => {}
        }
        previous = c;
    }
    line
}

/// The walk: its directory standing in for `/`, and one shell session that runs the guide's
/// commands in order (so that a variable set by one is seen by the next).
struct Walk {
    root: PathBuf,
    as_root: bool,
    shell: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    node_port: u16,
    gateway_port: u16,
    enrolled_node: String,
    services: Vec<(String, Child)>,
    transcript: String,
    /// Records published at the node so far (one before its key rotation, one after).
    published: u64,
    /// `rix trust rotate` runs so far.
    rotations: u32,
    /// The node's first key, retired by the rotation.
    old_key_id: Option<String>,
}

impl Walk {
    fn new() -> Walk {
        let as_root = running_as_root();
        let root = PathBuf::from(format!("/var/tmp/{}", unique("rix-walk")));
        std::fs::create_dir_all(&root).unwrap();
        // `rix` must reach its directories under the walk's root, as it reaches `/etc/rix`.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        for dir in ["usr/local/bin", "etc/systemd/system", "backup", "root"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        let mut shell = Command::new("bash")
            .arg("--noprofile")
            .arg("--norc")
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    root.join("usr/local/bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("RABBITMQ_NODENAME", "rabbit@localhost")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = shell.stdin.take().unwrap();
        let stdout = BufReader::new(shell.stdout.take().unwrap());
        let mut walk = Walk {
            root,
            as_root,
            shell,
            stdin,
            stdout,
            node_port: free_port(),
            gateway_port: free_port(),
            enrolled_node: String::new(),
            services: Vec::new(),
            transcript: String::new(),
            published: 0,
            rotations: 0,
            old_key_id: None,
        };
        walk.shell("exec 2>&1");
        walk
    }

    /// `/etc/rix`… of the guide, moved under the walk's root.
    fn moved(&self, text: &str) -> String {
        let root = self.root.display().to_string();
        let mapping = [
            ("/etc/rix", format!("{root}/etc/rix")),
            ("/var/lib/rix", format!("{root}/var/lib/rix")),
            ("/usr/local/bin/rix", format!("{root}/usr/local/bin/rix")),
            ("/etc/systemd/system", format!("{root}/etc/systemd/system")),
            ("/backup/", format!("{root}/backup/")),
            ("/root/", format!("{root}/root/")),
        ];
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        'scan: while !rest.is_empty() {
            for (from, to) in &mapping {
                if let Some(after) = rest.strip_prefix(from) {
                    out.push_str(to);
                    rest = after;
                    continue 'scan;
                }
            }
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }

    /// `command` as this machine runs it: paths moved; `runuser -u rix --` kept only as root
    /// (and owners dropped otherwise); `rix` this build's.
    fn localised(&self, command: &str) -> String {
        // The node the guide enrols is the one the walk runs.
        let mut command = self.moved(command).replace(
            "https://rix.yn.example.cn",
            &format!("http://127.0.0.1:{}", self.node_port),
        );
        let binary = self.root.join("usr/local/bin/rix").display().to_string();
        command = command.replace(
            "runuser -u rix -- rix ",
            &format!("runuser -u rix -- {binary} "),
        );
        if command.starts_with("rix ") {
            command = format!("{binary} {}", &command[4..]);
        }
        if !self.as_root {
            for owner in ["-o root -g rix ", "-o rix -g rix ", "-g rix "] {
                command = command.replace(owner, "");
            }
            command = command.replace("runuser -u rix -- ", "");
        }
        command
    }

    /// Runs `command` in the walk's shell; panics with its output when it fails.
    fn shell(&mut self, command: &str) -> String {
        const DONE: &str = "__rix_walk_done__";
        // Nothing may read the walk's own script from its standard input (rabbitmqctl does):
        // each command reads /dev/null unless it pipes into itself.
        writeln!(
            self.stdin,
            "{{ {command}\n}} </dev/null\necho \"{DONE} $?\""
        )
        .unwrap();
        self.stdin.flush().unwrap();
        let mut output = String::new();
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "the walk's shell died after: {command}\n{output}");
            if let Some(rc) = line.trim_end().strip_prefix(DONE) {
                let rc: i32 = rc.trim().parse().unwrap();
                self.transcript
                    .push_str(&format!("$ {command}\n{output}(exit {rc})\n"));
                assert_eq!(
                    rc, 0,
                    "a command of ops/DEPLOY.md failed:\n$ {command}\n{output}\n--- walk so far:\n{}",
                    self.transcript
                );
                return output;
            }
            output.push_str(&line);
        }
    }

    fn install_binary(&mut self, _: &str) {
        let command = format!(
            "install -m 0755 {RIX} {}",
            self.root.join("usr/local/bin/rix").display()
        );
        self.shell(&command);
    }

    fn add_user(&mut self, documented: &str) {
        if !self.as_root {
            return;
        }
        // The documented command, on a machine that lacks the user (CI's clean machine).
        let exists = Command::new("id")
            .arg("-u")
            .arg("rix")
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            self.shell(documented);
        }
    }

    fn edit_config(&mut self, file: &str, port: u16) {
        // What the guide asks of the operator: paths for this host, a listen address.
        let path = self.root.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut edited = self.moved(&text);
        for old in ["127.0.0.1:8081", "127.0.0.1:8080"] {
            edited = edited.replace(
                &format!("listen = \"{old}\""),
                &format!("listen = \"127.0.0.1:{port}\""),
            );
        }
        assert!(
            edited.contains(&format!("127.0.0.1:{port}")),
            "no listen in {file}"
        );
        std::fs::write(&path, edited).unwrap();
    }

    fn edit_node_config(&mut self) {
        self.edit_config("etc/rix/node.toml", self.node_port);
        // A secret kept out of the TOML file, as the guide says: the walk's own admin token.
        let env = self.root.join("etc/rix/node.env");
        std::fs::write(&env, format!("RIX_ADMIN_TOKEN={WALK_ADMIN_TOKEN}\n")).unwrap();
        let mode = if self.as_root {
            "chmod 0640 /etc/rix/node.env && chgrp rix /etc/rix/node.env"
        } else {
            "chmod 0640 /etc/rix/node.env"
        };
        self.shell(&self.localised(mode));
    }

    fn edit_gateway_config(&mut self) {
        self.edit_config("etc/rix/gateway.toml", self.gateway_port);
    }

    fn name_enrolled_node(&mut self, _: &str) {
        // A node name no earlier walk left on the shared test broker.
        self.enrolled_node = unique("walk");
        let command = format!("NODE={}", self.enrolled_node);
        self.shell(&command);
    }

    fn check_topic_permissions(&mut self, documented: &str) {
        let listed = self.shell(documented);
        let user = format!("rix-node-{}", self.enrolled_node);
        let line = listed
            .lines()
            .find(|l| l.starts_with(&user))
            .unwrap_or_else(|| panic!("{user} not listed:\n{listed}"));
        assert!(
            line.contains("rix.records")
                && line.contains(&format!("^[a-z_]+\\.{}$", self.enrolled_node)),
            "{line}"
        );
    }

    fn verify_units(&mut self, _: &str) {
        // No systemd runs here: systemd-analyze checks the installed units against a copy of
        // the machine's own unit tree, and must have nothing to say.
        let units = self.root.join("usr/lib/systemd");
        std::fs::create_dir_all(&units).unwrap();
        self.shell(&format!(
            "cp -r /usr/lib/systemd/system {}/",
            units.display()
        ));
        let said = self.shell(&format!(
            "systemd-analyze verify --root={} rix-node.service rix-gateway.service rix-gateway@a.service",
            self.root.display()
        ));
        assert!(said.trim().is_empty(), "systemd-analyze verify: {said}");
    }

    fn verify_instances(&mut self, _: &str) {
        let config = self.root.join("etc/rix/gateway-a.toml");
        let unit =
            std::fs::read_to_string(self.root.join("etc/systemd/system/rix-gateway@.service"))
                .unwrap();
        assert!(unit.contains("/etc/rix/gateway-%i.toml"), "{unit}");
        assert!(!config.exists());
    }

    /// Starts a unit as systemd would: its `User=`, its `ExecStart=`, its environment files.
    fn start_unit(&mut self, documented: &str) {
        let name = documented
            .split_whitespace()
            .nth(3)
            .unwrap_or_else(|| panic!("no unit in {documented}"))
            .to_owned();
        let unit =
            std::fs::read_to_string(self.root.join(format!("etc/systemd/system/{name}.service")))
                .unwrap();
        let value = |key: &str| {
            unit.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(str::to_owned)
        };
        let exec = self.moved(&value("ExecStart").unwrap());
        let user = value("User").unwrap();
        let mut argv: Vec<String> = exec.split_whitespace().map(str::to_owned).collect();
        if self.as_root {
            argv.splice(
                0..0,
                ["runuser".to_owned(), "-u".to_owned(), user, "--".to_owned()],
            );
        }
        let mut environment: Vec<(String, String)> = Vec::new();
        for file in unit
            .lines()
            .filter_map(|l| l.strip_prefix("EnvironmentFile="))
        {
            let file = self.moved(file.trim_start_matches('-'));
            for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
                if let Some((k, v)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
                    environment.push((k.trim().to_owned(), v.trim().to_owned()));
                }
            }
        }
        // A restart: SIGTERM and wait, as systemd does, before the new process starts.
        if let Some(at) = self
            .services
            .iter()
            .position(|(running, _)| *running == name)
        {
            let (_, mut old) = self.services.remove(at);
            stop_child(&mut old, Duration::from_secs(60));
        }
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.root.join(format!("{name}.log")))
            .unwrap();
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(environment)
            .env(
                "RIX_LOG",
                value("Environment")
                    .and_then(|e| e.strip_prefix("RIX_LOG=").map(str::to_owned))
                    .unwrap_or_else(|| "info".into()),
            )
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.services.push((name.clone(), child));
        let port = if name == "rix-node" {
            self.node_port
        } else {
            self.gateway_port
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !probe::healthy(&format!("http://127.0.0.1:{port}/healthz")).unwrap_or(false) {
            assert!(
                Instant::now() < deadline,
                "{name} did not come up as its unit starts it; log:\n{}",
                std::fs::read_to_string(self.root.join(format!("{name}.log"))).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the gateway holds the node's first `n` entries and is not refusing it.
    fn wait_gateway_holds(&self, n: u64) {
        let gateway_url = format!("http://127.0.0.1:{}", self.gateway_port);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let http = reqwest::Client::new();
            poll_until(
                "the gateway holds the node's records",
                Duration::from_secs(60),
                || async {
                    let node = gateway_node_health(&http, &gateway_url, "prov-530000")
                        .await?
                        .ok_or("the gateway lists no prov-530000")?;
                    if node["last_seq"] == n && node["state"] == "ok" {
                        Ok(())
                    } else {
                        Err(node.to_string())
                    }
                },
            )
            .await;
        });
    }

    fn node_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.node_port)
    }

    /// Registers and approves one public achievement at the node, and waits until it is sealed.
    fn publish_a_record(&mut self) {
        self.published += 1;
        let (url, n) = (self.node_url(), self.published);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let http = reqwest::Client::new();
            let sample = rix_schema::sample::SampleGenerator::new(Default::default());
            let doc = as_public_submission(serde_json::to_value(sample.achievement(n)).unwrap());
            let post = reqwest::Method::POST;
            let (status, body) = call(
                &http,
                post.clone(),
                &format!("{url}/v1/achievements"),
                WALK_ADMIN_TOKEN,
                Some(&doc),
            )
            .await
            .unwrap();
            assert_eq!(status, 201, "{body}");
            let id = body["id"].as_str().unwrap().to_owned();
            let approve = format!("{url}/v1/achievements/{id}/approve");
            let (status, body) = call(
                &http,
                post,
                &approve,
                WALK_ADMIN_TOKEN,
                Some(&serde_json::json!({})),
            )
            .await
            .unwrap();
            assert_eq!(status, 200, "{body}");
            poll_until(
                "the node seals the record",
                Duration::from_secs(30),
                || async {
                    let (_, health) = get_json(&http, &format!("{url}/healthz"))
                        .await
                        .map_err(|e| e.to_string())?;
                    if health["log"]["sealed_seq"].as_u64() >= Some(n) {
                        Ok(())
                    } else {
                        Err(health.to_string())
                    }
                },
            )
            .await;
        });
    }

    /// The guide's step 1 of a rotation: `signing_key` at the new key, and the restart.
    fn restart_node_on_its_new_key(&mut self, _: &str) {
        // Something signed under the old key first, as on any working node.
        self.publish_a_record();
        let pem = std::fs::read_to_string(self.root.join("etc/rix/keys/node.key.pem.pub")).unwrap();
        let old = rix_schema::signing::VerifyingKey::from_spki_pem(pem.as_bytes()).unwrap();
        self.old_key_id = Some(old.key_id());
        let config = self.root.join("etc/rix/node.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        let edited = text.replace("keys/node.key.pem\"", "keys/node-2027.key.pem\"");
        assert_ne!(text, edited, "signing_key not found in node.toml");
        std::fs::write(&config, edited).unwrap();
        self.start_unit("systemctl enable --now rix-node");
    }

    /// The guide's steps 2 and 3: the same `rotate`, before and after the node signed under its
    /// new key.
    fn rotate(&mut self, documented: &str) {
        self.rotations += 1;
        if self.rotations == 2 {
            self.publish_a_record();
        }
        let said = self.shell(&self.localised(documented));
        if self.rotations == 2 {
            // Before the guide goes on to revocations: the gateway has taken in what the node
            // published under both keys (a revoked key's batches not yet applied never are).
            self.wait_gateway_holds(self.published);
        }
        let expect = if self.rotations == 1 {
            "trusted ed25519:"
        } else {
            "window of ed25519:"
        };
        assert!(said.contains(expect), "rotation {}: {said}", self.rotations);
    }

    /// The guide's revocations name the key as `ed25519:…`: the walk revokes the retired one.
    fn revoke_old_key(&mut self, documented: &str) {
        let old = self
            .old_key_id
            .clone()
            .expect("the walk rotated the node's key first");
        let command = self.localised(documented).replace("ed25519:…", &old);
        self.shell(&command);
    }

    /// The guide's dry run, on a workbook in the national layout that the walk makes (the
    /// guide's is the province's own): it needs no node, and says what an import would do.
    fn import_dry_run(&mut self, documented: &str) {
        let make = self.localised("rix import-fixtures --out /root/import --records 12");
        self.shell(&make);
        let command =
            documented.replace("登记表2019-2024.xlsx", "/root/import/科技成果登记表.xlsx");
        let said = self.shell(&self.localised(&command));
        assert!(
            said.contains("dry run: what an import would do") && said.contains("→  /title"),
            "{said}"
        );
    }

    fn hand_over_public_key(&mut self) {
        // The node operator sends the `.pub` file; the gateway operator keeps it as the guide's
        // next command names it.
        let keys = self.root.join("etc/rix/keys");
        std::fs::copy(keys.join("node.key.pem.pub"), keys.join("prov-530000.pub")).unwrap();
    }
}

impl Drop for Walk {
    fn drop(&mut self) {
        // Not SIGKILL: as root, each service runs under `runuser`, which would die alone and
        // leave the service running, holding its port, after the walk.
        for (_, child) in &mut self.services {
            stop_child(child, Duration::from_secs(30));
        }
        let _ = self.shell.kill();
        let _ = self.shell.wait();
        if !self.enrolled_node.is_empty() {
            let _ =
                rabbitmqctl_output(&["delete_user", &format!("rix-node-{}", self.enrolled_node)]);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// Whether the walk runs as root (`id -u` is 0).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn mode_and_owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.mode() & 0o7777, meta.uid())
}

#[test]
fn every_command_of_the_deployment_guide_runs_or_says_why_not() {
    let commands = documented_commands(DEPLOY);
    assert!(commands.len() > 20, "{commands:#?}");
    let mut walk = Walk::new();
    let mut set_aside = Vec::new();
    for command in &commands {
        let rule = RULES
            .iter()
            .find(|(prefix, _)| command.starts_with(prefix))
            .unwrap_or_else(|| {
                panic!(
                    "ops/DEPLOY.md has a command the walk does not know; add a rule to tests/tests/deploy_walk.rs:\n{command}"
                )
            });
        match &rule.1 {
            How::Run => {
                let local = walk.localised(command);
                walk.shell(&local);
            }
            How::RunThen(then) => {
                let local = walk.localised(command);
                walk.shell(&local);
                then(&mut walk);
            }
            How::Instead(instead) => {
                let local = walk.localised(instead);
                walk.shell(&local);
            }
            How::Walk(step) => step(&mut walk, command),
            How::NotHere(why) => set_aside.push(format!("{command}\n    not here: {why}")),
        }
    }
    eprintln!("set aside:\n{}", set_aside.join("\n"));

    // What the walk left is what the guide promised.
    let root = walk.root.clone();
    let rix_uid = if walk.as_root {
        let out = Command::new("id").args(["-u", "rix"]).output().unwrap();
        Some(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u32>()
                .unwrap(),
        )
    } else {
        None
    };
    let (etc_mode, etc_owner) = mode_and_owner(&root.join("etc/rix"));
    assert_eq!(etc_mode, 0o750);
    let (keys_mode, keys_owner) = mode_and_owner(&root.join("etc/rix/keys"));
    assert_eq!(keys_mode, 0o700);
    let (key_mode, key_owner) = mode_and_owner(&root.join("etc/rix/keys/node.key.pem"));
    assert_eq!(key_mode, 0o600, "the signing key is private");
    if let Some(uid) = rix_uid {
        assert_eq!(etc_owner, 0, "/etc/rix is root's");
        assert_eq!((keys_owner, key_owner), (uid, uid), "keys are rix's");
    }
    let backups: Vec<_> = std::fs::read_dir(root.join("backup")).unwrap().collect();
    assert_eq!(backups.len(), 1, "the node's SQLite backup was written");
    let key = std::fs::read_to_string(root.join("root/entry_name_key")).unwrap();
    assert_eq!(
        key.trim().len(),
        64,
        "the catalogue's entry-name key was read: {key:?}"
    );
    let trust = walk.shell(&format!(
        "{} trust list --config {}",
        root.join("usr/local/bin/rix").display(),
        root.join("etc/rix/gateway.toml").display()
    ));
    assert!(
        trust.contains("prov-530000") && trust.contains("feed token: set"),
        "{trust}"
    );
    assert!(
        !trust.contains("change-me-national-gateway-feed-token"),
        "{trust}"
    );

    // The node and the gateway the guide set up work together: both records the node
    // published, one under each key, are in the catalogue, pulled over the enrolled feed.
    walk.wait_gateway_holds(2);
    assert_clean_logs(&walk);
}

/// A fresh installation starts without an error in its logs (a first start once logged
/// "database is locked" from every pooled SQLite connection).
fn assert_clean_logs(walk: &Walk) {
    for name in ["rix-node", "rix-gateway"] {
        let log = std::fs::read_to_string(walk.root.join(format!("{name}.log"))).unwrap();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
        assert!(
            errors.is_empty(),
            "{name} logged errors:\n{}",
            errors.join("\n")
        );
    }
}

#[test]
fn the_guides_commands_are_read_as_a_shell_reads_them() {
    let doc = "text\n```sh\ninstall -d /a \\\n    /b   # two dirs\n# a comment line\nrabbitmqctl set_permissions '^$' \"^x#y$\"  # perms\n```\n```toml\nnot = \"a command\"\n```\n";
    assert_eq!(
        documented_commands(doc),
        vec![
            "install -d /a /b".to_owned(),
            "rabbitmqctl set_permissions '^$' \"^x#y$\"".to_owned()
        ]
    );
}
