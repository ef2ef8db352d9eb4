//! Reading bounces that come back after sending: delivery status notifications (RFC 3464),
//! complaint reports (ARF, RFC 5965) and other mail to a delivery's VERP address, from an
//! .eml file, a Maildir or an mbox, parsed with mail-parser. Each is tied to its delivery
//! by the VERP address (checked) or the Message-ID of the message it returns, and recorded
//! by the store's rules. Mail that is not a bounce is left alone and counted.

use std::path::Path;

use chrono::{DateTime, Utc};
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use crate::domain::{BounceKind, Verp, enhanced_status, is_enhanced_status};
use crate::store::{NewBounce, Recorded, Store, StoreError};

/// What one message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// A bounce or complaint about one of our deliveries.
    Bounce(Report),
    /// A bounce or complaint that names no delivery of ours.
    Unmatched,
    /// Not a bounce (a success notice, an auto-reply, any other mail): left alone.
    NotBounce,
}

/// A bounce or complaint as read, ready to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub delivery_id: i64,
    pub kind: BounceKind,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    /// `dsn`, `arf` or `verp`.
    pub source: &'static str,
    /// The report's Message-ID, or a hash of the whole message without one.
    pub key: String,
    pub at: DateTime<Utc>,
}

/// What an import found.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct ImportReport {
    pub messages: usize,
    pub recorded: usize,
    /// Readers whose mail these events stopped.
    pub suppressed: usize,
    /// Reports recorded by an earlier import.
    pub duplicates: usize,
    /// Bounces that name no delivery of ours (or one erased since).
    pub unmatched: usize,
    pub not_bounces: usize,
    /// Files that are not mail at all.
    pub unreadable: usize,
}

/// Why an import could not run.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("recording a bounce")]
    Store(#[from] StoreError),
}

/// Reads every message at `path` (a Maildir folder, an mbox file or one message) and
/// records its bounces. Nothing is moved or deleted: reading the same mail again records
/// nothing twice.
pub async fn import(store: &Store, verp: &Verp, path: &Path) -> Result<ImportReport, ImportError> {
    let read_error = |source| ImportError::Read {
        path: path.display().to_string(),
        source,
    };
    let messages = read_messages(path).map_err(read_error)?;
    let mut report = ImportReport::default();
    for raw in messages {
        report.messages += 1;
        let Some(message) = MessageParser::default().parse(&raw) else {
            report.unreadable += 1;
            continue;
        };
        let reading = match read(&message, &raw, verp) {
            Reading::Bounce(r) => r,
            Reading::Unmatched => match by_original_message_id(store, &message).await? {
                Some(id) => match read_as(&message, &raw, id) {
                    Some(r) => r,
                    None => {
                        report.not_bounces += 1;
                        continue;
                    }
                },
                None => {
                    report.unmatched += 1;
                    continue;
                }
            },
            Reading::NotBounce => {
                report.not_bounces += 1;
                continue;
            }
        };
        let recorded = store
            .record_bounce(
                &NewBounce {
                    delivery_id: reading.delivery_id,
                    kind: reading.kind,
                    status: reading.status.as_deref(),
                    diagnostic: reading.diagnostic.as_deref(),
                    source: reading.source,
                    report_key: Some(&reading.key),
                    at: reading.at,
                },
                Utc::now(),
            )
            .await?;
        match recorded {
            Recorded::Stored { suppressed, .. } => {
                report.recorded += 1;
                report.suppressed += usize::from(suppressed);
                tracing::info!(delivery = reading.delivery_id, kind = %reading.kind, status = reading.status.as_deref().unwrap_or("-"), suppressed, "bounce recorded");
            }
            Recorded::Duplicate => report.duplicates += 1,
            Recorded::UnknownDelivery => report.unmatched += 1,
        }
    }
    Ok(report)
}

/// The raw messages at `path`: every file of a Maildir's `new` and `cur`, each message
/// of an mbox (a file that starts with `From `), or the one message of any other file.
fn read_messages(path: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    if path.is_dir() {
        return mail_parser::mailbox::maildir::MessageIterator::new(path)?
            .map(|m| m.map(|m| m.unwrap_contents()))
            .collect();
    }
    let bytes = std::fs::read(path)?;
    if bytes.starts_with(b"From ") {
        return mail_parser::mailbox::mbox::MessageIterator::new(bytes.as_slice())
            .map(|m| {
                m.map(|m| m.unwrap_contents())
                    .map_err(|e| std::io::Error::other(format!("a broken mbox entry: {e}")))
            })
            .collect();
    }
    Ok(vec![bytes])
}

