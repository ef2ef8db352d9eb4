#!/usr/bin/env python3
"""Compares what paperboy stored from each real-world feed sample with what Python's
feedparser reads in it (and, for the JSON APIs feedparser does not read, a plain reading of
the JSON): entries, titles, authors, links, dates and the first 200 characters of
abstracts.

    compare_feedparser.py --stored STORED.json --allow ALLOW.tsv

STORED.json is written by the Rust test `fidelity` (tests/api/fidelity.rs): for each sample
file (the shared real-world samples, then the synthetic ones in tests/fixtures/fidelity),
where it is, how it was served, whether paperboy ingested or refused it and every paper it
stored, with the feed entry ids that carried it.

Each difference gets a field and a class (see CLASSES). ALLOW.tsv lists the differences that
are right on paperboy's side, one per line: `file-glob TAB field TAB class TAB reason`.
Prints one table row per file and every difference; exits 1 when any difference is not
allowed (or an allow-list line allows nothing, so the list stays true).
"""

import argparse
import calendar
import fnmatch
import html
import json
import re
import sys
from datetime import datetime, timezone

import feedparser
from feedparser.datetimes import _parse_date

ABSTRACT_CHARS = 200

# What each class of difference means; the allow-list names them.
CLASSES = {
    "missing": "the reference reads an entry paperboy did not store",
    "extra": "paperboy stored a paper the reference does not read",
    "refused": "paperboy refused the whole file; the reference reads entries in it",
    "merged": "several reference entries are one stored paper",
    "differs": "the values differ",
    "split": "paperboy's authors, joined with ', ', are the reference's one author string",
    "prefix": "the reference's text ends with paperboy's: paperboy dropped a leading part",
    "canonical": "both links name the same arXiv paper (paperboy keeps the unversioned https page)",
    "arxiv-link": "paperboy links the arXiv page of the paper instead of the entry's own link",
    "markup": "equal once medRxiv's JATS markers and {name} symbols are read as characters",
    "absent": "paperboy stored no value where the reference has one",
    "decoded-once": "equal once paperboy's text is entity-decoded again: the reference reads declared plain text as HTML",
    "unparsed-date": "the reference reads no date where paperboy read one (recording what it assumed)",
    "inherited": "the reference entry has no authors; paperboy gives it the feed's (RFC 4287 4.2.1)",
}


def collapse(text):
    return " ".join((text or "").split())


TAG = re.compile(r"<[^>]+>")


def plain_from_html(text):
    """Text of an HTML fragment: tags dropped, entities decoded once, whitespace collapsed."""
    spaced = re.sub(r"<(p|br|div|li|ul|ol|tr|td|h[1-6]|blockquote)\b", r" <\1", text or "", flags=re.I)
    spaced = re.sub(r"<(script|style)\b.*?</\1\s*>", " ", spaced, flags=re.I | re.S)
    return collapse(html.unescape(TAG.sub("", spaced)))


def detail_text(entry, name):
    """A feedparser text construct as plain text, by the type feedparser reports."""
    value = entry.get(name)
    if value is None:
        return None
    kind = (entry.get(name + "_detail") or {}).get("type", "text/plain")
    return plain_from_html(value) if "html" in kind else collapse(value)


def iso(struct_time):
    if struct_time is None:
        return None
    return datetime.fromtimestamp(calendar.timegm(struct_time), tz=timezone.utc).isoformat()


def iso_text(raw):
    """A date string from JSON as ISO 8601 UTC (RFC 3339, RFC 2822 or YYYY-MM-DD)."""
    if not raw:
        return None
    return iso(_parse_date(raw))


# --- Reference readings, one entry = dict(id, title, authors, link, date, abstract) ---------


