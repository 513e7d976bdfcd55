//! Why a store could not be built.

/// A configuration mistake found by [`RedisStoreBuilder::build`](crate::RedisStoreBuilder::build).
///
/// Redis being unreachable is *not* one of these: the store is built anyway
/// and connects when Redis answers, since Redis is an optimisation.
///
/// ```
/// use bearer_redis::{BuildError, RedisStore};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let err = RedisStore::builder("redis://127.0.0.1:1/")
///     .encryption_key([7u8; 16])
///     .build()
///     .await
///     .unwrap_err();
/// assert!(matches!(err, BuildError::EncryptionKeyLength { len: 16 }));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The Redis URL could not be parsed.
    #[error("invalid redis URL: {reason}")]
    InvalidUrl {
        /// What the parser said (the URL itself is not repeated: it may hold a password).
        reason: String,
    },
    /// An encryption key was not 32 bytes long.
    #[error("encryption keys are 32 bytes; got {len}")]
    EncryptionKeyLength {
        /// The length given.
        len: usize,
    },
    /// Two keys were configured with the same id.
    #[error("key id {0} configured twice")]
    DuplicateKeyId(u8),
    /// Decryption keys were given without a key to encrypt with.
    #[error("decryption key id {0} given without an encryption key")]
    DecryptionKeyWithoutEncryptionKey(u8),
    /// The prefix contains whitespace or control characters.
    #[error("the key prefix must be printable and contain no whitespace")]
    InvalidPrefix,
    /// A cluster store was built from no node at all.
    #[error("a cluster store needs at least one node to start from")]
    NoClusterNodes,
    /// Replicas were given to a cluster store: a cluster tracks its own.
    #[error("replicas are given for a single primary; a cluster tracks its own")]
    ReplicasOnCluster,
}
