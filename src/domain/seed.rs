//! A reader's list of papers they like, as they bring it: arXiv ids, arXiv links and DOIs
//! one per line, or a BibTeX export (Zotero, Google Scholar, arXiv's own). Reading it is
//! pure: which paper each entry names is decided here; finding the papers is left to the
//! store and the feeds.

use std::fmt;

use biblatex::{Pair, RawBibliography, RawChunk};

use super::{ArxivId, PaperKey, normalise_doi};

/// The most entries one list may hold; a longer one is refused whole.
pub const MAX_SEED_ENTRIES: usize = 500;

/// The DOI prefix under which arXiv registers its papers (`10.48550/arXiv.2409.12345`).
const ARXIV_DOI_PREFIX: &str = "10.48550/arxiv.";

/// Which paper an entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedId {
    /// An arXiv paper, whatever version was named.
    Arxiv(ArxivId),
    /// A DOI that is not arXiv's, as its key (`doi:` and the lowercased DOI).
    Doi(PaperKey),
}

impl SeedId {
    /// Reads an arXiv id (`2409.12345`, `2409.12345v2`, `hep-th/9901001`, `arXiv:…`), an
    /// arXiv link (abs, pdf or html), or a DOI (`10.…/…`, `doi:…`, `https://doi.org/…`).
    /// An arXiv DOI is taken as the arXiv id it stands for.
    pub fn parse(raw: &str) -> Option<SeedId> {
        let raw = raw
            .trim()
            .trim_matches(|c: char| matches!(c, '<' | '>' | ',' | ';' | '"' | '\'' | '.'));
        let with_scheme;
        let raw = if raw.starts_with("doi.org/") || raw.starts_with("dx.doi.org/") {
            with_scheme = format!("https://{raw}");
            with_scheme.as_str()
        } else {
            raw
        };
        if let Some(doi) = normalise_doi(raw) {
            return SeedId::from_doi(&doi);
        }
        ArxivId::parse(raw).map(|id| SeedId::Arxiv(id.without_version()))
    }

    /// `doi` is already normalised.
    fn from_doi(doi: &str) -> Option<SeedId> {
        if let Some(id) = doi.strip_prefix(ARXIV_DOI_PREFIX).and_then(ArxivId::parse) {
            return Some(SeedId::Arxiv(id.without_version()));
        }
        PaperKey::doi(doi).map(SeedId::Doi)
    }

    /// The canonical key the paper is stored under when paperboy has it.
    pub fn key(&self) -> PaperKey {
        match self {
            SeedId::Arxiv(id) => PaperKey::arxiv(id),
            SeedId::Doi(key) => key.clone(),
        }
    }

    /// The lowercased DOI, for a DOI.
    pub fn doi(&self) -> Option<&str> {
        match self {
            SeedId::Arxiv(_) => None,
            SeedId::Doi(key) => key.as_str().strip_prefix("doi:"),
        }
    }
}

/// One entry of the list: what the reader can recognise it by, and the paper it names,
/// if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedEntry {
    /// `line 3: 2409.12345` for a list, `smith2024 "Title"` for BibTeX.
    pub name: String,
    /// `None` when the entry names no arXiv id and no DOI.
    pub id: Option<SeedId>,
}

/// How the list was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedFormat {
    Lines,
    Bibtex,
}

impl SeedFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SeedFormat::Lines => "list",
            SeedFormat::Bibtex => "BibTeX",
        }
    }
}

/// Every entry of a list, in its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedList {
    pub format: SeedFormat,
    pub entries: Vec<SeedEntry>,
}

/// Why a list was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    #[error("{count} entries: at most {MAX_SEED_ENTRIES} are taken at once, so split the list")]
    TooMany { count: usize },
    #[error("malformed BibTeX in entry {entry} (line {line}): {problem}")]
    Bibtex {
        /// The entry's key, or `at line N` when it has none.
        entry: String,
        /// Where the entry starts.
        line: usize,
        problem: String,
    },
    #[error("no arXiv id, arXiv link, DOI or BibTeX entry found")]
    Empty,
}

