//! The store's protocol against a real redis-server: leases, fencing,
//! notified waits, encryption at rest, outages, bad input.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bearer_cache::{
    Expiry, FetchContext, Lease, StoredToken, Token, TokenCache, TokenError, TokenKey, TokenSource,
    TokenStore,
};
use bearer_redis::{BuildError, RedisStore, ValueError};
use redis::AsyncCommands;
use support::{RedisServer, redis};

const ACCESS: &str = "access-SECRET-0001";
const REFRESH: &str = "refresh-SECRET-0002";
const HOUR: Duration = Duration::from_secs(3600);

fn stored(access: &str) -> StoredToken {
    let token = Token::bearer(access)
        .with_refresh_token(REFRESH)
        .with_expiry(Expiry::In(HOUR));
    StoredToken::new(&token, SystemTime::now())
}

async fn store(redis: &RedisServer) -> RedisStore {
    RedisStore::builder(redis.url()).build().await.unwrap()
}

async fn keyed_store(redis: &RedisServer, key: [u8; 32]) -> RedisStore {
    RedisStore::builder(redis.url())
        .encryption_key(key)
        .build()
        .await
        .unwrap()
}

fn access_of(t: Option<StoredToken>) -> Option<String> {
    t.map(|t| t.token.access_token().expose_secret().to_owned())
}

