//! Many cache instances on one Redis against the testkit's token endpoint:
//! separate processes, a killed lease holder, a Redis outage, refresh-token
//! rotation, and the first level staying local.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bearer_cache::{
    FetchContext, ManualClock, Token, TokenCache, TokenError, TokenKey, TokenSource, TokenStore,
};
use bearer_redis::RedisStore;
use bearer_testkit::TestServer;
use support::{Grant, HttpSource, cluster, redis, store_builder};

const ROLE: &str = "BEARER_REDIS_MEMBER";
const MEMBERS: usize = 20;

/// Prints a line before every fetch, so a parent process can tell when a
/// member is inside its fetch; with `hold`, then waits for a `CONTINUE`
/// line before sending its request.
#[derive(Debug)]
struct Announcing {
    source: HttpSource,
    hold: bool,
}

#[async_trait::async_trait]
impl TokenSource for Announcing {
    fn id(&self) -> &str {
        self.source.id()
    }
    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, TokenError> {
        println!("MEMBER FETCHING");
        if self.hold {
            let line = tokio::task::spawn_blocking(read_line).await.unwrap();
            assert_eq!(line.trim(), "CONTINUE");
        }
        self.source.fetch(cx).await
    }
}

fn read_line() -> String {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    line
}

fn alice() -> Grant {
    Grant::Password {
        username: "alice".into(),
        password: "wonderland".into(),
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set for members"))
}

fn millis_env(name: &str) -> Duration {
    Duration::from_millis(env(name).parse().unwrap())
}

/// The member role: runs only when a parent test started this binary with
/// `BEARER_REDIS_MEMBER` set. It builds its own store and cache, says
/// READY, waits for GO on stdin, gets one token and reports it.
#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[test]
fn fleet_member() {
    if std::env::var(ROLE).is_err() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = store_builder(&env("MEMBER_REDIS_URL"))
            .build()
            .await
            .unwrap();
        let grant = match env("MEMBER_GRANT").as_str() {
            "password" => alice(),
            _ => Grant::ClientCredentials,
        };
        let source = HttpSource::new(
            env("MEMBER_TOKEN_URL"),
            &env("MEMBER_CLIENT_ID"),
            &env("MEMBER_CLIENT_SECRET"),
            grant,
        );
        let hold = env("MEMBER_HOLD") == "1";
        let cache = TokenCache::builder(Announcing { source, hold })
            .store(store.clone())
            .store_call_timeout(Duration::from_secs(5))
            .store_lease_ttl(millis_env("MEMBER_LEASE_MS"))
            .store_wait_timeout(Duration::from_secs(20))
            .build();
        println!("MEMBER READY");
        let go = tokio::task::spawn_blocking(read_line);
        assert_eq!(go.await.unwrap().trim(), "GO");
        let token = cache.get(&TokenKey::new()).await.unwrap();
        let s = cache.stats();
        println!(
            "MEMBER TOKEN {} FETCHES {} STORE_HITS {}",
            token.fingerprint(),
            s.fetches,
            s.store_hits
        );
    });
}

struct Member {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

/// How a member fetches.
#[derive(Clone, Copy)]
struct Role {
    lease: Duration,
    /// Password grant then refresh tokens (else client credentials).
    password: bool,
    /// Waits for `CONTINUE` once inside its fetch.
    hold: bool,
}

impl Role {
    fn plain(lease: Duration) -> Role {
        Role {
            lease,
            password: false,
            hold: false,
        }
    }
}

impl Member {
    fn spawn(redis_url: &str, server: &TestServer, lease: Duration) -> Member {
        Member::spawn_as(redis_url, server, Role::plain(lease))
    }

