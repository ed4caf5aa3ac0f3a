//! `tapesched db collect --every`, the dead-mount maintenance loop, as a real process against the
//! CI machine's PostgreSQL: its first pass runs at once and puts back the jobs of an abandoned
//! mount and of a mount whose heartbeat is older than `--mount-timeout`, leaving a live mount
//! alone; a later pass collects a mount abandoned while the loop runs; SIGTERM stops it with
//! exit status 0. Started while its server is down, the loop reports each failed pass and works
//! once the server is back.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tapesched_postgres::{PgConfig, PgSchedulerDb, SchemaGuard};
use tapesched_scheduler::db::{JobKind, SchedulerDb};
use tapesched_testkit::workload::{archive_mount, archive_request};

const POOL: &str = "pool_c";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// Opens `mount` with its heartbeat at `at` and lets it take 10 jobs.
async fn mount_holding_ten(db: &PgSchedulerDb, mount: u64, at: i64) {
    db.open_mount(mount, &archive_mount(format!("V{mount}"), POOL, format!("d{mount}")), at).await.unwrap();
    assert_eq!(db.pop_jobs(mount, 10, u64::MAX, at).await.unwrap().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collect_loop_puts_back_dead_mounts_jobs_until_stopped() {
    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let schema = tapesched_testkit::unique_name("collect");
    let _guard = SchemaGuard::new(url.clone(), schema.clone());
    let db = PgSchedulerDb::connect(PgConfig::new(url.clone(), schema.clone())).await.expect("backend");
    let t = now();
    let answers = db.queue_archives((1..=30).map(|id| archive_request(id, POOL, t)).collect(), t).await;
    assert!(answers.iter().all(|a| a.is_ok()));
    mount_holding_ten(&db, 1, t).await;
    db.abandon_mount(1, t).await.unwrap();
    mount_holding_ten(&db, 2, t - 3600).await; // silent for an hour
    mount_holding_ten(&db, 3, t).await; // alive
    assert!(db.list_pending(JobKind::Archive, None).await.unwrap().is_empty());

    let mut collector = Command::new(env!("CARGO_BIN_EXE_tapesched"))
        .args(["db", "collect", "--database-url", &url, "--schema", &schema])
        .args(["--mount-timeout", "600", "--every", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null())
        .spawn()
        .expect("tapesched runs");
    let (tx, lines) = mpsc::channel::<String>();
    let stdout = collector.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || lines.recv_timeout(Duration::from_secs(120)).expect("the collector prints a line per pass");

    // The first pass: the abandoned mount and the silent one, not the live one.
    assert_eq!(next_line(), "requeued 20");
    assert_eq!(db.list_pending(JobKind::Archive, None).await.unwrap().len(), 20);

    // A mount abandoned while the loop runs goes at a later pass; passes before find nothing.
    db.abandon_mount(3, t).await.unwrap();
    loop {
        match next_line().as_str() {
            "requeued 0" => continue,
            "requeued 10" => break,
            other => panic!("unexpected line {other:?}"),
        }
    }
    assert_eq!(db.list_pending(JobKind::Archive, None).await.unwrap().len(), 30);

    let pid = collector.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs").success());
    let status = collector.wait().expect("the collector exits");
    assert_eq!(status.code(), Some(0), "SIGTERM ends the loop cleanly: {status}");
}

/// The loop started while its server is down reports each failed pass on stderr and keeps going;
/// once the server is back, the next pass works. A server of the test's own, stopped and started.
#[test]
fn the_collect_loop_rides_out_a_server_down_at_start_up() {
    let mut server = tapesched_testkit::PostgresServer::start().expect("a PostgreSQL server of the test's own");
    server.kill().expect("stopped");
    let mut collector = Command::new(env!("CARGO_BIN_EXE_tapesched"))
        .args(["db", "collect", "--database-url", &server.url(), "--schema", "collect", "--every", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("tapesched runs");
    let (tx, lines) = mpsc::channel::<(bool, String)>();
    for (is_stdout, pipe) in [
        (true, Box::new(collector.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>),
        (false, Box::new(collector.stderr.take().expect("stderr"))),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send((is_stdout, line)).is_err() {
                    break;
                }
            }
        });
    }
    let next_line = || lines.recv_timeout(Duration::from_secs(120)).expect("the collector reports each pass");
    // Two passes fail with the cause, and the process is still there.
    for _ in 0..2 {
        let (is_stdout, line) = next_line();
        assert!(!is_stdout, "{line}");
        assert!(line.contains("Connection refused") && line.ends_with("(next pass in 1 s)"), "{line}");
    }
    assert!(collector.try_wait().expect("status").is_none(), "the loop goes on");
    server.restart().expect("started again");
    loop {
        match next_line() {
            (true, line) => {
                assert_eq!(line, "requeued 0");
                break;
            }
            (false, line) => assert!(line.contains("(next pass in 1 s)"), "{line}"),
        }
    }
    let pid = collector.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().expect("kill runs").success());
    assert_eq!(collector.wait().expect("exits").code(), Some(0), "SIGINT ends the loop cleanly");
}