/// What `message` is, when its delivery can be told from a VERP address in it.
pub fn read(message: &Message<'_>, raw: &[u8], verp: &Verp) -> Reading {
    let Some(found) = classify(message) else {
        return Reading::NotBounce;
    };
    match verp_candidates(message, &found)
        .iter()
        .find_map(|a| verp.delivery_of(a))
    {
        Some(id) => Reading::Bounce(found.into_report(message, raw, id)),
        // A report may still be matched by the Message-ID of what it returns.
        None if found.is_report => Reading::Unmatched,
        // Mail to no VERP address of ours that is no report: not a bounce.
        None => Reading::NotBounce,
    }
}

/// The report of `message` for a delivery found otherwise (by Message-ID).
fn read_as(message: &Message<'_>, raw: &[u8], delivery_id: i64) -> Option<Report> {
    classify(message).map(|f| f.into_report(message, raw, delivery_id))
}

/// What a message says, before its delivery is known.
#[derive(Debug)]
struct Found {
    kind: BounceKind,
    status: Option<String>,
    diagnostic: Option<String>,
    source: &'static str,
    /// Addresses the report names as the original sender (ARF's Original-Mail-From).
    senders: Vec<String>,
    /// Whether it is a DSN or ARF report (which may be matched by the returned message's
    /// Message-ID), rather than mail that only came to a VERP address.
    is_report: bool,
}

impl Found {
    fn into_report(self, message: &Message<'_>, raw: &[u8], delivery_id: i64) -> Report {
        Report {
            delivery_id,
            kind: self.kind,
            status: self.status,
            diagnostic: self.diagnostic,
            source: self.source,
            key: report_key(message, raw),
            at: message
                .date()
                .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0))
                .unwrap_or_else(Utc::now),
        }
    }
}

/// The kind of `message`: a DSN's failed or delayed recipient, an ARF report, or a plain
/// bounce. `None` for a success notice, an auto-reply or any other mail.
fn classify(message: &Message<'_>) -> Option<Found> {
    let report_type = message
        .content_type()
        .filter(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
        .and_then(|ct| ct.attribute("report-type"))
        .map(str::to_ascii_lowercase);
    match report_type.as_deref() {
        Some("delivery-status") => dsn(message),
        Some("feedback-report") => arf(message),
        _ => plain_bounce(message),
    }
}

/// RFC 3464: the first recipient whose Action is failed or delayed.
fn dsn(message: &Message<'_>) -> Option<Found> {
    let body = part_of_type(
        message,
        "message",
        &["delivery-status", "global-delivery-status"],
    )?;
    for block in field_blocks(body).iter().skip(1) {
        let field = |name: &str| block_field(block, name);
        let action = field("Action").map(|a| a.trim().to_ascii_lowercase());
        let status = field("Status")
            .map(|s| s.trim().to_string())
            .filter(|s| is_enhanced_status(s));
        let kind = match action.as_deref() {
            Some("failed") => BounceKind::of_status(status.as_deref().or(Some("5.0.0"))),
            Some("delayed") => BounceKind::Soft,
            _ => continue,
        };
        let diagnostic = field("Diagnostic-Code").map(|d| clip(&d));
        return Some(Found {
            kind,
            status,
            diagnostic,
            source: "dsn",
            senders: Vec::new(),
            is_report: true,
        });
    }
    None
}

/// RFC 5965: a feedback report is a complaint (whatever its Feedback-Type but
/// `not-spam`, which is none).
fn arf(message: &Message<'_>) -> Option<Found> {
    let body = part_of_type(message, "message", &["feedback-report"])?;
    let blocks = field_blocks(body);
    let block = blocks.first()?;
    let feedback = block_field(block, "Feedback-Type")?
        .trim()
        .to_ascii_lowercase();
    if feedback == "not-spam" {
        return None;
    }
    let mut diagnostic = format!("Feedback-Type: {feedback}");
    if let Some(agent) = block_field(block, "User-Agent") {
        diagnostic.push_str(&format!("; User-Agent: {}", agent.trim()));
    }
    Some(Found {
        kind: BounceKind::Complaint,
        status: None,
        diagnostic: Some(clip(&diagnostic)),
        source: "arf",
        senders: block_field(block, "Original-Mail-From")
            .into_iter()
            .collect(),
        is_report: true,
    })
}

/// Mail to a VERP address that is neither a DSN nor an ARF report: an older bounce
/// format. An auto-reply (RFC 3834) is not a bounce. The kind follows the first status
/// code in its text; without one it counts as soft, so a message we cannot read suppresses
/// nobody by itself.
fn plain_bounce(message: &Message<'_>) -> Option<Found> {
    let auto = message
        .header_raw("Auto-Submitted")
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("auto-replied"));
    if auto || message.header_raw("X-Autoreply").is_some() {
        return None;
    }
    let text = message.body_text(0).unwrap_or_default();
    let status = enhanced_status(&text);
    let diagnostic = text
        .lines()
        .map(str::trim)
        .find(|l| status.as_deref().is_some_and(|s| l.contains(s)))
        .or_else(|| message.subject())
        .map(clip);
    Some(Found {
        kind: BounceKind::of_status(status.as_deref().or(Some("4.0.0"))),
        status,
        diagnostic,
        source: "verp",
        senders: Vec::new(),
        is_report: false,
    })
}