    fn spawn_as(redis_url: &str, server: &TestServer, role: Role) -> Member {
        let grant = if role.password {
            "password"
        } else {
            "client_credentials"
        };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "fleet_member", "--nocapture", "--test-threads=1"])
            .env(ROLE, "1")
            .env("MEMBER_REDIS_URL", redis_url)
            .env("MEMBER_TOKEN_URL", server.token_url().as_str())
            .env("MEMBER_CLIENT_ID", server.client_id())
            .env("MEMBER_CLIENT_SECRET", server.client_secret())
            .env("MEMBER_LEASE_MS", role.lease.as_millis().to_string())
            .env("MEMBER_GRANT", grant)
            .env("MEMBER_HOLD", if role.hold { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Member { child, lines }
    }

    /// The next line the member reports (other test-harness output skipped).
    fn next(&mut self) -> String {
        self.lines
            .by_ref()
            .map_while(Result::ok)
            // libtest may print its own words first on the same line.
            .find_map(|l| l.split_once("MEMBER ").map(|(_, rest)| rest.to_owned()))
            .expect("member exited early")
    }

    fn go(&mut self) {
        self.say("GO");
    }

    fn say(&mut self, line: &str) {
        writeln!(self.child.stdin.as_mut().unwrap(), "{line}").unwrap();
    }

    /// Sends `signal` (`STOP`, `CONT`) to the member and returns once the
    /// kernel reports it stopped (or continued): `waitpid` blocks until the
    /// child's state changes, so nothing is polled.
    fn signal(&mut self, signal: &str) {
        use rustix::process::{Pid, Signal, WaitOptions, kill_process, waitpid};
        let pid = Pid::from_raw(self.child.id() as i32).expect("a child's pid is positive");
        let (signal, wanted) = match signal {
            "STOP" => (Signal::STOP, WaitOptions::UNTRACED),
            "CONT" => (Signal::CONT, WaitOptions::CONTINUED),
            other => panic!("no such signal in this test: {other}"),
        };
        kill_process(pid, signal).expect("signal the member");
        let (_, status) = waitpid(Some(pid), wanted)
            .expect("waitpid on the member")
            .expect("waitpid without WNOHANG reports a state");
        let reached = if signal == Signal::STOP {
            status.stopped()
        } else {
            status.continued()
        };
        assert!(reached, "the member did not change state: {status:?}");
    }

    /// The member's final report: its token's fingerprint, its fetches and
    /// store hits.
    fn report(&mut self) -> (String, u64, u64) {
        let line = loop {
            if let Some(report) = self.next().strip_prefix("TOKEN ").map(str::to_owned) {
                break report;
            }
        };
        let words: Vec<&str> = line.split(' ').collect();
        (
            words[0].to_owned(),
            words[2].parse().unwrap(),
            words[4].parse().unwrap(),
        )
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs blocking member I/O off the async runtime (the testkit serves on it).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_processes_asking_at_once_cause_one_token_request() {
    let redis = redis();
    twenty_processes_at_once(redis.url()).await;
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_twenty_processes_asking_at_once_cause_one_token_request() {
    let cluster = cluster();
    twenty_processes_at_once(cluster.urls().join(",")).await;
}

async fn twenty_processes_at_once(url: String) {
    let server = TestServer::start().await;
    let token_server = Arc::new(server);
    let server = Arc::clone(&token_server);
    let reports = blocking(move || {
        let mut members: Vec<Member> = (0..MEMBERS)
            .map(|_| Member::spawn(&url, &server, Duration::from_secs(10)))
            .collect();
        for m in &mut members {
            assert_eq!(m.next(), "READY");
        }
        for m in &mut members {
            m.go();
        }
        members.iter_mut().map(Member::report).collect::<Vec<_>>()
    })
    .await;

    assert_eq!(reports.len(), MEMBERS);
    let tokens: BTreeSet<&str> = reports.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        tokens.len(),
        1,
        "every process uses the same token: {reports:?}"
    );
    let fetches: u64 = reports.iter().map(|r| r.1).sum();
    assert_eq!(fetches, 1, "{reports:?}");
    let counters = token_server.control().counters();
    assert_eq!(counters.token_requests, 1, "{counters:?}");
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_holder_killed_mid_fetch_is_replaced_after_its_lease() {
    let redis = redis();
    let server = Arc::new(
        TestServer::builder()
            .token_latency(Duration::from_secs(600))
            .start()
            .await,
    );
    // Real Redis time: the holder renewed it while alive; once killed, it
    // lapses after this long (long enough for a loaded machine to see it in force).
    let lease = Duration::from_secs(2);
    let (url, srv) = (redis.url(), Arc::clone(&server));
    let holder = blocking(move || {
        let mut holder = Member::spawn(&url, &srv, lease);
        assert_eq!(holder.next(), "READY");
        holder.go();
        assert_eq!(holder.next(), "FETCHING"); // it holds the lease now
        holder
    })
    .await;
    drop(holder); // SIGKILL mid-fetch
    server.control().set_token_latency(Duration::ZERO);

    let store = RedisStore::builder(redis.url()).build().await.unwrap();
    let cache = TokenCache::builder(HttpSource::new(
        server.token_url().as_str(),
        server.client_id(),
        server.client_secret(),
        Grant::ClientCredentials,
    ))
    .store(store.clone())
    .store_call_timeout(Duration::from_secs(5))
    .store_wait_timeout(Duration::from_secs(30))
    .build();
    let token = cache
        .get(&TokenKey::new())
        .await
        .expect("a survivor completes the fetch");
    assert_eq!(
        store.stats().leases_denied,
        1,
        "the dead holder's lease was in force"
    );
    assert_eq!(cache.stats().fetches, 1);
    // What the survivor fetched is now the fleet's token.
    let shared = store
        .load(&TokenKey::new().digest(cache.source_id()))
        .await
        .unwrap();
    assert_eq!(
        shared.map(|s| s.token.access_token().fingerprint()),
        Some(token.fingerprint())
    );
}

/// `n` instances in this process, each with its own store (own connections)
/// and a clock shared with the token server.
async fn instances(
    n: usize,
    redis_url: &str,
    server: &TestServer,
    clock: &ManualClock,
    grant: Grant,
) -> Vec<(TokenCache, RedisStore)> {
    leased_instances(n, redis_url, server, clock, grant, Duration::from_secs(10)).await
}

/// [`instances`] with fetch leases of `lease`.
async fn leased_instances(
    n: usize,
    redis_url: &str,
    server: &TestServer,
    clock: &ManualClock,
    grant: Grant,
    lease: Duration,
) -> Vec<(TokenCache, RedisStore)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let store = store_builder(redis_url).build().await.unwrap();
        let source = HttpSource::new(
            server.token_url().as_str(),
            server.client_id(),
            server.client_secret(),
            grant.clone(),
        );
        let cache = TokenCache::builder(source)
            .clock(clock.clone())
            .store(store.clone())
            .store_call_timeout(Duration::from_secs(5))
            .store_lease_ttl(lease)
            .store_wait_timeout(Duration::from_secs(20))
            .build();
        out.push((cache, store));
    }
    out
}

/// Every instance asks `per_instance` times at once; returns the tokens'
/// fingerprints and the number of failed requests.
async fn round(
    fleet: &[(TokenCache, RedisStore)],
    per_instance: usize,
) -> (BTreeSet<String>, usize) {
    let calls = fleet.iter().flat_map(|(cache, _)| {
        (0..per_instance).map(move |_| async move { cache.get(&TokenKey::new()).await })
    });
    let results = futures::future::join_all(calls).await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    let tokens = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|t| t.fingerprint().to_string())
        .collect();
    (tokens, failed)
}

const LIFETIME: Duration = Duration::from_secs(60);

/// A token server on `clock` issuing tokens of [`LIFETIME`], rotating
/// refresh tokens if `rotate`.
async fn clocked_server(clock: &ManualClock, rotate: bool) -> TestServer {
    TestServer::builder()
        .clock(clock.clone())
        .token_lifetime(LIFETIME)
        .rotate_refresh_tokens(rotate)
        .start()
        .await
}

/// Keeps every instance of `fleet` asking until the returned flag is set;
/// the task's answer is the number of failed requests.
fn under_load(
    fleet: &Arc<Vec<(TokenCache, RedisStore)>>,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<usize>,
) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn({
        let (fleet, stop) = (Arc::clone(fleet), Arc::clone(&stop));
        async move {
            let mut failed = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                failed += round(&fleet, 5).await.1;
                tokio::task::yield_now().await;
            }
            failed
        }
    });
    (stop, load)
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_down_fails_no_request_and_sharing_resumes_when_it_returns() {
    let mut redis = redis();
    let clock = ManualClock::new();
    let server = clocked_server(&clock, false).await;
    let fleet = instances(5, &redis.url(), &server, &clock, Grant::ClientCredentials).await;
    let issued = || server.control().counters().issued.client_credentials;

    let (tokens, failed) = round(&fleet, 10).await;
    assert_eq!((tokens.len(), failed, issued()), (1, 0, 1));

    redis.stop();
    clock.advance(LIFETIME + Duration::from_secs(1));
    let (_, failed) = round(&fleet, 10).await;
    assert_eq!(failed, 0, "no request fails because of Redis");
    // Each instance fell back to one fetch of its own.
    assert_eq!(issued(), 1 + 5);
    assert!(fleet.iter().all(|(c, _)| c.stats().store_errors > 0));

    redis.restart().unwrap();
    clock.advance(LIFETIME + Duration::from_secs(1));
    let (_, failed) = round(&fleet, 10).await; // reconnects; may still fetch locally
    assert_eq!(failed, 0);
    let before = issued();
    clock.advance(LIFETIME + Duration::from_secs(1));
    let (tokens, failed) = round(&fleet, 10).await;
    assert_eq!(failed, 0);
    assert_eq!(tokens.len(), 1, "the fleet shares one token again");
    assert_eq!(issued(), before + 1);
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_refresh_tokens_are_each_used_once_across_instances() {
    let redis = redis();
    rotation_across_instances(&redis.url()).await;
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_rotated_refresh_tokens_are_each_used_once_across_instances() {
    let cluster = cluster();
    rotation_across_instances(&cluster.urls().join(",")).await;
}

async fn rotation_across_instances(url: &str) {
    let clock = ManualClock::new();
    let server = clocked_server(&clock, true).await;
    let fleet = instances(8, url, &server, &clock, alice()).await;

    let mut seen = BTreeSet::new();
    for generation in 0..5 {
        let (tokens, failed) = round(&fleet, 3).await;
        assert_eq!(failed, 0, "generation {generation}");
        assert_eq!(
            tokens.len(),
            1,
            "generation {generation}: one token fleet-wide"
        );
        assert!(
            seen.insert(tokens.into_iter().next().unwrap()),
            "a new token each generation"
        );
        clock.advance(LIFETIME + Duration::from_secs(1));
    }
    let counters = server.control().counters();
    assert_eq!(counters.issued.password, 1, "{counters:?}");
    assert_eq!(counters.issued.refresh_token, 4, "{counters:?}");
    assert_eq!(counters.token_errors, 0, "no invalid_grant: {counters:?}");
    assert_eq!(counters.token_requests, 5, "{counters:?}");
    // Waiters heard of each save (on a cluster: from whichever node their
    // subscription is on), rather than sitting out the 10 s lease.
    let notified: u64 = fleet.iter().map(|(_, s)| s.stats().waits_notified).sum();
    assert!(notified > 0, "no wait ended by a notification");
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_token_costs_no_redis_round_trip() {
    let redis = redis();
    let clock = ManualClock::new();
    let server = clocked_server(&clock, false).await;
    let fleet = instances(2, &redis.url(), &server, &clock, Grant::ClientCredentials).await;
    round(&fleet, 1).await;
    let store_commands: Vec<u64> = fleet.iter().map(|(_, s)| s.stats().commands).collect();
    let mut conn = redis.raw().await;
    let before = support::RedisServer::commands_processed(&mut conn).await;
    let (tokens, failed) = round(&fleet, 1000).await;
    let after = support::RedisServer::commands_processed(&mut conn).await;
    assert_eq!((tokens.len(), failed), (1, 0));
    // Only the first INFO itself ran in between: 2000 requests, no Redis.
    assert_eq!(after - before, 1);
    let now: Vec<u64> = fleet.iter().map(|(_, s)| s.stats().commands).collect();
    assert_eq!(now, store_commands);
}

/// The measurement: a 400 ms lease, a 1.2 s token endpoint and
/// rotating refresh tokens. The holder renews its lease while it waits, so
/// no other instance takes over: one refresh, one token, no refresh token
/// presented twice.
#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_holder_slower_than_its_lease_keeps_it_and_spends_the_refresh_token_once() {
    let redis = redis();
    slow_live_holder(&redis.url()).await;
}

#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_live_holder_slower_than_its_lease_keeps_it() {
    let cluster = cluster();
    slow_live_holder(&cluster.urls().join(",")).await;
}

async fn slow_live_holder(url: &str) {
    let clock = ManualClock::new();
    let server = clocked_server(&clock, true).await;
    let lease = Duration::from_millis(400);
    let fleet = leased_instances(6, url, &server, &clock, alice(), lease).await;
    let (tokens, failed) = round(&fleet, 2).await;
    assert_eq!((tokens.len(), failed), (1, 0));

    clock.advance(LIFETIME + Duration::from_secs(1));
    server
        .control()
        .set_token_latency(Duration::from_millis(1200));
    let (tokens, failed) = round(&fleet, 2).await;
    assert_eq!(failed, 0);
    assert_eq!(tokens.len(), 1, "one token fleet-wide: {tokens:?}");
    let counters = server.control().counters();
    assert_eq!(
        counters.token_errors, 0,
        "no refresh token reused: {counters:?}"
    );
    assert_eq!(counters.issued.refresh_token, 1, "{counters:?}");
    let renewed: u64 = fleet.iter().map(|(_, s)| s.stats().leases_renewed).sum();
    assert!(renewed >= 2, "the holder renewed its lease ({renewed})");
}

/// A holder paused (SIGSTOP) inside its fetch, before its request left,
/// and resumed (SIGCONT) after its lease ran out and another instance
/// fetched: it learns it lost the lease before its fetch takes another
/// step, drops it, and uses the fleet's token. Its refresh token is spent
/// once; Redis keeps the successor's token.
#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_holder_resumed_after_its_lease_never_spends_the_refresh_token_again() {
    let redis = redis();
    let server = Arc::new(
        TestServer::builder()
            .token_lifetime(LIFETIME)
            .rotate_refresh_tokens(true)
            .start()
            .await,
    );
    let source = || {
        HttpSource::new(
            server.token_url().as_str(),
            server.client_id(),
            server.client_secret(),
            alice(),
        )
    };
    // The fleet's token has expired; its refresh token is in Redis.
    let store = RedisStore::builder(redis.url()).build().await.unwrap();
    let key = TokenKey::new().digest(server.client_id());
    let first = TokenCache::builder(source())
        .build()
        .get(&TokenKey::new())
        .await
        .unwrap();
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    let expired = bearer_cache::StoredToken::new(first.token(), long_ago);
    store
        .save(&key, &expired, Duration::from_secs(3600), None)
        .await
        .unwrap();

    let role = Role {
        lease: Duration::from_secs(1),
        password: true,
        hold: true,
    };
    let (url, srv) = (redis.url(), Arc::clone(&server));
    let holder = blocking(move || {
        let mut holder = Member::spawn_as(&url, &srv, role);
        assert_eq!(holder.next(), "READY");
        holder.go();
        assert_eq!(holder.next(), "FETCHING"); // holds the lease, request not sent
        holder.signal("STOP");
        holder.say("CONTINUE"); // read once it runs again
        holder
    })
    .await;

    let successor = TokenCache::builder(source())
        .store(store.clone())
        .store_call_timeout(Duration::from_secs(5))
        .store_lease_ttl(Duration::from_secs(1))
        .store_wait_timeout(Duration::from_secs(20))
        .build();
    let theirs = successor.get(&TokenKey::new()).await.unwrap();

    let (fingerprint, _, store_hits) = blocking(move || {
        let mut holder = holder;
        holder.signal("CONT");
        holder.report()
    })
    .await;
    assert_eq!(fingerprint, theirs.fingerprint().to_string());
    assert_eq!(store_hits, 1, "the resumed holder took the fleet's token");
    let counters = server.control().counters();
    assert_eq!(
        counters.token_errors, 0,
        "no refresh token reused: {counters:?}"
    );
    assert_eq!(counters.issued.refresh_token, 1, "{counters:?}");
    let kept = store.load(&key).await.unwrap().unwrap();
    assert_eq!(
        kept.token.access_token().fingerprint(),
        theirs.fingerprint()
    );
}