def from_feedparser(body, content_type, url):
    # The served address is the base for relative links, as it is for paperboy.
    headers = {"content-type": content_type, "content-location": url}
    parsed = feedparser.parse(body, response_headers=headers)
    feed_authors = [collapse(a["name"]) for a in parsed.feed.get("authors", []) if a.get("name")]
    entries = []
    for e in parsed.entries:
        authors = [a.get("name") for a in e.get("authors", []) if a.get("name")]
        # Without a summary of its own, feedparser copies the content into `summary`
        # (without `summary_detail`): read the content by its own type then.
        summary = detail_text(e, "summary") if e.get("summary_detail") else None
        if not summary and e.get("content"):
            c = e.content[0]
            summary = plain_from_html(c.value) if "html" in c.get("type", "") else collapse(c.value)
        entries.append(
            {
                "id": e.get("id"),
                "title": detail_text(e, "title"),
                "authors": [collapse(a) for a in authors],
                "link": e.get("link"),
                "date": iso(e.get("published_parsed") or e.get("updated_parsed")),
                "abstract": summary or "",
                "feed_authors": feed_authors,
            }
        )
    return entries


def from_json(value):
    """A plain reading of the JSON sources: JSON Feed, Hugging Face daily papers, the
    bioRxiv/medRxiv details API and Semantic Scholar search pages."""
    if isinstance(value, list):  # Hugging Face daily papers
        out = []
        for item in value:
            p = item.get("paper") or {}
            out.append(
                {
                    "id": p.get("id"),
                    "title": collapse(p.get("title") or item.get("title")),
                    "authors": [collapse(a["name"]) for a in p.get("authors", []) if a.get("name")],
                    "link": f"https://arxiv.org/abs/{p.get('id')}",
                    "date": iso_text(p.get("publishedAt")),
                    "abstract": collapse(p.get("summary") or item.get("summary")),
                }
            )
        return out
    if isinstance(value.get("collection"), list):  # bioRxiv / medRxiv
        out = []
        for p in value["collection"]:
            host = "www.medrxiv.org" if (p.get("server") or "").lower() == "medrxiv" else "www.biorxiv.org"
            version = f"v{p['version']}" if p.get("version") else ""
            doi = (p.get("doi") or "").lower()
            out.append(
                {
                    "id": doi,
                    "title": plain_from_html(p.get("title")),
                    # The API's `authors` is one string listing everyone, `Last, F.; …`.
                    "authors": [collapse(a) for a in (p.get("authors") or "").split(";") if a.strip()],
                    "link": f"https://{host}/content/{doi}{version}",
                    "date": iso_text(p.get("date")),
                    "abstract": plain_from_html(p.get("abstract")),
                }
            )
        return out
    if isinstance(value.get("data"), list):  # Semantic Scholar
        return [
            {
                "id": p.get("paperId"),
                "title": collapse(p.get("title")),
                "authors": [collapse(a["name"]) for a in p.get("authors", []) if a.get("name")],
                "link": p.get("url"),
                "date": iso_text(p.get("publicationDate")),
                "abstract": collapse(p.get("abstract")),
            }
            for p in value["data"]
        ]
    if "jsonfeed.org" in str(value.get("version", "")):  # JSON Feed 1.0 / 1.1

        def names(obj):
            people = obj.get("authors") or ([obj["author"]] if obj.get("author") else [])
            return [collapse(a["name"]) for a in people if a.get("name")]

        feed_authors = names(value)
        out = []
        for item in value.get("items", []):
            if item.get("summary"):
                abstract = collapse(item["summary"])
            elif item.get("content_html"):
                abstract = plain_from_html(item["content_html"])
            else:
                abstract = collapse(item.get("content_text"))
            out.append(
                {
                    "id": item.get("id"),
                    "title": collapse(item.get("title")),
                    "authors": names(item) or feed_authors,
                    "link": item.get("url") or item.get("external_url"),
                    "date": iso_text(item.get("date_published") or item.get("date_modified")),
                    "abstract": abstract,
                }
            )
        return out
    return []


def reference(path, content_type, url):
    with open(path, "rb") as f:
        body = f.read()
    if "cassette" in path:  # a recorded HTTP exchange: {url, status_code, body}
        body = json.loads(body)["body"].encode("utf-8")
    elif path.endswith(".json"):
        return from_json(json.loads(body))
    return from_feedparser(body, content_type, url)


# --- Comparison ----------------------------------------------------------------------------

ARXIV_ABS = re.compile(r"^https?://(?:export\.)?arxiv\.org/abs/(.+?)(?:v\d+)?/?$")
JATS = re.compile(r"O_ST_ABS|C_ST_ABS|O_LI|C_LI|O_SCPLOW|C_SCPLOW|O_SCPCAP|C_SCPCAP|O_FIG|C_FIG|O_TBL|C_TBL")
GREEK = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon phi chi psi omega".split()


