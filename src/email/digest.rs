//! The digest email: the view of a digest (what its email and its archive page show) and
//! its bodies, HTML from `templates/email/digest.html` and text from [`super::text`], same
//! content in both.
//! Everything a feed wrote is escaped; the only markup added to it is `<mark>` around
//! matched words.

use std::ops::Range;

use askama::Template;
use chrono::{DateTime, Utc};

use super::{Email, ListHeaders, RenderError};
use crate::domain::query::Field;
use crate::domain::token::Links;
use crate::domain::{Explanation, Preferences, Subscriber};
use crate::store::{DigestRecord, StoredEntry};

/// Authors listed before "et al.".
const AUTHORS_SHOWN: usize = 4;
/// Characters of abstract shown around the first match: about two lines of the email.
const SNIPPET_CHARS: usize = 200;

/// One paper as the templates show it.
#[derive(Debug, Clone)]
pub struct PaperView {
    /// Its place in the email, from 1 (suggestions go on counting after the list).
    pub number: usize,
    pub paper_id: i64,
    pub key: String,
    /// The id of its entry on the digest's page.
    pub anchor: String,
    /// Its entry on the digest's page, where it can be rated; `None` in a preview.
    pub entry_url: Option<String>,
    pub title: String,
    /// The title escaped, with `<mark>` around matched words.
    pub title_html: String,
    /// "arXiv:2411.00100 · 27 Nov 2026 · cs.LG · 40 upvotes · 3 comments": its id (or
    /// DOI, or the site it came from), date, primary category and counts when known.
    pub facts: String,
    pub abs_url: Option<String>,
    pub pdf_url: Option<String>,
    pub discussion_url: Option<String>,
    pub authors: String,
    pub categories: String,
    pub upvotes: Option<i64>,
    /// Escaped abstract excerpt with `<mark>` around matched words.
    pub snippet_html: String,
    /// The same excerpt as text, matched words between `*`.
    pub snippet_text: String,
    /// "your query "x" in title and abstract; …", empty for trending digests.
    pub matched: String,
    /// Why it has its place: the query that won it, what the learned taste did.
    pub reason: String,
    /// The query that won it its place, if one did.
    pub won_by: Option<String>,
    /// Every query of the reader's that matched it.
    pub queries: Vec<String>,
}

/// One query's part of an email grouped by query.
#[derive(Debug, Clone)]
pub struct Section {
    pub query: String,
    /// The query as shown, quoted once (see [`quoted`]).
    pub label: String,
    /// How many new papers the query matched.
    pub count: usize,
    /// The emailed papers the query won.
    pub papers: Vec<PaperView>,
    /// Its emailed papers that another query won (listed in that query's section).
    pub elsewhere: usize,
    /// How many of its papers the email leaves to the digest's page.
    pub more: usize,
}

/// What a digest email (or its archive page) shows.
#[derive(Debug, Clone)]
pub struct DigestView {
    pub subject: String,
    pub period: String,
    pub total: usize,
    pub papers: Vec<PaperView>,
    /// The same papers by query, when the reader chose that layout (else empty).
    pub sections: Vec<Section>,
    /// "You might also like": papers outside the reader's queries, from their taste.
    pub suggestions: Vec<PaperView>,
    pub more: usize,
    pub trending: bool,
    pub why: String,
    /// The digest's page; `None` for a preview, which has none.
    pub archive_url: Option<String>,
    pub preferences_url: String,
    pub unsubscribe_url: String,
    /// The reader's Atom feed of the papers they were sent.
    pub feed_url: String,
}

#[derive(Template)]
#[template(path = "email/digest.html")]
struct DigestHtml<'a> {
    d: &'a DigestView,
}

/// The HTML and text bodies.
pub fn bodies(view: &DigestView) -> Result<(String, String), RenderError> {
    let html = DigestHtml { d: view }
        .render()
        .map_err(RenderError::of("digest"))?;
    Ok((html, to_crlf(&super::text::digest(view))))
}

