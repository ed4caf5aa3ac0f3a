//! The maintenance daemon against real Redis and PostgreSQL: reports of archives written by a
//! simulated tape server delivered to `file://`, `http://` and `https://` targets (a refusing target counted
//! as report retries), a dead mount collected by the GC loop, and configuration errors. Clocks
//! are manual (the maintenance side) and simulated (the tape server); nothing sleeps.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::{config_text, daemon, root, START};
use tapesched_backends::{Backend, OpenBackend};
use tapesched_scheduler::clock::ManualClock;
use tapesched_scheduler::db::ReportFilter;
use tapesched_scheduler::scheduler::ArchiveSubmission;
use tapesched_scheduler::types::{DriveStatus, RequestId, Requester};
use tapesched_taped::maintenance::{build, Loop, Maintenance, MaintenanceConfig};

const LIB: &str = "compat/mhvtl/lto9";
const CAT: &str = "compat/taped/lto9.yml";

fn mconfig(extra: &str) -> MaintenanceConfig {
    let text = config_text(LIB, 10, CAT, &["ULT11"], extra);
    MaintenanceConfig::parse(&text, &root().join("taped.toml")).expect("valid maintenance configuration")
}

/// A maintenance daemon on `open`'s namespace, its clock at `at`.
async fn maintenance(open: &OpenBackend, at: i64) -> Maintenance {
    let clock = Arc::new(ManualClock::new(at));
    build(&mconfig(""), Some(open.db.clone()), clock).await.expect("maintenance")
}

/// Archives written by a simulated tape server on a fresh namespace of `backend`, one per
/// report URL; returns the namespace and their archive file ids once their reports are due.
async fn archived(backend: Backend, urls: &[String]) -> (OpenBackend, Vec<u64>) {
    let text = config_text(LIB, 10, CAT, &["ULT11"], "");
    let (mut built, open, _events) = daemon(backend, &text).await;
    let subs = urls
        .iter()
        .map(|u| ArchiveSubmission {
            archive_file_id: None,
            disk_instance: None,
            disk_file_id: None,
            requester: Requester { name: "alice".into(), group: "it".into() },
            storage_class: "sc_pool_a".into(),
            size: 1_000_000_000,
            created_at: None,
            report_url: Some(u.clone()),
            error_report_url: None,
        })
        .collect();
    let ids: Vec<u64> = built.scheduler.queue_archives(subs).await.unwrap().into_iter().map(|r| r.unwrap()).collect();
    built.daemon.run_until(START * 1000 + 2 * common::HOUR_MS, None).await.unwrap();
    built.daemon.drain().await.unwrap();
    let due = open.db.reports_due(ReportFilter::All, 1000, START + 7200).await.unwrap();
    assert_eq!(due.len(), ids.len(), "every archive's report is due: {due:?}");
    (open, ids)
}

/// The archive file ids in the JSON lines of `text`.
fn ids_in(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            assert_eq!(v["outcome"], "success");
            assert_eq!(v["kind"], "archive");
            v["archive_file_id"].as_u64().unwrap()
        })
        .collect()
}

async fn file_reports_appended_once(backend: Backend) {
    let dir = std::env::temp_dir().join(format!("tapesched-maint-{}-{}", std::process::id(), backend.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let target = dir.join("reports.jsonl");
    let _ = std::fs::remove_file(&target);
    let url = format!("file://{}", target.display());
    let (open, ids) = archived(backend, &vec![url; 5]).await;
    let m = maintenance(&open, START + 7200).await;
    let line = m.pass(Loop::Reports).await.unwrap();
    assert_eq!(line, "reports: 5 delivered (0 without URL), 0 failed");
    // A second pass finds nothing due: each report is appended once.
    assert_eq!(m.pass(Loop::Reports).await.unwrap(), "reports: 0 delivered (0 without URL), 0 failed");
    let lines: Vec<String> = std::fs::read_to_string(&target).unwrap().lines().map(String::from).collect();
    let mut got = ids_in(&lines);
    got.sort();
    assert_eq!(got, ids);
    std::fs::remove_dir_all(&dir).unwrap();
    open.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_reports_are_appended_once_on_redis() {
    file_reports_appended_once(Backend::ObjectstoreRedis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_reports_are_appended_once_on_postgres() {
    file_reports_appended_once(Backend::Postgres).await;
}

/// The requests an HTTP server saw: path and body.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A tiny HTTP server on 127.0.0.1 (HTTPS with `tls`): `/ok` answers 200, anything else 500;
/// every request's path and body are recorded. One request per connection (`Connection: close`).
fn http_server(tls: Option<Arc<rustls::ServerConfig>>) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(tcp) = stream else { continue };
            // A client that refuses the handshake ends its connection: nothing to record.
            let _ = match &tls {
                None => answer(tcp, &log),
                Some(config) => {
                    let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                    answer(rustls::StreamOwned::new(conn, tcp), &log)
                }
            };
        }
    });
    (port, seen)
}

/// Reads one request from `stream`, records it in `log` and answers it.
fn answer(stream: impl Read + Write, log: &Seen) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut length = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let status = if path == "/ok" { "200 OK" } else { "500 Internal Server Error" };
    log.lock().unwrap().push((path, String::from_utf8(body).unwrap()));
    let stream = reader.get_mut();
    write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    stream.flush()
}

