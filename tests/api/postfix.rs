//! Bounces written by a real Postfix (the Debian package), not by us: the test starts a
//! private Postfix instance (its own configuration, queue and data directories, its smtpd
//! on a free port of 127.0.0.1) that relays paperboy's digests to an SMTP server
//! (aiosmtpd) refusing one recipient with 550. Postfix writes the DSN to the delivery's
//! VERP address, delivers it into a Maildir for the bounce domain, and paperboy imports it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration as StdDuration;

use crate::helpers::{
    SmtpSink, TestDb, active_subscriber, arxiv_paper, databases, find_subscriber, free_port, in_ci,
    paperboy_on, run_due_digests, smtp_mailer, store_full_papers, test_links as links, tomorrow,
};
use paperboy::config::DeliverySettings;
use paperboy::delivery::Worker;
use paperboy::domain::SubscriberStatus;

/// The bounce domain Postfix delivers locally, into the Maildir.
const BOUNCE_DOMAIN: &str = "bounces.test.example";

/// Whether Postfix can be started here (installed, and we are root to start it); in CI it
/// must.
fn postfix_available() -> bool {
    let installed = Path::new("/usr/sbin/postfix").exists();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !(installed && root) {
        let why = if installed {
            "not running as root"
        } else {
            "postfix is not installed (apt-get install postfix)"
        };
        if in_ci() {
            panic!("CI=true but Postfix cannot be started: {why}");
        }
        eprintln!("Postfix test skipped: {why}");
    }
    installed && root
}

/// A private Postfix instance, stopped when dropped.
struct Postfix {
    config: PathBuf,
    child: Child,
    port: u16,
    maildir: PathBuf,
    log: PathBuf,
}