/// The email of a digest view, with the delivery's fixed Message-ID.
pub fn email(
    links: &Links,
    subscriber: &Subscriber,
    view: &DigestView,
    message_id: &str,
) -> Result<Email, RenderError> {
    let (html, text) = bodies(view)?;
    Ok(Email {
        to: subscriber.email.clone(),
        subject: view.subject.clone(),
        text,
        html,
        message_id: message_id.to_string(),
        list: Some(ListHeaders {
            id: super::list_id(links),
            unsubscribe_url: view.unsubscribe_url.clone(),
            bulk: true,
            feedback_id: Some(format!("digest:paperboy:{}", links.host())),
        }),
    })
}

/// The view of a stored digest with the papers it lists, read already.
pub fn view_of_record(
    digest: &DigestRecord,
    entries: &[StoredEntry],
    subscriber: &Subscriber,
    links: &Links,
) -> DigestView {
    let facts = DigestFacts {
        total: usize::try_from(digest.total).unwrap_or(0),
        trending: digest.trending,
        window: (digest.window_start, digest.window_end),
        per_query: digest.per_query(),
    };
    view_for(
        entries,
        &facts,
        subscriber,
        Some(links.archive(digest.id, &digest.archive_key)),
        links,
    )
}

/// What a digest holds besides the papers it lists.
#[derive(Debug, Clone)]
pub struct DigestFacts {
    /// How many papers matched in all.
    pub total: usize,
    pub trending: bool,
    pub window: (DateTime<Utc>, DateTime<Utc>),
    /// How many papers each of the reader's queries matched, in their order.
    pub per_query: Vec<(String, usize)>,
}

/// The view of a digest for `subscriber`, whose page is at `archive` (`None`: a preview).
pub fn view_for(
    entries: &[StoredEntry],
    facts: &DigestFacts,
    subscriber: &Subscriber,
    archive: Option<String>,
    links: &Links,
) -> DigestView {
    view(
        entries,
        facts,
        &subscriber.preferences,
        DigestLinks {
            archive,
            preferences: links.preferences(subscriber.id, &subscriber.link_key),
            unsubscribe: links.unsubscribe(subscriber.id, &subscriber.link_key),
            feed: links.feed(subscriber.id, &subscriber.link_key),
        },
    )
}

/// Every line break as CRLF, in one pass (a lone CR is dropped).
fn to_crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 32);
    for piece in text.split('\n') {
        out.push_str(piece.trim_end_matches('\r'));
        out.push_str("\r\n");
    }
    // split yields one more piece than there are newlines.
    out.truncate(out.len() - 2);
    out
}

/// Links of one digest, made by the caller (who holds the keys).
pub struct DigestLinks {
    /// The digest's page; `None` for a preview.
    pub archive: Option<String>,
    pub preferences: String,
    pub unsubscribe: String,
    pub feed: String,
}

