//! Finds or starts the PostgreSQL and Redis servers that scenario runs, tests and benchmarks use.
//!
//! The order, for each service, is: the URL in the environment (`TAPESCHED_DATABASE_URL`,
//! `TAPESCHED_REDIS_URL`); else a server answering on the standard local port; else an
//! ephemeral server started from the local binaries (`redis-server`; `initdb`/`pg_ctl`) in a
//! temporary folder, stopped when the process exits; else, built with the `docker` feature and
//! where a Docker daemon answers, a container started with testcontainers; else a clear message
//! saying what to install (and, where a Docker daemon answers, how to point the variables at a
//! container).
//!
//! [`RedisServer`] and [`PostgresServer`] are also used directly by tests that need a server of
//! their own (restarts). Servers started as fallbacks live until [`stop_started`] (the command
//! line calls it before exiting) or the end of the process.

#![warn(missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// Environment variable naming the PostgreSQL server.
pub const DATABASE_URL_VAR: &str = "TAPESCHED_DATABASE_URL";
/// Environment variable naming the Redis server.
pub const REDIS_URL_VAR: &str = "TAPESCHED_REDIS_URL";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique to this process and call, usable as a schema name or key prefix
/// (`prefix_<pid>_<n>_<random>`: lowercase letters, digits and underscores).
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let salt = std::collections::hash_map::RandomState::new();
    let random = std::hash::BuildHasher::hash_one(&salt, n) & 0xffff_ffff;
    format!("{prefix}_{}_{n}_{random:08x}", std::process::id())
}

fn port_answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

fn redis_answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

