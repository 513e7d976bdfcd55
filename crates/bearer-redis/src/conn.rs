//! One way to reach Redis, whether it is a single server (with its
//! replicas behind a failover) or a cluster: the store's scripts and
//! commands run on either unchanged.

#[cfg(feature = "cluster")]
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
#[cfg(feature = "cluster")]
use redis::cluster::ClusterClient;
#[cfg(feature = "cluster")]
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
#[cfg(feature = "cluster")]
use tokio::sync::OnceCell;

/// Where commands go.
pub(crate) enum Link {
    /// One server: the `redis` crate's manager reconnects on its own.
    Single(ConnectionManager),
    /// A cluster (boxed: its client is large).
    #[cfg(feature = "cluster")]
    Cluster(Box<ClusterLink>),
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
            Conn::Single(mut manager) => manager.subscribe(channel).await,
            #[cfg(feature = "cluster")]
            Conn::Cluster(mut cluster) => cluster.subscribe(channel).await,
        }
    }
}

/// A connection of either kind.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
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
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
