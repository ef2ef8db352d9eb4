//! The query language as readers use it, the percolator against the naive evaluator, and
//! ranking with its explanations.

use paperboy::matching::rank::{self, BatchStats};
use paperboy::matching::{Doc, Field, Percolator, Query, naive_matches, parse_lines};
use proptest::prelude::*;

fn doc(title: &str, abstract_text: &str, authors: &[&str], cats: &[&str]) -> Doc {
    let authors: Vec<String> = authors.iter().map(|s| s.to_string()).collect();
    let cats: Vec<String> = cats.iter().map(|s| s.to_string()).collect();
    Doc::new(title, abstract_text, &authors, &cats)
}

fn matches(query: &str, d: &Doc) -> bool {
    let q = Query::parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let naive = naive_matches(q.root(), d);
    let mut p = Percolator::new();
    p.set_subscriber(1, &[q]);
    let fast = !p
        .subscribers_matching(&p.match_batch(std::slice::from_ref(d)))
        .is_empty();
    assert_eq!(naive, fast, "{query}: naive and percolator disagree");
    naive
}

#[test]
fn the_language_matches_as_documented() {
    let paper = doc(
        "Control-Variate Estimators for Diffusion Models",
        "We study state space models and score-based diffusion. No survey here. Café naïve.",
        &["Tri Dao", "Yann LeCun"],
        &["cs.LG", "stat.ML"],
    );
    let table: &[(&str, bool)] = &[
        // words, stemming, case
        ("diffusion", true),
        ("DIFFUSIONS", true),
        ("variates", true),
        ("estimator", true),
        ("transformer", false),
        // hyphens: one word in the query is two words in the text, in a row
        ("control-variate", true),
        ("\"control variate\"", true),
        ("variate-control", false),
        ("score-based", true),
        // phrases: in order, within one field
        ("\"state space model\"", true),
        ("\"space state\"", false),
        ("\"diffusion models we study\"", false),
        // AND, juxtaposition, OR, NOT, -, parentheses
        ("diffusion estimators", true),
        ("diffusion AND transformer", false),
        ("diffusion OR transformer", true),
        ("transformer OR attention", false),
        ("diffusion -survey", false),
        ("diffusion NOT transformer", true),
        ("diffusion -(survey OR review)", false),
        ("(transformer OR diffusion) control", true),
        ("transformer OR diffusion control", true),
        ("transformer OR (diffusion AND attention)", false),
        // prefixes use unstemmed words
        ("diffus*", true),
        ("estimat*", true),
        ("transfor*", false),
        // fields
        ("title:diffusion", true),
        ("title:survey", false),
        ("abstract:survey", true),
        ("abstract:estimators", false),
        ("title:(diffusion OR survey)", true),
        ("author:lecun", true),
        ("author:\"yann lecun\"", true),
        ("author:\"tri lecun\"", false),
        ("author:dao", true),
        ("author:tri", true),
        ("author:dao*", true),
        ("author:daox*", false),
        ("author:lec*", true),
        ("author:diffusion", false),
        ("cat:cs.LG", true),
        ("cat:CS.lg", true),
        ("cat:cs.AI", false),
        ("cat:stat.*", true),
        ("cat:cs.LG -survey", false),
        ("cat:cs.LG diffusion", true),
        // Unicode: diacritics and compatibility forms fold away
        ("cafe", true),
        ("NAIVE", true),
        ("ｄｉｆｆｕｓｉｏｎ", true),
    ];
    for (query, expected) in table {
        assert_eq!(matches(query, &paper), *expected, "{query}");
    }
}

#[test]
fn phrases_do_not_cross_from_title_to_abstract() {
    let paper = doc(
        "Learning with Diffusion",
        "Models are everywhere.",
        &[],
        &[],
    );
    assert!(!matches("\"diffusion models\"", &paper));
    assert!(matches("diffusion models", &paper));
}

