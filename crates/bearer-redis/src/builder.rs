//! [`RedisStoreBuilder`]: configuration, validated once at build time.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
#[cfg(feature = "cluster")]
use redis::cluster::ClusterClientBuilder;
use redis::{Client, IntoConnectionInfo, ProtocolVersion};
use zeroize::Zeroizing;

#[cfg(feature = "cluster")]
use crate::conn::ClusterLink;
use crate::conn::{Failover, Link};
use crate::envelope::Envelope;
use crate::error::BuildError;
use crate::keys::KeySpace;
use crate::notify::Wakes;
use crate::store::{Counters, Inner, RedisStore};

/// Configures a [`RedisStore`]; start with [`RedisStore::builder`].
///
/// ```
/// use bearer_redis::RedisStore;
/// use std::time::Duration;
///
/// let builder = RedisStore::builder("redis://127.0.0.1:6379/")
///     .prefix("payments:")
///     .encryption_key_with_id(2, [0x11; 32])
///     .decryption_key(1, [0x22; 32]) // still read values sealed before rotation
///     .connect_timeout(Duration::from_millis(200));
/// // `Debug` never shows keys or the URL (it may carry a password).
/// assert!(!format!("{builder:?}").contains("17"));
/// ```
pub struct RedisStoreBuilder {
    target: Target,
    replicas: Vec<String>,
    prefix: String,
    sealing_key: Option<(u8, Zeroizing<Vec<u8>>)>,
    reading_keys: Vec<(u8, Zeroizing<Vec<u8>>)>,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("prefix", &self.prefix)
            .field("replicas", &self.replicas.len())
            .field("sealing_key_id", &self.sealing_key.as_ref().map(|k| k.0))
            .field(
                "reading_key_ids",
                &self.reading_keys.iter().map(|k| k.0).collect::<Vec<_>>(),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

/// What the store talks to.
enum Target {
    Single(String),
    #[cfg(feature = "cluster")]
    Cluster(Vec<String>),
}

fn invalid(e: redis::RedisError) -> BuildError {
    BuildError::InvalidUrl {
        reason: format!("{:?}", e.kind()),
    }
}

impl RedisStoreBuilder {
    pub(crate) fn new(url: String) -> Self {
        Self::with_target(Target::Single(url))
    }

    #[cfg(feature = "cluster")]
    pub(crate) fn new_cluster(nodes: Vec<String>) -> Self {
        Self::with_target(Target::Cluster(nodes))
    }

    fn with_target(target: Target) -> Self {
        RedisStoreBuilder {
            target,
            replicas: Vec::new(),
            prefix: "bearer:".to_owned(),
            sealing_key: None,
            reading_keys: Vec::new(),
            connect_timeout: Duration::from_millis(250),
            response_timeout: Duration::from_millis(500),
        }
    }

    /// The replicas of the primary at the builder's URL. When the primary
    /// stops answering (or answers `READONLY`), the store asks each node
    /// its `ROLE` and moves to the one promoted in its place, by Sentinel
    /// or by an operator's `REPLICAOF NO ONE`. Meanwhile calls fail fast
    /// and the cache fetches locally; sharing resumes on the new primary.
    ///
    /// ```
    /// let builder = bearer_redis::RedisStore::builder("redis://10.0.0.1:6379/")
    ///     .replicas(["redis://10.0.0.2:6379/", "redis://10.0.0.3:6379/"]);
    /// # let _ = builder;
    /// ```
    pub fn replicas(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.replicas = urls.into_iter().map(Into::into).collect();
        self
    }

    /// The namespace of every key and channel (default `bearer:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Encrypts values at rest with this 32-byte key (key id 0), and refuses
    /// to read unencrypted values from then on.
    pub fn encryption_key(self, key: impl AsRef<[u8]>) -> Self {
        self.encryption_key_with_id(0, key)
    }

    /// Like [`encryption_key`](Self::encryption_key), naming the key with an
    /// id stored next to each value, so keys can be rotated: give the old
    /// ones to [`decryption_key`](Self::decryption_key).
    pub fn encryption_key_with_id(mut self, id: u8, key: impl AsRef<[u8]>) -> Self {
        self.sealing_key = Some((id, Zeroizing::new(key.as_ref().to_vec())));
        self
    }

    /// A further key that opens values sealed with it, never used to seal.
    pub fn decryption_key(mut self, id: u8, key: impl AsRef<[u8]>) -> Self {
        self.reading_keys
            .push((id, Zeroizing::new(key.as_ref().to_vec())));
        self
    }

    /// How long one connection attempt may take (default 250 ms). A call
    /// while Redis is unreachable fails within about this long.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long Redis may take to answer a command (default 500 ms).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Validates the configuration and builds the store. It does not need
    /// Redis to be up: it connects (and reconnects) on its own, and every
    /// call made meanwhile fails fast, so the cache fetches locally.
    pub async fn build(self) -> Result<RedisStore, BuildError> {
        if self
            .prefix
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(BuildError::InvalidPrefix);
        }
        let envelope = self.envelope()?;
        let wakes = Wakes::new();
        let (commands, pubsub) = match &self.target {
            Target::Single(url) => self.single(url, &wakes)?,
            #[cfg(feature = "cluster")]
            Target::Cluster(nodes) => self.cluster(nodes, &wakes)?,
        };
        let store = RedisStore::from_inner(Inner {
            commands,
            pubsub,
            channel: KeySpace::new(self.prefix.clone()).channel(),
            keys: KeySpace::new(self.prefix),
            envelope,
            wakes,
            stats: Counters::default(),
        });
        // Subscribe now so the first wait costs no extra round trip; if
        // Redis is down, the first wait after it returns subscribes.
        if let Err(e) = store.ensure_subscribed().await {
            tracing::warn!(target: "bearer_redis", error = %e, "redis unavailable at start; tokens are fetched locally until it answers");
        }
        Ok(store)
    }

    /// One server, or a primary and its replicas: lazily connecting
    /// managers (one of each kind per node) that reconnect on their own.
    fn single(&self, url: &str, wakes: &Wakes) -> Result<(Link, Link), BuildError> {
        let mut commands = Vec::new();
        let mut pubsubs = Vec::new();
        for node in std::iter::once(url).chain(self.replicas.iter().map(String::as_str)) {
            let (command, pubsub) = self.managers(node, wakes)?;
            commands.push(command);
            pubsubs.push(pubsub);
        }
        if commands.len() == 1 {
            return Ok((
                Link::Single(commands.remove(0)),
                Link::Single(pubsubs.remove(0)),
            ));
        }
        let probe = self.connect_timeout.saturating_add(self.response_timeout);
        let set = |nodes| Link::Failover(Arc::new(Failover::new(nodes, probe, wakes.clone())));
        Ok((set(commands), set(pubsubs)))
    }

    /// The command and notification managers of one node.
    fn managers(
        &self,
        url: &str,
        wakes: &Wakes,
    ) -> Result<(ConnectionManager, ConnectionManager), BuildError> {
        let info = url.into_connection_info().map_err(invalid)?;
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let pubsub_info = info.clone().set_redis_settings(resp3);
        let command_client = Client::open(info).map_err(invalid)?;
        let pubsub_client = Client::open(pubsub_info).map_err(invalid)?;
        let base = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            // One quick retry per call: reconnect loops must not outlive a call.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(50));
        let commands = ConnectionManager::new_lazy_with_config(command_client, base.clone())
            .map_err(invalid)?;
        let to_wakes = wakes.clone();
        let pubsub = ConnectionManager::new_lazy_with_config(
            pubsub_client,
            base.set_push_sender(move |push| {
                to_wakes.on_push(push);
                Ok::<(), std::convert::Infallible>(())
            }),
        )
        .map_err(invalid)?;
        Ok((commands, pubsub))
    }

    #[cfg(feature = "cluster")]
    /// A cluster: clients that learn the slot map from the seed nodes on
    /// first use and follow `MOVED`/`ASK` and failovers from then on.
    fn cluster(&self, nodes: &[String], wakes: &Wakes) -> Result<(Link, Link), BuildError> {
        if !self.replicas.is_empty() {
            return Err(BuildError::ReplicasOnCluster);
        }
        let infos = nodes
            .iter()
            .map(|url| url.as_str().into_connection_info().map_err(invalid))
            .collect::<Result<Vec<_>, _>>()?;
        if infos.is_empty() {
            return Err(BuildError::NoClusterNodes);
        }
        let base = || {
            ClusterClientBuilder::new(infos.clone())
                .connection_timeout(self.connect_timeout)
                .response_timeout(self.response_timeout)
                // A redirect or a failover costs a retry or two; the cache
                // bounds every call, so longer retry loops would be cut anyway.
                .retries(2)
                .min_retry_wait(10)
                .max_retry_wait(100)
        };
        let commands = base().build().map_err(invalid)?;
        let to_wakes = wakes.clone();
        let pubsub = base()
            .use_protocol(ProtocolVersion::RESP3)
            .push_sender(move |push| {
                to_wakes.on_push(push);
                Ok::<(), std::convert::Infallible>(())
            })
            .build()
            .map_err(invalid)?;
        let link = |client| {
            Link::Cluster(Box::new(ClusterLink {
                client,
                connected: tokio::sync::OnceCell::new(),
                connect_timeout: self.connect_timeout,
            }))
        };
        Ok((link(commands), link(pubsub)))
    }

    fn envelope(&self) -> Result<Envelope, BuildError> {
        let Some((sealing_id, _)) = &self.sealing_key else {
            if let Some((id, _)) = self.reading_keys.first() {
                // Reading keys alone would silently store plaintext.
                return Err(BuildError::DecryptionKeyWithoutEncryptionKey(*id));
            }
            return Ok(Envelope::plaintext());
        };
        let mut keys = BTreeMap::new();
        for (id, bytes) in self.sealing_key.iter().chain(&self.reading_keys) {
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| BuildError::EncryptionKeyLength { len: bytes.len() })?;
            if keys.insert(*id, Zeroizing::new(key)).is_some() {
                return Err(BuildError::DuplicateKeyId(*id));
            }
        }
        Ok(Envelope::with_keys(*sealing_id, keys))
    }
}