/// Builds the view of a digest: `entries` are the papers to list (in email order), then
/// its suggestions.
pub fn view(
    entries: &[StoredEntry],
    facts: &DigestFacts,
    prefs: &Preferences,
    links: DigestLinks,
) -> DigestView {
    let (total, trending, window) = (facts.total, facts.trending, facts.window);
    let tz = prefs.timezone.tz();
    let start = window.0.with_timezone(&tz);
    let end = window.1.with_timezone(&tz);
    let period = period(&start, &end, prefs.timezone.name());
    let archive = links.archive.as_deref();
    let (listed, suggested): (Vec<&StoredEntry>, Vec<&StoredEntry>) =
        entries.iter().partition(|e| !e.suggested);
    let papers: Vec<PaperView> = listed
        .iter()
        .enumerate()
        .map(|(i, e)| paper_view(e, i + 1, archive))
        .collect();
    let suggestions: Vec<PaperView> = suggested
        .iter()
        .enumerate()
        .map(|(i, e)| paper_view(e, papers.len() + i + 1, archive))
        .collect();
    let sections = if prefs.layout.group_by_query && !trending {
        sections(&papers, &facts.per_query)
    } else {
        Vec::new()
    };
    let subject = if trending {
        format!(
            "paperboy: the {} most upvoted new papers, {}",
            papers.len(),
            end.format("%-d %b")
        )
    } else if total == 1 {
        format!("paperboy: 1 new paper for you, {}", end.format("%-d %b"))
    } else {
        format!(
            "paperboy: {total} new papers for you, {}",
            end.format("%-d %b")
        )
    };
    let why = if trending {
        "You get this because you subscribed to paperboy without queries: it sends the most \
         upvoted new papers."
            .to_string()
    } else {
        format!(
            "You get this because you subscribed to paperboy with {} {}.",
            prefs.queries.lines().len(),
            if prefs.queries.lines().len() == 1 {
                "query"
            } else {
                "queries"
            }
        )
    };
    DigestView {
        subject,
        period,
        total,
        more: total.saturating_sub(papers.len()),
        papers,
        sections,
        suggestions,
        trending,
        why,
        archive_url: links.archive,
        preferences_url: links.preferences,
        unsubscribe_url: links.unsubscribe,
        feed_url: links.feed,
    }
}

/// The window in the reader's zone, both ends in one format and to the minute; the year
/// only when the window crosses New Year, then on both ends.
fn period<Z: chrono::TimeZone>(start: &DateTime<Z>, end: &DateTime<Z>, zone: &str) -> String
where
    Z::Offset: std::fmt::Display,
{
    use chrono::Datelike;
    let format = if start.year() == end.year() {
        "%a %-d %b %H:%M"
    } else {
        "%a %-d %b %Y %H:%M"
    };
    format!(
        "{} \u{2013} {} ({zone})",
        start.format(format),
        end.format(format)
    )
}

/// A query as the email names it, between curly quotes; a phrase query already shows its
/// own quotes, so it keeps only those.
pub fn quoted(query: &str) -> String {
    let phrase = query.len() >= 2
        && query.starts_with('"')
        && query.ends_with('"')
        && !query[1..query.len() - 1].contains('"');
    if phrase {
        query.to_string()
    } else {
        format!("\u{201c}{query}\u{201d}")
    }
}

/// The emailed papers by the query that won each its place, one section per query that
/// matched, in the reader's order.
fn sections(papers: &[PaperView], per_query: &[(String, usize)]) -> Vec<Section> {
    per_query
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(query, count)| {
            let won: Vec<PaperView> = papers
                .iter()
                .filter(|p| p.won_by.as_deref() == Some(query.as_str()))
                .cloned()
                .collect();
            let elsewhere = papers
                .iter()
                .filter(|p| p.won_by.as_deref() != Some(query.as_str()))
                .filter(|p| p.queries.iter().any(|q| q == query))
                .count();
            Section {
                label: quoted(query),
                query: query.clone(),
                count: *count,
                more: count.saturating_sub(won.len() + elsewhere),
                elsewhere,
                papers: won,
            }
        })
        .collect()
}

/// The anchor of a paper's entry on a digest's page.
pub fn anchor(paper_id: i64) -> String {
    format!("paper-{paper_id}")
}

