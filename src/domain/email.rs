//! An email address as paperboy accepts it: one mailbox, no display name, nothing that
//! could smuggle a header or a second recipient.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::Invalid;

/// Longest address accepted (RFC 5321's path limit less the angle brackets).
const MAX_LEN: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(Invalid::new("the email address is empty"));
        }
        if s.len() > MAX_LEN {
            return Err(Invalid::new(format!(
                "the email address is longer than {MAX_LEN} characters"
            )));
        }
        if s.chars().any(|c| {
            c.is_control()
                || c.is_whitespace()
                || matches!(c, '<' | '>' | ',' | ';' | '"' | char::REPLACEMENT_CHARACTER)
        }) {
            return Err(Invalid::new(format!("{s:?} is not an email address")));
        }
        // An RFC 2047 encoded word (`=?utf-8?q?…?=`) never belongs in an address; mail
        // programs that decode it anyway would show the reader text we never checked.
        if s.find("=?").is_some_and(|at| s[at + 2..].contains("?=")) {
            return Err(Invalid::new(format!(
                "{s:?} is not an email address (it holds an encoded word)"
            )));
        }
        let address = lettre::Address::from_str(s)
            .map_err(|_| Invalid::new(format!("{s:?} is not an email address")))?;
        if !address.domain().contains('.') && address.domain() != "localhost" {
            return Err(Invalid::new(format!(
                "{s:?} has no domain such as example.org"
            )));
        }
        // Domains are case-insensitive; the local part is kept as written.
        Ok(Self(format!(
            "{}@{}",
            address.user(),
            address.domain().to_ascii_lowercase()
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `a***@example.org`: enough for an operator to recognise, not enough to harvest.
    pub fn masked(&self) -> String {
        match self.0.split_once('@') {
            Some((user, domain)) => {
                let first: String = user.chars().take(1).collect();
                format!("{first}***@{domain}")
            }
            None => "***".into(),
        }
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordinary_addresses_are_accepted() {
        assert_eq!(
            EmailAddress::parse(" Ada@Example.ORG ").unwrap().as_str(),
            "Ada@example.org"
        );
        assert!(EmailAddress::parse("a.b+tag@sub.example.co.uk").is_ok());
        assert!(EmailAddress::parse("me@localhost").is_ok());
    }

    #[test]
    fn anything_that_could_inject_is_refused() {
        for bad in [
            "",
            "no-at-sign",
            "a@b",
            "a@example.org\r\nBcc: victim@example.org",
            "a@example.org\nX: y",
            "Ada <ada@example.org>",
            "a@example.org, b@example.org",
            "a b@example.org",
            "\"quoted\"@example.org",
            "=?utf-8?q?eve=0D=0ABcc=3A_x=40example.net?=@example.org",
            "=?utf-8?b?QmNjOiB4QGV4YW1wbGUubmV0?=@example.org",
            "ev\u{FFFD}e@example.org",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
        assert!(EmailAddress::parse(&format!("{}@example.org", "a".repeat(250))).is_err());
    }

    #[test]
    fn masking_hides_the_mailbox() {
        assert_eq!(
            EmailAddress::parse("ada@example.org").unwrap().masked(),
            "a***@example.org"
        );
    }

    proptest! {
        #[test]
        fn accepted_addresses_never_hold_line_breaks(s in "\\PC{0,80}") {
            if let Ok(a) = EmailAddress::parse(&s) {
                prop_assert!(!a.as_str().contains(['\r', '\n']));
            }
        }
    }
}