/// A cluster primary (the one serving the fleet's key) is killed while the
/// fleet is under load and needs new tokens; its replica is promoted. No
/// request fails at any point, and once the cluster is whole the fleet
/// shares one token again.
#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_primary_killed_mid_run_fails_no_request_and_sharing_resumes() {
    let mut cluster = cluster();
    let clock = ManualClock::new();
    let server = clocked_server(&clock, false).await;
    let url = cluster.urls().join(",");
    let fleet = Arc::new(instances(5, &url, &server, &clock, Grant::ClientCredentials).await);
    let issued = || server.control().counters().issued.client_credentials;
    let (tokens, failed) = round(&fleet, 10).await;
    assert_eq!((tokens.len(), failed, issued()), (1, 0, 1));

    // Load never stops while the primary dies and its replica takes over.
    let (stop, load) = under_load(&fleet);
    let name = fleet[0]
        .1
        .redis_key(&TokenKey::new().digest(server.client_id()));
    let dead = cluster.kill_primary_of(&name);
    clock.advance(LIFETIME + Duration::from_secs(1)); // new tokens needed now
    let promoted = tokio::task::block_in_place(|| cluster.await_failover(&name, dead)).unwrap();
    assert_ne!(promoted, dead);
    clock.advance(LIFETIME + Duration::from_secs(1));
    let (_, failed) = round(&fleet, 10).await; // the clients learn the new slot map
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let failed_under_load = load.await.unwrap();
    let store_errors: u64 = fleet.iter().map(|(c, _)| c.stats().store_errors).sum();
    assert!(store_errors > 0, "the fleet met the dead primary");
    assert_eq!(
        (failed, failed_under_load),
        (0, 0),
        "no request fails because of the failover"
    );

    clock.advance(LIFETIME + Duration::from_secs(1));
    let before = issued();
    let (tokens, failed) = round(&fleet, 10).await;
    assert_eq!(failed, 0);
    assert_eq!(tokens.len(), 1, "the fleet shares one token again");
    assert_eq!(issued(), before + 1);
}