#[test]
fn refusals_name_the_position_and_the_problem() {
    let table: &[(&str, &str)] = &[
        ("\"state space model", "unclosed quote at 1"),
        ("diffusion \"state space", "unclosed quote at 11"),
        ("diffusion OR", "nothing after OR at 11"),
        ("OR diffusion", "nothing before OR at 1"),
        ("diffusion AND", "nothing after AND at 11"),
        (
            "titel:diffusion",
            "unknown field \"titel:\" at 1, did you mean \"title:\"?",
        ),
        (
            "diffusion autor:lecun",
            "unknown field \"autor:\" at 11, did you mean \"author:\"?",
        ),
        (
            "-survey",
            "the query only excludes at 1, add a word to look for, as in \"diffusion -survey\"",
        ),
        (
            "NOT survey",
            "the query only excludes at 1, add a word to look for, as in \"diffusion -survey\"",
        ),
        (
            "diffusion OR -survey",
            "the query only excludes at 1, add a word to look for, as in \"diffusion -survey\"",
        ),
        ("(diffusion", "unclosed ( at 1"),
        ("diffusion)", "unexpected ) at 10"),
        ("()", "empty parentheses at 1"),
        ("title:", "nothing after title: at 1"),
        ("di*", "a prefix needs at least 3 letters before * at 1"),
        ("\"\"", "empty phrase at 1"),
        ("$$$", "\"$$$\" has no letters or digits at 1"),
        ("diffusion -", "nothing after - at 11"),
        ("(diffusion -)", "nothing after - at 12"),
        ("diffusion NOT", "nothing after NOT at 11"),
        (
            "cat:\"cs LG\"",
            "cat: takes a category such as cs.LG, not a phrase at 5",
        ),
        ("", "the query is empty at 1"),
        (
            "title:-survey",
            "title: takes a word, a \"phrase\" or ( … ) at 7, write -title:… to exclude",
        ),
        (
            "title:NOT survey",
            "title: takes a word, a \"phrase\" or ( … ) at 7, write -title:… to exclude",
        ),
        (
            "title:abstract:x",
            "title: is followed by another field at 1",
        ),
        ("   diffusion OR", "nothing after OR at 14"),
    ];
    for (query, expected) in table {
        let err = Query::parse(query).expect_err(query);
        assert_eq!(err.to_string(), *expected, "{query}");
    }
    let long = "a".repeat(201);
    assert_eq!(
        Query::parse(&long).unwrap_err().to_string(),
        "the query is longer than 200 characters at 201"
    );
    let deep = format!("{}x{}", "(".repeat(9), ")".repeat(9));
    assert!(
        Query::parse(&deep)
            .unwrap_err()
            .to_string()
            .starts_with("nested more than 8 levels deep")
    );
}

#[test]
fn a_subscriber_holds_at_most_twenty_queries() {
    let ok: String = (0..20).map(|i| format!("word{i}\n")).collect();
    assert_eq!(parse_lines(&ok).unwrap().len(), 20);
    let too_many: String = (0..21).map(|i| format!("word{i}\n")).collect();
    assert_eq!(
        parse_lines(&too_many).unwrap_err().to_string(),
        "21 queries: at most 20 are allowed"
    );
    assert_eq!(
        parse_lines("diffusion\n\n(broken").unwrap_err().to_string(),
        "line 3: unclosed ( at 1"
    );
    assert_eq!(
        parse_lines("(broken\ndiffusion\nrobot OR")
            .unwrap_err()
            .to_string(),
        "line 1: unclosed ( at 1; line 3: nothing after OR at 7",
        "every bad line, not only the first"
    );
}

#[test]
fn the_index_follows_subscribers_who_subscribe_edit_and_leave() {
    let docs = vec![
        doc("Diffusion models", "", &[], &[]),
        doc("Transformers", "", &[], &[]),
    ];
    let q = |s: &str| Query::parse(s).unwrap();
    let mut p = Percolator::new();
    p.set_subscriber(1, &[q("diffusion")]);
    p.set_subscriber(2, &[q("Diffusion"), q("transformer"), q("diffusion")]);
    assert_eq!(p.query_count(), 2, "the same query is compiled once");
    let m = p.subscribers_matching(&p.match_batch(&docs));
    assert_eq!(m.len(), 2);
    assert_eq!(
        m[1].papers,
        vec![(0, 0b101), (1, 0b010)],
        "each bit is one of the queries as given, repeats included"
    );

    p.set_subscriber(1, &[q("transformer")]);
    let m = p.subscribers_matching(&p.match_batch(&docs));
    assert_eq!(m[0].papers, vec![(1, 0b1)]);

    p.remove_subscriber(2);
    assert_eq!(p.query_count(), 1, "a query nobody holds leaves the index");
    p.remove_subscriber(1);
    assert_eq!(p.query_count(), 0);
    assert!(p.subscribers_matching(&p.match_batch(&docs)).is_empty());
}

#[test]
fn title_matches_rank_above_abstract_matches_and_ties_are_stable() {
    let docs = vec![
        doc(
            "A study of transformers",
            "Diffusion appears here only.",
            &[],
            &[],
        ),
        doc("Diffusion for everyone", "Nothing else.", &[], &[]),
        doc("Another study", "Diffusion appears here only.", &[], &[]),
    ];
    let q = Query::parse("diffusion").unwrap();
    let stats = BatchStats::new(&docs);
    let s: Vec<f64> = docs
        .iter()
        .map(|d| rank::score(&[&q], d, None, &stats).score)
        .collect();
    assert!(s[1] > s[0], "{s:?}");
    assert_eq!(s[0], s[2]);
    assert_eq!(
        rank::compare((s[0], None, "arxiv:2"), (s[2], None, "arxiv:1")),
        std::cmp::Ordering::Greater,
        "ties go to the key"
    );
    let popular = rank::score(&[&q], &docs[0], Some(50), &stats).score;
    assert!(popular > s[0]);
}