impl Postfix {
    /// Starts Postfix in `dir`, relaying everything but the bounce domain to
    /// 127.0.0.1:`relay_port`.
    fn start(dir: &Path, relay_port: u16) -> Postfix {
        std::fs::create_dir_all(dir).unwrap();
        // Postfix's daemons run as the postfix user and must reach their directories.
        for d in [dir, dir.parent().unwrap_or(dir)] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let config = dir.join("etc");
        let (queue, data, mail) = (dir.join("queue"), dir.join("data"), dir.join("mail"));
        for d in [&config, &queue, &data, &mail] {
            std::fs::create_dir_all(d).unwrap();
        }
        // Postfix's own daemons write the data directory; virtual(8) delivers as nobody.
        let chown = Command::new("chown")
            .arg("postfix")
            .arg(&data)
            .status()
            .unwrap();
        assert!(chown.success());
        std::os::unix::fs::chown(&mail, Some(65534), Some(65534)).unwrap();
        let port = free_port();
        let log = dir.join("postfix.log");
        std::fs::write(
            config.join("main.cf"),
            format!(
                "compatibility_level = 3.6\n\
                 queue_directory = {queue}\n\
                 data_directory = {data}\n\
                 command_directory = /usr/sbin\n\
                 daemon_directory = /usr/lib/postfix/sbin\n\
                 shlib_directory = /usr/lib/postfix\n\
                 meta_directory = /etc/postfix\n\
                 mail_owner = postfix\n\
                 setgid_group = postdrop\n\
                 myhostname = relay.test.example\n\
                 mydomain = test.example\n\
                 myorigin = $myhostname\n\
                 inet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\n\
                 mydestination =\n\
                 local_recipient_maps =\n\
                 mynetworks = 127.0.0.0/8\n\
                 relayhost = [127.0.0.1]:{relay_port}\n\
                 smtpd_relay_restrictions = permit_mynetworks, reject\n\
                 disable_dns_lookups = yes\n\
                 smtp_host_lookup = native\n\
                 virtual_mailbox_domains = {BOUNCE_DOMAIN}\n\
                 virtual_mailbox_base = {mail}\n\
                 virtual_mailbox_maps = static:Maildir/\n\
                 virtual_uid_maps = static:65534\n\
                 virtual_gid_maps = static:65534\n\
                 alias_maps =\n\
                 alias_database =\n\
                 smtputf8_enable = no\n\
                 maillog_file = /dev/stdout\n",
                queue = queue.display(),
                data = data.display(),
                mail = mail.display(),
            ),
        )
        .unwrap();
        // Only the services this test needs, none chrooted, smtpd on our own port.
        std::fs::write(
            config.join("master.cf"),
            format!(
                "127.0.0.1:{port} inet n - n - - smtpd\n\
                 pickup unix n - n 60 1 pickup\n\
                 cleanup unix n - n - 0 cleanup\n\
                 qmgr unix n - n 300 1 qmgr\n\
                 rewrite unix - - n - - trivial-rewrite\n\
                 bounce unix - - n - 0 bounce\n\
                 defer unix - - n - 0 bounce\n\
                 trace unix - - n - 0 bounce\n\
                 verify unix - - n - 1 verify\n\
                 flush unix n - n 1000? 0 flush\n\
                 proxymap unix - - n - - proxymap\n\
                 smtp unix - - n - - smtp\n\
                 relay unix - - n - - smtp\n\
                 showq unix n - n - - showq\n\
                 error unix - - n - - error\n\
                 retry unix - - n - - error\n\
                 discard unix - - n - - discard\n\
                 virtual unix - n n - - virtual\n\
                 anvil unix - - n - 1 anvil\n\
                 scache unix - - n - 1 scache\n\
                 postlog unix-dgram n - n - 1 postlogd\n"
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&config)
            .arg("start-fg")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postfix");
        let postfix = Postfix {
            config,
            child,
            port,
            maildir: mail.join("Maildir"),
            log,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return postfix;
            }
            std::thread::sleep(StdDuration::from_millis(50));
        }
        panic!("Postfix did not start: {}", postfix.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `n` messages were delivered into the bounce Maildir (or 30 s passed).
    fn wait_for_bounces(&self, n: usize) -> usize {
        let count = || {
            std::fs::read_dir(self.maildir.join("new"))
                .map(|d| d.count())
                .unwrap_or(0)
        };
        for _ in 0..300 {
            if count() >= n {
                break;
            }
            std::thread::sleep(StdDuration::from_millis(100));
        }
        count()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn run_through_postfix(db: &TestDb, dir: &Path) {
    let sink_port = free_port();
    let Some(sink) = SmtpSink::faulty(dir, sink_port, &["--reject", "gone@example.org"]) else {
        return;
    };
    let postfix = Postfix::start(&dir.join("postfix"), sink_port);
    let store = db.store().await;
    active_subscriber(&store, "stays@example.org", "diffusion", "daily", 8, "UTC").await;
    active_subscriber(&store, "gone@example.org", "diffusion", "daily", 8, "UTC").await;
    store_full_papers(
        &store,
        vec![arxiv_paper("2403.00001", "Diffusion models", "x", None)],
    )
    .await;
    let mailer = smtp_mailer(postfix.port, Some(BOUNCE_DOMAIN));
    run_due_digests(&store, &mailer, tomorrow()).await;
    let settings = DeliverySettings {
        messages_per_second: 1000,
        ..DeliverySettings::default()
    };
    let report = Worker::new(store.clone(), mailer, links(), settings)
        .drain()
        .await
        .unwrap();
    // Postfix took both: the refusal comes later, as a DSN.
    assert_eq!(report.sent, 2, "{}", db.backend);
    assert_eq!(
        postfix.wait_for_bounces(1),
        1,
        "one DSN from Postfix: {}",
        postfix.log_text()
    );
    assert_eq!(
        sink.wait_for(1).len(),
        1,
        "the other reader's digest arrived"
    );
    assert_eq!(
        find_subscriber(&store, "gone@example.org")
            .await
            .unwrap()
            .status,
        SubscriberStatus::Active,
        "nothing known of the bounce before the import"
    );
    let out = paperboy_on(dir, db)
        .env("PAPERBOY_SECRET_KEY", crate::bounces::TEST_KEY)
        .args(["bounces", "import", "--json"])
        .arg(&postfix.maildir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counts["messages"], 1, "{counts}");
    assert_eq!(counts["recorded"], 1, "{counts}");
    assert_eq!(counts["suppressed"], 1, "{counts}");
    assert_eq!(
        find_subscriber(&store, "gone@example.org")
            .await
            .unwrap()
            .status,
        SubscriberStatus::Bounced
    );
    assert_eq!(
        find_subscriber(&store, "stays@example.org")
            .await
            .unwrap()
            .status,
        SubscriberStatus::Active
    );
    let events = store.bounce_events(None).await.unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.email, "gone@example.org");
    assert_eq!((e.kind.as_str(), e.source.as_str()), ("hard", "dsn"));
    assert_eq!(e.status.as_deref(), Some("5.1.1"));
    let diagnostic = e.diagnostic.as_deref().unwrap_or_default();
    assert!(
        diagnostic.contains("550"),
        "Postfix's Diagnostic-Code: {diagnostic}"
    );
}

#[tokio::test]
async fn postfix_writes_a_dsn_to_the_verp_address_and_the_import_suppresses_the_reader() {
    if !postfix_available() {
        return;
    }
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        run_through_postfix(&db, dir.path()).await;
        db.cleanup().await;
    }
}