/// Where a VERP address may stand: the recipients the bounce was delivered to (as the
/// delivering server recorded them), the addressee, the original sender named by a
/// report, and the returned message's Return-Path.
fn verp_candidates(message: &Message<'_>, found: &Found) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in [
        "Delivered-To",
        "X-Original-To",
        "Envelope-To",
        "X-Envelope-To",
    ] {
        for h in message
            .headers()
            .iter()
            .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        {
            if let Some(t) = h.value.as_text() {
                out.push(t.to_string());
            }
        }
    }
    if let Some(to) = message.to() {
        out.extend(to.iter().filter_map(|a| a.address()).map(str::to_string));
    }
    out.extend(
        found
            .senders
            .iter()
            .map(|s| s.replace("rfc822;", "").trim().to_string()),
    );
    if let Some(original) = returned_message(message)
        && let Some(path) = original.return_path().as_text()
    {
        out.push(path.to_string());
    }
    out
}

/// The delivery whose Message-ID the report's returned message carries.
async fn by_original_message_id(
    store: &Store,
    message: &Message<'_>,
) -> Result<Option<i64>, StoreError> {
    let Some(found) = classify(message) else {
        return Ok(None);
    };
    if !found.is_report {
        return Ok(None);
    }
    let Some(id) = returned_message(message).and_then(|m| m.message_id().map(str::to_string))
    else {
        return Ok(None);
    };
    store.delivery_by_message_id(&id).await
}

/// The message a report returns: a message/rfc822 part, or the headers of a
/// text/rfc822-headers part.
fn returned_message<'a>(message: &'a Message<'a>) -> Option<Message<'a>> {
    for part in message.parts.iter().skip(1) {
        if let PartType::Message(m) = &part.body {
            return Some(m.clone());
        }
        let headers = part.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("text")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
        });
        if headers {
            return MessageParser::default().parse_headers(part.contents());
        }
    }
    None
}

/// The contents of the first part of type `ctype/one of subtypes`.
fn part_of_type<'a>(message: &'a Message<'a>, ctype: &str, subtypes: &[&str]) -> Option<&'a [u8]> {
    message.parts.iter().skip(1).find_map(|part| {
        let ct = part.content_type()?;
        let matches = ct.ctype().eq_ignore_ascii_case(ctype)
            && ct
                .subtype()
                .is_some_and(|s| subtypes.iter().any(|t| s.eq_ignore_ascii_case(t)));
        matches.then(|| part.contents())
    })
}

/// The blocks of header-style fields of a DSN or feedback report body (RFC 3464 §2: the
/// per-message fields, then one block per recipient), each parsed by mail-parser.
fn field_blocks(body: &[u8]) -> Vec<Message<'_>> {
    let mut blocks = Vec::new();
    let mut start = 0;
    let text = body;
    let mut i = 0;
    while i <= text.len() {
        let at_end = i == text.len();
        let blank =
            !at_end && (text[i..].starts_with(b"\r\n\r\n") || text[i..].starts_with(b"\n\n"));
        if at_end || blank {
            let chunk = &text[start..i];
            if chunk.iter().any(|b| !b.is_ascii_whitespace())
                && let Some(m) = MessageParser::default().parse_headers(chunk)
            {
                blocks.push(m);
            }
            if at_end {
                break;
            }
            let skip = if text[i..].starts_with(b"\r\n\r\n") {
                4
            } else {
                2
            };
            i += skip;
            while i < text.len() && (text[i] == b'\r' || text[i] == b'\n') {
                i += 1;
            }
            start = i;
            continue;
        }
        i += 1;
    }
    blocks
}