/// One stored entry as the email shows it (also what the reader's feed says of it).
pub fn paper_view(e: &StoredEntry, number: usize, archive: Option<&str>) -> PaperView {
    let p = &e.paper.paper;
    let authors = if p.authors.len() > AUTHORS_SHOWN {
        format!("{} et al.", p.authors[..AUTHORS_SHOWN - 1].join(", "))
    } else {
        p.authors.join(", ")
    };
    let (snippet_html, snippet_text) = snippet(&p.abstract_text, &e.explanation.abstract_spans);
    let anchor = anchor(e.paper.id);
    let title_html = marked(&p.title, &e.explanation.title_spans);
    PaperView {
        number,
        paper_id: e.paper.id,
        key: p.key.as_str().to_string(),
        entry_url: archive.map(|a| format!("{a}#{anchor}")),
        anchor,
        title: p.title.clone(),
        title_html,
        facts: facts(p),
        abs_url: web_link(&p.links.abs),
        pdf_url: web_link(&p.links.pdf),
        discussion_url: web_link(&p.links.discussion),
        authors,
        categories: p.categories.join(", "),
        upvotes: p.upvotes,
        snippet_html,
        snippet_text,
        matched: matched_line(&e.explanation),
        reason: reason(&e.explanation),
        won_by: e.explanation.won_by.clone(),
        queries: e.explanation.query_texts(),
    }
}

/// Where a paper is from and what is known of it, in one line: its arXiv id (or DOI, or
/// the site it came from), date, primary category, upvotes and comments.
fn facts(p: &crate::domain::Paper) -> String {
    let mut parts = Vec::new();
    if let Some(id) = &p.arxiv_id {
        parts.push(format!("arXiv:{id}"));
    } else if let Some(doi) = &p.doi {
        parts.push(format!("doi:{doi}"));
    } else if let Some(host) = url::Url::parse(&p.key.landing_url()).ok().and_then(|u| {
        u.host_str()
            .map(|h| h.trim_start_matches("www.").to_string())
    }) {
        parts.push(host);
    }
    if let Some(date) = p.published {
        parts.push(date.format("%-d %b %Y").to_string());
    }
    if let Some(primary) = p.categories.first() {
        parts.push(primary.clone());
    }
    let count = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if let Some(n) = p.upvotes {
        parts.push(count(n, "upvote", "upvotes"));
    }
    if let Some(n) = p.comments {
        parts.push(count(n, "comment", "comments"));
    }
    parts.join(" \u{b7} ")
}

/// `text` escaped, with `<mark>` around the spans that still fall on its character
/// boundaries (spans are sorted and merged when matching makes them).
fn marked(text: &str, spans: &[Range<usize>]) -> String {
    let mut html = String::with_capacity(text.len() + 16);
    let mut at = 0;
    for r in spans {
        let ok = r.start >= at
            && r.start < r.end
            && r.end <= text.len()
            && text.is_char_boundary(r.start)
            && text.is_char_boundary(r.end);
        if !ok {
            continue;
        }
        html.push_str(&html_escape::encode_text(&text[at..r.start]));
        html.push_str("<mark>");
        html.push_str(&html_escape::encode_text(&text[r.clone()]));
        html.push_str("</mark>");
        at = r.end;
    }
    html.push_str(&html_escape::encode_text(&text[at..]));
    html
}

/// Why a paper has its place, in words: the query that won it, and what the learned taste
/// did ("ranked up: like 'Title' that you marked more like this").
pub fn reason(x: &Explanation) -> String {
    let mut parts = Vec::new();
    if let Some(q) = &x.won_by {
        parts.push(format!("chosen for your query {}", quoted(q)));
    }
    if let Some(t) = &x.taste {
        parts.push(t.describe());
    }
    let mut out = parts.join("; ");
    if let Some(first) = out.get(..1) {
        let upper = first.to_uppercase();
        out.replace_range(..1, &upper);
    }
    out
}

/// A feed's link, only when it is an http(s) address: a `javascript:` or `data:` link is
/// dropped however well it is escaped.
pub fn web_link(link: &Option<String>) -> Option<String> {
    link.as_ref()
        .filter(|l| url::Url::parse(l).is_ok_and(|u| matches!(u.scheme(), "http" | "https")))
        .cloned()
}

