//! An email address as paperboy accepts it: one mailbox, no display name, nothing that
//! could smuggle a header or a second recipient, nothing invisible, and a domain that mail
//! can reach by name. Also the mailbox it names, whatever the spelling (the key that limits
//! how much mail one inbox gets), and the form it goes out in (A-labels).

use std::fmt;
use std::str::FromStr;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use serde::Serialize;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::{Invalid, quoted};

/// Longest address accepted (RFC 5321's 256-octet path less the angle brackets), in
/// octets, as typed and as sent (with the domain in A-labels).
const MAX_LEN: usize = 254;
/// Longest local part (RFC 5321 §4.5.3.1.1), in octets.
const MAX_LOCAL_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// A new address, from a form, the command line or a file: refused unless it is one
    /// mailbox on a domain that mail can reach by name (see the module's rules).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        if s.len() > MAX_LEN {
            return Err(Invalid::new(format!(
                "the email address is longer than {MAX_LEN} characters"
            )));
        }
        if let Some(c) = s
            .chars()
            .find(|c| c.general_category() == GeneralCategory::Format)
        {
            return Err(Invalid::new(format!(
                "{} holds an invisible formatting character (U+{:04X}); type the address again without it",
                quoted(s),
                u32::from(c)
            )));
        }
        if s.rsplit_once('@').is_some_and(|(_, d)| d.starts_with('[')) {
            return Err(Invalid::new(format!(
                "{} names a server by its IP address; use an address at a domain such as example.org",
                quoted(s)
            )));
        }
        if s.rsplit_once('@')
            .is_some_and(|(local, _)| local.len() > MAX_LOCAL_LEN)
        {
            return Err(Invalid::new(format!(
                "the part before the @ is longer than {MAX_LOCAL_LEN} characters"
            )));
        }
        let address = Self::parse_known(s)?;
        let (local, domain) = address.parts();
        let ascii = ascii_domain(domain).ok_or_else(|| {
            Invalid::new(format!(
                "{} does not have a valid domain name after the @",
                quoted(s)
            ))
        })?;
        // A top-level domain is never all digits: `1.2.3.4` is an IP address.
        if ascii
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(Invalid::new(format!(
                "{} names a server by its IP address; use an address at a domain such as example.org",
                quoted(s)
            )));
        }
        if !ascii.contains('.') {
            return Err(Invalid::new(format!(
                "{} has no domain such as example.org",
                quoted(s)
            )));
        }
        if local.len() + 1 + ascii.len() > MAX_LEN {
            return Err(Invalid::new(format!(
                "the email address is longer than {MAX_LEN} characters"
            )));
        }
        Ok(address)
    }

    /// An address as earlier versions of paperboy accepted it (no header-breaking
    /// characters, one mailbox): for reading stored readers and naming them on the command
    /// line, so a reader stored before the rules above were added can still be shown,
    /// unsubscribed and erased. New addresses go through [`EmailAddress::parse`].
    pub fn parse_known(raw: &str) -> Result<Self, Invalid> {
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
            return Err(Invalid::new(format!(
                "{} is not an email address",
                quoted(s)
            )));
        }
        // An RFC 2047 encoded word (`=?utf-8?q?…?=`) never belongs in an address; mail
        // programs that decode it anyway would show the reader text we never checked.
        if s.find("=?").is_some_and(|at| s[at + 2..].contains("?=")) {
            return Err(Invalid::new(format!(
                "{} is not an email address (it holds an encoded word)",
                quoted(s)
            )));
        }
        let address = lettre::Address::from_str(s)
            .map_err(|_| Invalid::new(format!("{} is not an email address", quoted(s))))?;
        if !address.domain().contains('.') && address.domain() != "localhost" {
            return Err(Invalid::new(format!(
                "{} has no domain such as example.org",
                quoted(s)
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

    /// The local part and the domain, as stored.
    fn parts(&self) -> (&str, &str) {
        // Every constructor checked that there is an @; the domain never holds one.
        self.0.rsplit_once('@').unwrap_or((&self.0, ""))
    }

    /// Whether the local part holds anything but ASCII, so that only a relay that
    /// announces SMTPUTF8 (RFC 6531) can carry it. A Unicode domain needs no such relay:
    /// it goes out in A-labels.
    pub fn needs_smtputf8(&self) -> bool {
        !self.parts().0.is_ascii()
    }

    /// The address as it goes out in `RCPT TO` and `To`: the domain in A-labels
    /// (`xn--…`), the local part as typed. A stored domain that no longer converts (from
    /// before the rules of [`EmailAddress::parse`]) goes out as stored.
    pub fn to_ascii_domain(&self) -> String {
        let (local, domain) = self.parts();
        match ascii_domain(domain) {
            Some(ascii) => format!("{local}@{ascii}"),
            None => self.0.clone(),
        }
    }

    /// The mailbox this address reaches, whatever the spelling: lower case, the domain
    /// per UTS #46 in A-labels, any `+tag` dropped, and for Gmail (gmail.com and
    /// googlemail.com, one service) the dots of the local part dropped too. Many spellings
    /// reach one inbox, so what limits the mail an inbox gets, and what remembers an
    /// erased reader, goes by this key. It is never an address to send to.
    pub fn mailbox_key(&self) -> String {
        let (local, domain) = self.parts();
        let domain = ascii_domain(domain).unwrap_or_else(|| domain.to_lowercase());
        let mut local = local.to_lowercase();
        if let Some(plus) = local.find('+').filter(|&at| at > 0) {
            local.truncate(plus);
        }
        let domain = match domain.as_str() {
            "gmail.com" | "googlemail.com" => {
                local.retain(|c| c != '.');
                "gmail.com".to_string()
            }
            _ => domain,
        };
        format!("{local}@{domain}")
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

/// The domain in A-labels per UTS #46 (lower case, `xn--` for non-ASCII labels), or
/// `None` when it is no host name: a character a host name cannot hold (STD3 rules, so no
/// `_`), a label that starts or ends with a hyphen, an empty label, or a label or name
/// longer than DNS allows.
fn ascii_domain(domain: &str) -> Option<String> {
    Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
            DnsLength::Verify,
        )
        .ok()
        .map(|d| d.into_owned())
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
        let idn = EmailAddress::parse("ada@Bücher.de").unwrap();
        assert_eq!(idn.as_str(), "ada@bücher.de", "stored as typed");
        assert_eq!(idn.to_ascii_domain(), "ada@xn--bcher-kva.de");
        assert!(!idn.needs_smtputf8());
        let utf8 = EmailAddress::parse("用户@例子.广告").unwrap();
        assert!(utf8.needs_smtputf8());
        assert_eq!(utf8.to_ascii_domain(), "用户@xn--fsqu00a.xn--4rr70v");
    }

    #[test]
    fn invisible_characters_ip_addresses_and_bad_host_names_are_refused() {
        for (bad, says) in [
            ("erased@ex\u{ad}ample.org", "U+00AD"),
            ("x@example.org\u{200b}", "U+200B"),
            ("\u{202e}gro.elpmaxe@ada", "U+202E"),
            ("a\u{2060}b@example.org", "U+2060"),
            ("a@exa_mple.org", "valid domain name"),
            ("a@-example.org", "not an email address"),
            ("a@example..org", "not an email address"),
            ("a@127.0.0.1", "IP address"),
            ("a@[127.0.0.1]", "IP address"),
            ("a@[IPv6:::1]", "IP address"),
            ("me@localhost", "no domain such as"),
            ("me@org", "no domain such as"),
        ] {
            let e = EmailAddress::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(says), "{bad:?}: {e}");
        }
        let long_local = format!("{}@example.org", "a".repeat(65));
        assert!(EmailAddress::parse(&long_local).is_err());
        assert!(EmailAddress::parse(&format!("{}@example.org", "a".repeat(64))).is_ok());
        let long_label = format!("a@{}.org", "b".repeat(64));
        assert!(EmailAddress::parse(&long_label).is_err());
        // Stored before these rules: still readable, so the reader can be shown and erased.
        assert!(EmailAddress::parse_known("me@localhost").is_ok());
        assert!(EmailAddress::parse_known("a@127.0.0.1").is_ok());
    }

    #[test]
    fn variants_of_one_mailbox_share_its_key() {
        let key = |s: &str| EmailAddress::parse(s).unwrap().mailbox_key();
        for variant in [
            "victim@gmail.com",
            "Victim@Gmail.com",
            "victim+1@gmail.com",
            "v.ictim+news@gmail.com",
            "V.I.C.T.I.M@googlemail.com",
            "victim@GOOGLEMAIL.COM",
        ] {
            assert_eq!(key(variant), "victim@gmail.com", "{variant}");
        }
        assert_eq!(key("Ada+x@Example.org"), "ada@example.org");
        assert_eq!(
            key("a.da@example.org"),
            "a.da@example.org",
            "dots count elsewhere"
        );
        assert_eq!(key("ada@BÜCHER.de"), "ada@xn--bcher-kva.de");
        assert_eq!(key("ada@xn--bcher-kva.de"), "ada@xn--bcher-kva.de");
        assert_ne!(key("ada@example.org"), key("bob@example.org"));
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

        #[test]
        fn accepted_addresses_hold_nothing_invisible_and_go_out_in_ascii_domains(
            s in "[a-zA-Z.+\u{ad}\u{200b}\u{202e}]{1,8}@[a-zéü_\u{ad}\u{200d}-]{1,8}\\.[a-zé.]{0,6}",
        ) {
            if let Ok(a) = EmailAddress::parse(&s) {
                prop_assert!(!a.as_str().chars().any(|c| c.general_category() == GeneralCategory::Format));
                let sent = a.to_ascii_domain();
                let (_, domain) = sent.rsplit_once('@').unwrap();
                prop_assert!(domain.is_ascii() && domain.contains('.'), "{sent}");
                let again = EmailAddress::parse(&sent).unwrap();
                prop_assert_eq!(again.mailbox_key(), a.mailbox_key());
            }
        }
    }
}