def jats_read(text):
    text = JATS.sub(" ", text)
    for i, name in enumerate(GREEK):
        offset = i + 1 if i >= 17 else i
        text = text.replace("{" + name + "}", chr(0x3B1 + offset))
        text = text.replace("{" + name.capitalize() + "}", chr(0x391 + offset))
    return collapse(text.replace("{+/-}", "\u00b1"))


def match_entries(ref_entries, papers):
    """Pairs each reference entry with the stored paper that carries it: by entry id, else
    by link, else by title. Returns [(ref, paper or None)] and the unmatched papers."""
    by_id, by_link, by_title = {}, {}, {}
    for i, p in enumerate(papers):
        for eid in p["entry_ids"]:
            by_id.setdefault(eid, i)
        if p.get("link"):
            by_link.setdefault(norm_link(p["link"]), i)
        by_title.setdefault(collapse(p["title"]).lower(), i)
    pairs, used = [], set()
    for ref in ref_entries:
        i = None
        if ref.get("id") and ref["id"] in by_id:
            i = by_id[ref["id"]]
        elif ref.get("link") and norm_link(ref["link"]) in by_link:
            i = by_link[norm_link(ref["link"])]
        elif ref.get("title") and collapse(ref["title"]).lower() in by_title:
            i = by_title[collapse(ref["title"]).lower()]
        pairs.append((ref, i))
        if i is not None:
            used.add(i)
    extra = [p for i, p in enumerate(papers) if i not in used]
    return pairs, extra


def norm_link(link):
    m = ARXIV_ABS.match(link or "")
    if m:
        return "arxiv:" + m.group(1)
    return (link or "").strip().rstrip("/")


def compare_entry(ref, paper):
    """The differences between one reference entry and its stored paper: [(field, class, detail)]."""
    out = []
    title = collapse(paper["title"])
    if collapse(ref["title"]) != title:
        cls = "markup" if jats_read(collapse(ref["title"])) == title else "differs"
        out.append(("title", cls, f"{ref['title']!r} vs {title!r}"))
    ref_authors, authors = ref["authors"], paper["authors"]
    if ref_authors != authors:
        if len(ref_authors) == 1 and ", ".join(authors) == ref_authors[0]:
            out.append(("authors", "split", f"{ref_authors[0]!r} -> {len(authors)} names"))
        elif not ref_authors and authors == ref.get("feed_authors"):
            out.append(("authors", "inherited", f"{authors!r} from the feed"))
        elif not authors and ref_authors:
            out.append(("authors", "absent", f"{ref_authors!r}"))
        else:
            out.append(("authors", "differs", f"{ref_authors!r} vs {authors!r}"))
    ref_link, link = ref.get("link"), paper.get("link")
    if (ref_link or None) != (link or None):
        if ref_link and link and norm_link(ref_link) == norm_link(link):
            out.append(("link", "canonical", f"{ref_link} vs {link}"))
        elif link and paper["key"].startswith("arxiv:") and norm_link(link) == paper["key"]:
            out.append(("link", "arxiv-link", f"{ref_link} vs {link}"))
        elif ref_link and not link:
            out.append(("link", "absent", f"{ref_link}"))
        else:
            out.append(("link", "differs", f"{ref_link} vs {link}"))
    ref_date, date = ref.get("date"), paper.get("published")
    if ref_date or date:
        same = ref_date and date and datetime.fromisoformat(ref_date) == datetime.fromisoformat(date)
        if not same:
            cls = "absent" if ref_date and not date else "unparsed-date" if not ref_date else "differs"
            out.append(("date", cls, f"{ref_date} vs {date}"))
    ref_abs = collapse(ref["abstract"])[:ABSTRACT_CHARS]
    abstract = collapse(paper["abstract"])[:ABSTRACT_CHARS]
    if ref_abs != abstract:
        full_ref = collapse(ref["abstract"])
        head = collapse(paper["abstract"])[:ABSTRACT_CHARS]
        if head and head in full_ref and not full_ref.startswith(head):
            out.append(("abstract", "prefix", f"{full_ref[:60]!r}... vs {head[:60]!r}..."))
        elif jats_read(full_ref)[:ABSTRACT_CHARS] == abstract:
            out.append(("abstract", "markup", f"{full_ref[:60]!r}..."))
        elif head and html.unescape(head)[:100] in full_ref:
            out.append(("abstract", "decoded-once", f"{full_ref[:60]!r}... vs {head[:60]!r}..."))
        elif not abstract and ref_abs:
            out.append(("abstract", "absent", f"{ref_abs[:60]!r}..."))
        else:
            out.append(("abstract", "differs", f"{ref_abs!r} vs {abstract!r}"))
    return out


