#!/usr/bin/env python3
"""Reads an Atom feed that paperboy served with Python's feedparser, as many feed readers
do, and checks it against what the test expects.

    check_atom.py FEED.xml EXPECTED.json

EXPECTED.json holds "title" (the feed's), "self" (its self link) and "entries": a list of
{"title", "link", "matched"} in feed order, where "matched" is a piece of text the entry's
summary must contain. Prints one line per problem and exits 1 when there is any; prints
"feedparser: N entries ok" and exits 0 otherwise.
"""

import json
import sys

import feedparser


def problems_of(feed, expected):
    problems = []
    if feed.bozo:
        problems.append(f"feedparser calls it malformed: {feed.bozo_exception!r}")
    if feed.version != "atom10":
        problems.append(f"version {feed.version!r}, expected atom10")
    if feed.feed.get("title") != expected["title"]:
        problems.append(f"feed title {feed.feed.get('title')!r}")
    selfs = [l.get("href") for l in feed.feed.get("links", []) if l.get("rel") == "self"]
    if selfs != [expected["self"]]:
        problems.append(f"self links {selfs!r}")
    if not feed.feed.get("id", "").startswith("tag:"):
        problems.append(f"feed id {feed.feed.get('id')!r}")
    if feed.feed.get("updated_parsed") is None:
        problems.append("feed has no updated date")
    want = expected["entries"]
    if len(feed.entries) != len(want):
        problems.append(f"{len(feed.entries)} entries, expected {len(want)}")
    ids = [e.get("id") for e in feed.entries]
    if len(set(ids)) != len(ids) or not all(i and i.startswith("tag:") for i in ids):
        problems.append(f"entry ids not unique tag URIs: {ids!r}")
    for i, (got, exp) in enumerate(zip(feed.entries, want)):
        if got.get("title") != exp["title"]:
            problems.append(f"entry {i}: title {got.get('title')!r}, expected {exp['title']!r}")
        if got.get("link") != exp["link"]:
            problems.append(f"entry {i}: link {got.get('link')!r}, expected {exp['link']!r}")
        if exp["matched"] not in got.get("summary", ""):
            problems.append(f"entry {i}: summary {got.get('summary')!r} lacks {exp['matched']!r}")
        if got.get("updated_parsed") is None:
            problems.append(f"entry {i}: no updated date")
        if not got.get("authors"):
            problems.append(f"entry {i}: no authors")
    return problems


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], "rb") as f:
        body = f.read()
    with open(sys.argv[2], encoding="utf-8") as f:
        expected = json.load(f)
    feed = feedparser.parse(
        body, response_headers={"content-type": "application/atom+xml; charset=utf-8"}
    )
    problems = problems_of(feed, expected)
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"feedparser: {len(feed.entries)} entries ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