/// The test certificates: a CA, and a server certificate it signed for `localhost` and
/// `127.0.0.1` (valid until 2126; made with `openssl req`, for these tests only).
const TLS_DIR: &str = "crates/taped/tests/fixtures/tls";

/// The server side of the test certificates.
fn tls_server_config() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = root().join(TLS_DIR);
    let certs: Vec<CertificateDer> =
        CertificateDer::pem_file_iter(dir.join("server.pem")).unwrap().map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(config)
}

async fn http_reports_posted(backend: Backend) {
    let (port, seen) = http_server(None);
    let ok = format!("http://127.0.0.1:{port}/ok");
    let refuse = format!("http://127.0.0.1:{port}/refuse");
    let (open, ids) = archived(backend, &[ok.clone(), ok.clone(), ok, refuse.clone(), refuse]).await;
    let m = maintenance(&open, START + 7200).await;
    let d = m.deliver_reports().await.unwrap();
    assert_eq!(d.delivered, 3);
    let refused: BTreeSet<RequestId> = d.failed.iter().map(|(r, _)| *r).collect();
    assert_eq!(refused, ids[3..].iter().map(|i| RequestId::Archive(*i)).collect());
    assert!(d.failed.iter().all(|(_, why)| why.contains("HTTP 500")), "{:?}", d.failed);
    let seen = seen.lock().unwrap().clone();
    let posted: Vec<String> = seen.iter().filter(|(p, _)| p == "/ok").map(|(_, b)| b.clone()).collect();
    let mut got = ids_in(&posted);
    got.sort();
    assert_eq!(got, ids[..3]);
    assert_eq!(seen.len(), 5, "one POST per report: {seen:?}");
    // The refused reports were counted as retries: the delivered ones are gone, the refused ones
    // are all that can still be due.
    let due = open.db.reports_due(ReportFilter::All, 100, START + 7200 + 3600).await.unwrap();
    assert!(due.iter().all(|r| refused.contains(&r.request)), "{due:?}");
    open.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_reports_are_posted_and_refusals_are_retries_on_redis() {
    http_reports_posted(Backend::ObjectstoreRedis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_reports_are_posted_and_refusals_are_retries_on_postgres() {
    http_reports_posted(Backend::Postgres).await;
}

/// An `https://` target is posted to over TLS when its server's certificate chains to a CA of
/// `tls_ca_file`; with Mozilla's roots (no `tls_ca_file`) the same server is refused, and the
/// report is a failed delivery naming the certificate, delivered by a later pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_reports_are_posted_to_servers_the_configured_ca_vouches_for() {
    let (port, seen) = http_server(Some(tls_server_config()));
    let ok = format!("https://localhost:{port}/ok");
    let (open, ids) = archived(Backend::Postgres, &[ok.clone(), ok]).await;
    let clock = Arc::new(ManualClock::new(START + 7200));
    let untrusting = build(&mconfig(""), Some(open.db.clone()), clock.clone()).await.unwrap();
    let d = untrusting.deliver_reports().await.unwrap();
    assert_eq!(d.delivered, 0, "{d:?}");
    assert_eq!(d.failed.len(), 2, "{d:?}");
    assert!(d.failed.iter().all(|(_, why)| why.contains("UnknownIssuer")), "{:?}", d.failed);
    assert!(seen.lock().unwrap().is_empty(), "nothing reached the server");

    let ca = format!("\n[maintenance]\ntls_ca_file = \"{}\"\n", root().join(TLS_DIR).join("ca.pem").display());
    clock.set(START + 7200 + 3600);
    let trusting = build(&mconfig(&ca), Some(open.db.clone()), clock).await.unwrap();
    let d = trusting.deliver_reports().await.unwrap();
    assert_eq!(d.delivered, 2, "{d:?}");
    let posted: Vec<String> = seen.lock().unwrap().iter().map(|(_, b)| b.clone()).collect();
    let mut got = ids_in(&posted);
    got.sort();
    assert_eq!(got, ids);
    open.close().await;
}

/// A `tls_ca_file` that does not exist, or holds no certificate, is refused with its line.
#[test]
fn a_bad_tls_ca_file_names_its_line() {
    let dir = root().join(TLS_DIR);
    let cases = [
        (dir.join("no-such-ca.pem"), "cannot read"),
        (dir.join("server.key"), "private key"),
        (root().join("Cargo.toml"), "no PEM"),
    ];
    for (path, why) in cases {
        let file = path.display();
        let extra = format!("\n[maintenance]\ntls_ca_file = \"{}\"\n", path.display());
        let text = config_text(LIB, 10, CAT, &["ULT11"], &extra);
        let e = MaintenanceConfig::parse(&text, &root().join("m.toml")).unwrap_err();
        assert_eq!(e.line, Some(text.lines().count()), "{e}");
        assert!(e.message.contains("maintenance.tls_ca_file") && e.message.contains(why), "{file}: {e}");
    }
}

/// An unknown scheme is a failed delivery with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_scheme_is_a_failed_delivery() {
    let (open, _ids) = archived(Backend::ObjectstoreRedis, &["eos://ctaeos//eos/x?a=1".to_string()]).await;
    let m = maintenance(&open, START + 7200).await;
    let d = m.deliver_reports().await.unwrap();
    assert_eq!(d.delivered, 0);
    assert!(d.failed[0].1.contains("scheme eos:// is not supported"), "{d:?}");
    open.close().await;
}

async fn dead_mount_collected(backend: Backend) {
    let open = backend.open().await.expect("backend");
    let clock = Arc::new(ManualClock::new(START));
    let m = build(&mconfig(""), Some(open.db.clone()), clock.clone()).await.unwrap();
    let s = m.scheduler().clone();
    s.report_drive_status("ULT11", DriveStatus::Up, None).await.unwrap();
    common::queue_archives(&s, "sc_pool_a", &[1_000_000_000; 4], |_| None).await;
    clock.set(START + 600);
    let mut session = s.next_mount("ULT11", true).await.unwrap().expect("a mount");
    let popped = s.pop_jobs(&mut session, 100, 1 << 40).await.unwrap().len();
    assert_eq!(popped, 4);
    s.crash_session(session).await.unwrap();
    assert_eq!(m.pass(Loop::Collect).await.unwrap(), "collect: requeued 4 job(s) of dead owners");
    assert_eq!(m.pass(Loop::Collect).await.unwrap(), "collect: requeued 0 job(s) of dead owners");
    open.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_mount_is_collected_on_redis() {
    dead_mount_collected(Backend::ObjectstoreRedis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_mount_is_collected_on_postgres() {
    dead_mount_collected(Backend::Postgres).await;
}

/// `--once` runs every enabled loop, in order; disabled loops do not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_runs_the_enabled_loops() {
    let open = Backend::ObjectstoreMemory.open().await.unwrap();
    let cfg = mconfig("\n[maintenance.repack]\nenabled = false\n[maintenance.reports]\ninterval_ms = 5\n");
    assert_eq!(cfg.maintenance.interval(Loop::Reports).as_millis(), 5);
    let m = build(&cfg, Some(open.db.clone()), Arc::new(ManualClock::new(START))).await.unwrap();
    let lines = m.once().await.unwrap();
    assert_eq!(
        lines,
        [
            "collect: requeued 0 job(s) of dead owners",
            "cleanup: 0 tape(s) finalised",
            "reports: 0 delivered (0 without URL), 0 failed"
        ]
    );
    open.close().await;
}

#[test]
fn bad_configurations_name_their_line() {
    let text = config_text(LIB, 10, CAT, &["ULT11"], "\n[maintenance]\nreport_bacth = 3\n");
    let e = MaintenanceConfig::parse(&text, &root().join("m.toml")).unwrap_err();
    let line = text.lines().position(|l| l.starts_with("report_bacth")).unwrap() + 1;
    assert_eq!(e.line, Some(line), "{e}");
    assert!(e.message.contains("unknown field `report_bacth`"), "{e}");
    let text = config_text(LIB, 10, CAT, &["ULT11"], "\n[maintenance.collect]\ninterval_ms = 0\n");
    let e = MaintenanceConfig::parse(&text, &root().join("m.toml")).unwrap_err();
    assert_eq!(e.line, Some(text.lines().count()), "{e}");
}

/// The loops run until told to stop: the first line a loop says stops every loop (between
/// passes), and `run` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loops_stop_between_passes() {
    let open = Backend::ObjectstoreMemory.open().await.unwrap();
    let m = Arc::new(build(&mconfig(""), Some(open.db.clone()), Arc::new(ManualClock::new(START))).await.unwrap());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let say: Arc<dyn Fn(String) + Send + Sync> = Arc::new(move |l: String| {
        sink.lock().unwrap().push(l);
        let _ = tx.send(true);
    });
    m.run(rx, say).await;
    let lines = lines.lock().unwrap().clone();
    assert!(!lines.is_empty() && lines.len() <= 4, "{lines:?}");
    assert!(lines.iter().all(|l| !l.starts_with("error")), "{lines:?}");
    open.close().await;
}

/// Two instances on one backend, their passes at once: one holds the reports loop's lease and
/// delivers every report, the other skips; each report is appended once. Once the first releases
/// its leases, the second takes them.
async fn two_instances_deliver_once(backend: Backend) {
    let dir = std::env::temp_dir().join(format!("tapesched-maint2-{}-{}", std::process::id(), backend.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let target = dir.join("reports.jsonl");
    let _ = std::fs::remove_file(&target);
    let (open, ids) = archived(backend, &vec![format!("file://{}", target.display()); 6]).await;
    let clock = Arc::new(ManualClock::new(START + 7200));
    let a = build(&mconfig(""), Some(open.db.clone()), clock.clone()).await.unwrap().with_holder("a");
    let b = build(&mconfig(""), Some(open.db.clone()), clock.clone()).await.unwrap().with_holder("b");
    let (la, lb) = tokio::join!(a.pass(Loop::Reports), b.pass(Loop::Reports));
    let mut lines = [la.unwrap(), lb.unwrap()];
    lines.sort();
    assert_eq!(
        lines,
        ["reports: 6 delivered (0 without URL), 0 failed", "reports: skipped, another instance holds the lease"]
            .map(String::from)
    );
    let text = std::fs::read_to_string(&target).unwrap();
    let mut got = ids_in(&text.lines().map(String::from).collect::<Vec<_>>());
    got.sort();
    assert_eq!(got, ids, "each report appended once");
    // The holder of the lease releases it; the other takes it at its next pass.
    let (holder, other) = if b.pass(Loop::Reports).await.unwrap().contains("skipped") { (&a, &b) } else { (&b, &a) };
    holder.release_leases().await.unwrap();
    assert_eq!(other.pass(Loop::Reports).await.unwrap(), "reports: 0 delivered (0 without URL), 0 failed");
    assert!(holder.pass(Loop::Reports).await.unwrap().contains("skipped"));
    std::fs::remove_dir_all(&dir).unwrap();
    open.close().await;
}

/// A clock that moves 20 s on at every reading: a pass that reads it once per report lasts
/// 20 s per report.
struct Ticking(std::sync::atomic::AtomicI64);

impl tapesched_scheduler::clock::Clock for Ticking {
    fn now(&self) -> i64 {
        self.0.fetch_add(20, std::sync::atomic::Ordering::SeqCst)
    }
}

/// A report pass longer than its lease's term (30 s here; six reports, 20 s each) renews the
/// lease as it goes: another instance asking right after the pass is refused. Without the
/// renewal the lease would have run out during the pass and been given to the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_report_pass_keeps_its_lease() {
    let dir = std::env::temp_dir().join(format!("tapesched-maint3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let target = dir.join("reports.jsonl");
    let _ = std::fs::remove_file(&target);
    let (open, ids) = archived(Backend::Postgres, &vec![format!("file://{}", target.display()); 6]).await;
    let clock = Arc::new(Ticking(std::sync::atomic::AtomicI64::new(START + 7200)));
    let a = build(&mconfig(""), Some(open.db.clone()), clock.clone()).await.unwrap().with_holder("a");
    let b = build(&mconfig(""), Some(open.db.clone()), clock.clone()).await.unwrap().with_holder("b");
    let start = clock.0.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(a.pass(Loop::Reports).await.unwrap(), "reports: 6 delivered (0 without URL), 0 failed");
    let end = clock.0.load(std::sync::atomic::Ordering::SeqCst);
    assert!(end - start > 60, "the pass outlasted the lease's 30 s term: {} s", end - start);
    assert!(b.pass(Loop::Reports).await.unwrap().contains("skipped"), "a still holds the lease");
    assert_eq!(std::fs::read_to_string(&target).unwrap().lines().count(), ids.len());
    std::fs::remove_dir_all(&dir).unwrap();
    open.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_each_report_once_on_redis() {
    two_instances_deliver_once(Backend::ObjectstoreRedis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_each_report_once_on_postgres() {
    two_instances_deliver_once(Backend::Postgres).await;
}
