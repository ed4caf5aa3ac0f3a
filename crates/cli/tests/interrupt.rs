//! What a scenario run leaves on its servers when it is stopped: SIGINT (Ctrl-C) or SIGTERM
//! during `tapesched scenario run` removes the run's Postgres schema or Redis keys (exit 130);
//! the namespace of a run killed outright (SIGKILL) is removed by `tapesched db gc-runs`, which
//! leaves live runs alone. Real processes on the CI machine's servers; each test waits for the
//! run's namespace to appear (the run logs it) instead of sleeping.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tapesched_backends::namespaces::{clear_redis, mark_postgres_as, mark_redis_as, Owner};

/// A scenario long enough never to end before the test stops it: `steps` archive requests.
fn long_scenario(test: &str, steps: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tapesched-interrupt-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut text = String::from(
        "version: 1
name: long
catalogue:
  disk_instances: [eos]
  virtual_organizations: [{name: vo, read_max_drives: 1, write_max_drives: 1}]
  logical_libraries: [{name: lib}]
  tape_pools: [{name: pool, vo: vo}]
  storage_classes: [{name: sc, nb_copies: 1, vo: vo}]
  archive_routes: [{storage_class: sc, copy_nb: 1, tape_pool: pool}]
  mount_policies:
    - {name: mp, archive_priority: 1, archive_min_request_age: 0, retrieve_priority: 1, retrieve_min_request_age: 0}
  mount_rules: [{kind: requester, disk_instance: eos, name: default, mount_policy: mp}]
steps:
",
    );
    for id in 1..=steps {
        text.push_str(&format!(
            "  - {{op: queue_archive, archive_file_id: {id}, requester: {{name: a, group: g}}, storage_class: sc, size: 10}}\n"
        ));
    }
    let file = dir.join("long.yaml");
    std::fs::write(&file, text).expect("write");
    file
}

/// A `scenario run` of `file` on `backend`, its stderr followed line by line.
struct Run {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Run {
    fn start(file: &Path, backend: &str) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tapesched"))
            .args(["scenario", "run", &file.to_string_lossy(), "--backend", backend])
            .env("TAPESCHED_DATABASE_URL", tapesched_testkit::postgres_url().expect("a PostgreSQL server"))
            .env("TAPESCHED_REDIS_URL", tapesched_testkit::redis_url().expect("a Redis server"))
            .env("RUST_LOG", "tapesched_backends=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("tapesched runs");
        let (tx, stderr) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Run { child, stderr }
    }

    /// The namespace the run opened, once it says so (a generous guard, no sleep).
    fn namespace(&self) -> String {
        loop {
            let line = self.stderr.recv_timeout(Duration::from_secs(300)).expect("the run opens its namespace");
            if let Some(rest) = line.split("namespace=").nth(1).filter(|_| line.contains("opened a run namespace")) {
                return rest.split_whitespace().next().expect("a name").trim_matches('"').to_string();
            }
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().expect("kill runs").success());
    }

    /// Waits for the exit; the rest of stderr.
    fn wait(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().expect("the run exits");
        let rest: Vec<String> = self.stderr.iter().collect();
        (status.code(), rest.join("\n"))
    }
}

async fn schema_exists(schema: &str) -> bool {
    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let found = tapesched_postgres::schemas_with_prefix(&url, schema).await.expect("schemas listed");
    found.iter().any(|(name, _)| name == schema)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_a_postgres_run_removes_its_schema() {
    let file = long_scenario("pg-int", 20_000);
    let run = Run::start(&file, "postgres");
    let schema = run.namespace();
    assert!(schema_exists(&schema).await, "the run works in {schema}");
    run.signal("-INT");
    let (code, stderr) = run.wait();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    assert!(!schema_exists(&schema).await, "{schema} left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_redis_run_removes_its_keys() {
    let file = long_scenario("redis-term", 20_000);
    let run = Run::start(&file, "objectstore-redis");
    let prefix = run.namespace();
    run.signal("-TERM");
    let (code, stderr) = run.wait();
    assert_eq!(code, Some(130), "{stderr}");
    let url = tapesched_testkit::redis_url().expect("a Redis server");
    assert_eq!(clear_redis(&url, &prefix).await.expect("redis answers"), 0, "keys of {prefix} left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_runs_removes_what_killed_runs_left_and_keeps_live_runs() {
    let (pg, redis) = (
        tapesched_testkit::postgres_url().expect("a PostgreSQL server"),
        tapesched_testkit::redis_url().expect("a Redis server"),
    );
    // A run killed outright leaves its schema.
    let file = long_scenario("pg-kill", 20_000);
    let run = Run::start(&file, "postgres");
    let killed = run.namespace();
    run.signal("-KILL");
    let (code, _) = run.wait();
    assert_eq!(code, None, "killed by a signal");
    assert!(schema_exists(&killed).await, "a SIGKILLed run cannot clean up");
    // A Redis prefix of a process that is gone, and namespaces of this live process.
    let mut gone = Command::new("true").spawn().expect("true runs");
    gone.wait().expect("true exits");
    let dead = Owner { pid: gone.id(), started: Some(1), ..Owner::current() };
    let dead_prefix = format!("{}:", tapesched_testkit::unique_name("tapesched_run"));
    mark_redis_as(&redis, &dead_prefix, &dead).await.expect("marked");
    let live_schema = tapesched_testkit::unique_name("tapesched_run");
    mark_postgres_as(&pg, &live_schema, &Owner::current()).await.expect("marked");
    let live_prefix = format!("{}:", tapesched_testkit::unique_name("tapesched_run"));
    mark_redis_as(&redis, &live_prefix, &Owner::current()).await.expect("marked");

    let out = Command::new(env!("CARGO_BIN_EXE_tapesched"))
        .args(["db", "gc-runs", "--database-url", &pg, "--redis-url", &redis])
        .output()
        .expect("tapesched runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("removed postgres schema {killed} ")), "{stdout}");
    assert!(stdout.contains(&format!("removed redis prefix {dead_prefix} ")), "{stdout}");
    assert!(!schema_exists(&killed).await);
    assert_eq!(clear_redis(&redis, &dead_prefix).await.expect("redis answers"), 0);
    // Live runs are kept (and removed here, by their owner).
    assert!(schema_exists(&live_schema).await, "a live run's schema was removed");
    tapesched_postgres::drop_schema(&pg, &live_schema).await.expect("dropped");
    assert_eq!(clear_redis(&redis, &live_prefix).await.expect("redis answers"), 1, "a live run's mark was removed");
}