impl SeedList {
    /// Reads a list: BibTeX when a line starts a `@type{` entry, else one id per line
    /// (blank lines and lines starting with `#` skipped; anything after the first word of
    /// a line is ignored, so `2409.12345 Some title` works). A BibTeX syntax error, more
    /// than [`MAX_SEED_ENTRIES`] entries, or nothing at all refuses the whole list.
    pub fn parse(text: &str) -> Result<SeedList, SeedError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let list = if looks_like_bibtex(text) {
            SeedList {
                format: SeedFormat::Bibtex,
                entries: bibtex_entries(text)?,
            }
        } else {
            SeedList {
                format: SeedFormat::Lines,
                entries: line_entries(text),
            }
        };
        if list.entries.is_empty() {
            return Err(SeedError::Empty);
        }
        if list.entries.len() > MAX_SEED_ENTRIES {
            return Err(SeedError::TooMany {
                count: list.entries.len(),
            });
        }
        Ok(list)
    }
}

impl fmt::Display for SeedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Whether some line starts an entry: `@article{`, `@misc {`…
fn looks_like_bibtex(text: &str) -> bool {
    text.lines().any(|line| entry_header(line).is_some())
}

/// The type of the entry a line starts, if it starts one.
fn entry_header(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix('@')?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    let (kind, after) = rest.split_at(end);
    (!kind.is_empty() && after.trim_start().starts_with(['{', '('])).then_some(kind)
}

fn line_entries(text: &str) -> Vec<SeedEntry> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let word = line.split_whitespace().next().unwrap_or(line);
        entries.push(SeedEntry {
            name: format!("line {}: {}", i + 1, shorten(word, 100)),
            id: SeedId::parse(word),
        });
    }
    entries
}

fn bibtex_entries(text: &str) -> Result<Vec<SeedEntry>, SeedError> {
    let bibliography = RawBibliography::parse(text).map_err(|e| locate(text, &e))?;
    let entries = bibliography
        .entries
        .iter()
        .map(|entry| {
            let entry_line = line_of(text, entry.span.start);
            let fields = Fields {
                pairs: &entry.v.fields,
                abbreviations: &bibliography.abbreviations,
            };
            let key = entry.v.key.v.trim();
            let mut name = if key.is_empty() {
                format!("at line {entry_line}")
            } else {
                key.to_string()
            };
            if let Some(title) = fields.get("title").filter(|t| !t.is_empty()) {
                name.push_str(&format!(" \"{}\"", shorten(&title, 100)));
            }
            SeedEntry {
                name,
                id: fields.seed_id(),
            }
        })
        .collect();
    Ok(entries)
}

/// The fields of one entry, read as plain text with the file's `@string` abbreviations.
struct Fields<'a, 's> {
    pairs: &'a [Pair<'s>],
    abbreviations: &'a [Pair<'s>],
}

