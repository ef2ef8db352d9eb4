//! Reliability drills: the web listener of the real `paperboy serve` against clients that
//! hold its connections, and against SIGTERM.
//!
//! - `server.slow_clients`: how long one client trickling its request head, and one that
//!   connects and says nothing, keep a connection (and that the soft open-file limit is
//!   raised to the hard one at start); then a flood of 600 such clients, beyond the
//!   connection cap, on a process that may open 256 files, while `/healthz` is asked
//!   again and again.
//! - `server.sigterm`: seconds from SIGTERM to exit with only idle connections open, and
//!   with requests in progress: one finishes within the grace and is answered, the others
//!   never finish and are cut at the grace; and with a digest being sent, which finishes
//!   and is recorded.
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "report.rs"]
mod report;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use helpers::{closed_within, free_port, read_answer};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

/// One drill at a time: each measures seconds, which two binaries sharing the two cores
/// would blur.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `paperboy serve --no-scheduler --no-worker` in `dir` with `web` as its `[web]` table,
/// under `prlimit --nofile=SOFT:HARD` when given. Returns the process and its address.
fn serve(dir: &Path, web: &str, nofile: Option<(u64, u64)>) -> (Child, String) {
    serve_with(dir, "", web, nofile, &["--no-worker"])
}

/// The database file every `serve` of a drill uses.
fn database_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("paperboy.db").display())
}

/// `paperboy serve --no-scheduler` and `args`, with `top` added to the top of its config.
fn serve_with(
    dir: &Path,
    top: &str,
    web: &str,
    nofile: Option<(u64, u64)>,
    args: &[&str],
) -> (Child, String) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    std::fs::write(
        dir.join("paperboy.toml"),
        format!(
            "database_url = \"{}\"\nbind = \"{addr}\"\nbase_url = \"http://{addr}\"\n\
             log = \"warn\"\n{top}\n[web]\n{web}\n",
            database_url(dir)
        ),
    )
    .expect("write paperboy.toml");
    let binary = env!("CARGO_BIN_EXE_paperboy");
    let mut cmd = match nofile {
        Some((soft, hard)) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={soft}:{hard}"))
                .arg("--")
                .arg(binary);
            c
        }
        None => Command::new(binary),
    };
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("PAPERBOY_") {
            cmd.env_remove(key);
        }
    }
    let child = cmd
        .args(["serve", "--no-scheduler"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("serve.log")).expect("log file"))
        .spawn()
        .expect("start paperboy serve");
    (child, addr)
}

/// Waits until `/healthz` answers 200.
async fn ready(addr: &str) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("http://{addr}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("paperboy serve did not answer /healthz at {addr}");
}

/// The cap the process fitted to its open-file limit, from the warning it logs.
fn fitted_cap(dir: &Path) -> Option<usize> {
    let log = std::fs::read_to_string(dir.join("serve.log")).ok()?;
    let at = log.find("max_connections=")? + "max_connections=".len();
    log[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Open descriptors of process `pid`.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The soft and hard open-file limits of process `pid`.
fn nofile_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

fn send_sigterm(child: &Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "SIGTERM");
}

/// Seconds from SIGTERM until the process has exited, and whether it exited cleanly.
async fn stop(mut child: Child) -> (f64, bool) {
    send_sigterm(&child);
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || child.wait().expect("wait"))
        .await
        .expect("join");
    (started.elapsed().as_secs_f64(), status.success())
}

