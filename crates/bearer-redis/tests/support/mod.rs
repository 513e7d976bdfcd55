//! Shared test parts: a real `redis-server` per test, and a small
//! `TokenSource` that talks OAuth to the testkit over HTTP.
#![allow(dead_code)]

pub mod redis_cluster;
pub mod redis_server;
pub mod source;

pub use redis_cluster::RedisCluster;
pub use redis_server::RedisServer;
#[allow(unused_imports)] // not every test binary uses the source
pub use source::{Grant, HttpSource};

/// A `redis-server` for this test. Tests that call this are marked
/// `cfg_attr(not(has_redis), ignore = ...)`: the build script found the
/// program (or `BEARER_REQUIRE_EXTERNAL=1` demands it), so failing to start
/// it is a failure.
pub fn redis() -> RedisServer {
    RedisServer::start().unwrap_or_else(|why| panic!("cannot start redis-server: {why}"))
}

/// Redis for the fleet bench, or `None` after printing `SKIPPED` (a
/// failure under `BEARER_REQUIRE_EXTERNAL=1`). Tests use [`redis`].
pub fn redis_or_skip() -> Option<RedisServer> {
    match RedisServer::start() {
        Ok(server) => Some(server),
        Err(why) if std::env::var("BEARER_REQUIRE_EXTERNAL").as_deref() == Ok("1") => {
            panic!("redis-server is required (BEARER_REQUIRE_EXTERNAL=1): {why}")
        }
        Err(why) => {
            println!("SKIPPED: install redis-server ({why})");
            None
        }
    }
}

/// A three-primary, three-replica Redis Cluster for this test (marked like
/// the callers of [`redis`]: failing to start it is a failure).
pub fn cluster() -> RedisCluster {
    RedisCluster::start().unwrap_or_else(|why| panic!("cannot form a Redis Cluster: {why}"))
}

/// A Redis Cluster for the fleet bench, or `None` after printing `SKIPPED`
/// (a failure under `BEARER_REQUIRE_EXTERNAL=1`). Tests use [`cluster`].
pub fn cluster_or_skip() -> Option<RedisCluster> {
    match RedisCluster::start() {
        Ok(cluster) => Some(cluster),
        Err(why) => {
            if std::env::var("BEARER_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
                panic!(
                    "redis-server and redis-cli are required (BEARER_REQUIRE_EXTERNAL=1): {why}"
                );
            }
            println!("SKIPPED: install redis-server and redis-cli ({why})");
            None
        }
    }
}

/// A store on `target`: one server's URL; a cluster's seed URLs joined by
/// commas (as [`RedisCluster::urls`] joined); or a primary's URL followed
/// by its replicas', joined by `|`.
pub fn store_builder(target: &str) -> bearer_redis::RedisStoreBuilder {
    if target.contains(',') {
        return bearer_redis::RedisStore::cluster_builder(target.split(','));
    }
    let mut nodes = target.split('|');
    let primary = nodes.next().unwrap_or_default();
    bearer_redis::RedisStore::builder(primary).replicas(nodes)
}

/// Captured tracing output of every event, at every level.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs a global TRACE subscriber writing into the returned buffer (once
/// per test binary; later calls share the first buffer).
pub fn capture_logs() -> Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        logs
    })
    .clone()
}
