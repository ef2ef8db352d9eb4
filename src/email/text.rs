//! The digest's text part: the numbered titles first, then the entries, wrapped at 72
//! columns with hanging indents that line up whatever the numbers, and every address too
//! long for its line alone on one (a link is never broken).

use super::digest::{DigestView, PaperView};

/// Columns of the text part.
pub const WIDTH: usize = 72;

/// `text` wrapped at `width` columns, its first line after `first`, the others after
/// `indent` spaces. Words are never broken: one longer than its line (a long address)
/// stands alone on its own line, and what follows starts the next.
pub fn hang(text: &str, width: usize, first: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::from(first);
    let mut column = first.chars().count();
    let mut line_empty = true;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if !line_empty && column + 1 + len > width {
            out.push('\n');
            out.push_str(&pad);
            column = indent;
            line_empty = true;
        }
        if !line_empty {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += len;
        line_empty = false;
    }
    out.truncate(out.trim_end().len());
    out
}

/// The text part of a digest (lines end in `\n`; the caller makes them CRLF).
pub fn digest(d: &DigestView) -> String {
    let last = d
        .suggestions
        .last()
        .or(d.papers.last())
        .map_or(1, |p| p.number);
    let mut t = Text {
        out: String::new(),
        digits: last.to_string().len(),
    };
    let heading = if d.trending {
        "The most upvoted new papers".to_string()
    } else if d.total == 1 {
        "1 new paper matches your queries".to_string()
    } else {
        format!("{} new papers match your queries", d.total)
    };
    t.para(&heading);
    if d.archive_url.is_none() {
        t.para(&format!(
            "{} (a preview: nothing was stored or sent)",
            d.period
        ));
    } else {
        t.para(&d.period);
    }
    t.blank();

    // The overview: every title, numbered.
    if d.sections.is_empty() {
        for p in &d.papers {
            t.item(p.number, &p.title);
        }
        t.more(d.more, "And", "more", d.archive_url.as_deref());
    } else {
        for (i, s) in d.sections.iter().enumerate() {
            if i > 0 {
                t.blank();
            }
            t.para(&format!("{}: {}", s.label, papers(s.count)));
            for p in &s.papers {
                t.item(p.number, &p.title);
            }
        }
    }
    if !d.suggestions.is_empty() {
        t.blank();
        t.para("You might also like:");
        for p in &d.suggestions {
            t.item(p.number, &p.title);
        }
    }

    // The entries.
    if d.sections.is_empty() {
        for p in &d.papers {
            t.blank();
            t.entry(p);
        }
    } else {
        for s in &d.sections {
            t.blank();
            t.blank();
            t.para(&format!("== {}: {} ==", s.label, papers(s.count)));
            for p in &s.papers {
                t.blank();
                t.entry(p);
            }
            if s.elsewhere > 0 {
                t.blank();
                t.para(&format!(
                    "{} more {} listed under another query.",
                    s.elsewhere,
                    if s.elsewhere == 1 { "is" } else { "are" }
                ));
            }
            let what = format!("more for {}", s.label);
            if s.more > 0 {
                t.blank();
            }
            t.more(s.more, "", &what, d.archive_url.as_deref());
        }
    }
    if !d.suggestions.is_empty() {
        t.blank();
        t.blank();
        t.para("== You might also like ==");
        t.para("Outside your queries, like papers you marked \u{201c}more like this\u{201d}.");
        for p in &d.suggestions {
            t.blank();
            t.entry(p);
        }
    }

    t.blank();
    t.line("--");
    t.para(&d.why);
    t.para(&format!(
        "Change your queries or settings: {}",
        d.preferences_url
    ));
    t.para(&format!("Unsubscribe: {}", d.unsubscribe_url));
    if let Some(url) = &d.archive_url {
        t.para(&format!("View in browser: {url}"));
    }
    t.para(&format!("Your papers as an Atom feed: {}", d.feed_url));
    t.out
}

fn papers(n: usize) -> String {
    if n == 1 {
        "1 paper".to_string()
    } else {
        format!("{n} papers")
    }
}