fn matched_line(x: &Explanation) -> String {
    x.queries
        .iter()
        .map(|q| {
            let fields: Vec<&str> = q.fields.iter().map(|f| field_name(*f)).collect();
            if fields.is_empty() {
                format!("your query {}", quoted(&q.query))
            } else {
                format!(
                    "your query {} in {}",
                    quoted(&q.query),
                    fields.join(" and ")
                )
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn field_name(f: Field) -> &'static str {
    match f {
        Field::Title => "title",
        Field::Abstract => "abstract",
        Field::Author => "authors",
        Field::Category => "category",
        _ => "text",
    }
}

/// An excerpt of `text` around the first span, escaped, with the spans marked: HTML with
/// `<mark>`, text with `*`.
pub fn snippet(text: &str, spans: &[Range<usize>]) -> (String, String) {
    // Spans were computed on the text as it was when the digest was composed; a later
    // version of the paper may be shorter or different, so only spans that still fall on
    // character boundaries inside the text are used.
    let spans: Vec<Range<usize>> = spans
        .iter()
        .filter(|r| {
            r.start < r.end
                && r.end <= text.len()
                && text.is_char_boundary(r.start)
                && text.is_char_boundary(r.end)
        })
        .cloned()
        .collect();
    let first = spans.first().map(|r| r.start).unwrap_or(0);
    let mut start = first.saturating_sub(SNIPPET_CHARS / 3);
    while start > 0 && !text.is_char_boundary(start) {
        start -= 1;
    }
    // Start at a word.
    if start > 0
        && let Some(space) = text[start..first.max(start)].find(' ')
    {
        start += space + 1;
    }
    let mut end = (start + SNIPPET_CHARS).min(text.len());
    while end < text.len() && !text.is_char_boundary(end) {
        end += 1;
    }
    if end < text.len()
        && let Some(space) = text[start..end].rfind(' ')
    {
        end = start + space;
    }
    let mut html = String::new();
    let mut plain = String::new();
    if start > 0 {
        html.push('…');
        plain.push('…');
    }
    let mut at = start;
    for r in &spans {
        let (s, e) = (r.start.max(at), r.end.min(end));
        if s >= e || !text.is_char_boundary(s) || !text.is_char_boundary(e) {
            continue;
        }
        html.push_str(&html_escape::encode_text(&text[at..s]));
        plain.push_str(&text[at..s]);
        html.push_str("<mark>");
        html.push_str(&html_escape::encode_text(&text[s..e]));
        html.push_str("</mark>");
        plain.push('*');
        plain.push_str(&text[s..e]);
        plain.push('*');
        at = e;
    }
    html.push_str(&html_escape::encode_text(&text[at..end]));
    plain.push_str(&text[at..end]);
    if end < text.len() {
        html.push('…');
        plain.push('…');
    }
    (html, plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_escape_the_text_and_mark_only_the_spans() {
        let text = "We use <script>alert(1)</script> & diffusion models for x";
        let at = text.find("diffusion").unwrap();
        let (html, plain) = snippet(text, std::slice::from_ref(&(at..at + 9)));
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; <mark>diffusion</mark>"),
            "{html}"
        );
        assert!(plain.contains("*diffusion* models"), "{plain}");
        assert!(!html.contains("<script"));
    }

    #[test]
    fn stale_or_broken_spans_never_panic() {
        let text = "Größere Modelle: diffusion";
        let stale: [Vec<Range<usize>>; 4] = [
            std::iter::once(0..1000).collect(),
            vec![1..2, 3..4],
            std::iter::once(50..60).collect(),
            std::iter::once(2..3).collect(),
        ];
        for spans in &stale {
            let (html, plain) = snippet(text, spans);
            assert!(html.contains("diffusion") && plain.contains("diffusion"));
        }
    }

    #[test]
    fn a_phrase_query_keeps_its_own_quotes_only() {
        assert_eq!(quoted("\"control variate\""), "\"control variate\"");
        assert_eq!(quoted("diffusion"), "\u{201c}diffusion\u{201d}");
        assert_eq!(
            quoted("author:\"Tri Dao\""),
            "\u{201c}author:\"Tri Dao\"\u{201d}"
        );
        assert_eq!(quoted("\"a\" OR \"b\""), "\u{201c}\"a\" OR \"b\"\u{201d}");
        assert_eq!(quoted("\""), "\u{201c}\"\u{201d}");
    }

    #[test]
    fn the_period_has_one_format_on_both_ends_and_no_seconds() {
        let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&tz);
        assert_eq!(
            period(
                &at("2026-12-01T01:34:56Z"),
                &at("2026-12-02T01:34:10Z"),
                "Europe/Berlin"
            ),
            "Tue 1 Dec 02:34 \u{2013} Wed 2 Dec 02:34 (Europe/Berlin)"
        );
        assert_eq!(
            period(
                &at("2026-12-31T07:00:00Z"),
                &at("2027-01-01T07:00:00Z"),
                "Europe/Berlin"
            ),
            "Thu 31 Dec 2026 08:00 \u{2013} Fri 1 Jan 2027 08:00 (Europe/Berlin)"
        );
    }

    #[test]
    fn titles_mark_the_matched_words_and_escape_the_rest() {
        let title = "<b>Diffusion</b> & state space models";
        let at = title.find("Diffusion").unwrap();
        let empty = Range { start: 2, end: 1 };
        let html = marked(title, &[at..at + 9, 0..1000, empty]);
        assert_eq!(
            html,
            "&lt;b&gt;<mark>Diffusion</mark>&lt;/b&gt; &amp; state space models"
        );
        assert_eq!(marked("Größe", std::slice::from_ref(&(1..3))), "Größe");
    }

    #[test]
    fn the_facts_line_names_the_source_date_primary_category_and_counts() {
        use crate::domain::{ArxivId, Paper, PaperKey};
        let mut p = Paper::from_arxiv(&ArxivId::parse("2411.00100").unwrap(), "T");
        p.categories = vec!["cs.LG".into(), "stat.ML".into()];
        p.published = Some(
            DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        );
        p.upvotes = Some(40);
        p.comments = Some(1);
        assert_eq!(
            facts(&p),
            "arXiv:2411.00100 \u{b7} 27 Nov 2026 \u{b7} cs.LG \u{b7} 40 upvotes \u{b7} 1 comment"
        );
        let mut doi = Paper::new(PaperKey::doi("10.1000/xyz").unwrap(), "T");
        doi.doi = Some("10.1000/xyz".into());
        assert_eq!(facts(&doi), "doi:10.1000/xyz");
        let web = Paper::new(
            PaperKey::url("https://www.example.org/post/1").unwrap(),
            "T",
        );
        assert_eq!(facts(&web), "example.org");
    }

    #[test]
    fn only_web_links_are_kept() {
        assert_eq!(
            web_link(&Some("https://arxiv.org/abs/1".into())).as_deref(),
            Some("https://arxiv.org/abs/1")
        );
        assert_eq!(web_link(&Some("javascript:alert(1)".into())), None);
        assert_eq!(web_link(&Some("data:text/html,x".into())), None);
        assert_eq!(web_link(&None), None);
    }

    #[test]
    fn text_bodies_use_crlf_throughout() {
        assert_eq!(to_crlf("a\nb\r\nc\n"), "a\r\nb\r\nc\r\n");
        assert_eq!(to_crlf("one"), "one");
    }

    #[test]
    fn long_abstracts_are_cut_around_the_first_match() {
        let text = format!("{} target {}", "word ".repeat(200), "tail ".repeat(200));
        let at = text.find("target").unwrap();
        let (html, plain) = snippet(&text, std::slice::from_ref(&(at..at + 6)));
        assert!(html.starts_with('…') && html.ends_with('…'));
        assert!(plain.contains("*target*"));
        assert!(
            plain.chars().count() <= SNIPPET_CHARS + 4,
            "{}",
            plain.len()
        );
    }
}
