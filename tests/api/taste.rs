//! What a reader steers, on SQLite and PostgreSQL: fair shares across queries, ratings and
//! the learned taste (ranked up with a reason, "You might also like"), the digest grouped
//! by query, and the digest as data.

use crate::helpers::{
    active_subscriber, arxiv_paper, databases, outbox_mailer, paper, paperboy_on, run_due_digests,
    store_full_papers, test_links as links, tomorrow,
};
use paperboy::digest;
use paperboy::domain::{DigestLayout, Rating, RatingSource, Subscriber};
use paperboy::email::digest::bodies;
use paperboy::store::{Store, StoredEntry};

/// The reader's latest digest: its emailed entries (then suggestions), the text body with
/// its wrapping undone (every run of spaces and line breaks one space) and the HTML body.
async fn latest_email(
    store: &Store,
    subscriber: &Subscriber,
) -> (Vec<StoredEntry>, String, String) {
    let digests = store.digests_of(subscriber.id).await.unwrap();
    let digest = digests.first().expect("a digest");
    let subscriber = store.subscriber(subscriber.id).await.unwrap().unwrap();
    let view = digest::stored_view(store, &links(), digest, &subscriber, false)
        .await
        .unwrap();
    let (html, text) = bodies(&view).unwrap();
    let entries = store
        .digest_entries(digest.id, Some(usize::try_from(digest.shown).unwrap()))
        .await
        .unwrap();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (entries, text, html)
}

