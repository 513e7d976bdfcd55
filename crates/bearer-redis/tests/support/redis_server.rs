//! A throw-away `redis-server` on a free loopback port, killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// The primary's port, for a replica.
    replica_of: Option<u16>,
}

impl RedisServer {
    pub fn start() -> Result<Self, String> {
        RedisServer::start_on_a_free_port(None)
    }

    /// A server on a free port (a replica of the server on `replica_of`,
    /// if given), tried again on another port if it loses its port.
    fn start_on_a_free_port(replica_of: Option<u16>) -> Result<Self, String> {
        on_free_ports(|| {
            let mut server = RedisServer {
                port: free_port()?,
                child: None,
                replica_of,
            };
            server.restart()?;
            Ok(server)
        })
    }

    /// A replica of `primary`, returned once it has synced with it.
    pub fn start_replica_of(primary: &RedisServer) -> Result<Self, String> {
        let replica = RedisServer::start_on_a_free_port(Some(primary.port))?;
        // One write on the primary, then WAIT on the same connection: the
        // primary answers once the replica has acknowledged that write, so the
        // link is up and in sync without asking again and again.
        let acked = primary.cli_script("SET bearer-redis-test:sync 1\nWAIT 1 30000\n");
        if acked.lines().last().map(str::trim) != Some("1") {
            return Err(format!(
                "the replica did not sync with its primary: {acked}"
            ));
        }
        Ok(replica)
    }

    /// Makes this replica a primary, as an operator would (`REPLICAOF NO ONE`).
    pub fn promote(&mut self) {
        let out = self.cli(&["replicaof", "no", "one"]);
        assert!(out.contains("OK"), "REPLICAOF NO ONE: {out}");
        self.replica_of = None;
    }

    fn info(&self, section: &str) -> String {
        self.cli(&["info", section])
    }

    fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Runs `script` (one command a line) on a single connection.
    fn cli_script(&self, script: &str) -> String {
        let mut child = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run redis-cli");
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(script.as_bytes())
            .expect("write to redis-cli");
        child
            .wait_with_output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server (again, on the same port) and returns once it
    /// accepts connections: it says so on stdout, so no polling is needed.
    pub fn restart(&mut self) -> Result<(), String> {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            // Replication writes a snapshot even without `save`: keep it
            // out of the source tree, one file per server.
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .args(["--dbfilename", &self.snapshot_name()])
            .args(self.replica_of.iter().flat_map(|p| {
                [
                    "--replicaof".to_owned(),
                    "127.0.0.1".to_owned(),
                    p.to_string(),
                ]
            }));
        let child = spawn_ready(command)?;
        self.child = Some(child);
        Ok(())
    }

    fn snapshot_name(&self) -> String {
        format!("bearer-redis-test-{}-{}.rdb", std::process::id(), self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A plain connection, for looking behind the store's back.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Commands the server has processed so far (read over `conn`).
    pub async fn commands_processed(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(conn)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("INFO stats has total_commands_processed")
    }
}

/// A loopback port free when asked.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// How many times [`on_free_ports`] tries.
const START_ATTEMPTS: usize = 5;

/// Runs `start` (which picks ports with [`free_port`] and starts a server
/// on them) until it succeeds, a few times at most: a port found free is
/// let go before `redis-server` binds it, and another test running at the
/// same time may take it in between, which makes the server exit at once.
pub fn on_free_ports<T>(mut start: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let mut failed = String::new();
    for _ in 0..START_ATTEMPTS {
        match start() {
            Ok(started) => return Ok(started),
            Err(why) => failed = why,
        }
    }
    Err(format!(
        "{failed} ({START_ATTEMPTS} tries, each on new ports)"
    ))
}

/// Runs `command` (a `redis-server`) and returns once it accepts
/// connections: it says so on stdout, so no polling is needed.
pub fn spawn_ready(command: Command) -> Result<Child, String> {
    spawn_ready_with(command, |_| {})
}

/// [`spawn_ready`], handing every later line of the server's log to
/// `on_line`: a server's own events (a sync, a failover) are announced
/// there, so tests wait on them rather than on a timer.
pub fn spawn_ready_with(
    mut command: Command,
    mut on_line: impl FnMut(&str) + Send + 'static,
) -> Result<Child, String> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run redis-server: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("Ready to accept connections"));
    if !ready {
        let _ = child.kill();
        let _ = child.wait();
        return Err("redis-server exited before it was ready".into());
    }
    // Keep draining so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| on_line(&l)));
    Ok(child)
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(std::env::temp_dir().join(self.snapshot_name()));
    }
}
