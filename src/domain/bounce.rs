//! What a bounce or complaint says of a delivery: its kind (hard, soft, complaint) and
//! the enhanced status code (RFC 3463) that decides between hard and soft.

/// How a delivery came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceKind {
    /// The address does not take mail (5.x.x, Action: failed): suppressed at once.
    Hard,
    /// A temporary failure (4.x.x, Action: delayed): suppressed after several in a row.
    Soft,
    /// The reader reported the mail as spam (an ARF report): unsubscribed and suppressed.
    Complaint,
}

impl BounceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BounceKind::Hard => "hard",
            BounceKind::Soft => "soft",
            BounceKind::Complaint => "complaint",
        }
    }

    pub fn parse(s: &str) -> Option<BounceKind> {
        match s {
            "hard" => Some(BounceKind::Hard),
            "soft" => Some(BounceKind::Soft),
            "complaint" => Some(BounceKind::Complaint),
            _ => None,
        }
    }

    /// A failure's kind by its status code: 5.x.x is hard, anything else soft.
    pub fn of_status(status: Option<&str>) -> BounceKind {
        match status.and_then(|s| s.chars().next()) {
            Some('5') => BounceKind::Hard,
            _ => BounceKind::Soft,
        }
    }
}

impl std::fmt::Display for BounceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first enhanced status code (`class.subject.detail`, class 2, 4 or 5, RFC 3463) in
/// `text`, such as the `5.1.1` of `550 5.1.1 <x>: mailbox unavailable`.
pub fn enhanced_status(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ';' | ',' | '#'))
        .map(|w| w.trim_end_matches(['.', ':']))
        .find(|w| is_enhanced_status(w))
        .map(str::to_string)
}

/// Whether `s` is exactly an enhanced status code.
pub fn is_enhanced_status(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_found_in_replies_and_decide_the_kind() {
        assert_eq!(
            enhanced_status("SMTP: permanent error (550): 5.1.1 <a@b>: mailbox unavailable")
                .as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            enhanced_status("smtp; 452 4.2.2 Mailbox full.").as_deref(),
            Some("4.2.2")
        );
        assert_eq!(enhanced_status("version 1.2.3 released"), None);
        assert_eq!(enhanced_status("no code here"), None);
        assert_eq!(BounceKind::of_status(Some("5.7.1")), BounceKind::Hard);
        assert_eq!(BounceKind::of_status(Some("4.4.1")), BounceKind::Soft);
        assert_eq!(BounceKind::of_status(None), BounceKind::Soft);
        for k in [BounceKind::Hard, BounceKind::Soft, BounceKind::Complaint] {
            assert_eq!(BounceKind::parse(k.as_str()), Some(k));
        }
    }
}