/// A field's value in one block, unfolded.
fn block_field(block: &Message<'_>, name: &str) -> Option<String> {
    block
        .headers()
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .and_then(|h| {
            let raw = &block.raw_message[h.offset_start as usize..h.offset_end as usize];
            std::str::from_utf8(raw).ok()
        })
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// What a report says, kept to a readable length: what a sender writes is not ours to
/// store without bound.
fn clip(s: &str) -> String {
    s.chars().take(MAX_DIAGNOSTIC).collect()
}

/// Characters of a diagnostic kept.
const MAX_DIAGNOSTIC: usize = 1000;

/// The report's Message-ID, or the SHA-256 of the whole message.
fn report_key(message: &Message<'_>, raw: &[u8]) -> String {
    match message.message_id() {
        Some(id) => format!("<{id}>"),
        None => Sha256::digest(raw)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::token::LinkKeys;

    fn dsn_of(recipients: &str, to: &str) -> String {
        format!(
            "From: MAILER-DAEMON@relay.example.net\r\nTo: {to}\r\nSubject: report\r\n\
             Message-ID: <r1@relay.example.net>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n\
             --b\r\nContent-Type: message/delivery-status\r\n\r\n\
             Reporting-MTA: dns; relay.example.net\r\n\r\n{recipients}\r\n--b--\r\n"
        )
    }

    #[test]
    fn the_first_failed_or_delayed_recipient_of_a_dsn_decides_and_a_late_4xx_failure_is_soft() {
        let verp = Verp::new(LinkKeys::new(b"k"), "b.example.org");
        let to = verp.address(7);
        let read_of = |recipients: &str| {
            let raw = dsn_of(recipients, &to);
            let message = MessageParser::default().parse(raw.as_bytes()).unwrap();
            read(&message, raw.as_bytes(), &verp)
        };
        let Reading::Bounce(r) = read_of(
            "Final-Recipient: rfc822; a@example.org\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n\
             Final-Recipient: rfc822; b@example.org\r\nAction: failed\r\nStatus: 4.4.7\r\n\
             Diagnostic-Code: X-Postfix; delivery temporarily suspended:\r\n  connection timed out\r\n",
        ) else {
            panic!("a bounce");
        };
        assert_eq!(r.delivery_id, 7);
        assert_eq!(r.kind, BounceKind::Soft);
        assert_eq!(r.status.as_deref(), Some("4.4.7"));
        assert_eq!(
            r.diagnostic.as_deref(),
            Some("X-Postfix; delivery temporarily suspended: connection timed out")
        );
        assert_eq!(r.key, "<r1@relay.example.net>");
        assert_eq!(
            read_of(
                "Final-Recipient: rfc822; a@example.org\r\nAction: relayed\r\nStatus: 2.0.0\r\n"
            ),
            Reading::NotBounce
        );
        let Reading::Bounce(r) = read_of(
            "Final-Recipient: rfc822; a@example.org\r\nAction: failed\r\nStatus: bogus\r\n",
        ) else {
            panic!("a bounce");
        };
        assert_eq!((r.kind, r.status), (BounceKind::Hard, None));
    }

    #[test]
    fn a_report_to_no_verp_address_of_ours_is_unmatched_and_other_mail_is_no_bounce() {
        let verp = Verp::new(LinkKeys::new(b"k"), "b.example.org");
        let raw = dsn_of(
            "Final-Recipient: rfc822; a@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n",
            "someone@example.org",
        );
        let message = MessageParser::default().parse(raw.as_bytes()).unwrap();
        assert_eq!(read(&message, raw.as_bytes(), &verp), Reading::Unmatched);
        let plain =
            b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello 5.1.1\r\n";
        let message = MessageParser::default().parse(plain).unwrap();
        assert_eq!(read(&message, plain, &verp), Reading::NotBounce);
    }
}
