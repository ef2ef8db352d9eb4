//! The digest email on its merits, checked by tools paperboy did not write: snapshots of
//! both bodies (a paper with HTML, script and LaTeX in its text included), SpamAssassin's
//! structural rules, `tidy` on the HTML, and DKIM verified by dkimpy.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use paperboy::config::Settings;
use paperboy::delivery::{Mailer, Sent};
use paperboy::domain::Subscriber;
use paperboy::domain::token::{LinkKeys, Links};
use paperboy::domain::{
    ArxivId, EmailAddress, MaxPapers, Paper, Preferences, QueryList, SendHour, SubscriberStatus,
};
use paperboy::email::digest as render;
use paperboy::matching::{BatchStats, Doc, Query, rank};
use paperboy::store::{StoredEntry, StoredPaper};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether a tool is installed; in CI it must be.
fn have(tool: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!in_ci(), "CI=true but {tool} is not installed");
        eprintln!("{tool} not installed: check skipped");
    }
    ok
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn subscriber() -> Subscriber {
    Subscriber {
        id: 42,
        email: EmailAddress::parse("ada@example.org").unwrap(),
        status: SubscriberStatus::Active,
        preferences: Preferences {
            queries: QueryList::parse("diffusion\nauthor:\"Tri Dao\"\n\"state space model\"")
                .unwrap(),
            frequency: paperboy::domain::Frequency::Daily,
            send_hour: SendHour::new(8).unwrap(),
            timezone: "Europe/Berlin".parse().unwrap(),
            max_papers: MaxPapers::DEFAULT,
            layout: Default::default(),
        },
        link_key: "fixed-link-key".into(),
        created_at: at("2026-11-01T00:00:00Z"),
        updated_at: at("2026-11-01T00:00:00Z"),
        link_sent_at: None,
        confirmed_at: Some(at("2026-11-01T00:00:00Z")),
        unsubscribed_at: None,
        paper_cursor: 0,
        last_window_end: None,
    }
}

/// Twenty matching papers of realistic size; the first has markup and LaTeX in its text.
fn entries() -> Vec<StoredEntry> {
    entries_of(20)
}

/// `n` matching papers of realistic size; the first has markup and LaTeX in its text.
fn entries_of(n: usize) -> Vec<StoredEntry> {
    let r = subscriber();
    let queries: Vec<Query> = r.preferences.queries.compile();
    let papers: Vec<Paper> = (0..n)
        .map(|i| {
            let id = ArxivId::parse(&format!("2411.{:05}", 100 + i)).unwrap();
            let mut p = if i == 0 {
                Paper::from_arxiv(&id, "Diffusion <b>without</b> <script>alert('x')</script> tears: $O(n \\log n)$ sampling")
            } else {
                Paper::from_arxiv(&id, format!("Structured state space models for diffusion, part {i}"))
            };
            p.abstract_text = format!(
                "{}We show that <img src=x onerror=alert(1)> diffusion models with $\\mathcal{{L}}_{{\\text{{ELBO}}}} < \\epsilon$ \
                 match a state space model baseline & beat it on long-range tasks. {}",
                "Background sentence about prior work on generative modelling. ".repeat(2),
                "Further details of the experiments, ablations and limitations follow here. ".repeat(4)
            );
            p.authors = vec![
                "Tri Dao".into(),
                "Albert Gu".into(),
                "Ada Lovelace".into(),
                "Alan Turing".into(),
                "Grace Hopper".into(),
            ];
            p.categories = vec!["cs.LG".into(), "stat.ML".into()];
            p.upvotes = Some(60 - i as i64);
            p.comments = Some(i as i64 % 4);
            p.published = Some(at("2026-11-26T20:00:00Z"));
            p.links.discussion = Some(format!("https://huggingface.co/papers/2411.{:05}", 100 + i));
            p
        })
        .collect();
    let docs: Vec<Doc> = papers.iter().map(Doc::from_paper).collect();
    let stats = BatchStats::new(&docs);
    papers
        .into_iter()
        .zip(&docs)
        .enumerate()
        .map(|(i, (paper, doc))| {
            let refs: Vec<&Query> = queries.iter().collect();
            let scored = rank::score(&refs, doc, paper.upvotes, &stats);
            StoredEntry {
                paper: StoredPaper {
                    id: i as i64 + 1,
                    paper,
                    first_seen_at: at("2026-11-27T10:00:00Z"),
                    updated_at: at("2026-11-27T10:00:00Z"),
                },
                score: scored.score,
                explanation: scored.explanation,
                suggested: false,
            }
        })
        .collect()
}

fn links() -> Links {
    Links::new(
        "https://papers.example.org",
        LinkKeys::new(b"a fixed key for snapshot tests only"),
    )
}

/// The digest of the snapshots: 15 of 20 matching papers (also rendered in the browser).
pub(crate) fn view() -> render::DigestView {
    view_of(15, &entries())
}