/// The text being written, with the width of the largest item number.
struct Text {
    out: String,
    digits: usize,
}

impl Text {
    fn line(&mut self, s: &str) {
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn blank(&mut self) {
        self.out.push('\n');
    }

    /// A paragraph from the left margin.
    fn para(&mut self, s: &str) {
        let wrapped = hang(s, WIDTH, "", 0);
        self.line(&wrapped);
    }

    /// The columns before an item's text: its number, right-aligned, a dot and a space.
    fn indent(&self) -> usize {
        self.digits + 2
    }

    /// `text` after an item number, its next lines under its first word.
    fn item(&mut self, number: usize, text: &str) {
        let first = format!("{number:>width$}. ", width = self.digits);
        let wrapped = hang(text, WIDTH, &first, self.indent());
        self.line(&wrapped);
    }

    /// A line of an entry below its title.
    fn detail(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let pad = " ".repeat(self.indent());
        let wrapped = hang(text, WIDTH, &pad, self.indent());
        self.line(&wrapped);
    }

    /// "And 3 more: <address>" (or without the address in a preview).
    fn more(&mut self, n: usize, before: &str, what: &str, url: Option<&str>) {
        if n == 0 {
            return;
        }
        let said = format!("{before} {n} {what}");
        let said = said.trim_start();
        match url {
            Some(url) => self.para(&format!("{said}: {url}")),
            None => self.para(&format!("{said}.")),
        }
    }

    fn entry(&mut self, p: &PaperView) {
        self.item(p.number, &p.title);
        self.detail(&p.authors);
        self.detail(&p.facts);
        self.detail(&p.snippet_text);
        if !p.matched.is_empty() {
            self.detail(&format!("Matched: {}", p.matched));
        }
        self.detail(&p.reason);
        let links = [
            ("Abstract", &p.abs_url),
            ("PDF", &p.pdf_url),
            ("Discussion", &p.discussion_url),
            ("More or less like this", &p.entry_url),
        ];
        for (label, url) in links {
            if let Some(url) = url {
                self.detail(&format!("{label}: {url}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<&str> {
        s.lines().collect()
    }

    #[test]
    fn lines_stay_within_the_width_and_keep_every_word() {
        let text = "word ".repeat(60) + "end";
        let out = hang(&text, 72, "", 0);
        assert!(lines(&out).iter().all(|l| l.chars().count() <= 72), "{out}");
        assert_eq!(
            out.split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_indent_lines_up_under_the_first_word_for_any_number() {
        let title = "Structured state space models for long-range diffusion, with ablations and \
                     limitations written out in full";
        for (first, indent) in [("  1. ", 5), (" 10. ", 5), ("100. ", 5), ("1. ", 3)] {
            let out = hang(title, 72, first, indent);
            let ls = lines(&out);
            assert!(ls.len() > 1, "{out}");
            for l in &ls[1..] {
                assert!(l.starts_with(&" ".repeat(indent)), "{out}");
                assert!(!l[indent..].starts_with(' '), "{out}");
            }
            assert!(ls.iter().all(|l| l.chars().count() <= 72), "{out}");
        }
    }

    #[test]
    fn a_long_address_stands_alone_on_its_line() {
        let url = format!("https://papers.example.org/digests/7?t={}", "x".repeat(60));
        let out = hang(
            &format!("More or less like this: {url} then more"),
            72,
            "   ",
            3,
        );
        assert_eq!(
            lines(&out),
            vec![
                "   More or less like this:".to_string(),
                format!("   {url}"),
                "   then more".to_string()
            ]
        );
        let short = hang("Abstract: https://arxiv.org/abs/2411.00100", 72, "   ", 3);
        assert_eq!(short, "   Abstract: https://arxiv.org/abs/2411.00100");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let text = "é".repeat(40) + " " + &"ü".repeat(30);
        assert_eq!(lines(&hang(&text, 72, "", 0)).len(), 1);
    }

    #[test]
    fn empty_text_leaves_no_trailing_space() {
        assert_eq!(hang("", 72, " 1. ", 4), " 1.");
        assert_eq!(hang("  ", 72, "", 0), "");
    }
}
