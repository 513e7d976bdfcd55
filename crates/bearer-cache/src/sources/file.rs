use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::sources::text::token_from_text;
use crate::{FetchContext, Fingerprint, Token, TokenError, TokenSource};

/// Token files are small; a bigger one is a wrong path, not a token.
const MAX_FILE_LEN: u64 = 64 * 1024;

/// A token read from a file, re-read on every fetch, so a token rotated on
/// disk is picked up the next time the cache asks.
///
/// This is how Kubernetes projected service-account tokens (and Vault
/// agent sinks) work: the file is replaced by a symlink swap while the
/// process runs. Re-reading a file of a few hundred bytes costs less than
/// comparing its metadata and is never fooled by an unchanged mtime.
///
/// A JWT keeps its own `exp`; any other token is given a short lifetime
/// ([`reread_after`](Self::reread_after), default 60 s) so the cache comes
/// back soon. A missing or empty file is a transient error: the mount may
/// be mid-rotation.
///
/// ```
/// use bearer_cache::{FileSource, TokenCache, TokenKey, TokenSource};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let dir = std::env::temp_dir().join(format!("bearer-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("token");
/// std::fs::write(&path, "s3cr3t-token\n").unwrap();
/// let source = FileSource::new(&path).reread_after(Duration::from_secs(30));
/// assert!(!format!("{source:?}").contains("s3cr3t"));
/// let cache = TokenCache::builder(source).build();
/// let token = cache.get(&TokenKey::default()).await.unwrap();
/// assert_eq!(token.expose_authorization_value(), "Bearer s3cr3t-token");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # }
/// ```
pub struct FileSource {
    path: PathBuf,
    id: String,
    reread_after: Duration,
    last_seen: Mutex<Option<Fingerprint>>,
}

impl FileSource {
    /// A source reading the token from `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref().to_path_buf();
        FileSource {
            id: format!("file:{}", path.display()),
            path,
            reread_after: Duration::from_secs(60),
            last_seen: Mutex::new(None),
        }
    }

    /// The lifetime given to a token that is not a JWT: at most this long
    /// passes before the file is read again (default 60 s).
    pub fn reread_after(mut self, lifetime: Duration) -> Self {
        self.reread_after = lifetime;
        self
    }

    /// Names the source (default `file:<path>`).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The file it reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<String, TokenError> {
        let io_error = |e: std::io::Error| TokenError::Source {
            message: format!("cannot read token file {}", self.path.display()),
            // Missing now may mean "not mounted yet" or "mid-rotation".
            transient: true,
            cause: Some(crate::Cause::new(e)),
        };
        let mut bytes = Vec::new();
        std::fs::File::open(&self.path)
            .map_err(io_error)?
            .take(MAX_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(io_error)?;
        if bytes.len() as u64 > MAX_FILE_LEN {
            return Err(TokenError::source(
                format!(
                    "token file {} is larger than {MAX_FILE_LEN} bytes",
                    self.path.display()
                ),
                false,
            ));
        }
        String::from_utf8(bytes).map_err(|_| TokenError::InvalidTokenValue)
    }
}

impl fmt::Debug for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.path)
            .field("id", &self.id)
            .field("reread_after", &self.reread_after)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenSource for FileSource {
    fn id(&self) -> &str {
        &self.id
    }

    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, TokenError> {
        // A local read of a tiny file: not worth a blocking-pool hop.
        let text = self.read()?;
        let what = format!("token file {}", self.path.display());
        let token = token_from_text(&text, self.reread_after, &what)?;
        let fingerprint = token.access_token().fingerprint();
        let previous = self
            .last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(fingerprint);
        if previous.is_some_and(|p| p != fingerprint) {
            tracing::info!(
                target: "bearer_cache",
                path = %self.path.display(),
                token = %fingerprint,
                "token file changed; using the new token"
            );
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Expiry, FetchReason, TokenKey};

    async fn fetch(source: &FileSource) -> Result<Token, TokenError> {
        let key = TokenKey::new();
        source
            .fetch(FetchContext::new(&key, None, FetchReason::Initial))
            .await
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn picks_up_a_symlink_swap_like_kubernetes() {
        let dir = tempfile::tempdir().unwrap();
        // Kubernetes layout: token -> ..data/token, ..data -> ..<timestamp>.
        let gen1 = dir.path().join("..gen1");
        let gen2 = dir.path().join("..gen2");
        std::fs::create_dir(&gen1).unwrap();
        std::fs::create_dir(&gen2).unwrap();
        std::fs::write(gen1.join("token"), "first-token\n").unwrap();
        std::fs::write(gen2.join("token"), "second-token\n").unwrap();
        std::os::unix::fs::symlink("..gen1", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/token", dir.path().join("token")).unwrap();

        let source = FileSource::new(dir.path().join("token"));
        assert_eq!(
            fetch(&source).await.unwrap().access_token().expose_secret(),
            "first-token"
        );

        // The atomic swap: a new link renamed over the old one.
        std::os::unix::fs::symlink("..gen2", dir.path().join("..data_tmp")).unwrap();
        std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
        assert_eq!(
            fetch(&source).await.unwrap().access_token().expose_secret(),
            "second-token"
        );
    }

    #[tokio::test]
    async fn opaque_token_gets_the_reread_lifetime_and_a_jwt_its_exp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  opaque\r\n").unwrap();
        let source = FileSource::new(&path).reread_after(Duration::from_secs(7));
        let token = fetch(&source).await.unwrap();
        assert_eq!(token.access_token().expose_secret(), "opaque");
        assert_eq!(token.expiry(), Expiry::In(Duration::from_secs(7)));

        // {"alg":"none"}.{"exp":2000000000}
        std::fs::write(&path, "eyJhbGciOiJub25lIn0.eyJleHAiOjIwMDAwMDAwMDB9.\n").unwrap();
        let exp = std::time::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        assert_eq!(fetch(&source).await.unwrap().expiry(), Expiry::At(exp));
    }

    #[tokio::test]
    async fn bad_files_give_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");

        let missing = fetch(&FileSource::new(&path)).await.unwrap_err();
        assert!(matches!(
            missing,
            TokenError::Source {
                transient: true,
                cause: Some(_),
                ..
            }
        ));

        std::fs::write(&path, "\n").unwrap();
        let empty = fetch(&FileSource::new(&path)).await.unwrap_err();
        assert!(
            matches!(
                empty,
                TokenError::Source {
                    transient: true,
                    ..
                }
            ),
            "{empty:?}"
        );

        std::fs::write(&path, "two words").unwrap();
        assert!(matches!(
            fetch(&FileSource::new(&path)).await,
            Err(TokenError::InvalidTokenValue)
        ));

        std::fs::write(&path, b"\xff\xfe").unwrap();
        assert!(matches!(
            fetch(&FileSource::new(&path)).await,
            Err(TokenError::InvalidTokenValue)
        ));

        std::fs::write(&path, "x".repeat(MAX_FILE_LEN as usize + 1)).unwrap();
        let big = fetch(&FileSource::new(&path)).await.unwrap_err();
        assert!(
            matches!(
                big,
                TokenError::Source {
                    transient: false,
                    ..
                }
            ),
            "{big:?}"
        );
    }

    #[tokio::test]
    async fn secrets_stay_out_of_debug_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "hunter2-token with-a-space").unwrap();
        let source = FileSource::new(&path);
        let err = fetch(&source).await.unwrap_err();
        let shown = format!("{source:?} {err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
