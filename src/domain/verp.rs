//! VERP return paths: each delivery goes out with its own envelope sender,
//! `bounces+<delivery id>-<tag>@<domain>`, where the tag is a short HMAC of the id, so a
//! bounce names the delivery it answers and nobody can forge one for another delivery.

use super::token::LinkKeys;

/// The local part's fixed start.
const PREFIX: &str = "bounces+";

/// Makes and reads VERP addresses on one domain with the instance's key.
#[derive(Debug, Clone)]
pub struct Verp {
    keys: LinkKeys,
    domain: String,
}

impl Verp {
    pub fn new(keys: LinkKeys, domain: impl Into<String>) -> Verp {
        Verp {
            keys,
            domain: domain.into(),
        }
    }

    /// The envelope sender of delivery `id`.
    pub fn address(&self, id: i64) -> String {
        format!("{PREFIX}{id}-{}@{}", self.keys.bounce_tag(id), self.domain)
    }

    /// The delivery a VERP address names, when its tag is ours (checked in constant time);
    /// `None` for any other address. Angle brackets and case are forgiven, and the domain
    /// is not checked: the tag alone proves the address, so mail to an older bounce domain
    /// is still read.
    pub fn delivery_of(&self, address: &str) -> Option<i64> {
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        let (local, _domain) = address.rsplit_once('@')?;
        let rest = local
            .get(..PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PREFIX))
            .map(|_| &local[PREFIX.len()..])?;
        let (id, tag) = rest.split_once('-')?;
        if id.is_empty() || id.len() > 18 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let id: i64 = id.parse().ok()?;
        self.keys.verify_bounce_tag(id, tag).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn verp() -> Verp {
        Verp::new(LinkKeys::new(b"a key for bounces"), "bounce.example.org")
    }

    #[test]
    fn an_address_names_its_delivery_and_nothing_else() {
        let v = verp();
        let a = v.address(4711);
        assert!(a.starts_with("bounces+4711-"), "{a}");
        assert!(a.ends_with("@bounce.example.org"), "{a}");
        assert_eq!(v.delivery_of(&a), Some(4711));
        assert_eq!(
            v.delivery_of(&format!("<{}>", a.to_uppercase())),
            Some(4711)
        );
        let other = v.address(4712);
        let forged = format!("bounces+4712-{}", &a["bounces+4711-".len()..]);
        assert_ne!(forged, other);
        assert_eq!(v.delivery_of(&forged), None);
        assert_eq!(v.delivery_of("digest@bounce.example.org"), None);
        assert_eq!(v.delivery_of("bounces+4711@bounce.example.org"), None);
        assert_eq!(v.delivery_of("bounces+-abc@bounce.example.org"), None);
        let elsewhere = Verp::new(LinkKeys::new(b"another key"), "bounce.example.org");
        assert_eq!(elsewhere.delivery_of(&a), None);
    }

    proptest! {
        #[test]
        fn no_tampered_address_names_a_delivery(id in 1i64..1_000_000_000, pos in 0usize..40, byte in 0x21u8..0x7f) {
            let v = verp();
            let a = v.address(id);
            let at = a.find('@').unwrap();
            let i = pos % at;
            let mut bytes = a.clone().into_bytes();
            prop_assume!(!bytes[i].eq_ignore_ascii_case(&byte));
            bytes[i] = byte;
            let tampered = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(v.delivery_of(&tampered), None);
        }
    }
}