impl Fields<'_, '_> {
    /// A field's text (its name in any case), braces dropped and blank space collapsed.
    fn get(&self, name: &str) -> Option<String> {
        let pair = self
            .pairs
            .iter()
            .find(|p| p.key.v.eq_ignore_ascii_case(name))?;
        let mut text = String::new();
        for chunk in &pair.value.v {
            match chunk.v {
                RawChunk::Normal(s) => text.push_str(s),
                RawChunk::Abbreviation(abbr) => {
                    let defined = self
                        .abbreviations
                        .iter()
                        .find(|p| p.key.v.eq_ignore_ascii_case(abbr));
                    match defined {
                        Some(def) => def.value.v.iter().for_each(|c| {
                            if let RawChunk::Normal(s) = c.v {
                                text.push_str(s)
                            }
                        }),
                        // Months (`month = jan`) and other predefined names.
                        None => text.push_str(abbr),
                    }
                }
            }
        }
        let plain: String = text.chars().filter(|c| !matches!(c, '{' | '}')).collect();
        Some(plain.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    /// The arXiv id the entry gives (its `eprint` when the archive is arXiv, an arXiv link
    /// or an `arXiv:` mention in the fields where exports put them), else its DOI.
    fn seed_id(&self) -> Option<SeedId> {
        let archive = self.get("archiveprefix").or_else(|| self.get("eprinttype"));
        if archive
            .as_deref()
            .is_none_or(|a| a.eq_ignore_ascii_case("arxiv"))
            && let Some(id) = self.get("eprint").as_deref().and_then(ArxivId::parse)
        {
            return Some(SeedId::Arxiv(id.without_version()));
        }
        const MENTIONS: &[&str] = &[
            "url",
            "eprint",
            "journal",
            "journaltitle",
            "note",
            "howpublished",
            "number",
            "booktitle",
            "publisher",
        ];
        for field in MENTIONS {
            if let Some(id) = self.get(field).as_deref().and_then(arxiv_in_text) {
                return Some(SeedId::Arxiv(id.without_version()));
            }
        }
        self.get("doi")
            .as_deref()
            .and_then(SeedId::parse)
            .or_else(|| self.get("url").as_deref().and_then(SeedId::parse))
    }
}

/// The first arXiv id in free text: an `arxiv.org/abs|pdf|html/…` link, or `arXiv:ID`
/// (`arXiv preprint arXiv:2409.12345`, `arXiv:2409.12345 [cs]`).
fn arxiv_in_text(text: &str) -> Option<ArxivId> {
    let lower = text.to_ascii_lowercase();
    let word_at = |at: usize| {
        let rest = text[at..].trim_start();
        let end = rest
            .find(|c: char| {
                c.is_whitespace()
                    || matches!(c, '{' | '}' | '"' | '<' | '>' | ',' | ';' | ')' | '[' | ']')
            })
            .unwrap_or(rest.len());
        &rest[..end]
    };
    for (at, _) in lower.match_indices("arxiv.org/") {
        if let Some(id) = ArxivId::from_url(word_at(at)) {
            return Some(id);
        }
    }
    for (at, found) in lower.match_indices("arxiv:") {
        if let Some(id) = ArxivId::parse(word_at(at + found.len())) {
            return Some(id);
        }
    }
    None
}

/// Names the entry a syntax error is in. The file is cut at every line that starts an
/// entry and each piece read alone: the first that fails is the culprit (an unclosed
/// brace otherwise surfaces only at the end of the file, far from its entry).
fn locate(text: &str, error: &biblatex::ParseError) -> SeedError {
    let mut starts: Vec<usize> = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if entry_header(line).is_some() {
            starts.push(offset);
        }
        offset += line.len();
    }
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        let piece = &text[start..end];
        if let Err(e) = RawBibliography::parse(piece) {
            return described(text, start, piece, start + e.span.start, &e.kind);
        }
    }
    // Every piece reads alone, so the trouble lies between them; name the entry before it.
    let at = error.span.start.min(text.len());
    let start = starts
        .iter()
        .rev()
        .find(|&&s| s <= at)
        .copied()
        .unwrap_or(0);
    let end = starts
        .iter()
        .find(|&&s| s > start)
        .copied()
        .unwrap_or(text.len());
    described(text, start, &text[start..end], at, &error.kind)
}

fn described(
    text: &str,
    start: usize,
    piece: &str,
    at: usize,
    kind: &biblatex::ParseErrorKind,
) -> SeedError {
    let line = line_of(text, start);
    let key = entry_key(piece);
    let entry = if key.is_empty() {
        format!("at line {line}")
    } else {
        key.to_string()
    };
    let at = at.min(text.len());
    // An entry that runs to the end of its piece lost a closing brace or quote somewhere.
    let runs_off = text
        .get(at..start + piece.len())
        .is_some_and(|rest| rest.trim().is_empty());
    let problem = match kind {
        biblatex::ParseErrorKind::UnexpectedEof => NEVER_CLOSED.to_string(),
        _ if runs_off => NEVER_CLOSED.to_string(),
        other => format!("{other} at line {}", line_of(text, at)),
    };
    SeedError::Bibtex {
        entry,
        line,
        problem,
    }
}

const NEVER_CLOSED: &str = "it is never closed (a `}` or `\"` is missing)";