#[test]
fn explanations_name_the_query_the_fields_and_the_spans() {
    let title = "Sparse Diffusion Samplers";
    let abstract_text = "We study diffusion samplers and score-based models.";
    let d = doc(title, abstract_text, &["Ada Lovelace"], &["cs.LG"]);
    let q = Query::parse("\"diffusion samplers\" OR author:lovelace -survey").unwrap();
    let stats = BatchStats::new([&d]);
    let e = rank::score(&[&q], &d, None, &stats).explanation;
    assert_eq!(
        e.queries[0].query,
        "\"diffusion samplers\" OR author:lovelace -survey"
    );
    assert_eq!(
        e.queries[0].fields,
        [Field::Title, Field::Abstract, Field::Author]
    );
    assert_eq!(
        e.title_spans
            .iter()
            .map(|s| &title[s.clone()])
            .collect::<Vec<_>>(),
        ["Diffusion Samplers"]
    );
    assert_eq!(
        e.abstract_spans
            .iter()
            .map(|s| &abstract_text[s.clone()])
            .collect::<Vec<_>>(),
        ["diffusion samplers"]
    );
}

// ---- properties -----------------------------------------------------------------------

const VOCAB: &[&str] = &[
    "diffusion",
    "model",
    "models",
    "graph",
    "neural",
    "state",
    "space",
    "control",
    "variate",
    "learning",
    "attention",
    "survey",
    "sparse",
    "transformer",
    "kernel",
    "ab",
    "café",
];

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(VOCAB).prop_map(str::to_string)
}

fn leaf() -> impl Strategy<Value = String> {
    let field = prop::sample::select(vec!["", "", "", "title:", "abstract:", "author:"]);
    prop_oneof![
        6 => (field.clone(), word()).prop_map(|(f, w)| format!("{f}{w}")),
        2 => (field.clone(), word(), word()).prop_map(|(f, a, b)| format!("{f}\"{a} {b}\"")),
        1 => (field, word()).prop_map(|(f, w)| format!("{f}{}*", w.chars().take(4).collect::<String>())),
        1 => prop::sample::select(vec!["cat:cs.LG", "cat:stat.ML", "cat:cs.*", "cat:math.CO"]).prop_map(str::to_string),
        1 => (word(), word()).prop_map(|(a, b)| format!("{a}-{b}")),
    ]
}

fn query_text() -> impl Strategy<Value = String> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} AND {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} OR {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} -{b}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("{a} NOT ({b})")),
        ]
    })
}

fn paper() -> impl Strategy<Value = Doc> {
    (
        prop::collection::vec(word(), 0..6),
        prop::collection::vec(word(), 0..15),
        prop::collection::vec(prop::collection::vec(word(), 1..3), 0..3),
        prop::collection::vec(
            prop::sample::select(vec!["cs.LG", "stat.ML", "cs.AI", "math.CO"]),
            0..3,
        ),
    )
        .prop_map(|(t, a, authors, cats)| {
            let authors: Vec<String> = authors.iter().map(|n| n.join(" ")).collect();
            let cats: Vec<String> = cats.iter().map(|c| c.to_string()).collect();
            Doc::new(&t.join(" "), &a.join("-"), &authors, &cats)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The percolator finds exactly the (reader, paper) pairs the naive evaluator finds.
    #[test]
    fn the_percolator_agrees_with_the_naive_evaluator(
        subscribers in prop::collection::vec(prop::collection::vec(query_text(), 1..4), 1..12),
        docs in prop::collection::vec(paper(), 1..12),
    ) {
        let mut percolator = Percolator::new();
        let mut expected = Vec::new();
        for (r, texts) in subscribers.iter().enumerate() {
            let queries: Vec<Query> = texts.iter().filter_map(|t| Query::parse(t).ok()).collect();
            percolator.set_subscriber(r as i64, &queries);
            let mut papers = Vec::new();
            for (d, doc) in docs.iter().enumerate() {
                if queries.iter().any(|q| naive_matches(q.root(), doc)) {
                    papers.push(d as u32);
                }
            }
            if !papers.is_empty() {
                expected.push((r as i64, papers));
            }
        }
        let got: Vec<(i64, Vec<u32>)> = percolator
            .subscribers_matching(&percolator.match_batch(&docs))
            .into_iter()
            .map(|m| (m.subscriber, m.papers.into_iter().map(|(p, _)| p).collect()))
            .collect();
        prop_assert_eq!(got, expected);
    }

    /// No input panics the parser, and every refusal points inside the input (or just past it).
    #[test]
    fn the_parser_never_panics_and_every_refusal_has_a_position(text in "\\PC{0,250}") {
        if let Err(e) = Query::parse(&text) {
            let len = text.chars().count();
            prop_assert!(e.position >= 1 && e.position <= len.max(1) + 1, "{} for {:?}", e, text);
            prop_assert!(e.to_string().contains(" at "));
        }
    }

    #[test]
    fn operator_soup_never_panics(parts in prop::collection::vec(prop::sample::select(vec![
        "(", ")", "\"", "-", "NOT", "AND", "OR", "title:", "cat:", "author:", "x", "diffusion", "*", " ", "ab*",
    ]), 0..60)) {
        let text = parts.join(" ");
        if let Err(e) = Query::parse(&text) {
            prop_assert!(e.position >= 1);
        }
        let glued = parts.concat();
        let _ = Query::parse(&glued);
    }
}
