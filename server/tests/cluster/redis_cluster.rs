//! A private Redis Cluster for a test: six `redis-server --cluster-enabled yes` processes on
//! free loopback ports (three masters, one replica each, joined with `redis-cli --cluster
//! create`), a node timeout of one second so a killed master's replica takes over within a few
//! seconds, and every process killed when the value is dropped. A node can be killed, or
//! frozen (SIGSTOP: its connections stay open and it answers nothing, like a hung process or a
//! partition).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{random_suffix, DEADLINE};

const NODES: usize = 6;
/// How long a node may be unreachable before the cluster fails it over (ms).
const NODE_TIMEOUT_MS: u32 = 1000;

pub struct RedisCluster {
    nodes: Vec<Node>,
    /// Frozen nodes' processes, killed on drop.
    frozen: Vec<Child>,
    dir: PathBuf,
}

struct Node {
    port: u16,
    child: Option<Child>,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub id: String,
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    pub slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// Starts the six nodes, creates the cluster and waits until every node sees all slots
    /// served and every replica is in sync with its master.
    pub async fn start() -> RedisCluster {
        let dir = std::env::temp_dir().join(format!("pulse-redis-cluster-{}", random_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            frozen: Vec::new(),
            dir,
        };
        for _ in 0..NODES {
            let node = cluster.spawn_listening_node().await;
            cluster.nodes.push(node);
        }
        cluster.create().await;
        cluster.wait_until_healthy().await;
        cluster
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The seed URLs for `REDIS_CLUSTER_URLS`.
    pub fn urls(&self) -> Vec<String> {
        self.ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// A node that listens. A free port can be taken by someone else (another test's client,
    /// say) before `redis-server` binds it; such a node exits at once, and another is started
    /// on other ports.
    async fn spawn_listening_node(&self) -> Node {
        for _ in 0..5 {
            let mut node = self.spawn_node();
            if wait_for_listening(&mut node).await {
                return node;
            }
        }
        panic!("no redis-server of the cluster could bind its ports in 5 tries");
    }

    fn spawn_node(&self) -> Node {
        let (port, bus_port) = (free_port(), free_port());
        let config = format!("nodes-{port}.conf");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-config-file", &config])
            .args(["--cluster-port", &bus_port.to_string()])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (the test command installs it)");
        Node {
            port,
            child: Some(child),
        }
    }

    /// `redis-cli --cluster create … --cluster-replicas 1 --cluster-yes`.
    async fn create(&self) {
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(self.ports().iter().map(|p| format!("127.0.0.1:{p}")));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"].map(str::to_owned));
        redis_cli(args).await;
    }

    /// Every live node reports `cluster_state:ok` and knows the others, and every replica's
    /// link to its master is up (so it can take over).
    pub async fn wait_until_healthy(&self) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if self.is_healthy().await {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the Redis Cluster did not become healthy"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn is_healthy(&self) -> bool {
        let live: Vec<u16> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect();
        for port in live {
            let Ok(info) = text(port, &["CLUSTER", "INFO"]).await else {
                return false;
            };
            if !info.contains("cluster_state:ok") {
                return false;
            }
            let Ok(replication) = text(port, &["INFO", "replication"]).await else {
                return false;
            };
            if replication.contains("role:slave") && !replication.contains("master_link_status:up")
            {
                return false;
            }
        }
        true
    }

    /// `CLUSTER NODES` as one live node sees it.
    pub async fn nodes(&self) -> Vec<NodeInfo> {
        let port = self.live_port();
        let listing = text(port, &["CLUSTER", "NODES"]).await.unwrap();
        listing.lines().filter_map(parse_node).collect()
    }

    /// The slot of `key` (a channel name hashes like a key).
    pub async fn slot_of(&self, key: &str) -> u16 {
        let mut connection = connect(self.live_port()).await.unwrap();
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut connection)
            .await
            .unwrap()
    }

    /// The master serving `slot`, as the cluster sees it now.
    pub async fn master_of(&self, slot: u16) -> NodeInfo {
        self.serving(slot).await.expect("every slot has a master")
    }

    /// The master serving `slot`, if one does (not while its failed master awaits promotion).
    pub async fn serving(&self, slot: u16) -> Option<NodeInfo> {
        let serves = |n: &NodeInfo| n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot));
        self.nodes()
            .await
            .into_iter()
            .find(|n| n.master && !n.failed && serves(n))
    }

    /// How many clients of the node on `port` hold `SSUBSCRIBE <channel>`.
    pub async fn shard_subscribers(&self, port: u16, channel: &str) -> i64 {
        let mut connection = connect(port).await.unwrap();
        let (_, count): (String, i64) = redis::cmd("PUBSUB")
            .arg("SHARDNUMSUB")
            .arg(channel)
            .query_async(&mut connection)
            .await
            .unwrap();
        count
    }

