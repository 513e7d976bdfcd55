//! One way to reach Redis, whether it is a single server, a primary with
//! replicas that may be promoted, or a cluster: the store's scripts and
//! commands run on each unchanged.

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use redis::aio::{ConnectionLike, ConnectionManager};
#[cfg(feature = "cluster")]
use redis::cluster::ClusterClient;
#[cfg(feature = "cluster")]
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};

use crate::notify::Wakes;
#[cfg(feature = "cluster")]
use tokio::sync::OnceCell;

/// Where commands go.
pub(crate) enum Link {
    /// One server: the `redis` crate's manager reconnects on its own.
    Single(ConnectionManager),
    /// A primary and the replicas that may replace it.
    Failover(Arc<Failover>),
    /// A cluster (boxed: its client is large).
    #[cfg(feature = "cluster")]
    Cluster(Box<ClusterLink>),
}

/// A replicated set of nodes, one of them primary. Calls go to the node
/// last seen as primary; when a call finds it gone or no longer primary
/// (`READONLY`), the nodes are asked their `ROLE` off the caller's path, and
/// the one that answers `master` is used from then on (promoted by
/// Sentinel or by an operator's `REPLICAOF NO ONE`).
pub(crate) struct Failover {
    /// One connection manager per node, in the order given.
    nodes: Vec<ConnectionManager>,
    current: AtomicUsize,
    probing: AtomicBool,
    probe_timeout: Duration,
    /// Notifications: a move to another node drops the subscription.
    wakes: Wakes,
}

impl Failover {
    pub fn new(nodes: Vec<ConnectionManager>, probe_timeout: Duration, wakes: Wakes) -> Self {
        Failover {
            nodes,
            current: AtomicUsize::new(0),
            probing: AtomicBool::new(false),
            probe_timeout,
            wakes,
        }
    }

    fn current(&self) -> ConnectionManager {
        let i = self.current.load(Ordering::Acquire) % self.nodes.len();
        self.nodes[i].clone()
    }

    /// After a failed call: if it may mean the primary moved, looks for
    /// the primary (one search at a time, spawned off the caller's path).
    fn suspect(self: &Arc<Self>, error: &RedisError) {
        let moved = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_timeout()
            || error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
            || error.kind() == ErrorKind::Server(ServerErrorKind::MasterDown);
        if !moved || self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if let Some(primary) = this.find_primary().await {
                let before = this.current.swap(primary, Ordering::AcqRel);
                if before != primary {
                    this.wakes.resubscribe();
                    tracing::warn!(
                        target: "bearer_redis",
                        node = primary,
                        "redis primary moved; using the promoted node"
                    );
                }
            }
            this.probing.store(false, Ordering::Release);
        });
    }

    /// The index of the node that says it is primary, if one does now.
    async fn find_primary(&self) -> Option<usize> {
        for (i, node) in self.nodes.iter().enumerate() {
            let mut node = node.clone();
            let role = tokio::time::timeout(
                self.probe_timeout,
                redis::cmd("ROLE").query_async::<Value>(&mut node),
            )
            .await;
            if let Ok(Ok(Value::Array(parts))) = role {
                let master = matches!(parts.first(), Some(Value::BulkString(r)) if r == b"master")
                    || matches!(parts.first(), Some(Value::SimpleString(r)) if r == "master");
                if master {
                    return Some(i);
                }
            }
        }
        None
    }
}

/// A cluster client, connected on first use (so building needs no node
/// up); from then on the `redis` crate follows `MOVED`/`ASK` and slot
/// changes.
#[cfg(feature = "cluster")]
pub(crate) struct ClusterLink {
    pub client: ClusterClient,
    pub connected: OnceCell<ClusterConnection>,
    pub connect_timeout: Duration,
}

impl Link {
    /// A connection for one call.
    pub async fn get(&self) -> RedisResult<Conn> {
        match self {
            Link::Single(manager) => Ok(Conn::Single(manager.clone())),
            Link::Failover(set) => Ok(Conn::Failover(set.current(), Arc::clone(set))),
            #[cfg(feature = "cluster")]
            Link::Cluster(link) => {
                let connect = async {
                    tokio::time::timeout(link.connect_timeout, link.client.get_async_connection())
                        .await
                        .map_err(|_| {
                            redis::RedisError::from((
                                redis::ErrorKind::Io,
                                "no cluster node answered in time",
                            ))
                        })?
                };
                link.connected
                    .get_or_try_init(|| connect)
                    .await
                    .cloned()
                    .map(Conn::Cluster)
            }
        }
    }

    /// Subscribes to `channel` (pushes arrive on the link's push sender).
    /// In a cluster, a message published on any node reaches every node,
    /// so one subscription anywhere hears all keys.
    pub async fn subscribe(&self, channel: &str) -> RedisResult<()> {
        match self.get().await? {
            Conn::Single(mut manager) | Conn::Failover(mut manager, _) => {
                manager.subscribe(channel).await
            }
            #[cfg(feature = "cluster")]
            Conn::Cluster(mut cluster) => cluster.subscribe(channel).await,
        }
    }
}

/// A connection of either kind.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    /// The node taken for primary, and its set (told of failures).
    Failover(ConnectionManager, Arc<Failover>),
    #[cfg(feature = "cluster")]
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Failover(c, set) => Box::pin(async move {
                let result = c.req_packed_command(cmd).await;
                if let Err(e) = &result {
                    set.suspect(e);
                }
                result
            }),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Failover(c, set) => Box::pin(async move {
                let result = c.req_packed_commands(cmd, offset, count).await;
                if let Err(e) = &result {
                    set.suspect(e);
                }
                result
            }),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) | Conn::Failover(c, _) => c.get_db(),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