fn round(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// A client that sends a request line and then one header line every 500 ms.
async fn trickler(addr: &str, lines: usize) -> (OwnedReadHalf, tokio::task::JoinHandle<()>) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        if writer.write_all(b"GET / HTTP/1.1\r\n").await.is_err() {
            return;
        }
        for i in 0..lines {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if writer
                .write_all(format!("x-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    (reader, trickle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients() {
    let _serial = SERIAL.lock().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    // This process holds the flood's client sockets.
    let _ = rlimit::increase_nofile_limit(8192);
    let dir = tempfile::tempdir().expect("temp dir");

    // One trickling client and one silent one, on the default settings, in a process
    // started with a soft open-file limit of 256 and a hard one of 512.
    let (child, addr) = serve(dir.path(), "", Some((256, 512)));
    ready(&addr).await;
    let (soft, hard) = nofile_limits(child.id());
    assert_eq!(
        (soft, hard),
        (512, 512),
        "the soft limit is raised to the hard one"
    );
    let started = Instant::now();
    let (mut trickling, trickle) = trickler(&addr, 120).await;
    let mut silent = TcpStream::connect(&addr).await.expect("connect");
    let silent_held = closed_within(&mut silent, Duration::from_secs(30))
        .await
        .expect("a silent client is disconnected");
    let trickle_held = closed_within(&mut trickling, Duration::from_secs(30))
        .await
        .map(|_| started.elapsed())
        .expect("a trickling client is disconnected");
    trickle.abort();
    assert!(
        trickle_held < Duration::from_secs(12) && silent_held < Duration::from_secs(12),
        "held {trickle_held:?} and {silent_held:?}"
    );
    let (_, clean) = stop(child).await;
    assert!(clean);

    // The flood: 300 trickling and 300 silent clients against a process that may open
    // 256 files and no more (the cap is fitted to 128), while /healthz is asked.
    let (child, addr) = serve(dir.path(), "", Some((256, 256)));
    ready(&addr).await;
    let pid = child.id();
    let cap = fitted_cap(dir.path());
    assert_eq!(cap, Some(128), "the cap is lowered to fit 256 files");
    let mut tricklers = Vec::new();
    let mut silent = Vec::new();
    let mut peak_files = 0;
    let mut probes = 0;
    let mut probe_failures = 0;
    let mut slowest_probe = Duration::ZERO;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client");
    let flood_started = Instant::now();
    for round in 0..30 {
        for _ in 0..10 {
            tricklers.push(trickler(&addr, 40).await);
            silent.push(TcpStream::connect(&addr).await.expect("connect"));
        }
        if round % 3 == 2 {
            let asked = Instant::now();
            let answer = tokio::time::timeout(
                Duration::from_secs(5),
                http.get(format!("http://{addr}/healthz")).send(),
            )
            .await;
            probes += 1;
            match answer {
                Ok(Ok(r)) if r.status().is_success() => {}
                _ => probe_failures += 1,
            }
            slowest_probe = slowest_probe.max(asked.elapsed());
        }
        peak_files = peak_files.max(open_files(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let flood_s = flood_started.elapsed().as_secs_f64();
    // Ten more probes with the flood in place.
    for _ in 0..10 {
        let asked = Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            http.get(format!("http://{addr}/healthz")).send(),
        )
        .await;
        probes += 1;
        match answer {
            Ok(Ok(r)) if r.status().is_success() => {}
            _ => probe_failures += 1,
        }
        slowest_probe = slowest_probe.max(asked.elapsed());
        peak_files = peak_files.max(open_files(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What the process counted, by reason.
    let metrics = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("/metrics")
        .text()
        .await
        .expect("metrics text");
    let closed_by_reason: serde_json::Map<String, serde_json::Value> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("paperboy_http_connections_closed_total{reason=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(reason, n)| {
            (
                reason.to_string(),
                json!(n.trim().parse::<u64>().unwrap_or(0)),
            )
        })
        .collect();
    let counted_displaced = closed_by_reason
        .get("displaced")
        .and_then(|n| n.as_u64())
        .unwrap_or(0);
    let mut displaced = 0;
    for (stream, _) in tricklers.iter_mut() {
        if closed_within(stream, Duration::from_millis(5))
            .await
            .is_some()
        {
            displaced += 1;
        }
    }
    for stream in silent.iter_mut() {
        if closed_within(stream, Duration::from_millis(5))
            .await
            .is_some()
        {
            displaced += 1;
        }
    }
    let clients = tricklers.len() + silent.len();
    for (_, trickle) in &tricklers {
        trickle.abort();
    }
    drop(tricklers);
    drop(silent);
    let (_, clean) = stop(child).await;
    assert!(clean, "serve exits cleanly after the flood");
    assert_eq!(probe_failures, 0, "/healthz failed during the flood");
    assert!(peak_files < 256, "{peak_files} open files");
    assert!(
        displaced >= clients - 128,
        "{displaced} of {clients} displaced"
    );
    assert!(
        counted_displaced >= (clients - 128) as u64,
        "{closed_by_reason:?}"
    );
    report::report(
        "server.slow_clients",
        json!({
            "trickling_client_held_s": round(trickle_held.as_secs_f64()),
            "silent_client_held_s": round(silent_held.as_secs_f64()),
            "flood_clients": clients,
            "flood_s": round(flood_s),
            "nofile_soft_hard_at_start": [256, 512],
            "nofile_soft_after_start": soft,
            "flood_nofile_limit": 256,
            "max_connections_fitted": cap,
            "displaced": displaced,
            "closed_by_reason": closed_by_reason,
            "peak_open_files": peak_files,
            "healthz_probes": probes,
            "healthz_failures": probe_failures,
            "slowest_healthz_s": round(slowest_probe.as_secs_f64()),
        }),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm() {
    let _serial = SERIAL.lock().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = rlimit::increase_nofile_limit(8192);
    let dir = tempfile::tempdir().expect("temp dir");

    // Only idle connections: 50 kept alive after an answer, 50 that never sent a byte.
    let (child, addr) = serve(dir.path(), "", None);
    ready(&addr).await;
    let mut idle = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        s.write_all(format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes())
            .await
            .expect("write");
        assert!(read_answer(&mut s).await.starts_with("HTTP/1.1 200"));
        idle.push(s);
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    let (idle_exit_s, clean) = stop(child).await;
    assert!(clean, "exit 0");
    for s in idle.iter_mut() {
        assert!(closed_within(s, Duration::from_millis(100)).await.is_some());
    }
    assert!(
        idle_exit_s < 2.0,
        "{idle_exit_s} s to exit with idle connections"
    );

    // Busy: five form posts whose bodies are still on their way, and the idle ones.
    let (child, addr) = serve(dir.path(), "shutdown_grace_secs = 10", None);
    ready(&addr).await;
    let body = "email=late%40example.org&csrf=x";
    let mut busy = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        s.write_all(
            format!(
                "POST /subscribe HTTP/1.1\r\nhost: {addr}\r\n\
                 content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{}",
                body.len(),
                &body[..5]
            )
            .as_bytes(),
        )
        .await
        .expect("write");
        busy.push(s);
    }
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_sigterm(&child);
    let signalled = Instant::now();
    let mut idle_closed_s: f64 = 0.0;
    for s in idle.iter_mut() {
        let took = closed_within(s, Duration::from_secs(3))
            .await
            .expect("idle connections close at once");
        idle_closed_s = idle_closed_s.max(took.as_secs_f64());
    }
    // One request's body arrives a second after the signal: it is answered.
    tokio::time::sleep(Duration::from_secs(1).saturating_sub(signalled.elapsed())).await;
    busy[0]
        .write_all(&body.as_bytes()[5..])
        .await
        .expect("write the rest");
    let answer = read_answer(&mut busy[0]).await;
    let answered_in_grace = answer.starts_with("HTTP/1.1 403");
    assert!(answered_in_grace, "{answer}");
    let mut child = child;
    let status = tokio::task::spawn_blocking(move || child.wait().expect("wait"))
        .await
        .expect("join");
    let busy_exit_s = signalled.elapsed().as_secs_f64();
    assert!(status.success(), "exit 0 after the grace");
    let mut cut = 0;
    for s in busy.iter_mut().skip(1) {
        if closed_within(s, Duration::from_millis(100)).await.is_some() {
            cut += 1;
        }
    }
    assert_eq!(cut, 4, "the unfinished requests are cut at the grace");
    assert!(
        (9.5..12.5).contains(&busy_exit_s),
        "{busy_exit_s} s to exit with requests in progress (grace 10 s)"
    );

    // A digest being sent to a relay that takes 3 s to answer: SIGTERM lets it finish and
    // records it, and the process exits then.
    let Some((send_exit_s, received)) = send_in_flight(dir.path()).await else {
        return;
    };
    report::report(
        "server.sigterm",
        json!({
            "idle_connections": 100,
            "idle_exit_s": round(idle_exit_s),
            "busy_requests": 5,
            "grace_s": 10,
            "idle_closed_after_signal_s": round(idle_closed_s),
            "answered_within_grace": 1,
            "cut_at_grace": cut,
            "busy_exit_s": round(busy_exit_s),
            "send_in_flight_exit_s": round(send_exit_s),
            "send_in_flight_received": received,
            "send_in_flight_recorded": "sent",
        }),
    );
}

/// SIGTERM while `serve` hands a digest to a relay that answers after 3 s: seconds to exit
/// and messages the relay received. `None` when aiosmtpd is missing outside CI.
async fn send_in_flight(dir: &Path) -> Option<(f64, usize)> {
    let dir = dir.join("send");
    std::fs::create_dir_all(&dir).expect("dir");
    let relay = free_port();
    let sink = helpers::SmtpSink::faulty(&dir, relay, &["--delay", "3"])?;
    let url = paperboy::config::DatabaseUrl::new(database_url(&dir));
    let store = paperboy::store::Store::open(&url)
        .await
        .expect("open store");
    helpers::confirmed_subscribers(&store, "send", 1, "diffusion").await;
    helpers::store_full_papers(
        &store,
        vec![helpers::arxiv_paper(
            "2405.00001",
            "Diffusion",
            "diffusion",
            None,
        )],
    )
    .await;
    let mailer = paperboy::delivery::Mailer::from_settings(&paperboy::config::Settings::default())
        .expect("mailer");
    helpers::run_due_digests(&store, &mailer, helpers::tomorrow()).await;
    let (child, addr) = serve_with(
        &dir,
        &format!(
            "smtp_url = \"smtp://127.0.0.1:{relay}?tls=none\"\n\
             from = \"paperboy <digest@papers.example.org>\""
        ),
        "",
        None,
        &[],
    );
    ready(&addr).await;
    let started = Instant::now();
    loop {
        let counts: std::collections::HashMap<String, i64> = store
            .delivery_counts()
            .await
            .expect("counts")
            .into_iter()
            .collect();
        if counts.contains_key("sending") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Claimed; a moment more and it is with the relay.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (exit_s, clean) = stop(child).await;
    assert!(clean, "exit 0");
    let counts: std::collections::HashMap<String, i64> = store
        .delivery_counts()
        .await
        .expect("counts")
        .into_iter()
        .collect();
    assert_eq!(counts.get("sent"), Some(&1), "recorded as sent: {counts:?}");
    assert_eq!(counts.len(), 1, "{counts:?}");
    let received = sink.received_files().len();
    assert_eq!(received, 1);
    assert!(
        (1.0..10.0).contains(&exit_s),
        "{exit_s} s: the send was waited for, and no longer"
    );
    store.close().await;
    Some((exit_s, received))
}