    /// Moves `slot` (which must hold no keys) from the master `from` to the master `to`, the
    /// way a resharding does: importing, migrating, then the new owner told to every master.
    pub async fn move_slot(&self, slot: u16, from: &NodeInfo, to: &NodeInfo) {
        let slot = slot.to_string();
        let keys = self
            .text_on(from.port, &["CLUSTER", "COUNTKEYSINSLOT", &slot])
            .await;
        assert_eq!(keys, "0", "slot {slot} holds keys");
        let setslot = |state: &'static str, id: &str| {
            ["CLUSTER", "SETSLOT", &slot, state, id].map(str::to_owned)
        };
        let importing = setslot("IMPORTING", &from.id);
        let migrating = setslot("MIGRATING", &to.id);
        self.run_on(to.port, &importing).await;
        self.run_on(from.port, &migrating).await;
        let owner = setslot("NODE", &to.id);
        for node in [to.port, from.port] {
            self.run_on(node, &owner).await;
        }
        let masters = self
            .nodes()
            .await
            .into_iter()
            .filter(|n| n.master && !n.failed);
        for node in masters.filter(|n| n.id != from.id && n.id != to.id) {
            self.run_on(node.port, &owner).await;
        }
    }

    /// `redis-cli --cluster reshard`: moves `slots` slots, with their keys, from the master
    /// `from` to the master `to`, as an operator would.
    pub async fn reshard(&self, from: &NodeInfo, to: &NodeInfo, slots: usize) {
        let args = [
            "--cluster".to_owned(),
            "reshard".to_owned(),
            format!("127.0.0.1:{}", from.port),
            "--cluster-from".to_owned(),
            from.id.clone(),
            "--cluster-to".to_owned(),
            to.id.clone(),
            "--cluster-slots".to_owned(),
            slots.to_string(),
            "--cluster-yes".to_owned(),
        ];
        redis_cli(args.to_vec()).await;
    }

    async fn run_on(&self, port: u16, args: &[String]) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let answer = self.text_on(port, &args).await;
        assert!(
            answer.contains("Okay") || answer == "OK",
            "{args:?}: {answer}"
        );
    }

    /// SIGKILLs the node on `port` (it stays down).
    pub fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).unwrap();
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOPs the node on `port`: it stays stopped (and counts as down) until the cluster is
    /// dropped.
    pub fn freeze(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).unwrap();
        let child = node.child.take().expect("a running node");
        let stopped = Command::new("kill")
            .args(["-STOP", &child.id().to_string()])
            .status()
            .expect("kill is installed");
        assert!(stopped.success(), "SIGSTOP the node on {port}");
        self.frozen.push(child);
    }

    fn live_port(&self) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a live node")
            .port
    }

    /// A command on one node (not routed), its answer as text.
    pub async fn text_on(&self, port: u16, args: &[&str]) -> String {
        text(port, args).await.unwrap()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for child in &mut self.frozen {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for the node to accept connections; false if its process exited first.
async fn wait_for_listening(node: &mut Node) -> bool {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", node.port))
            .await
            .is_ok()
        {
            return true;
        }
        let exited = node
            .child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(Some(_))));
        if exited {
            node.child = None;
            return false;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "redis-server on {} did not start",
            node.port
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn connect(port: u16) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))?
        .get_multiplexed_async_connection()
        .await
}

/// Runs `redis-cli` with `args` (off the runtime's threads); panics with its output if it fails.
async fn redis_cli(args: Vec<String>) {
    let shown = args.join(" ");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("redis-cli")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is installed (it comes with redis-server)")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "redis-cli {shown} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn text(port: u16, args: &[&str]) -> redis::RedisResult<String> {
    let mut connection = connect(port).await?;
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    let value: redis::Value = command.query_async(&mut connection).await?;
    Ok(match value {
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        redis::Value::VerbatimString { text, .. } => text,
        redis::Value::SimpleString(text) => text,
        redis::Value::Okay => "OK".to_owned(),
        redis::Value::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    })
}

/// `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot>…`
fn parse_node(line: &str) -> Option<NodeInfo> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let port = fields
        .get(1)?
        .split('@')
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()?;
    let flags = fields.get(2)?;
    let slots = fields
        .iter()
        .skip(8)
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => s.parse().ok().map(|a| (a, a)),
        })
        .collect();
    Some(NodeInfo {
        id: fields[0].to_owned(),
        port,
        master: flags.contains("master"),
        failed: flags.contains("fail") && !flags.contains("fail?"),
        slots,
    })
}