/// The citation key of the entry that `piece` starts with (`@article{key,` → `key`).
fn entry_key(piece: &str) -> &str {
    let Some(open) = piece.find(['{', '(']) else {
        return "";
    };
    let rest = &piece[open + 1..];
    let end = rest.find([',', '\n', '}']).unwrap_or(rest.len());
    rest[..end].trim()
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arxiv(s: &str) -> Option<SeedId> {
        Some(SeedId::Arxiv(ArxivId::parse(s).unwrap().without_version()))
    }

    fn doi(s: &str) -> Option<SeedId> {
        Some(SeedId::Doi(PaperKey::doi(s).unwrap()))
    }

    #[test]
    fn every_way_of_writing_an_arxiv_id_or_a_doi_is_read() {
        for (given, expected) in [
            ("2609.01234", arxiv("2609.01234")),
            ("2609.01234v2", arxiv("2609.01234")),
            ("arXiv:2609.01234", arxiv("2609.01234")),
            ("hep-th/9901001", arxiv("hep-th/9901001")),
            ("https://arxiv.org/abs/2609.01234v3", arxiv("2609.01234")),
            ("http://arxiv.org/pdf/2609.01234.pdf", arxiv("2609.01234")),
            ("https://arxiv.org/html/2609.01234v1", arxiv("2609.01234")),
            (
                "https://arxiv.org/abs/hep-th/9901001",
                arxiv("hep-th/9901001"),
            ),
            ("arxiv.org/abs/2609.01234", arxiv("2609.01234")),
            ("10.1145/3368089.3409754", doi("10.1145/3368089.3409754")),
            (
                "doi:10.1145/3368089.3409754",
                doi("10.1145/3368089.3409754"),
            ),
            (
                "https://doi.org/10.1145/3368089.3409754",
                doi("10.1145/3368089.3409754"),
            ),
            (
                "doi.org/10.1145/3368089.3409754",
                doi("10.1145/3368089.3409754"),
            ),
            ("<https://doi.org/10.1145/ABC>,", doi("10.1145/abc")),
            ("10.48550/arXiv.2609.01234", arxiv("2609.01234")),
            (
                "https://doi.org/10.48550/ARXIV.2609.01234",
                arxiv("2609.01234"),
            ),
            ("not-an-id", None),
            ("https://example.org/paper/1", None),
            ("2613.01234", None),
        ] {
            assert_eq!(SeedId::parse(given), expected, "{given}");
        }
    }

    #[test]
    fn a_list_skips_blank_lines_and_comments_and_names_each_line() {
        let list = SeedList::parse(
            "# papers I like\n\n2609.01234\n  https://arxiv.org/abs/2609.04321v2  Some title\n\
             doi:10.1101/2026.01.02.123456\nnot an id\n",
        )
        .unwrap();
        assert_eq!(list.format, SeedFormat::Lines);
        let names: Vec<&str> = list.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "line 3: 2609.01234",
                "line 4: https://arxiv.org/abs/2609.04321v2",
                "line 5: doi:10.1101/2026.01.02.123456",
                "line 6: not",
            ]
        );
        assert_eq!(list.entries[1].id, arxiv("2609.04321"));
        assert_eq!(list.entries[2].id, doi("10.1101/2026.01.02.123456"));
        assert_eq!(list.entries[3].id, None);
    }

    #[test]
    fn nothing_to_read_is_refused() {
        assert_eq!(SeedList::parse(""), Err(SeedError::Empty));
        assert_eq!(SeedList::parse("# only\n\n  \n"), Err(SeedError::Empty));
        assert_eq!(
            SeedList::parse("@comment{nothing here}\n"),
            Err(SeedError::Empty)
        );
    }

    #[test]
    fn more_than_the_limit_is_refused_whole() {
        let text: String = (0..=MAX_SEED_ENTRIES)
            .map(|i| format!("2609.{i:05}\n"))
            .collect();
        assert_eq!(
            SeedList::parse(&text),
            Err(SeedError::TooMany {
                count: MAX_SEED_ENTRIES + 1
            })
        );
        let text: String = (0..=MAX_SEED_ENTRIES)
            .map(|i| format!("@misc{{k{i}, eprint = {{2609.{i:05}}}}}\n"))
            .collect();
        assert!(matches!(
            SeedList::parse(&text),
            Err(SeedError::TooMany { .. })
        ));
        let text: String = (0..MAX_SEED_ENTRIES)
            .map(|i| format!("2609.{i:05}\n"))
            .collect();
        assert_eq!(
            SeedList::parse(&text).unwrap().entries.len(),
            MAX_SEED_ENTRIES
        );
    }

    const EXPORT: &str = r#"% Written by hand in the shape reference managers export.
@string{aip = "Some Physics Letters"}

