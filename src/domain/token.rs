//! The keys to a reader's links. Confirmation links carry 256 random bits and only their
//! SHA-256 is stored; preference, unsubscribe and feed links are an HMAC over the reader, the
//! purpose and a random per-reader key, so they need no storage and die with the reader.
//! Every check is constant-time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the HMAC a VERP tag keeps: 64 bits.
const BOUNCE_TAG_BYTES: usize = 8;

/// What a signed link opens; a link signed for one purpose opens nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Preferences,
    Unsubscribe,
    /// A digest's page in the browser (the id is the digest's).
    Archive,
    /// The reader's personal Atom feed.
    Feed,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Preferences => b"preferences",
            Purpose::Unsubscribe => b"unsubscribe",
            Purpose::Archive => b"archive",
            Purpose::Feed => b"feed",
        }
    }
}

/// 256 random bits from the operating system, URL-safe base64 (43 characters).
pub fn random_token() -> Result<String, RandomError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The operating system could not supply random bytes; no token can be made.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

/// The form in which a random token is stored: hex SHA-256.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random token's shape: what [`random_token`] makes. Anything else is refused before any
/// lookup.
pub fn looks_like_random_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The instance's secret, from which every signature is made.
#[derive(Clone)]
pub struct LinkKeys {
    key: Vec<u8>,
}

impl std::fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKeys([redacted])")
    }
}

