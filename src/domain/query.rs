//! The query language: lexer, parser and syntax tree, with errors that name the position
//! (1-based, in characters) and the problem.
//!
//! ```text
//! query    := or
//! or       := and ("OR" and)*
//! and      := unary (["AND"] unary)*          juxtaposition means AND
//! unary    := ("-" | "NOT") unary | primary
//! primary  := [field ":"] (word | prefix* | "a phrase" | "(" query ")")
//! field    := title | abstract | author | cat
//! ```

use std::fmt;

use serde::Serialize;

use super::analysis::{category, stem, words};

/// Longest query a reader may store, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most queries one reader may hold.
pub const MAX_QUERIES: usize = 20;
/// Deepest nesting of parentheses and negations.
pub const MAX_DEPTH: usize = 8;
/// Most words, phrases and prefixes in one query.
pub const MAX_TERMS: usize = 32;
/// Shortest prefix before `*`, in characters.
pub const MIN_PREFIX: usize = 3;

/// Where a term is looked for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    /// No field given: the title or the abstract.
    Text,
    Title,
    Abstract,
    Author,
    #[serde(rename = "cat")]
    Category,
}

impl Field {
    const NAMES: [(&'static str, Field); 4] = [
        ("title", Field::Title),
        ("abstract", Field::Abstract),
        ("author", Field::Author),
        ("cat", Field::Category),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Text => "text",
            Field::Title => "title",
            Field::Abstract => "abstract",
            Field::Author => "author",
            Field::Category => "cat",
        }
    }

