//! Bounce and complaint webhooks of sending providers. Mailgun's: each call is signed
//! (HMAC-SHA256 of its timestamp and token under the account's webhook signing key),
//! fresh (within five minutes) and used once (its token is kept); only then is its event
//! read, tied to the delivery by the Message-ID we set, and recorded by the store's rules.

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::domain::{BounceKind, enhanced_status};
use crate::store::{NewBounce, Recorded, Store, StoreError};

/// How far a call's timestamp may be from our clock.
const FRESH_FOR: Duration = Duration::minutes(5);

/// Why a webhook call changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Unsigned, wrongly signed, stale or replayed: answered 401.
    #[error("webhook call not authenticated: {0}")]
    Unauthenticated(&'static str),
    #[error("recording the event")]
    Store(#[from] StoreError),
}

/// What an authenticated call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Recorded(Recorded),
    /// An event that is no bounce or complaint (delivered, opened…), or one about mail
    /// that is not ours: nothing to do.
    Ignored,
}

#[derive(Deserialize)]
struct MailgunCall {
    signature: MailgunSignature,
    #[serde(rename = "event-data")]
    event: Option<MailgunEvent>,
}

#[derive(Deserialize)]
struct MailgunSignature {
    timestamp: String,
    token: String,
    signature: String,
}

#[derive(Deserialize)]
struct MailgunEvent {
    event: String,
    severity: Option<String>,
    id: Option<String>,
    timestamp: Option<f64>,
    message: Option<MailgunMessage>,
    #[serde(rename = "delivery-status")]
    status: Option<MailgunStatus>,
}

#[derive(Deserialize)]
struct MailgunMessage {
    headers: Option<MailgunHeaders>,
}

#[derive(Deserialize)]
struct MailgunHeaders {
    #[serde(rename = "message-id")]
    message_id: Option<String>,
}

#[derive(Deserialize)]
struct MailgunStatus {
    code: Option<i64>,
    message: Option<String>,
    description: Option<String>,
}

/// Whether `signature` is the hex HMAC-SHA256 of `timestamp` then `token` under `key`,
/// checked in constant time.
fn mailgun_signed(key: &str, timestamp: &str, token: &str, signature: &str) -> bool {
    let Some(tag) = decode_hex(signature) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    mac.verify_slice(&tag).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Handles one Mailgun webhook call (its raw JSON body) signed with `key`.
pub async fn mailgun(
    store: &Store,
    key: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<WebhookOutcome, WebhookError> {
    let call: MailgunCall = serde_json::from_slice(body)
        .map_err(|_| WebhookError::Unauthenticated("no signature block"))?;
    let sig = &call.signature;
    if !mailgun_signed(key, &sig.timestamp, &sig.token, &sig.signature) {
        return Err(WebhookError::Unauthenticated("bad signature"));
    }
    let sent_at = sig
        .timestamp
        .parse::<i64>()
        .ok()
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .ok_or(WebhookError::Unauthenticated("bad timestamp"))?;
    if (now - sent_at).abs() > FRESH_FOR {
        return Err(WebhookError::Unauthenticated("stale timestamp"));
    }
    if !store
        .first_use_of_webhook_token("mailgun", &sig.token, now, FRESH_FOR * 2)
        .await?
    {
        return Err(WebhookError::Unauthenticated("replayed token"));
    }
    let outcome = mailgun_event(store, call.event, now).await;
    if outcome.is_err() {
        // Not recorded: the provider's retry of this call must be taken.
        store.forget_webhook_token("mailgun", &sig.token).await?;
    }
    outcome
}

/// Records what an authenticated Mailgun event says.
async fn mailgun_event(
    store: &Store,
    event: Option<MailgunEvent>,
    now: DateTime<Utc>,
) -> Result<WebhookOutcome, WebhookError> {
    let Some(event) = event else {
        return Ok(WebhookOutcome::Ignored);
    };
    let kind = match (event.event.as_str(), event.severity.as_deref()) {
        ("failed", Some("permanent")) => BounceKind::Hard,
        ("failed", _) => BounceKind::Soft,
        ("complained", _) => BounceKind::Complaint,
        _ => return Ok(WebhookOutcome::Ignored),
    };
    let message_id = event
        .message
        .and_then(|m| m.headers)
        .and_then(|h| h.message_id);
    let Some(delivery_id) = (match message_id {
        Some(id) => store.delivery_by_message_id(&id).await?,
        None => None,
    }) else {
        return Ok(WebhookOutcome::Ignored);
    };
    let (status, diagnostic) = match &event.status {
        Some(s) => {
            let text: Vec<String> = s
                .code
                .map(|c| c.to_string())
                .into_iter()
                .chain(s.message.clone())
                .chain(s.description.clone())
                .filter(|t| !t.trim().is_empty())
                .collect();
            let text = text.join(" ");
            (enhanced_status(&text), (!text.is_empty()).then_some(text))
        }
        None => (None, None),
    };
    let at = event
        .timestamp
        .and_then(|t| DateTime::from_timestamp(t as i64, 0))
        .unwrap_or(now);
    let key = event.id.map(|id| format!("mailgun:{id}"));
    let recorded = store
        .record_bounce(
            &NewBounce {
                delivery_id,
                kind,
                status: status.as_deref(),
                diagnostic: diagnostic.as_deref(),
                source: "mailgun",
                report_key: key.as_deref(),
                at,
            },
            now,
        )
        .await?;
    Ok(WebhookOutcome::Recorded(recorded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mailgun_signature_is_the_hmac_of_timestamp_and_token() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key-1").unwrap();
        mac.update(b"1764576000abc");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(mailgun_signed("key-1", "1764576000", "abc", &hex));
        assert!(!mailgun_signed("key-2", "1764576000", "abc", &hex));
        assert!(!mailgun_signed("key-1", "1764576001", "abc", &hex));
        assert!(!mailgun_signed("key-1", "1764576000", "abd", &hex));
        assert!(!mailgun_signed("key-1", "1764576000", "abc", &hex[..62]));
        assert!(!mailgun_signed("key-1", "1764576000", "abc", "zz"));
    }
}