/// A single primary dies under load; an operator promotes its replica
/// (`REPLICAOF NO ONE`). No request fails at any point; the stores find
/// the promoted node by themselves and the fleet shares one token again.
#[cfg_attr(
    not(has_redis),
    ignore = "needs redis-server and redis-cli on PATH (apt install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_promoted_after_the_primary_dies_fails_no_request_and_sharing_resumes() {
    let mut primary = redis();
    let mut replica =
        tokio::task::block_in_place(|| support::RedisServer::start_replica_of(&primary)).unwrap();
    let clock = ManualClock::new();
    let server = clocked_server(&clock, false).await;
    let target = format!("{}|{}", primary.url(), replica.url());
    let fleet = Arc::new(instances(5, &target, &server, &clock, Grant::ClientCredentials).await);
    let issued = || server.control().counters().issued.client_credentials;
    let (tokens, failed) = round(&fleet, 10).await;
    assert_eq!((tokens.len(), failed, issued()), (1, 0, 1));

    let (stop, load) = under_load(&fleet);
    primary.stop();
    clock.advance(LIFETIME + Duration::from_secs(1)); // new tokens needed now
    let (_, failed_before_promotion) = round(&fleet, 10).await;
    replica.promote();
    let mut lifetimes_until_shared = 0;
    loop {
        clock.advance(LIFETIME + Duration::from_secs(1));
        let before = issued();
        let (tokens, failed) = round(&fleet, 10).await;
        assert_eq!(failed, 0);
        if tokens.len() == 1 && issued() == before + 1 {
            break;
        }
        lifetimes_until_shared += 1;
        assert!(lifetimes_until_shared < 10, "the fleet never shared again");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!((failed_before_promotion, load.await.unwrap()), (0, 0));
    let store_errors: u64 = fleet.iter().map(|(c, _)| c.stats().store_errors).sum();
    assert!(store_errors > 0, "the fleet met the dead primary");
}