    /// The stored fields this one covers: no field means title and abstract.
    pub fn concrete(self) -> &'static [Field] {
        match self {
            Field::Text => &[Field::Title, Field::Abstract],
            Field::Title => &[Field::Title],
            Field::Abstract => &[Field::Abstract],
            Field::Author => &[Field::Author],
            Field::Category => &[Field::Category],
        }
    }

    /// Title and abstract words are stemmed; author names and categories are not.
    pub fn stemmed(self) -> bool {
        matches!(self, Field::Text | Field::Title | Field::Abstract)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TermKind {
    /// One analysed word (stemmed where the field is); for `cat:`, the whole category.
    Word(String),
    /// Words that start with this (normalised, never stemmed); for `cat:`, categories.
    Prefix(String),
    /// Analysed words in a row, within one field value.
    Phrase(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Term {
    pub field: Field,
    pub kind: TermKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    Term(Term),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

/// A query that parsed and can match something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    text: String,
    root: Node,
    canonical: String,
}

impl Query {
    pub fn parse(raw: &str) -> Result<Query, QueryError> {
        // Positions count from the text as written, leading blanks included.
        let lead = raw.chars().take_while(|c| c.is_whitespace()).count();
        Self::parse_trimmed(raw.trim()).map_err(|mut e| {
            e.position += lead;
            e
        })
    }

    fn parse_trimmed(text: &str) -> Result<Query, QueryError> {
        let chars = text.chars().count();
        if chars == 0 {
            return Err(QueryError::new(1, "the query is empty"));
        }
        if chars > MAX_QUERY_CHARS {
            return Err(QueryError::new(
                MAX_QUERY_CHARS + 1,
                format!("the query is longer than {MAX_QUERY_CHARS} characters"),
            ));
        }
        if let Some((i, c)) = text.chars().enumerate().find(|&(_, c)| unwritable(c)) {
            return Err(QueryError::new(i + 1, unwritable_problem(c)));
        }
        let tokens = lex(text)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            depth: 0,
            terms: 0,
            end: chars + 1,
            context: Field::Text,
        };
        let root = parser.query()?;
        if let Some(tok) = parser.peek() {
            return Err(match tok.kind {
                Tok::RParen => QueryError::new(tok.at, "unexpected )"),
                _ => QueryError::new(tok.at, "unexpected text"),
            });
        }
        if !includes_something(&root) {
            return Err(QueryError::new(1, "the query only excludes")
                .hint("add a word to look for, as in \"diffusion -survey\""));
        }
        let root = simplify(root);
        Ok(Query {
            text: text.to_string(),
            canonical: root.to_string(),
            root,
        })
    }

    /// The query as the reader wrote it (trimmed).
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn root(&self) -> &Node {
        &self.root
    }

    /// A form that is equal for queries that mean the same (`Diffusion` and `diffusion`),
    /// so readers who hold the same query share one compiled copy.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }
}

/// A reader's queries, one per line: each parsed, at most [`MAX_QUERIES`]. Every bad line
/// is reported, not only the first, so a reader can mend them all in one go.
pub fn parse_lines(text: &str) -> Result<Vec<Query>, QueryListError> {
    let count = text.lines().filter(|l| !l.trim().is_empty()).count();
    if count > MAX_QUERIES {
        return Err(QueryListError::TooMany { count });
    }
    let mut queries = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match Query::parse(line) {
            Ok(query) => queries.push(query),
            Err(error) => bad.push(LineError { line: i + 1, error }),
        }
    }
    if !bad.is_empty() {
        return Err(QueryListError::Lines(bad));
    }
    Ok(queries)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryListError {
    /// Each bad line, in order; never empty.
    #[error("{}", join_lines(.0))]
    Lines(Vec<LineError>),
    #[error("{count} queries: at most {MAX_QUERIES} are allowed")]
    TooMany { count: usize },
}

/// One refused line of a query list (1-based line number).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {error}")]
pub struct LineError {
    pub line: usize,
    pub error: QueryError,
}

fn join_lines(lines: &[LineError]) -> String {
    lines
        .iter()
        .map(LineError::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a query was refused, and where (1-based character position).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueryError {
    pub position: usize,
    pub problem: String,
    pub hint: Option<String>,
}

impl QueryError {
    fn new(position: usize, problem: impl Into<String>) -> Self {
        Self {
            position,
            problem: problem.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.problem, self.position)?;
        if let Some(hint) = &self.hint {
            write!(f, ", {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for QueryError {}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Phrase(String),
    Field(Field),
    LParen,
    RParen,
    And,
    Or,
    /// `NOT` or `-`, as written (for messages).
    Not(&'static str),
}

#[derive(Debug, Clone)]
struct Token {
    kind: Tok,
    /// 1-based character position.
    at: usize,
}

/// Splits a query into tokens: parentheses, phrases, `-`, the operators, `field:` and
/// words.
fn lex(text: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        let single = |kind| Token { kind, at };
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            tokens.push(single(Tok::LParen));
            i += 1;
        } else if c == ')' {
            tokens.push(single(Tok::RParen));
            i += 1;
        } else if c == '"' {
            let close = chars[i + 1..]
                .iter()
                .position(|&c| c == '"')
                .ok_or_else(|| QueryError::new(at, "unclosed quote"))?;
            let inner: String = chars[i + 1..i + 1 + close].iter().collect();
            tokens.push(single(Tok::Phrase(inner)));
            i += close + 2;
        } else if c == '-' && i + 1 < chars.len() && !chars[i + 1].is_whitespace() {
            tokens.push(single(Tok::Not("-")));
            i += 1;
        } else {
            let start = i;
            while i < chars.len()
                && !chars[i].is_whitespace()
                && !matches!(chars[i], '(' | ')' | '"')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            lex_word(word, at, chars.get(i).copied(), &mut tokens)?;
        }
    }
    Ok(tokens)
}

/// One run of characters up to a space, parenthesis or quote, starting at `at`: an
/// operator, `field:` (with the word after it, when it is written on), or a word. `next`
/// is the character after the run.
fn lex_word(
    word: String,
    at: usize,
    next: Option<char>,
    tokens: &mut Vec<Token>,
) -> Result<(), QueryError> {
    let kind = match word.as_str() {
        "AND" => Tok::And,
        "OR" => Tok::Or,
        "NOT" => Tok::Not("NOT"),
        "-" => return Err(QueryError::new(at, "nothing after -")),
        _ => match word.split_once(':') {
            Some((name, rest)) if !name.is_empty() && name.chars().all(|c| c.is_alphabetic()) => {
                return lex_field(name, rest, at, next, tokens);
            }
            _ => Tok::Word(word),
        },
    };
    tokens.push(Token { kind, at });
    Ok(())
}

/// `name:rest` at `at`: the field, then `rest` as its word when it is written on.
fn lex_field(
    name: &str,
    rest: &str,
    at: usize,
    next: Option<char>,
    tokens: &mut Vec<Token>,
) -> Result<(), QueryError> {
    let field = field_named(name, at)?;
    tokens.push(Token {
        kind: Tok::Field(field),
        at,
    });
    let rest_at = at + name.chars().count() + 1;
    // `title:-x`, `title:NOT x` and `title:abstract:x` are not in the grammar; read
    // loosely they would mean something else.
    if rest.starts_with('-') || matches!(rest, "AND" | "OR" | "NOT") {
        return Err(QueryError::new(
            rest_at,
            format!("{name}: takes a word, a \"phrase\" or ( … )"),
        )
        .hint(format!("write -{name}:… to exclude")));
    }
    if rest
        .split_once(':')
        .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(char::is_alphabetic))
    {
        return Err(QueryError::new(
            at,
            format!("{name}: is followed by another field"),
        ));
    }
    if rest.is_empty() {
        if next.is_none_or(char::is_whitespace) {
            return Err(QueryError::new(at, format!("nothing after {name}:")));
        }
    } else {
        tokens.push(Token {
            kind: Tok::Word(rest.to_string()),
            at: rest_at,
        });
    }
    Ok(())
}

/// Characters no one types into a query: control characters other than tab (a NUL cannot
/// even be stored in PostgreSQL; a CR or an escape sequence would reach terminals and
/// forms), and U+FFFD, which stands where bytes that were not UTF-8 were replaced.
fn unwritable(c: char) -> bool {
    (c.is_control() && c != '\t') || c == char::REPLACEMENT_CHARACTER
}

fn unwritable_problem(c: char) -> String {
    if c == char::REPLACEMENT_CHARACTER {
        "U+FFFD (left where the text was not valid UTF-8) is not allowed".to_string()
    } else {
        format!("control character U+{:04X} is not allowed", u32::from(c))
    }
}

fn field_named(name: &str, at: usize) -> Result<Field, QueryError> {
    let lower = name.to_lowercase();
    if let Some((_, field)) = Field::NAMES.iter().find(|(n, _)| *n == lower) {
        return Ok(*field);
    }
    let closest = Field::NAMES
        .iter()
        .map(|(n, _)| (edit_distance(&lower, n), *n))
        .min()
        .filter(|(d, _)| *d <= 2);
    let err = QueryError::new(at, format!("unknown field \"{name}:\""));
    Err(match closest {
        Some((_, n)) => err.hint(format!("did you mean \"{n}:\"?")),
        None => err.hint("fields are title:, abstract:, author: and cat:"),
    })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    terms: usize,
    /// Position just past the end, for "nothing after" errors.
    end: usize,
    /// The field of the enclosing `field:( … )`, else [`Field::Text`].
    context: Field,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let tok = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        tok
    }

    fn starts_unary(tok: &Token) -> bool {
        matches!(
            tok.kind,
            Tok::Word(_) | Tok::Phrase(_) | Tok::Field(_) | Tok::LParen | Tok::Not(_)
        )
    }

    fn query(&mut self) -> Result<Node, QueryError> {
        self.or()
    }

    fn or(&mut self) -> Result<Node, QueryError> {
        if let Some(tok) = self
            .peek()
            .filter(|t| t.kind == Tok::Or || t.kind == Tok::And)
        {
            let op = if tok.kind == Tok::Or { "OR" } else { "AND" };
            return Err(QueryError::new(tok.at, format!("nothing before {op}")));
        }
        let mut items = vec![self.and()?];
        while let Some(tok) = self.peek().filter(|t| t.kind == Tok::Or).cloned() {
            self.pos += 1;
            if !self.peek().is_some_and(Self::starts_unary) {
                return Err(QueryError::new(tok.at, "nothing after OR"));
            }
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Node::Or(items)
        })
    }

    fn and(&mut self) -> Result<Node, QueryError> {
        let mut items = vec![self.unary()?];
        loop {
            match self.peek().cloned() {
                Some(tok) if tok.kind == Tok::And => {
                    self.pos += 1;
                    if !self.peek().is_some_and(Self::starts_unary) {
                        return Err(QueryError::new(tok.at, "nothing after AND"));
                    }
                    items.push(self.unary()?);
                }
                Some(tok) if Self::starts_unary(&tok) => items.push(self.unary()?),
                _ => break,
            }
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Node::And(items)
        })
    }

    fn enter(&mut self, at: usize) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(QueryError::new(
                at,
                format!("nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Node, QueryError> {
        match self.peek().cloned() {
            Some(Token {
                kind: Tok::Not(what),
                at,
            }) => {
                self.pos += 1;
                if !self.peek().is_some_and(Self::starts_unary) {
                    return Err(QueryError::new(at, format!("nothing after {what}")));
                }
                self.enter(at)?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Node::Not(Box::new(inner)))
            }
            _ => self.primary(None),
        }
    }

    fn primary(&mut self, field: Option<(Field, usize)>) -> Result<Node, QueryError> {
        let Some(tok) = self.next() else {
            return Err(QueryError::new(self.end, "the query ends too early"));
        };
        let in_field = field.map(|(f, _)| f).unwrap_or(self.context);
        match tok.kind {
            Tok::Field(f) => {
                if let Some((outer, at)) = field {
                    return Err(QueryError::new(
                        at,
                        format!("{}: is followed by another field", outer.name()),
                    ));
                }
                match self.peek() {
                    Some(next)
                        if matches!(
                            next.kind,
                            Tok::Word(_) | Tok::Phrase(_) | Tok::LParen | Tok::Field(_)
                        ) =>
                    {
                        self.primary(Some((f, tok.at)))
                    }
                    _ => Err(QueryError::new(
                        tok.at,
                        format!("nothing after {}:", f.name()),
                    )),
                }
            }
            Tok::Word(word) => self.term(in_field, &word, false, tok.at),
            Tok::Phrase(phrase) => self.term(in_field, &phrase, true, tok.at),
            Tok::LParen => {
                self.enter(tok.at)?;
                if self.peek().is_some_and(|t| t.kind == Tok::RParen) {
                    return Err(QueryError::new(tok.at, "empty parentheses"));
                }
                if self.peek().is_none() {
                    return Err(QueryError::new(tok.at, "unclosed ("));
                }
                // `title:(a OR b)`: terms inside take the field unless they name their own.
                let outer = self.context;
                if let Some((f, _)) = field {
                    self.context = f;
                }
                let inner = self.query()?;
                self.context = outer;
                match self.next() {
                    Some(t) if t.kind == Tok::RParen => {}
                    _ => return Err(QueryError::new(tok.at, "unclosed (")),
                }
                self.depth -= 1;
                Ok(inner)
            }
            Tok::RParen => Err(QueryError::new(tok.at, "unexpected )")),
            Tok::And => Err(QueryError::new(tok.at, "nothing before AND")),
            Tok::Or => Err(QueryError::new(tok.at, "nothing before OR")),
            Tok::Not(what) => Err(QueryError::new(tok.at, format!("misplaced {what}"))),
        }
    }

    fn term(
        &mut self,
        field: Field,
        raw: &str,
        quoted: bool,
        at: usize,
    ) -> Result<Node, QueryError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(QueryError::new(at, format!("more than {MAX_TERMS} terms")));
        }
        Ok(Node::Term(analyse_term(field, raw, quoted, at)?))
    }
}

fn analyse_term(field: Field, raw: &str, quoted: bool, at: usize) -> Result<Term, QueryError> {
    if field == Field::Category {
        if quoted {
            return Err(QueryError::new(
                at,
                "cat: takes a category such as cs.LG, not a phrase",
            ));
        }
        let value = category(raw);
        let kind = match value.strip_suffix('*') {
            Some(prefix) if !prefix.is_empty() && !prefix.contains('*') => {
                TermKind::Prefix(prefix.to_string())
            }
            _ if value.contains('*') || value.is_empty() => {
                return Err(QueryError::new(at, format!("\"{raw}\" is not a category")));
            }
            _ => TermKind::Word(value),
        };
        return Ok(Term { field, kind });
    }
    if !quoted {
        if let Some(prefix) = raw.strip_suffix('*') {
            let parts = words(prefix);
            return match parts.as_slice() {
                [one] if one.chars().count() >= MIN_PREFIX && !prefix.contains('*') => Ok(Term {
                    field,
                    kind: TermKind::Prefix(one.clone()),
                }),
                [one] if one.chars().count() < MIN_PREFIX => Err(QueryError::new(
                    at,
                    format!("a prefix needs at least {MIN_PREFIX} letters before *"),
                )),
                _ => Err(QueryError::new(
                    at,
                    format!("\"{raw}\": a prefix must be one word"),
                )),
            };
        }
        if raw.contains('*') {
            return Err(QueryError::new(
                at,
                format!("\"{raw}\": * can only end a word"),
            ));
        }
    }
    let mut parts = words(raw);
    if parts.is_empty() {
        return Err(if quoted {
            QueryError::new(at, "empty phrase")
        } else {
            QueryError::new(at, format!("\"{raw}\" has no letters or digits"))
        });
    }
    if field.stemmed() {
        parts = parts.iter().map(|w| stem(w)).collect();
    }
    let kind = if parts.len() == 1 {
        TermKind::Word(parts.remove(0))
    } else {
        TermKind::Phrase(parts)
    };
    Ok(Term { field, kind })
}

/// Whether the query requires something to be present: `a -b` does, `-b` and `a OR -b`
/// do not (they would match almost every paper).
fn includes_something(node: &Node) -> bool {
    match node {
        Node::Term(_) => true,
        Node::Not(_) => false,
        Node::And(items) => items.iter().any(includes_something),
        Node::Or(items) => items.iter().all(includes_something),
    }
}

/// Flattens nested ANDs and ORs so equal queries get equal trees.
fn simplify(node: Node) -> Node {
    match node {
        Node::And(items) => Node::And(flatten(items, |n| match n {
            Node::And(inner) => Ok(inner),
            other => Err(other),
        })),
        Node::Or(items) => Node::Or(flatten(items, |n| match n {
            Node::Or(inner) => Ok(inner),
            other => Err(other),
        })),
        Node::Not(inner) => Node::Not(Box::new(simplify(*inner))),
        term => term,
    }
}

/// Simplifies `items` and splices in the children of those `same` says are the same
/// operator.
fn flatten(items: Vec<Node>, same: impl Fn(Node) -> Result<Vec<Node>, Node>) -> Vec<Node> {
    let mut flat = Vec::with_capacity(items.len());
    for item in items.into_iter().map(simplify) {
        match same(item) {
            Ok(inner) => flat.extend(inner),
            Err(other) => flat.push(other),
        }
    }
    flat
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Term(t) => {
                write!(f, "{}:", t.field.name())?;
                match &t.kind {
                    TermKind::Word(w) => write!(f, "{w}"),
                    TermKind::Prefix(p) => write!(f, "{p}*"),
                    TermKind::Phrase(ws) => write!(f, "\"{}\"", ws.join(" ")),
                }
            }
            Node::And(items) | Node::Or(items) => {
                let op = if matches!(self, Node::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                f.write_str("(")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str(")")
            }
            Node::Not(inner) => write!(f, "NOT {inner}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_replaced_bytes_are_refused_with_their_position() {
        for (text, position, code) in [
            ("diffusion\0", 10, "U+0000"),
            ("diffusion\rBcc x", 10, "U+000D"),
            ("diff\u{1b}[2J", 5, "U+001B"),
            ("  a\u{7}", 4, "U+0007"),
            ("diff\u{FFFD}usion", 5, "U+FFFD"),
        ] {
            let e = Query::parse(text).unwrap_err();
            assert_eq!(e.position, position, "{text:?}: {e}");
            assert!(e.problem.contains(code), "{text:?}: {e}");
        }
        assert!(Query::parse("state\tspace").is_ok(), "a tab is a blank");
    }
}