/// The email of the first `shown` of `all`.
fn view_of(shown: usize, all: &[StoredEntry]) -> render::DigestView {
    let r = subscriber();
    let l = links();
    render::view(
        &all[..shown],
        &render::DigestFacts {
            total: all.len(),
            trending: false,
            window: (at("2026-11-27T07:00:00Z"), at("2026-11-28T07:00:00Z")),
            per_query: Vec::new(),
        },
        &r.preferences,
        render::DigestLinks {
            archive: Some(l.archive(7, "fixed-archive-key")),
            preferences: l.preferences(r.id, &r.link_key),
            unsubscribe: l.unsubscribe(r.id, &r.link_key),
            feed: l.feed(r.id, &r.link_key),
        },
    )
}

fn snapshot(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var("UPDATE_SNAPSHOTS").is_ok() || !path.exists() {
        assert!(!in_ci() || path.exists(), "snapshot {name} missing in CI");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert!(
        want == got,
        "{name} changed; rerun with UPDATE_SNAPSHOTS=1 if that is intended\n--- got ---\n{got}"
    );
}

#[test]
fn the_html_part_stays_under_gmails_clipping_size_with_15_and_50_papers() {
    // Gmail clips a message whose HTML passes 102 KB.
    for n in [15, 50] {
        let (html, text) = render::bodies(&view_of(n, &entries_of(n))).unwrap();
        eprintln!(
            "{n} papers: HTML part {} bytes ({:.1} KB), text part {} bytes",
            html.len(),
            html.len() as f64 / 1024.0,
            text.len()
        );
        assert!(html.len() < 102 * 1024, "{n} papers: {} bytes", html.len());
        assert_eq!(html.matches("class=\"pp\"").count(), n);
        assert_eq!(html.matches("class=\"oi\"").count(), n);
    }
}

#[test]
fn both_bodies_match_their_snapshots_and_escape_what_feeds_wrote() {
    let v = view();
    let (html, text) = render::bodies(&v).unwrap();
    snapshot("digest.html", &html);
    snapshot("digest.txt", &text);
    assert!(!html.contains("<script") && !html.contains("<img") && !html.contains("<b>"));
    assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
    assert!(html.contains("<mark>"));
    assert!(
        text.contains("<script>alert('x')</script>"),
        "text shows the title as written"
    );
    assert!(text.contains("And 5 more:\r\nhttps://papers.example.org/digests/7?t="));
    // The text part: the numbered titles first, then the entries; 72 columns, except an
    // address alone on its line; from item 10 the indent still lines up under the title.
    let overview = text.find("15. Structured").unwrap();
    let entries = text.find("    Tri Dao, Albert Gu").unwrap();
    assert!(text.find(" 1. Diffusion").unwrap() < overview && overview < entries);
    for line in text.split("\r\n") {
        let alone = line.trim_start().starts_with("https://") && !line.trim().contains(' ');
        assert!(line.chars().count() <= 72 || alone, "{line}");
        assert_eq!(line, line.trim_end(), "a trailing space");
    }
    assert!(
        text.contains(
            "\r\n12. Structured state space models for diffusion, part 11\r\n    Tri Dao"
        )
    );
    assert_eq!(v.papers.len(), 15);
    assert!(
        html.len() < 100 * 1024,
        "{} bytes: Gmail clips past 102 KB",
        html.len()
    );
}

/// Writes the digest as an .eml through the file mailer, with DKIM when `dkim` is given.
fn write_message(dir: &Path, dkim: Option<(&Path, &str, &str)>) -> PathBuf {
    let mut settings = Settings {
        outbox_dir: dir.join("outbox"),
        from: "paperboy <digest@papers.example.org>".into(),
        ..Settings::default()
    };
    if let Some((key, selector, domain)) = dkim {
        settings.dkim_key = Some(key.to_path_buf());
        settings.dkim_selector = Some(selector.into());
        settings.dkim_domain = Some(domain.into());
    }
    let mailer = Mailer::from_settings(&settings).unwrap();
    let email = render::email(
        &links(),
        &subscriber(),
        &view(),
        &mailer.message_ids().next(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match rt.block_on(mailer.send(&email)).unwrap() {
        Sent::File(path) => path,
        other => panic!("{other:?}"),
    }
}

#[test]
fn spamassassin_finds_no_structural_fault() {
    if !have("spamassassin") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_message(dir.path(), None);
    let out = Command::new("spamassassin")
        .args(["-t", "-L"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = report
        .lines()
        .skip_while(|l| !l.starts_with("X-Spam-Status:"))
        .take_while(|l| {
            l.starts_with("X-Spam-Status:") || l.starts_with('\t') || l.starts_with(' ')
        })
        .collect::<Vec<_>>()
        .join(" ");
    assert!(!status.is_empty(), "no X-Spam-Status in:\n{report}");
    let tests = status
        .split("tests=")
        .nth(1)
        .unwrap_or("")
        .split(" autolearn")
        .next()
        .unwrap_or("");
    let rules: Vec<&str> = tests
        .split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    eprintln!("SpamAssassin: {status}");
    for bad in [
        "MISSING_MID",
        "MISSING_DATE",
        "MIME_HTML_ONLY",
        "MPART_ALT_DIFF",
    ] {
        assert!(!rules.contains(&bad), "{bad} in {rules:?}");
    }
    for r in &rules {
        assert!(!r.ends_with("_NO_TEXT"), "{r} in {rules:?}");
        assert!(
            !r.starts_with("HTML_") || *r == "HTML_MESSAGE",
            "{r} in {rules:?}"
        );
    }
}

#[test]
fn the_html_body_passes_tidy() {
    if !have("tidy") {
        return;
    }
    let (html, _) = render::bodies(&view()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("digest.html");
    std::fs::write(&path, html).unwrap();
    let out = Command::new("tidy")
        .args(["-e", "-q", "-utf8"])
        .arg(&path)
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&out.stderr).into_owned();
    // tidy exits 0 when clean, 1 for warnings only, 2 for errors.
    assert!(out.status.code() != Some(2), "tidy found errors:\n{errors}");
}

#[test]
fn a_dkim_signed_digest_verifies_and_fails_once_a_header_changes() {
    if !have("openssl") {
        return;
    }
    let importable = Command::new("python3")
        .args(["-c", "import dkim"])
        .status()
        .is_ok_and(|s| s.success());
    if !importable {
        assert!(!in_ci(), "CI=true but dkimpy is not installed");
        eprintln!("dkimpy not installed: check skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dkim.pem");
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(ok.success());
    let public = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl rsa -in {} -pubout -outform DER 2>/dev/null | base64 -w0",
            key.display()
        ))
        .output()
        .unwrap();
    let public_file = dir.path().join("public.b64");
    std::fs::write(&public_file, &public.stdout).unwrap();
    let message = write_message(dir.path(), Some((&key, "pb2026", "papers.example.org")));
    let raw = std::fs::read_to_string(&message).unwrap();
    let signature = raw.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(signature.contains("dkim-signature:"), "{raw}");
    for h in [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ] {
        assert!(signature.contains(h), "{h} not signed");
    }
    assert!(signature.contains("c=relaxed/relaxed"));
    let verify = |path: &Path| {
        Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dkim_verify.py"))
            .arg(path)
            .arg(&public_file)
            .output()
            .unwrap()
    };
    let out = verify(&message);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tampered = dir.path().join("tampered.eml");
    std::fs::write(
        &tampered,
        raw.replacen("Subject: paperboy:", "Subject: Paperboy:", 1),
    )
    .unwrap();
    assert!(
        !verify(&tampered).status.success(),
        "a changed Subject must fail"
    );
}

/// An email grouped by query: 8 papers won by two queries, a third query with none.
pub(crate) fn grouped_view() -> render::DigestView {
    let r = subscriber();
    let l = links();
    let mut all = entries_of(8);
    for (i, e) in all.iter_mut().enumerate() {
        e.explanation.won_by = Some(if i < 5 {
            "diffusion".to_string()
        } else {
            "\"state space model\"".to_string()
        });
    }
    let mut prefs = r.preferences.clone();
    prefs.layout.group_by_query = true;
    render::view(
        &all,
        &render::DigestFacts {
            total: 12,
            trending: false,
            window: (at("2026-11-27T07:00:00Z"), at("2026-11-28T07:00:00Z")),
            per_query: vec![
                ("diffusion".into(), 9),
                ("author:\"Tri Dao\"".into(), 0),
                ("\"state space model\"".into(), 3),
            ],
        },
        &prefs,
        render::DigestLinks {
            archive: Some(l.archive(7, "fixed-archive-key")),
            preferences: l.preferences(r.id, &r.link_key),
            unsubscribe: l.unsubscribe(r.id, &r.link_key),
            feed: l.feed(r.id, &r.link_key),
        },
    )
}

#[test]
fn a_grouped_email_lists_its_overview_by_query_and_a_phrase_keeps_its_own_quotes() {
    let v = grouped_view();
    let (html, text) = render::bodies(&v).unwrap();
    let text = text.replace("\r\n", "\n");
    let overview = "\u{201c}diffusion\u{201d}: 9 papers\n1. Diffusion";
    assert!(
        text.starts_with("12 new papers match your queries\n"),
        "{text}"
    );
    let at_overview = text.find(overview).expect("the overview by query");
    let phrase = text
        .find("\n\"state space model\": 3 papers\n6. Structured")
        .expect("the phrase query's overview, quoted once");
    let entries = text
        .find("\n8. Structured state space models for diffusion, part 7\n\n\n== \u{201c}diffusion\u{201d}: 9 papers ==\n")
        .expect("two blank lines between the overview and the first section");
    assert!(at_overview < phrase && phrase < entries, "{text}");
    assert!(
        text.contains("== \"state space model\": 3 papers =="),
        "{text}"
    );
    assert!(!text.contains("\u{201c}\"state"), "{text}");
    assert!(html.contains("<p class=\"oh\">\u{201c}diffusion\u{201d}: 9 papers</p>"));
    assert!(
        html.contains("<p class=\"oh\">&#34;state space model&#34;: 3 papers</p>")
            || html.contains("<p class=\"oh\">&quot;state space model&quot;: 3 papers</p>"),
        "{html}"
    );
    assert_eq!(html.matches("<a href=\"#paper-").count(), 8);
}
