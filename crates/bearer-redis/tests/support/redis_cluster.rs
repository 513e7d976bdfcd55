//! A throw-away Redis Cluster: three primaries and three replicas, real
//! `redis-server` processes on free loopback ports, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use super::redis_server::{free_port, on_free_ports};

/// How long a node may be unreachable before its replica takes over.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(1000);

#[derive(Debug)]
struct Node {
    port: u16,
    child: Option<Child>,
}

#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
    /// A tick for every line any node logs.
    log: Receiver<()>,
    log_tx: Sender<()>,
}

fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run redis-cli: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Asks `ready` (a question to running servers) again each time a node
/// logs a line, until it holds or `limit` passes: cluster formation and
/// failover are the servers' own events, and each step of them is logged
/// after it took effect, so no timer is needed.
fn until(
    log: &Receiver<()>,
    limit: Duration,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = std::time::Instant::now() + limit;
    while !ready() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if log.recv_timeout(left).is_err() {
            return Err(format!("cluster: {what} did not happen within {limit:?}"));
        }
    }
    Ok(())
}

impl RedisCluster {
    /// Starts six nodes and joins them as three primaries with a replica each.
    pub fn start() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "bearer-redis-cluster-{}-{}",
            std::process::id(),
            free_port()?
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let (log_tx, log) = channel();
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
            log,
            log_tx,
        };
        for _ in 0..6 {
            let node = cluster.start_node()?;
            cluster.nodes.push(node);
        }
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run redis-cli: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port).collect();
        until(&cluster.log, Duration::from_secs(30), "formation", || {
            ports.iter().all(|p| {
                cli(*p, &["cluster", "info"]).is_ok_and(|i| i.contains("cluster_state:ok"))
                    && cli(*p, &["info", "replication"]).is_ok_and(|i| {
                        i.contains("role:master") || i.contains("master_link_status:up")
                    })
            })
        })?;
        Ok(cluster)
    }

    fn start_node(&self) -> Result<Node, String> {
        on_free_ports(|| self.start_node_on_free_ports())
    }

    fn start_node_on_free_ports(&self) -> Result<Node, String> {
        let port = free_port()?;
        let bus = free_port()?;
        if bus == port {
            return Err(format!("port {port} came up twice"));
        }
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-port", &bus.to_string()])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args([
                "--cluster-node-timeout",
                &NODE_TIMEOUT.as_millis().to_string(),
            ])
            // A replica may take over however long it has been cut off
            // (a test's primary dies young), and syncs without delay.
            .args(["--cluster-replica-validity-factor", "0"])
            .args([
                "--repl-diskless-sync",
                "yes",
                "--repl-diskless-sync-delay",
                "0",
            ])
            .args(["--dir", &self.dir.to_string_lossy()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
        let tick = self.log_tx.clone();
        let child = super::redis_server::spawn_ready_with(command, move |_| {
            let _ = tick.send(());
        })?;
        Ok(Node {
            port,
            child: Some(child),
        })
    }

    /// Seed URLs, one per node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}/", n.port))
            .collect()
    }

    fn live_port(&self) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a live node")
            .port
    }

    /// The port of the primary serving `key`'s slot, as a live node sees it.
    pub fn primary_of(&self, key: &str) -> Option<u16> {
        let port = self.live_port();
        let slot: u16 = cli(port, &["cluster", "keyslot", key])
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let nodes = cli(port, &["cluster", "nodes"]).ok()?;
        nodes.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            if !flags.contains("master") || flags.contains("fail") {
                return None;
            }
            let serves = fields.iter().skip(8).any(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if lo <= slot && slot <= hi)
            });
            let port = fields.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
            serves.then_some(port)
        })
    }

    /// Kills (SIGKILL) the primary serving `key` and returns its port.
    pub fn kill_primary_of(&mut self, key: &str) -> u16 {
        let port = self.primary_of(key).expect("the key's slot has a primary");
        let node = self.nodes.iter_mut().find(|n| n.port == port).unwrap();
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        port
    }

    /// Returns once a replica serves `key`'s slot in place of the primary
    /// on `dead` and the cluster is whole again.
    pub fn await_failover(&self, key: &str, dead: u16) -> Result<u16, String> {
        let mut promoted = None;
        until(&self.log, Duration::from_secs(30), "failover", || {
            let ok = cli(self.live_port(), &["cluster", "info"])
                .is_ok_and(|i| i.contains("cluster_state:ok"));
            promoted = self.primary_of(key).filter(|p| *p != dead);
            ok && promoted.is_some()
        })?;
        Ok(promoted.expect("checked"))
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
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