async fn set_layout(store: &Store, subscriber: &Subscriber, max: i64, layout: DigestLayout) {
    let mut p = subscriber.preferences.clone();
    p.max_papers = paperboy::domain::MaxPapers::new(max).unwrap();
    p.layout = layout;
    assert!(
        store
            .update_preferences(subscriber.id, &p, chrono::Utc::now())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn every_matched_query_gets_a_place_and_the_email_says_which_query_won_it() {
    for db in databases().await {
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let mailer = outbox_mailer(dir.path());
        let reader = active_subscriber(
            &store,
            "fair@example.org",
            "agent*\ntitle:generaliz*\nauthor:\"Grace Hopper\"\nquantum",
            "daily",
            8,
            "UTC",
        )
        .await;
        set_layout(&store, &reader, 6, DigestLayout::default()).await;
        // One broad query with twenty popular title matches …
        let mut papers: Vec<paperboy::domain::Paper> = (0..20)
            .map(|i| {
                arxiv_paper(
                    &format!("2612.{:05}", 100 + i),
                    &format!("Agents that plan, study {i}"),
                    "agents and agentic planning",
                    Some(100 + i),
                )
            })
            .collect();
        // … and one paper for each narrow query, none popular.
        papers.push(arxiv_paper(
            "2612.00001",
            "Generalization bounds for sparse models",
            "bounds",
            None,
        ));
        let mut hopper = arxiv_paper("2612.00002", "Compilers revisited", "compilers", None);
        hopper.authors = vec!["Grace Hopper".into()];
        papers.push(hopper);
        papers.push(arxiv_paper(
            "2612.00003",
            "A note on sampling",
            "we use quantum annealers for sampling",
            Some(1),
        ));
        store_full_papers(&store, papers).await;
        run_due_digests(&store, &mailer, tomorrow()).await;
        let (entries, text, html) = latest_email(&store, &reader).await;
        assert_eq!(entries.len(), 6, "{}", db.backend);
        let keys: Vec<&str> = entries.iter().map(|e| e.paper.paper.key.as_str()).collect();
        for narrow in ["arxiv:2612.00001", "arxiv:2612.00002", "arxiv:2612.00003"] {
            assert!(keys.contains(&narrow), "{narrow} not emailed: {keys:?}");
        }
        let won: Vec<&str> = entries
            .iter()
            .map(|e| e.explanation.won_by.as_deref().expect("won_by"))
            .collect();
        for q in [
            "agent*",
            "title:generaliz*",
            "author:\"Grace Hopper\"",
            "quantum",
        ] {
            assert!(won.contains(&q), "{q} won nothing: {won:?}");
        }
        assert!(
            won.iter().filter(|q| **q == "agent*").count() <= 3,
            "{won:?}"
        );
        assert!(
            text.contains("Chosen for your query \u{201c}title:generaliz*\u{201d}"),
            "{text}"
        );
        assert!(html.contains("Chosen for your query"), "{html}");
        // Every emailed paper links to its entry on the digest's page.
        assert!(text.contains("More or less like this: http://127.0.0.1:9/digests/"));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn ratings_teach_a_taste_that_ranks_up_says_why_and_suggests_papers() {
    for db in databases().await {
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let mailer = outbox_mailer(dir.path());
        // Papers the reader liked before.
        let liked: Vec<paperboy::domain::Paper> = (0..5)
            .map(|i| {
                arxiv_paper(
                    &format!("2611.{:05}", 10 + i),
                    &format!("Protein folding with residue contacts, part {i}"),
                    "We fold proteins by predicting residue contacts and backbone torsion \
                     angles of the protein chain.",
                    None,
                )
            })
            .collect();
        store_full_papers(&store, liked).await;
        let reader =
            active_subscriber(&store, "taste@example.org", "agent", "daily", 8, "UTC").await;
        set_layout(&store, &reader, 3, DigestLayout::default()).await;
        // A reader without a taste whose email lists more, sent in the same batch.
        let wide = active_subscriber(&store, "wide@example.org", "agent", "daily", 8, "UTC").await;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(paper(&store, &format!("arxiv:2611.{:05}", 10 + i)).await.id);
        }
        let now = chrono::Utc::now();
        let written = digest::taste::rate(
            &store,
            reader.id,
            &ids,
            Rating::More,
            RatingSource::Operator,
            now,
        )
        .await
        .unwrap();
        assert_eq!(written, 5, "{}", db.backend);
        // The same paper twice in one call is one rating (PostgreSQL refuses to upsert a
        // row twice in one statement).
        let again = digest::taste::rate(
            &store,
            reader.id,
            &[ids[0], ids[0]],
            Rating::More,
            RatingSource::Digest,
            now,
        )
        .await
        .unwrap();
        assert_eq!(again, 1, "{}", db.backend);
        let ratings = store.ratings_of(reader.id).await.unwrap();
        assert_eq!(ratings.len(), 5);
        assert!(ratings.iter().all(|r| r.rating == Rating::More));
        let tastes = store.tastes_of(&[reader.id]).await.unwrap();
        assert_eq!(tastes.len(), 1);
        assert_eq!(tastes[0].more, 5);
        assert!(tastes[0].model.len() < 2_048, "{}", tastes[0].model.len());

        // The new day: three agent papers on trading (more upvoted), three on proteins,
        // two protein papers no query matches, one paper on nothing the reader likes.
        let mut day = Vec::new();
        for i in 0..3 {
            day.push(arxiv_paper(
                &format!("2612.{:05}", 200 + i),
                &format!("An agent for stock trading {i}"),
                "The agent trades stocks and bonds on markets with limit orders.",
                Some(50),
            ));
            day.push(arxiv_paper(
                &format!("2612.{:05}", 210 + i),
                &format!("An agent for protein design {i}"),
                "The agent predicts residue contacts to fold the protein chain.",
                None,
            ));
        }
        for i in 0..2 {
            day.push(arxiv_paper(
                &format!("2612.{:05}", 220 + i),
                &format!("Residue contacts of folded proteins {i}"),
                "Protein chains fold; we predict residue contacts and torsion angles.",
                None,
            ));
        }
        day.push(arxiv_paper(
            "2612.00230",
            "Sorting networks",
            "Comparators in a network.",
            None,
        ));
        store_full_papers(&store, day).await;
        run_due_digests(&store, &mailer, tomorrow()).await;
        let (entries, text, html) = latest_email(&store, &reader).await;
        let (listed, suggested): (Vec<&StoredEntry>, Vec<&StoredEntry>) =
            entries.iter().partition(|e| !e.suggested);
        let listed: Vec<&str> = listed
            .iter()
            .map(|e| e.paper.paper.title.as_str())
            .collect();
        assert_eq!(listed.len(), 3, "{listed:?}");
        assert!(
            listed.iter().all(|t| t.contains("protein design")),
            "the taste should rank the protein agents first: {listed:?}"
        );
        let suggested: Vec<&str> = suggested
            .iter()
            .map(|e| e.paper.paper.title.as_str())
            .collect();
        assert_eq!(suggested.len(), 2, "{suggested:?}");
        assert!(suggested.iter().all(|t| t.starts_with("Residue contacts")));
        assert!(
            text.contains("ranked up: like 'Protein folding with residue contacts, part"),
            "{text}"
        );
        assert!(text.contains("that you marked more like this"));
        assert!(text.contains("== You might also like =="), "{text}");
        assert!(html.contains("You might also like"));
        // The archive page counts only matches; the suggestions never take a place.
        let digest = &store.digests_of(reader.id).await.unwrap()[0];
        assert_eq!((digest.total, digest.shown), (6, 3));
        // What a delivery worker reads for a batch holding both readers' digests: each
        // suggestion once, though the other digest lists more papers than this one's
        // suggestions are ranked at.
        let other = &store.digests_of(wide.id).await.unwrap()[0];
        let batch = store
            .digests_for_sending(&[digest.id, other.id])
            .await
            .unwrap();
        let (_, sent) = batch.iter().find(|(d, _)| d.id == digest.id).unwrap();
        assert_eq!(
            sent.iter().filter(|e| e.suggested).count(),
            2,
            "{}",
            db.backend
        );
        assert_eq!(sent.iter().filter(|e| !e.suggested).count(), 3);
        let (_, wide_sent) = batch.iter().find(|(d, _)| d.id == other.id).unwrap();
        assert_eq!(wide_sent.len(), 6);
        assert!(wide_sent.iter().all(|e| !e.suggested));

        // Forgetting every rating forgets the taste.
        let gone = digest::taste::unrate(&store, reader.id, None, chrono::Utc::now())
            .await
            .unwrap();
        assert_eq!(gone, 5);
        assert!(store.tastes_of(&[reader.id]).await.unwrap().is_empty());
        assert!(store.ratings_of(reader.id).await.unwrap().is_empty());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn an_email_grouped_by_query_has_a_section_per_query_with_its_count() {
    for db in databases().await {
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let mailer = outbox_mailer(dir.path());
        let reader = active_subscriber(
            &store,
            "groups@example.org",
            "diffusion\ngraph",
            "daily",
            8,
            "UTC",
        )
        .await;
        set_layout(
            &store,
            &reader,
            4,
            DigestLayout {
                group_by_query: true,
                suggestions: true,
            },
        )
        .await;
        let mut papers = Vec::new();
        for i in 0..6 {
            papers.push(arxiv_paper(
                &format!("2612.{:05}", 300 + i),
                &format!("Diffusion study {i}"),
                "diffusion",
                None,
            ));
        }
        papers.push(arxiv_paper("2612.00310", "Graph study", "graph", None));
        store_full_papers(&store, papers).await;
        run_due_digests(&store, &mailer, tomorrow()).await;
        let (_, text, html) = latest_email(&store, &reader).await;
        assert!(
            text.contains("== \u{201c}diffusion\u{201d}: 6 papers =="),
            "{text}"
        );
        assert!(
            text.contains("== \u{201c}graph\u{201d}: 1 paper =="),
            "{text}"
        );
        assert!(
            text.contains("3 more for \u{201c}diffusion\u{201d}"),
            "{text}"
        );
        assert!(
            html.contains("\u{201c}diffusion\u{201d}: 6 papers"),
            "{html}"
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn digest_preview_prints_every_match_as_data_in_email_order() {
    for db in databases().await {
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let reader = active_subscriber(
            &store,
            "data@example.org",
            "diffusion\nauthor:\"Grace Hopper\"",
            "daily",
            8,
            "UTC",
        )
        .await;
        set_layout(&store, &reader, 2, DigestLayout::default()).await;
        let mut papers: Vec<paperboy::domain::Paper> = (0..4)
            .map(|i| {
                arxiv_paper(
                    &format!("2612.{:05}", 400 + i),
                    &format!("Diffusion models {i}"),
                    "diffusion",
                    Some(10 - i),
                )
            })
            .collect();
        let mut hopper = arxiv_paper("2612.00410", "On compilers", "compilers", None);
        hopper.authors = vec!["Grace Hopper".into()];
        papers.push(hopper);
        store_full_papers(&store, papers).await;
        let out = paperboy_on(dir.path(), &db)
            .args([
                "digest",
                "preview",
                "--email",
                "data@example.org",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let papers = v["papers"].as_array().unwrap();
        assert_eq!(papers.len(), 5, "{v}");
        let in_email: Vec<bool> = papers
            .iter()
            .map(|p| p["in_email"].as_bool().unwrap())
            .collect();
        assert_eq!(in_email, [true, true, false, false, false]);
        let emailed: Vec<&str> = papers[..2]
            .iter()
            .map(|p| p["key"].as_str().unwrap())
            .collect();
        assert!(emailed.contains(&"arxiv:2612.00410"), "{v}");
        for p in &papers[..2] {
            assert!(
                p["reason"]
                    .as_str()
                    .unwrap()
                    .starts_with("Chosen for your query")
            );
            assert!(p["score"].as_f64().is_some() && p["title"].is_string());
            assert!(!p["queries"].as_array().unwrap().is_empty());
        }
        assert_eq!(v["suggestions"], serde_json::json!([]));
        // A preview stores nothing.
        assert!(store.digests_of(reader.id).await.unwrap().is_empty());
        db.cleanup().await;
    }
}
