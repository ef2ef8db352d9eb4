//! The pages, as askama templates in `templates/web`, and the answer each is sent in.
//! Everything interpolated is escaped.

use std::collections::HashMap;

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::forms::{Choices, FieldErrors, FormFields};
use super::recent::LinePreview;
use crate::domain::{Rating, RatingSource, TimeZone};
use crate::store::RatingRecord;

/// The words next to the subscribe button, kept with every consent.
pub const CONSENT_TEXT: &str = "By subscribing you ask paperboy to email you the digest \
described above until you unsubscribe. paperboy keeps your address, your queries and \
settings, and when and from which IP address and browser you subscribed and confirmed, as \
the record of your consent. Every email links to your settings and to a one-click \
unsubscribe.";

/// Changes whenever [`CONSENT_TEXT`] does.
pub const CONSENT_VERSION: &str = "2026-11-28";

/// A page answer that may also set the CSRF cookie.
pub fn page(status: StatusCode, body: String, set_cookie: Option<header::HeaderValue>) -> Response {
    let mut response = (status, Html(body)).into_response();
    if let Some(cookie) = set_cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Renders a page; a template that fails (it cannot, short of a bug) still gives a page.
pub fn render(t: &impl Template) -> String {
    t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "template failed");
        "<!DOCTYPE html><title>paperboy</title><p>Something went wrong.</p>".into()
    })
}

#[derive(Template)]
#[template(path = "web/subscribe.html")]
pub struct Subscribe<'a> {
    pub form: &'a FormFields,
    pub errors: &'a FieldErrors,
    pub choices: &'a Choices,
    pub csrf: &'a str,
    pub consent_text: &'a str,
    pub operator_note: Option<&'a str>,
    /// What each query line finds (empty here: the script fills it in as you type).
    pub previews: &'a [LinePreview],
}

#[derive(Template)]
#[template(path = "web/check_inbox.html")]
pub struct CheckInbox<'a> {
    pub operator_note: Option<&'a str>,
}

/// What a confirmation link opens: one button, whose POST confirms.
#[derive(Template)]
#[template(path = "web/confirm.html")]
pub struct Confirm<'a> {
    pub email: &'a str,
    pub schedule: &'a str,
    pub csrf: &'a str,
}

#[derive(Template)]
#[template(path = "web/confirmed.html")]
pub struct Confirmed<'a> {
    pub schedule: &'a str,
    /// The date and time of the first digest, in the reader's zone.
    pub first_digest: Option<&'a str>,
    pub preferences_url: &'a str,
}

#[derive(Template)]
#[template(path = "web/preferences.html")]
pub struct Preferences<'a> {
    pub email: &'a str,
    pub status: &'a str,
    pub status_text: &'a str,
    pub flash: Option<&'a str>,
    pub form: &'a FormFields,
    pub errors: &'a FieldErrors,
    pub choices: &'a Choices,
    pub csrf: &'a str,
    pub can_edit: bool,
    pub can_resubscribe: bool,
    /// What each query line finds among the recent papers.
    pub previews: &'a [LinePreview],
    /// "Preview my next digest" and the Atom feed, for a reader who gets digests.
    pub digest_preview_url: Option<&'a str>,
    pub feed_url: Option<&'a str>,
    /// The reader's "more / less like this" ratings (`_ratings.html`).
    pub ratings: &'a RatingList,
    pub likes: LikesPanel<'a>,
}

/// The "Papers you like" part of the settings page.
#[derive(Debug, Clone)]
pub struct LikesPanel<'a> {
    /// Where its form posts.
    pub url: &'a str,
    pub max_entries: usize,
    pub max_kib: usize,
    /// What the list just sent came to, on the page that answers it.
    pub outcome: Option<&'a LikesOutcome>,
}

/// What a list of papers the reader likes came to, as the settings page tells it.
#[derive(Debug, Clone, Default)]
pub struct LikesOutcome {
    /// Why the list was refused whole (nothing was recorded).
    pub refused: Option<String>,
    pub recorded: u64,
    /// `(key, title)` of the papers fetched from arXiv for it.
    pub fetched: Vec<(String, String)>,
    /// `(entry, reason)` of the entries that name no paper paperboy could find.
    pub unresolved: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "web/unsubscribe.html")]
pub struct Unsubscribe<'a> {
    pub email: &'a str,
    pub preferences_url: &'a str,
}

#[derive(Template)]
#[template(path = "web/unsubscribed.html")]
pub struct Unsubscribed<'a> {
    pub email: &'a str,
    pub preferences_url: &'a str,
}

#[derive(Template)]
#[template(path = "web/message.html")]
pub struct Message<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

#[derive(Template)]
#[template(path = "web/digest_preview.html")]
pub struct DigestPreview<'a> {
    pub d: &'a crate::email::digest::DigestView,
    pub preferences_url: &'a str,
    /// Always `None`: a digest not yet composed has no papers to rate (it shares the
    /// archive page's paper partial).
    pub rate: Option<&'a RateButtons>,
}

#[derive(Template)]
#[template(path = "web/archive.html")]
pub struct Archive<'a> {
    pub d: &'a crate::email::digest::DigestView,
    /// The "more / less like this" buttons of each paper (`_rate_paper.html`).
    pub rate: Option<&'a RateButtons>,
}

/// The "more / less like this" buttons of a digest's page: where they post, the form
/// token, and what the reader already said of each paper.
pub struct RateButtons {
    pub action: String,
    pub csrf: String,
    rated: HashMap<i64, Rating>,
}

impl RateButtons {
    pub fn new(action: String, csrf: String, ratings: &[RatingRecord]) -> Self {
        RateButtons {
            action,
            csrf,
            rated: ratings.iter().map(|r| (r.paper_id, r.rating)).collect(),
        }
    }

    /// The reader's rating of this paper, if any.
    pub fn of(&self, paper_id: &i64) -> Option<Rating> {
        self.rated.get(paper_id).copied()
    }
}

/// The reader's ratings as the settings page lists them, newest first, with where their
/// remove buttons post.
pub struct RatingList {
    pub action: String,
    pub items: Vec<RatingItem>,
}

/// One rating, in words.
pub struct RatingItem {
    pub paper_id: i64,
    pub title: String,
    pub url: String,
    /// `more` or `less`.
    pub rating: &'static str,
    /// When, in the reader's time zone.
    pub when: String,
    /// Where: "on a digest's page", "by the operator"…
    pub from: &'static str,
}

impl RatingList {
    pub fn new(action: String, ratings: &[RatingRecord], timezone: &TimeZone) -> Self {
        let items = ratings
            .iter()
            .map(|r| RatingItem {
                paper_id: r.paper_id,
                title: r.title.clone(),
                url: r.key.landing_url(),
                rating: r.rating.as_str(),
                when: r
                    .rated_at
                    .with_timezone(&timezone.tz())
                    .format("%-d %b %Y, %H:%M %Z")
                    .to_string(),
                from: match r.source {
                    RatingSource::Digest => "on a digest's page",
                    RatingSource::Preferences => "on this page",
                    RatingSource::Operator => "by the operator, at your request",
                    RatingSource::Import => "from your list of papers you like",
                },
            })
            .collect();
        RatingList { action, items }
    }
}
