//! `serve --demo`: sample papers written for paperboy (each marked "[Sample]" and saying it
//! does not exist) and a sample reader, so that a first run with no network shows the
//! form, a confirmation email and a real digest in the outbox. Without `--demo` nothing
//! here is ever stored.

use anyhow::Context;
use chrono::Utc;
use serde::Deserialize;

use crate::delivery::Mailer;
use crate::digest;
use crate::domain::token::{Links, hash_token, random_token};
use crate::domain::{
    EmailAddress, FeedKind, FeedName, FeedUrl, Frequency, Ingested, MaxPapers, Paper, PaperKey,
    Preferences, QueryList, SendHour, TimeZone,
};
use crate::email::notices;
use crate::store::{ClientInfo, ConsentText, RequestOutcome, Store, SubscriptionRequest};

const PAPERS: &str = include_str!("../assets/demo-papers.json");
/// The sample reader.
pub const SUBSCRIBER: &str = "demo@example.org";
const QUERIES: &str = "diffusion\n\"state space model\"\nauthor:\"Tri Dao\"";
const CONSENT: ConsentText<'static> = ConsentText {
    version: "demo",
    text: "The sample reader of paperboy's demo.",
};

#[derive(Deserialize)]
struct SamplePaper {
    title: String,
    #[serde(rename = "abstract")]
    abstract_text: String,
    authors: Vec<String>,
    categories: Vec<String>,
    upvotes: Option<i64>,
}

/// Loads the demo once per database: the sample reader subscribes (their confirmation email
/// goes to the outbox) and confirms, the sample papers arrive, and their first digest is
/// composed at once for the worker to deliver. Returns what to tell the operator.
pub async fn load(store: &Store, mailer: &Mailer, links: &Links) -> anyhow::Result<String> {
    if !matches!(mailer, Mailer::Outbox { .. }) {
        anyhow::bail!(
            "--demo mails a sample reader at {SUBSCRIBER}: run it without PAPERBOY_SMTP_URL, so that mail goes to the outbox"
        );
    }
    let where_to_look = format!(
        "demo: the form is at {}; the sample reader's confirmation email and digest are in {}",
        links.home(),
        mailer.describe()
    );
    let email = EmailAddress::parse(SUBSCRIBER)?;
    if store.subscriber_by_email(&email).await?.is_some() {
        return Ok(where_to_look);
    }
    let now = Utc::now();
    let preferences = Preferences {
        queries: QueryList::parse(QUERIES).context("the demo's queries")?,
        frequency: Frequency::Daily,
        send_hour: SendHour::new(8)?,
        timezone: TimeZone::utc(),
        max_papers: MaxPapers::DEFAULT,
        layout: Default::default(),
    };
    let token = random_token()?;
    let link_key = random_token()?;
    let outcome = store
        .request_subscription(
            &SubscriptionRequest {
                email: &email,
                preferences: &preferences,
                token_hash: &hash_token(&token),
                token_ttl: chrono::Duration::hours(48),
                resend_after: chrono::Duration::zero(),
                // The operator's own sample reader, mailed at each `serve --demo`.
                daily_mailbox_limit: u32::MAX,
                link_key: &link_key,
                client: &ClientInfo::default(),
                consent: CONSENT,
            },
            now,
        )
        .await?;
    if let RequestOutcome::Confirm(subscriber) = &outcome {
        let message = notices::confirmation(
            &mailer.message_ids(),
            links,
            subscriber,
            &preferences,
            &token,
        )?;
        mailer.send(&message).await?;
    }
    let subscriber = store
        .confirm(&hash_token(&token), &ClientInfo::default(), CONSENT, now)
        .await?
        .context("confirming the sample reader")?;

    load_papers(store, now).await?;

    let composed =
        digest::compose_for(store, &mailer.message_ids(), &subscriber, Utc::now()).await?;
    tracing::info!(
        papers = composed,
        "demo: sample papers and reader loaded, first digest queued"
    );
    Ok(where_to_look)
}

/// Stores the sample papers. They come through a feed of their own, removed again so
/// nothing polls it.
async fn load_papers(store: &Store, now: chrono::DateTime<Utc>) -> anyhow::Result<()> {
    let samples: Vec<SamplePaper> = serde_json::from_str(PAPERS).context("the demo papers")?;
    let batch: Vec<Ingested> = samples
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let url = format!("https://example.org/paperboy-sample/{}", i + 1);
            let key = PaperKey::parse(&format!("url:{url}"))?;
            let mut paper = Paper::new(key, s.title);
            paper.abstract_text = s.abstract_text;
            paper.authors = s.authors;
            paper.categories = s.categories;
            paper.upvotes = s.upvotes;
            paper.links.abs = Some(url.clone());
            Ok(Ingested {
                paper,
                entry_id: url,
                announce_type: None,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let name = FeedName::parse("paperboy-demo")?;
    let feed = store
        .add_feed(
            &name,
            &FeedUrl::parse("https://example.org/paperboy-demo.xml")?,
            FeedKind::Feed,
            now,
        )
        .await?;
    store.upsert_papers(feed.id, &batch, now).await?;
    store.remove_feed(&name).await?;
    Ok(())
}