def load_allow(path):
    rules = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 4 or not parts[3].strip():
                sys.exit(f"{path}:{n}: expected file-glob TAB field TAB class TAB reason")
            if parts[2] not in CLASSES:
                sys.exit(f"{path}:{n}: unknown class {parts[2]!r} (one of {', '.join(CLASSES)})")
            rules.append({"glob": parts[0], "field": parts[1], "class": parts[2], "reason": parts[3], "used": 0, "line": n})
    return rules


def allowed(rules, file, field, cls):
    for r in rules:
        if fnmatch.fnmatch(file, r["glob"]) and r["field"] == field and r["class"] == cls:
            r["used"] += 1
            return r
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stored", required=True)
    ap.add_argument("--allow", required=True)
    args = ap.parse_args()
    with open(args.stored, encoding="utf-8") as f:
        stored = json.load(f)["files"]
    rules = load_allow(args.allow)
    rows, failures, notes = [], [], []
    for item in stored:
        file = item["file"]
        refs = reference(item["path"], item["content_type"], item["url"])
        papers = item["papers"]
        diffs = []
        if item["outcome"] == "refused":
            if refs:
                diffs.append(("entries", "refused", f"{len(refs)} entries; paperboy: {item['error']}"))
        else:
            pairs, extra = match_entries(refs, papers)
            seen = {}
            for ref, i in pairs:
                label = ref.get("id") or ref.get("link") or ref.get("title")
                if i is None:
                    diffs.append(("entries", "missing", f"{label}"))
                    continue
                if i in seen:
                    diffs.append(("entries", "merged", f"{label} is stored with {seen[i]}"))
                    continue
                seen[i] = label
                for field, cls, detail in compare_entry(ref, papers[i]):
                    diffs.append((field, cls, f"{label}: {detail}"))
            for p in extra:
                diffs.append(("entries", "extra", p["key"]))
        n_allowed = n_failed = 0
        for field, cls, detail in diffs:
            rule = allowed(rules, file, field, cls)
            if rule:
                n_allowed += 1
                notes.append(f"  allowed  {file}  {field}/{cls}: {detail}  [{rule['reason']}]")
            else:
                n_failed += 1
                failures.append(f"  DIFFERS  {file}  {field}/{cls}: {detail}")
        outcome = item["outcome"] + (" (degraded)" if item.get("warning") else "")
        rows.append((file, len(refs), len(papers), outcome, n_allowed, n_failed))
    width = max(len(r[0]) for r in rows)
    print(f"{'file':<{width}}  {'reference':>9}  {'stored':>6}  {'outcome':<20}  {'allowed':>7}  {'failing':>7}")
    for file, n_ref, n_stored, outcome, n_allowed, n_failed in rows:
        print(f"{file:<{width}}  {n_ref:>9}  {n_stored:>6}  {outcome:<20}  {n_allowed:>7}  {n_failed:>7}")
    total_ok = sum(r[4] for r in rows)
    print(f"{len(rows)} files, {sum(r[1] for r in rows)} reference entries, "
          f"{sum(r[2] for r in rows)} stored papers, {total_ok} allowed differences, "
          f"{len(failures)} failing")
    if notes:
        print("allowed differences:")
        print("\n".join(notes))
    unused = [r for r in rules if r["used"] == 0]
    for r in unused:
        failures.append(f"  UNUSED   allow-list line {r['line']}: {r['glob']} {r['field']}/{r['class']} allows nothing")
    if failures:
        print("failing:")
        print("\n".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