/// Script calls the server has run so far (EVALSHA, or EVAL the first time).
async fn script_calls(raw: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(raw)
        .await
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_under_prefixed_hashed_keys() {
    let redis = redis();
    let s = RedisStore::builder(redis.url())
        .prefix("svc-a:")
        .build()
        .await
        .unwrap();
    let cache_key = "scope=orders:read client=my-client";
    assert_eq!(s.load(cache_key).await.unwrap(), None);
    s.save(cache_key, &stored(ACCESS), HOUR, None)
        .await
        .unwrap();
    assert_eq!(
        access_of(s.load(cache_key).await.unwrap()).as_deref(),
        Some(ACCESS)
    );

    let keys: Vec<String> = redis.raw().await.keys("*").await.unwrap();
    assert_eq!(keys, vec![s.redis_key(cache_key)]);
    assert!(keys[0].starts_with("svc-a:token:"));
    assert!(!keys[0].contains("orders") && !keys[0].contains("my-client"));
    // The value expires with the token.
    let ttl: i64 = redis.raw().await.pttl(&keys[0]).await.unwrap();
    assert!(ttl > 0 && ttl <= 3_600_000, "{ttl}");

    // Another prefix is another namespace.
    let other = RedisStore::builder(redis.url())
        .prefix("svc-b:")
        .build()
        .await
        .unwrap();
    assert_eq!(other.load(cache_key).await.unwrap(), None);
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_exclusive_and_only_its_holder_releases_it() {
    let redis = redis();
    let (a, b) = (store(&redis).await, store(&redis).await);
    let lease = a.try_lease("k", HOUR).await.unwrap().expect("free");
    assert_eq!(b.try_lease("k", HOUR).await.unwrap(), None);
    b.release(
        "k",
        &Lease {
            fence: "forged".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        b.try_lease("k", HOUR).await.unwrap(),
        None,
        "a forged release freed it"
    );
    a.release("k", &lease).await.unwrap();
    let again = b.try_lease("k", HOUR).await.unwrap().expect("released");
    assert_ne!(again, lease, "fences are unique");
    assert_eq!((a.stats().leases_granted, b.stats().leases_denied), (1, 2));
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_renewed_by_its_holder_only_while_it_holds_it() {
    let redis = redis();
    let (a, b) = (store(&redis).await, store(&redis).await);
    let lease = a.try_lease("k", HOUR).await.unwrap().unwrap();
    let forged = Lease {
        fence: "forged".into(),
    };
    assert!(!b.renew("k", &forged, HOUR).await.unwrap());
    let name = a.redis_key("k").replace(":token:", ":lease:");
    let mut raw = redis.raw().await;
    let _: () = raw.pexpire(&name, 1_000).await.unwrap();
    assert!(a.renew("k", &lease, HOUR).await.unwrap());
    let ttl: i64 = raw.pttl(&name).await.unwrap();
    assert!(ttl > 1_000, "extended to the new TTL: {ttl}");
    // Lapsed (deleted rather than waited for) and taken by another: lost.
    let _: () = raw.del(&name).await.unwrap();
    let theirs = b.try_lease("k", HOUR).await.unwrap().unwrap();
    assert!(!a.renew("k", &lease, HOUR).await.unwrap());
    assert!(b.renew("k", &theirs, HOUR).await.unwrap());
    assert_eq!((a.stats().leases_renewed, a.stats().leases_lost), (1, 1));
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_with_a_lost_lease_is_refused() {
    let redis = redis();
    let (a, b) = (store(&redis).await, store(&redis).await);
    let stale = a.try_lease("k", HOUR).await.unwrap().unwrap();
    // A's lease runs out while it is stalled (deleted here rather than waited for).
    let _: () = redis
        .raw()
        .await
        .del(a.redis_key("k").replace(":token:", ":lease:"))
        .await
        .unwrap();
    let current = b
        .try_lease("k", HOUR)
        .await
        .unwrap()
        .expect("lease was free");
    b.save("k", &stored("from-b"), HOUR, Some(&current))
        .await
        .unwrap();
    a.save("k", &stored("from-a-stalled"), HOUR, Some(&stale))
        .await
        .unwrap();
    assert_eq!(
        access_of(a.load("k").await.unwrap()).as_deref(),
        Some("from-b")
    );
    assert_eq!(a.stats().fenced_saves_refused, 1);
    assert_eq!(b.stats().saves, 1);
}

/// Counts its fetches; every instance of it shares one source id, so
/// caches using it share store keys.
#[derive(Debug, Default)]
struct Counting(AtomicU64);

#[async_trait::async_trait]
impl TokenSource for Counting {
    fn id(&self) -> &str {
        "counting"
    }
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, TokenError> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Token::bearer(format!("fetched-{n}")).with_expiry(Expiry::In(HOUR)))
    }
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_saved_by_another_cache_is_used_not_fetched_again() {
    let redis = redis();
    let store = store(&redis).await;
    let (source_a, source_b) = (Arc::new(Counting::default()), Arc::new(Counting::default()));
    let a = TokenCache::builder(Arc::clone(&source_a))
        .store(store.clone())
        .build();
    let b = TokenCache::builder(Arc::clone(&source_b))
        .store(store.clone())
        .build();
    let key = TokenKey::new();
    // B fetches and saves first...
    let from_b = b.get(&key).await.unwrap();
    assert_eq!(source_b.0.load(Ordering::SeqCst), 1);
    // ...so A is answered from the store without asking its source.
    let from_a = a.get(&key).await.unwrap();
    assert_eq!(from_a.fingerprint(), from_b.fingerprint());
    assert_eq!(a.stats().store_hits, 1);
    assert_eq!(source_a.0.load(Ordering::SeqCst), 0);
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_is_woken_by_the_save_notification() {
    let redis = redis();
    let (holder, waiter) = (store(&redis).await, store(&redis).await);
    let mut raw = redis.raw().await;
    let _lease = holder.try_lease("k", HOUR).await.unwrap().unwrap();
    assert_eq!(waiter.load("k").await.unwrap(), None);
    let before = script_calls(&mut raw).await;
    let wait = tokio::spawn({
        let waiter = waiter.clone();
        async move { waiter.wait_for_update("k", HOUR).await }
    });
    // Once the waiter has looked (its peek script ran), it can only learn of
    // the save by notification. This waits for an event, not for time.
    while script_calls(&mut raw).await == before {
        tokio::task::yield_now().await;
    }
    // An unfenced save leaves the lease in place: only the message tells.
    holder.save("k", &stored("new"), HOUR, None).await.unwrap();
    let got = wait.await.unwrap().unwrap();
    assert_eq!(access_of(got).as_deref(), Some("new"));
    assert_eq!(waiter.stats().waits_notified, 1);
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_ends_when_an_unclaimed_lease_expires() {
    let redis = redis();
    let (dead, waiter) = (store(&redis).await, store(&redis).await);
    // A holder that took a short lease and died. (Real Redis time: the
    // lease is long enough that a loaded machine still sees it in force.)
    dead.try_lease("k", Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waiter.try_lease("k", HOUR).await.unwrap(), None);
    assert_eq!(waiter.wait_for_update("k", HOUR).await.unwrap(), None);
    assert_eq!(waiter.stats().waits_notified, 0);
    assert!(
        waiter.try_lease("k", HOUR).await.unwrap().is_some(),
        "the lease is free again"
    );
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fetch_release_wakes_waiters_at_once() {
    let redis = redis();
    let (holder, waiter) = (store(&redis).await, store(&redis).await);
    let lease = holder.try_lease("k", HOUR).await.unwrap().unwrap();
    let wait = tokio::spawn({
        let waiter = waiter.clone();
        async move { waiter.wait_for_update("k", HOUR).await }
    });
    holder.release("k", &lease).await.unwrap();
    // Returns although the lease had an hour left and nothing was saved.
    assert_eq!(wait.await.unwrap().unwrap(), None);
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_values_hide_secrets_and_open_only_with_the_right_key() {
    let redis = redis();
    let sealed = keyed_store(&redis, [1; 32]).await;
    assert!(sealed.is_encrypting());
    sealed.save("k", &stored(ACCESS), HOUR, None).await.unwrap();

    let mut raw = redis.raw().await;
    let bytes: Vec<u8> = raw.get(sealed.redis_key("k")).await.unwrap();
    let text = String::from_utf8_lossy(&bytes);
    for secret in [ACCESS, REFRESH, "SECRET"] {
        assert!(!text.contains(secret), "{secret} readable at rest");
    }
    assert_eq!(
        access_of(sealed.load("k").await.unwrap()).as_deref(),
        Some(ACCESS)
    );

    let reason = |r: Result<Option<StoredToken>, bearer_cache::StoreError>| {
        let err = r.expect_err("must not read");
        assert!(!format!("{err} {err:?}").contains("SECRET"));
        ValueError::of(&err).cloned()
    };
    let wrong = keyed_store(&redis, [2; 32]).await;
    assert_eq!(reason(wrong.load("k").await), Some(ValueError::Unauthentic));
    let keyless = store(&redis).await;
    assert_eq!(reason(keyless.load("k").await), Some(ValueError::NoKey));

    // A value copied under another key's name does not open there.
    let _: () = raw.set(sealed.redis_key("other"), bytes).await.unwrap();
    assert_eq!(
        reason(sealed.load("other").await),
        Some(ValueError::Unauthentic)
    );

    // With a key configured, plaintext (e.g. planted by a keyless writer) is refused.
    keyless
        .save("plain", &stored(ACCESS), HOUR, None)
        .await
        .unwrap();
    assert_eq!(
        reason(sealed.load("plain").await),
        Some(ValueError::PlaintextRefused)
    );

    // Rotation: the new sealing key reads values sealed with the old one.
    let rotated = RedisStore::builder(redis.url())
        .encryption_key_with_id(1, [3; 32])
        .decryption_key(0, [1; 32])
        .build()
        .await
        .unwrap();
    assert_eq!(
        access_of(rotated.load("k").await.unwrap()).as_deref(),
        Some(ACCESS)
    );
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_redis_is_an_error_not_a_token() {
    let redis = redis();
    let s = store(&redis).await;
    let _: () = redis
        .raw()
        .await
        .set(s.redis_key("k"), "{not a token")
        .await
        .unwrap();
    let err = s.load("k").await.unwrap_err();
    assert!(err.to_string().contains("undecodable"), "{err}");
    assert!(err.is_unusable_value(), "an answer, not an outage");
    let _: () = redis
        .raw()
        .await
        .set(s.redis_key("k"), &[0xE1u8, 0][..])
        .await
        .unwrap();
    assert!(s.load("k").await.unwrap_err().is_unusable_value());
    redis
        .raw()
        .await
        .del::<_, ()>(s.redis_key("k"))
        .await
        .unwrap();
    assert!(s.load("k").await.unwrap().is_none());
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_while_redis_is_down_and_work_again_when_it_returns() {
    let mut redis = redis();
    let s = store(&redis).await;
    s.save("k", &stored(ACCESS), HOUR, None).await.unwrap();
    redis.stop();
    assert!(s.load("k").await.is_err());
    assert!(s.try_lease("k", HOUR).await.is_err());
    assert!(s.wait_for_update("k", HOUR).await.is_err());
    redis.restart().unwrap();
    // The first call after the restart may still see the broken connection.
    let mut recovered = false;
    for _ in 0..3 {
        if let Ok(None) = s.load("k").await {
            recovered = true; // a fresh server: empty
            break;
        }
    }
    assert!(recovered);
    s.save("k", &stored(ACCESS), HOUR, None).await.unwrap();
    assert_eq!(
        access_of(s.load("k").await.unwrap()).as_deref(),
        Some(ACCESS)
    );
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_built_while_redis_is_down_starts_working_when_it_comes_up() {
    let mut redis = redis();
    redis.stop();
    let s = store(&redis).await;
    assert!(s.load("k").await.is_err());
    redis.restart().unwrap();
    let mut ok = false;
    for _ in 0..3 {
        ok |= s.load("k").await.is_ok();
    }
    assert!(ok);
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test]
async fn bad_configuration_is_a_typed_error() {
    let build = |b: bearer_redis::RedisStoreBuilder| async move { b.build().await.unwrap_err() };
    let url = "redis://127.0.0.1:1/";
    assert!(matches!(
        build(RedisStore::builder("not a url://")).await,
        BuildError::InvalidUrl { .. }
    ));
    let err = build(RedisStore::builder("redis://:hunter2@[::1/")).await;
    assert!(matches!(err, BuildError::InvalidUrl { .. }));
    assert!(!format!("{err} {err:?}").contains("hunter2"));
    assert!(matches!(
        build(RedisStore::builder(url).encryption_key([0; 31])).await,
        BuildError::EncryptionKeyLength { len: 31 }
    ));
    assert!(matches!(
        build(
            RedisStore::builder(url)
                .encryption_key_with_id(4, [0; 32])
                .decryption_key(4, [1; 32])
        )
        .await,
        BuildError::DuplicateKeyId(4)
    ));
    assert!(matches!(
        build(RedisStore::builder(url).decryption_key(1, [0; 32])).await,
        BuildError::DecryptionKeyWithoutEncryptionKey(1)
    ));
    assert!(matches!(
        build(RedisStore::builder(url).prefix("a b:")).await,
        BuildError::InvalidPrefix
    ));
    assert!(matches!(
        build(RedisStore::builder(url).replicas(["redis://:hunter2@[::1/"])).await,
        BuildError::InvalidUrl { .. }
    ));
    assert!(matches!(
        build(RedisStore::cluster_builder(Vec::<String>::new())).await,
        BuildError::NoClusterNodes
    ));
    assert!(matches!(
        build(RedisStore::cluster_builder([url]).replicas([url])).await,
        BuildError::ReplicasOnCluster
    ));
    let err = build(RedisStore::cluster_builder(["redis://:hunter2@[::1/"])).await;
    assert!(matches!(err, BuildError::InvalidUrl { .. }));
    assert!(!format!("{err} {err:?}").contains("hunter2"));
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_and_tracing_never_show_secrets() {
    let redis = redis();
    let logs = support::capture_logs();
    let s = RedisStore::builder(redis.url())
        .encryption_key([9; 32])
        .build()
        .await
        .unwrap();
    let lease = s.try_lease("k", HOUR).await.unwrap().unwrap();
    s.save("k", &stored(ACCESS), HOUR, Some(&lease))
        .await
        .unwrap();
    s.save("k", &stored(ACCESS), HOUR, Some(&lease))
        .await
        .unwrap(); // refused: logged
    let _ = s.load("k").await.unwrap();
    let _ = s.wait_for_update("k", HOUR).await.unwrap();
    let all = format!("{} {s:?}", logs.contents());
    assert!(all.contains("token saved"), "tracing was captured: {all}");
    assert!(!all.contains("SECRET"), "{all}");
    assert!(!all.contains("[9, 9"), "{all}");
}

/// Everything a store can hold that can't be used: the fleet asks its
/// source once, as if the store were empty (the lease still gives one fetch
/// between the instances), no request fails, it is not a store outage, and
/// each instance logs it once per key however often it reads it.
#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_cannot_be_used_are_fetched_over_and_logged_once_per_key() {
    let redis = redis();
    let logs = support::capture_logs();
    let clock = bearer_cache::ManualClock::new();
    let long_ago = bearer_cache::Clock::system_now(&clock) - Duration::from_secs(7200);
    let token = |access: &str| Token::bearer(access).with_expiry(Expiry::In(HOUR));
    let at = |token: Token| StoredToken::new(&token, bearer_cache::Clock::system_now(&clock));
    let other_key = keyed_store(&redis, [2; 32]).await;
    let keyless = store(&redis).await;
    type Plant = Box<dyn Fn(String) -> futures::future::BoxFuture<'static, ()>>;
    let save = |s: &RedisStore, t: StoredToken| -> Plant {
        let s = s.clone();
        Box::new(move |k| {
            let (s, t) = (s.clone(), t.clone());
            Box::pin(async move { s.save(&k, &t, HOUR, None).await.unwrap() })
        })
    };
    let raw = |bytes: &'static [u8]| -> Plant {
        let url = redis.url();
        let keys = keyless.clone();
        Box::new(move |k| {
            let (url, name) = (url.clone(), keys.redis_key(&k));
            Box::pin(async move {
                let mut conn = redis::Client::open(url)
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap();
                let _: () = conn.set(name, bytes).await.unwrap();
            })
        })
    };
    // (what, how it gets there, the fleet's encryption key)
    let cases: Vec<(&str, Plant, Option<[u8; 32]>)> = vec![
        ("undecodable", raw(b"{not a token"), None),
        ("unknown-version", raw(br#"{"v":9}"#), None),
        (
            "sealed-with-another-key",
            save(&other_key, at(token("x"))),
            Some([1; 32]),
        ),
        (
            "plaintext-where-sealed",
            save(&keyless, at(token("x"))),
            Some([1; 32]),
        ),
        (
            "not-bearer",
            save(&keyless, at(token("x").with_token_type("mac"))),
            None,
        ),
        (
            "not-header-safe",
            save(&keyless, at(token("x\r\nX-Evil: 1"))),
            None,
        ),
        (
            "expired-by-our-clock",
            save(&keyless, StoredToken::new(&token("x"), long_ago)),
            None,
        ),
    ];
    for (what, plant, fleet_key) in cases {
        let source = Arc::new(Counting::default());
        let mut fleet = Vec::new();
        for _ in 0..3 {
            let builder = RedisStore::builder(redis.url());
            let builder = match fleet_key {
                Some(k) => builder.encryption_key(k),
                None => builder,
            };
            let cache = TokenCache::builder(Arc::clone(&source))
                .clock(clock.clone())
                .store(builder.build().await.unwrap())
                .store_call_timeout(Duration::from_secs(5))
                .build();
            fleet.push(cache);
        }
        let key = TokenKey::new().scope(format!("case-{what}"));
        let store_key = key.digest("counting");
        for round in 0..2 {
            plant(store_key.clone()).await;
            let answers =
                futures::future::join_all(fleet.iter().map(|c| async { c.get(&key).await })).await;
            assert!(
                answers.iter().all(Result::is_ok),
                "{what}, round {round}: {answers:?}"
            );
            assert_eq!(
                source.0.load(Ordering::SeqCst),
                round + 1,
                "{what}, round {round}: one fetch for the fleet, as if the store were empty"
            );
            clock.advance(HOUR); // every instance needs a token again
        }
        // Which instances read the planted value above depends on who wins
        // the lease; now each reads it alone, so each has met it for sure.
        for cache in &fleet {
            plant(store_key.clone()).await;
            cache.get(&key).await.unwrap();
            clock.advance(HOUR);
        }
        for cache in &fleet {
            assert_eq!(cache.stats().store_errors, 0, "{what}: not a store outage");
        }
        let logged = logs
            .contents()
            .lines()
            .filter(|l| l.contains(&format!("scope=case-{what}")))
            .filter(|l| l.contains("ignoring what the token store holds"))
            .count();
        let expected = if what == "expired-by-our-clock" { 0 } else { 3 };
        assert_eq!(logged, expected, "{what}: once per key and instance");
    }
    assert!(!logs.contents().contains("X-Evil"));
}