impl LinkKeys {
    pub fn new(secret: &[u8]) -> Self {
        LinkKeys {
            key: secret.to_vec(),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        // HMAC takes a key of any length.
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// `ID.SIGNATURE`: opens `purpose` for reader `id` while their `link_key` stands.
    pub fn sign(&self, purpose: Purpose, id: i64, link_key: &str) -> String {
        let tag = self
            .mac(&[
                purpose.label(),
                id.to_string().as_bytes(),
                link_key.as_bytes(),
            ])
            .finalize()
            .into_bytes();
        format!("{id}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The reader a signed link names, before it is checked; `None` when it is not shaped
    /// like one.
    pub fn subscriber_of(token: &str) -> Option<i64> {
        let (id, tag) = token.split_once('.')?;
        if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if tag.len() != 43 {
            return None;
        }
        id.parse().ok()
    }

    /// Whether `token` opens `purpose` for reader `id` holding `link_key`, in constant time.
    pub fn verify(&self, token: &str, purpose: Purpose, id: i64, link_key: &str) -> bool {
        let Some((named, tag)) = token.split_once('.') else {
            return false;
        };
        if named != id.to_string() {
            return false;
        }
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        self.mac(&[
            purpose.label(),
            id.to_string().as_bytes(),
            link_key.as_bytes(),
        ])
        .verify_slice(&tag)
        .is_ok()
    }

    /// The short tag of a VERP return path: the first 64 bits of the HMAC of delivery `id`,
    /// in lower-case hex (16 characters), so it survives a relay that folds case.
    pub fn bounce_tag(&self, id: i64) -> String {
        let tag = self
            .mac(&[b"bounce", id.to_string().as_bytes()])
            .finalize()
            .into_bytes();
        tag[..BOUNCE_TAG_BYTES]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `tag` is delivery `id`'s bounce tag, in either case, in constant time.
    pub fn verify_bounce_tag(&self, id: i64, tag: &str) -> bool {
        if tag.len() != BOUNCE_TAG_BYTES * 2 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
        let bytes: Option<Vec<u8>> = (0..tag.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&tag[i..i + 2], 16).ok())
            .collect();
        let Some(bytes) = bytes else {
            return false;
        };
        self.mac(&[b"bounce", id.to_string().as_bytes()])
            .verify_truncated_left(&bytes)
            .is_ok()
    }

    /// The CSRF form token that goes with a browser's CSRF cookie.
    pub fn csrf_token(&self, cookie: &str) -> String {
        let tag = self
            .mac(&[b"csrf", cookie.as_bytes()])
            .finalize()
            .into_bytes();
        URL_SAFE_NO_PAD.encode(tag)
    }

    /// Whether a submitted form token matches the cookie, in constant time.
    pub fn verify_csrf(&self, cookie: &str, token: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        self.mac(&[b"csrf", cookie.as_bytes()])
            .verify_slice(&tag)
            .is_ok()
    }
}

/// The absolute links paperboy puts in emails and pages, rooted at the base URL.
#[derive(Debug, Clone)]
pub struct Links {
    base: String,
    keys: LinkKeys,
}

impl Links {
    pub fn new(base_url: &str, keys: LinkKeys) -> Self {
        Links {
            base: base_url.trim_end_matches('/').to_string(),
            keys,
        }
    }

    pub fn keys(&self) -> &LinkKeys {
        &self.keys
    }

    /// The subscribe page.
    pub fn home(&self) -> String {
        format!("{}/", self.base)
    }

    pub fn confirm(&self, token: &str) -> String {
        format!("{}/confirm/{token}", self.base)
    }

    pub fn preferences(&self, id: i64, link_key: &str) -> String {
        format!(
            "{}/preferences/{}",
            self.base,
            self.keys.sign(Purpose::Preferences, id, link_key)
        )
    }

    pub fn unsubscribe(&self, id: i64, link_key: &str) -> String {
        format!(
            "{}/unsubscribe/{}",
            self.base,
            self.keys.sign(Purpose::Unsubscribe, id, link_key)
        )
    }

    /// A digest in the browser: `/digests/ID?t=TOKEN`.
    pub fn archive(&self, digest_id: i64, archive_key: &str) -> String {
        format!(
            "{}/digests/{digest_id}?t={}",
            self.base,
            self.keys.sign(Purpose::Archive, digest_id, archive_key)
        )
    }

    /// The reader's Atom feed: `/feeds/ID.atom?t=TOKEN`. The token opens the feed and
    /// nothing else, so a feed reader that keeps the address cannot change settings.
    pub fn feed(&self, id: i64, link_key: &str) -> String {
        format!(
            "{}/feeds/{id}.atom?t={}",
            self.base,
            self.keys.sign(Purpose::Feed, id, link_key)
        )
    }

    /// The host of the base URL, for List-Id and the like.
    pub fn host(&self) -> String {
        url::Url::parse(&self.base)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "localhost".into())
    }

    /// `scheme://host[:port]` of the base URL: what a browser sends as Origin.
    pub fn origin(&self) -> String {
        url::Url::parse(&self.base)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default()
    }

    /// Whether links point at an https address (cookies then get `Secure`).
    pub fn is_https(&self) -> bool {
        self.base.starts_with("https://")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn random_tokens_are_long_distinct_and_stored_hashed() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_ne!(a, b);
        assert!(looks_like_random_token(&a), "{a}");
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), hash_token(&b));
        assert!(!looks_like_random_token("short"));
        assert!(!looks_like_random_token(&format!("{}!", &a[..42])));
    }

    #[test]
    fn a_signed_link_opens_only_its_subscriber_and_purpose() {
        let keys = LinkKeys::new(b"secret");
        let token = keys.sign(Purpose::Preferences, 42, "k1");
        assert_eq!(LinkKeys::subscriber_of(&token), Some(42));
        assert!(keys.verify(&token, Purpose::Preferences, 42, "k1"));
        assert!(!keys.verify(&token, Purpose::Unsubscribe, 42, "k1"));
        assert!(!keys.verify(&token, Purpose::Feed, 42, "k1"));
        let feed = keys.sign(Purpose::Feed, 42, "k1");
        assert!(keys.verify(&feed, Purpose::Feed, 42, "k1"));
        assert!(!keys.verify(&feed, Purpose::Preferences, 42, "k1"));
        assert!(!keys.verify(&token, Purpose::Preferences, 43, "k1"));
        assert!(!keys.verify(&token, Purpose::Preferences, 42, "k2"));
        assert!(!LinkKeys::new(b"other").verify(&token, Purpose::Preferences, 42, "k1"));
    }

    #[test]
    fn csrf_tokens_belong_to_their_cookie() {
        let keys = LinkKeys::new(b"secret");
        let t = keys.csrf_token("cookie-a");
        assert!(keys.verify_csrf("cookie-a", &t));
        assert!(!keys.verify_csrf("cookie-b", &t));
        assert!(!keys.verify_csrf("cookie-a", "garbage!"));
        assert!(!keys.verify_csrf("cookie-a", ""));
    }

    proptest! {
        #[test]
        fn no_tampered_link_verifies(pos in 0usize..60, byte in any::<u8>()) {
            let keys = LinkKeys::new(b"secret");
            let token = keys.sign(Purpose::Unsubscribe, 7, "key");
            let mut bytes = token.clone().into_bytes();
            let i = pos % bytes.len();
            prop_assume!(bytes[i] != byte);
            bytes[i] = byte;
            let tampered = String::from_utf8_lossy(&bytes).into_owned();
            prop_assume!(tampered != token);
            prop_assert!(!keys.verify(&tampered, Purpose::Unsubscribe, 7, "key"));
        }
    }
}