fn docker_hint() -> &'static str {
    if Path::new("/var/run/docker.sock").exists() {
        " A Docker daemon socket exists: you can also run a container \
         (e.g. `docker run -d -p 6379:6379 redis:7` / `docker run -d -e POSTGRES_HOST_AUTH_METHOD=trust -p 5432:5432 postgres:15`) \
         and set the variable to it."
    } else {
        ""
    }
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A Redis server of our own, in a temporary folder, stopped on drop.
pub struct RedisServer {
    /// Its port.
    pub port: u16,
    dir: tempfile::TempDir,
    durable: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` on a free port. With `durable`, with the settings an operator must
    /// use (`appendonly yes`, `appendfsync always`), so a restart keeps every acknowledged write.
    pub fn start(durable: bool) -> Result<RedisServer> {
        let dir = tempfile::tempdir().context("cannot create a folder for redis-server")?;
        let mut server = RedisServer { port: free_port()?, dir, durable, child: None };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<()> {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        cmd.arg("--dir").arg(self.dir.path());
        if self.durable {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::null()).stdin(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| {
            anyhow!("cannot start redis-server ({e}): install it (Debian: apt-get install redis-server) or set {REDIS_URL_VAR}")
        })?;
        // Wait for the server to say it is ready (no polling, no sleeping).
        let stdout = child.stdout.take().context("redis-server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if line.contains("Ready to accept connections") {
                        break;
                    }
                    seen.push(line);
                }
                _ => {
                    let _ = child.kill();
                    bail!("redis-server on port {} exited before it was ready:\n{}", self.port, seen.join("\n"));
                }
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
        Ok(())
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and folder (after [`RedisServer::kill`]).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL cluster of our own, in a temporary folder, stopped on drop.
pub struct PostgresServer {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    opts: String,
}

fn pg_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    dir.join("initdb").exists().then_some(dir)
}

fn run_pg(bin: &Path, as_postgres: bool, tool: &str, args: &[&str]) -> Result<()> {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    };
    let out = cmd.args(args).stdin(Stdio::null()).output().with_context(|| format!("cannot run {tool}"))?;
    if !out.status.success() {
        bail!("{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

impl PostgresServer {
    /// Initialises and starts a throw-away cluster (trust authentication, fsync off) on a free
    /// port. As root, the cluster runs as the `postgres` user (initdb refuses root).
    pub fn start() -> Result<PostgresServer> {
        let bin = pg_bindir().ok_or_else(|| {
            anyhow!(
                "no PostgreSQL server binaries (pg_config --bindir): install them (Debian: apt-get install postgresql) \
                 or set {DATABASE_URL_VAR}"
            )
        })?;
        let as_postgres = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false);
        let dir = std::env::temp_dir().join(unique_name("tapesched_pg"));
        std::fs::create_dir_all(&dir)?;
        if as_postgres {
            let ok = Command::new("chown").arg("postgres:postgres").arg(&dir).status()?.success();
            if !ok {
                bail!("cannot give {} to the postgres user", dir.display());
            }
        }
        let data = dir.join("data");
        let port = free_port()?;
        let data_s = data.to_string_lossy().to_string();
        run_pg(&bin, as_postgres, "initdb", &["-D", &data_s, "--auth=trust", "--no-sync", "-U", "postgres"])?;
        let opts = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", dir.display());
        let server = PostgresServer { port, dir, bin, as_postgres, opts };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&self) -> Result<()> {
        let data = self.dir.join("data").to_string_lossy().to_string();
        let log = self.dir.join("log").to_string_lossy().to_string();
        run_pg(&self.bin, self.as_postgres, "pg_ctl", &["-D", &data, "-l", &log, "-o", &self.opts, "-w", "start"])
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: every backend is killed without a
    /// checkpoint, as a crash would), returning when it is down.
    pub fn kill(&mut self) -> Result<()> {
        let data = self.dir.join("data").to_string_lossy().to_string();
        run_pg(&self.bin, self.as_postgres, "pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
    }

    /// Starts it again on the same port and data (after [`PostgresServer::kill`]); it runs crash
    /// recovery first and answers when it is done.
    pub fn restart(&mut self) -> Result<()> {
        self.spawn()
    }

    /// Its URL (user `postgres`, database `postgres`).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's process ids: the postmaster (first line of `postmaster.pid`) and its
    /// children at the time of the call (the checkpointer, the connections' backends...). The
    /// processes it starts later are its children too.
    pub fn pids(&self) -> Result<Vec<u32>> {
        let file = self.dir.join("data").join("postmaster.pid");
        let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let main: u32 = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("{}: no process id on its first line", file.display()))?;
        let mut pids = vec![main];
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            // `/proc/PID/stat`: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if ppid.and_then(|p| p.parse::<u32>().ok()) == Some(main) {
                pids.push(pid);
            }
        }
        Ok(pids)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

enum Started {
    Redis(#[allow(dead_code)] RedisServer),
    Postgres(#[allow(dead_code)] PostgresServer),
    #[cfg(feature = "docker")]
    Container(#[allow(dead_code)] Box<dyn std::any::Any + Send>),
}

/// Containers through a local Docker daemon (the `docker` feature): the last fallback.
#[cfg(feature = "docker")]
mod docker {
    use anyhow::Result;
    use testcontainers::runners::SyncRunner;
    use testcontainers_modules::{postgres::Postgres, redis::Redis};

    /// A Redis container and its URL.
    pub fn redis() -> Result<(Box<dyn std::any::Any + Send>, String)> {
        let container = Redis::default().start()?;
        let port = container.get_host_port_ipv4(6379)?;
        Ok((Box::new(container), format!("redis://127.0.0.1:{port}")))
    }

    /// A PostgreSQL container and its URL.
    pub fn postgres() -> Result<(Box<dyn std::any::Any + Send>, String)> {
        let container = Postgres::default().start()?;
        let port = container.get_host_port_ipv4(5432)?;
        Ok((Box::new(container), format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres")))
    }
}

/// Starts a container when built with the `docker` feature and a Docker daemon socket exists.
#[allow(unused_variables)]
fn container(redis: bool) -> Option<String> {
    #[cfg(feature = "docker")]
    if Path::new("/var/run/docker.sock").exists() {
        let started = if redis { docker::redis() } else { docker::postgres() };
        match started {
            Ok((handle, url)) => {
                STARTED.lock().unwrap_or_else(|p| p.into_inner()).push(Started::Container(handle));
                return Some(url);
            }
            Err(e) => eprintln!("tapesched-services: could not start a container: {e}"),
        }
    }
    None
}

/// Servers this process started; they live until the process exits.
static STARTED: Mutex<Vec<Started>> = Mutex::new(Vec::new());

/// Stops the servers this process started as fallbacks (ephemeral servers, containers). Statics
/// are not dropped when a process exits, so a program calls this before it returns from `main`;
/// a later [`redis_url`] or [`postgres_url`] still returns the URL of the stopped server.
pub fn stop_started() {
    let started = std::mem::take(&mut *STARTED.lock().unwrap_or_else(|p| p.into_inner()));
    drop(started);
}

/// The Redis server to use (see the module documentation for the order).
pub fn redis_url() -> Result<String> {
    static URL: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var(REDIS_URL_VAR) {
            return Ok(url);
        }
        if redis_answers(6379) {
            return Ok("redis://127.0.0.1:6379".into());
        }
        match RedisServer::start(false) {
            Ok(server) => {
                let url = server.url();
                eprintln!(
                    "note: no Redis server ({REDIS_URL_VAR} unset, nothing on 127.0.0.1:6379): started an ephemeral one at {url}, stopped at exit"
                );
                STARTED.lock().unwrap_or_else(|p| p.into_inner()).push(Started::Redis(server));
                Ok(url)
            }
            Err(e) => container(true).ok_or_else(|| {
                format!(
                    "no Redis server: {REDIS_URL_VAR} is not set, nothing answers on 127.0.0.1:6379, and starting one failed: {e}.{}",
                    docker_hint()
                )
            }),
        }
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// The PostgreSQL server to use (see the module documentation for the order).
pub fn postgres_url() -> Result<String> {
    static URL: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var(DATABASE_URL_VAR) {
            return Ok(url);
        }
        if port_answers(5432) {
            return Ok("postgres://postgres@127.0.0.1:5432/postgres".into());
        }
        match PostgresServer::start() {
            Ok(server) => {
                let url = server.url();
                eprintln!(
                    "note: no PostgreSQL server ({DATABASE_URL_VAR} unset, nothing on 127.0.0.1:5432): started an ephemeral one at {url}, stopped at exit"
                );
                STARTED.lock().unwrap_or_else(|p| p.into_inner()).push(Started::Postgres(server));
                Ok(url)
            }
            Err(e) => container(false).ok_or_else(|| {
                format!(
                    "no PostgreSQL server: {DATABASE_URL_VAR} is not set, nothing answers on 127.0.0.1:5432, and starting one failed: {e}.{}",
                    docker_hint()
                )
            }),
        }
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_unique_and_safe() {
        let a = unique_name("t");
        let b = unique_name("t");
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{a}");
    }

    #[test]
    fn an_own_postgres_cluster_starts_and_stops() {
        let s = PostgresServer::start().expect("a throw-away cluster");
        assert!(port_answers(s.port));
        let port = s.port;
        drop(s);
        assert!(!port_answers(port), "stopped on drop");
    }

    #[test]
    fn an_own_redis_server_survives_a_restart_with_durable_settings() {
        let mut s = RedisServer::start(true).expect("redis-server");
        let send = |port: u16, cmd: &str| -> String {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.write_all(cmd.as_bytes()).unwrap();
            let mut buf = [0u8; 64];
            let n = c.read(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).to_string()
        };
        assert_eq!(send(s.port, "SET k v\r\n"), "+OK\r\n");
        s.restart().unwrap();
        assert_eq!(send(s.port, "GET k\r\n"), "$1\r\nv\r\n");
    }
}