@misc{lovelace_engines_2026,
	title = {Analytical {Engines} for {Everyone}},
	url = {http://arxiv.org/abs/2609.01234},
	doi = {10.48550/arXiv.2609.01234},
	abstract = {We cite arXiv:2001.00001 here, which is not this paper; costs $5 and {braces}.},
	urldate = {2026-09-30},
	publisher = {arXiv},
	author = {Lovelace, Ada and Babbage, Charles},
	month = sep,
	year = {2026},
	note = {arXiv:2609.01234 [cs]},
	keywords = {Computer Science - Machine Learning},
}

@article{turing2026machines,
  title={Machines that think, again},
  author={Turing, Alan},
  journal={arXiv preprint arXiv:2608.04321},
  year={2026}
}

@misc{hopper2025compilers,
      title={Compilers, revisited}, 
      author={Grace Hopper},
      year={2025},
      eprint={2512.00042},
      archivePrefix={arXiv},
      primaryClass={cs.PL},
}

@article{noether_rings_2025,
	title = {Rings and their ideals},
	volume = {12},
	doi = {10.1234/RINGS.2025.12},
	journal = aip,
	author = {Noether, Emmy},
	year = {2025},
}

@book{knuth_art_1968,
	title = {The {Art} of {Computer} {Programming}},
	author = {Knuth, Donald},
	year = {1968},
}

@article{oldstyle,
  author = "Witten, E.",
  title = "Strings",
  eprint = "hep-th/9901001",
  eprinttype = "arxiv",
}

@misc{pubmed_only,
  title = {Elsewhere},
  eprint = {31234567},
  eprinttype = {pubmed},
}
"#;

    #[test]
    fn a_reference_manager_export_gives_each_entry_its_paper() {
        let list = SeedList::parse(EXPORT).unwrap();
        assert_eq!(list.format, SeedFormat::Bibtex);
        let got: Vec<(&str, Option<SeedId>)> = list
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.id.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "lovelace_engines_2026 \"Analytical Engines for Everyone\"",
                    arxiv("2609.01234")
                ),
                (
                    "turing2026machines \"Machines that think, again\"",
                    arxiv("2608.04321")
                ),
                (
                    "hopper2025compilers \"Compilers, revisited\"",
                    arxiv("2512.00042")
                ),
                (
                    "noether_rings_2025 \"Rings and their ideals\"",
                    doi("10.1234/rings.2025.12")
                ),
                ("knuth_art_1968 \"The Art of Computer Programming\"", None),
                ("oldstyle \"Strings\"", arxiv("hep-th/9901001")),
                ("pubmed_only \"Elsewhere\"", None),
            ]
        );
    }

    #[test]
    fn a_syntax_error_names_its_entry_and_line() {
        let broken = "@misc{good, title = {Fine}, eprint = {2609.01234}}\n\n\
                      @article{broken_one,\n  title = {Never closed,\n  year = {2026}\n}\n\n\
                      @misc{after, title = {Also fine}}\n";
        let err = SeedList::parse(broken).unwrap_err();
        let SeedError::Bibtex { entry, line, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!((entry.as_str(), *line), ("broken_one", 3));
        assert!(err.to_string().contains("never closed"), "{err}");

        let err =
            SeedList::parse(include_str!("../../tests/fixtures/likes/broken.bib")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed BibTeX in entry broken_entry_2026 (line 9): it is never closed (a `}` or \
             `\"` is missing)"
        );

        let missing_comma =
            "@misc{first, title = {A}}\n@misc{second,\n  title = {B}\n  year = {2026}\n}\n";
        let err = SeedList::parse(missing_comma).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed BibTeX in entry second (line 2): expected comma at line 4"
        );
    }

    #[test]
    fn ids_in_free_text_are_found_and_others_are_not() {
        for (text, expected) in [
            ("arXiv preprint arXiv:2609.01234", arxiv("2609.01234")),
            ("arXiv: 2609.01234v2 [cs.LG]", arxiv("2609.01234")),
            (
                "\\url{https://arxiv.org/abs/2609.01234}",
                arxiv("2609.01234"),
            ),
            ("arXiv preprint", None),
            ("see arxiv.org/list/cs.LG", None),
        ] {
            assert_eq!(
                arxiv_in_text(text).map(|id| SeedId::Arxiv(id.without_version())),
                expected,
                "{text}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn reading_any_text_never_panics(s in "\\PC{0,300}") {
            let _ = SeedList::parse(&s);
        }

        #[test]
        fn reading_any_bibtex_like_text_never_panics(s in "@(misc|article)\\{[a-z{},=\" @%\n]{0,200}") {
            let _ = SeedList::parse(&s);
        }
    }
}
