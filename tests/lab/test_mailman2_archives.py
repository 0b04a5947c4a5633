"""The generated Mailman 2.1 archives: mbox files, pipermail trees, and the facts that describe them.

The checks read the written files with their own parsers (regular expressions, the email package,
mailbox.mbox) and compare with the returned facts, so the facts can serve as ground truth.
"""

from __future__ import annotations

import calendar
import email
import gzip
import mailbox
import re
from email.policy import compat32
from email.utils import parsedate_tz
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest

from migrate.lab.mailman2_archives import (
    MIN_MESSAGES,
    RENUMBERED_LIST,
    ArchiveFacts,
    MessageFacts,
    facts_from_json,
    facts_to_json,
    generate_archives,
    generate_article_tree,
    hyperkitty_message_id,
    main,
    tree_digest,
)
from migrate.lab.mailman2_seed import generate_tree
from migrate.mailman.mm2 import load_config

MESSAGES = 24  # per list: enough for every fixed case, small enough to stay fast

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
# Volume folder names as pipermail writes them for archive_volume_frequency 0..4.
VOLUME_RE = {
    0: re.compile(r"^(\d{4})$"),
    1: re.compile(r"^(\d{4})-(" + "|".join(MONTHS) + r")$"),
    2: re.compile(r"^(\d{4})q([1-4])$"),
    3: re.compile(r"^Week-of-Mon-(\d{4})(\d{2})(\d{2})$"),
    4: re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
}
ARTICLE_RE = re.compile(r"^\d{6}\.html$")
MADE_RE = re.compile(r'<LINK REL="made" HREF="mailto:([^"?]*)\?Subject=[^"&]*&In-Reply-To=([^"]*)">')
AUTHOR_LINK_RE = re.compile(r'<A HREF="mailto:([^"?]*)\?Subject=[^"&]*&In-Reply-To=([^"]*)"\n')


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mm2")
    generate_tree(root)
    return root


@pytest.fixture(scope="module")
def facts(var_dir: Path) -> dict[str, ArchiveFacts]:
    return generate_archives(var_dir, messages=MESSAGES)


def config(var_dir: Path, name: str) -> dict:
    return load_config((var_dir / "lists" / name / "config.pck").read_bytes(), list_name=name)


def mbox_messages(var_dir: Path, f: ArchiveFacts) -> list[bytes]:
    """The list's mbox cut at the offsets the facts give (what a careful reader would find)."""
    data = (var_dir / f.mbox_path).read_bytes()
    offsets = [m.mbox_offset for m in f.messages] + [len(data)]
    return [data[a:b] for a, b in zip(offsets, offsets[1:])]


def parse(entry: bytes) -> email.message.Message:
    return email.message_from_bytes(entry, policy=compat32)


def raw_header(entry: bytes, name: str) -> str | None:
    head = entry.split(b"\n\n", 1)[0]
    match = re.search(rb"(?im)^" + name.encode() + rb":[ \t]?(.*(?:\n[ \t].*)*)", head)
    return match.group(1).decode("latin-1") if match else None


def volume_interval(name: str, frequency: int) -> tuple[int, int]:
    match = VOLUME_RE[frequency].match(name)
    assert match, f"{name!r} is no frequency-{frequency} volume name"
    year = int(match.group(1))
    if frequency == 0:
        return calendar.timegm((year, 1, 1, 0, 0, 0)), calendar.timegm((year + 1, 1, 1, 0, 0, 0))
    if frequency in (1, 2):
        first = MONTHS.index(match.group(2)) + 1 if frequency == 1 else 3 * int(match.group(2)) - 2
        last = first + (1 if frequency == 1 else 3)
        end = (year + 1, last - 12) if last > 12 else (year, last)
        return calendar.timegm((year, first, 1, 0, 0, 0)), calendar.timegm((*end, 1, 0, 0, 0))
    start = calendar.timegm((year, int(match.group(2)), int(match.group(3)), 0, 0, 0))
    if frequency == 3:
        assert calendar.weekday(year, int(match.group(2)), int(match.group(3))) == 0, "weeks start on Monday"
    return start, start + (7 if frequency == 3 else 1) * 86400


def iso_seconds(iso: str) -> int:
    return calendar.timegm(tuple(int(x) for x in re.findall(r"\d+", iso)[:6]))


def page(var_dir: Path, f: ArchiveFacts, url: str) -> str:
    return (var_dir / f.html_dir / url).read_bytes().decode("latin-1")


def archived(facts: dict[str, ArchiveFacts]) -> list[ArchiveFacts]:
    return [f for f in facts.values() if f.archived]


def all_messages(facts: dict[str, ArchiveFacts]) -> list[tuple[ArchiveFacts, MessageFacts]]:
    return [(f, m) for f in archived(facts) for m in f.messages]


# --- layout ------------------------------------------------------------------------------------


def test_every_list_with_archiving_has_an_mbox_and_an_html_tree(var_dir, facts):
    lists = sorted(p.name for p in (var_dir / "lists").iterdir())
    assert sorted(facts) == lists
    for name, f in facts.items():
        cfg = config(var_dir, name)
        html_dir = var_dir / "archives" / "private" / name
        assert f.archived == bool(cfg["archive"])
        assert f.private == bool(cfg["archive_private"])
        public = var_dir / "archives" / "public" / name
        if f.private:
            assert not public.exists() and not public.is_symlink()
        else:
            assert public.is_symlink() and public.resolve() == html_dir.resolve()
        assert (html_dir / "index.html").is_file()
        if not f.archived:
            # Archiver.InitVars made the skeleton when the list was created; nothing was archived.
            assert f.mbox_path is None and f.messages == []
            assert list((var_dir / "archives" / "private" / f"{name}.mbox").iterdir()) == []
            assert "archives are currently empty" in (html_dir / "index.html").read_text("latin-1")
            continue
        assert f.mbox_path == f"archives/private/{name}.mbox/{name}.mbox"
        assert (var_dir / f.mbox_path).stat().st_size > 0
        assert f.message_count == len(f.messages) == MESSAGES
        toc = (html_dir / "index.html").read_text("latin-1")
        assert re.findall(r'<A href="([^"/]+)/thread.html">', toc) == f.volumes
        for volume in f.volumes:
            folder = html_dir / volume
            for index in ("date", "thread", "subject", "author"):
                assert (folder / f"{index}.html").is_file()
            index = folder / "index.html"
            assert index.is_symlink() and index.readlink() == Path("thread.html")
            text = (html_dir / f"{volume}.txt").read_bytes()
            assert gzip.decompress((html_dir / f"{volume}.txt.gz").read_bytes()) == text
        for message in f.messages:
            for attachment in message.attachments:
                assert (html_dir / attachment).is_file()
    assert not facts["emergency-stop"].archived
    assert facts["cuisine-fr"].private and facts["cuisine-fr"].public_link is None


def test_volume_names_follow_each_list_frequency(var_dir, facts):
    frequencies = set()
    for f in archived(facts):
        frequency = config(var_dir, f.list_name)["archive_volume_frequency"]
        assert f.volume_frequency == frequency
        frequencies.add(frequency)
        folders = sorted(p.name for p in (var_dir / f.html_dir).iterdir()
                         if p.is_dir() and p.name != "attachments")
        assert folders == sorted(f.volumes)
        for folder in folders:
            volume_interval(folder, frequency)
        for message in f.messages:
            start, end = volume_interval(message.volume, frequency)
            assert start <= iso_seconds(message.date) < end, (f.list_name, message.article_url)
    assert frequencies == {0, 1, 2, 3, 4}


# --- article pages -------------------------------------------------------------------------------


def test_each_article_page_carries_its_own_message_id(var_dir, facts):
    for f, message in all_messages(facts):
        html = page(var_dir, f, message.article_url)
        assert "<TITLE>" in html and '<LINK REL="Index" HREF="index.html" >' in html
        assert html.index("<!--beginarticle-->") < html.index("<!--endarticle-->")
        made, author = MADE_RE.search(html), AUTHOR_LINK_RE.search(html)
        assert made and author, message.article_url
        for link in (made, author):
            assert unquote_to_bytes(link.group(1)).decode() == f"{f.list_name}@{f.host_name}"
            assert unquote_to_bytes(link.group(2)).decode("latin-1") == message.article_message_id


def test_article_ids_relate_to_the_mbox_message_ids(var_dir, facts):
    for f in archived(facts):
        mbox = (var_dir / f.mbox_path).read_bytes()
        for message, entry in zip(f.messages, mbox_messages(var_dir, f)):
            assert raw_header(entry, "Message-ID") == message.message_id
            assert message.hyperkitty_id == hyperkitty_message_id(message.message_id)
            if message.message_id is None:
                # The archiver's Scrubber gave the page an id that exists nowhere in the mbox.
                assert re.fullmatch(rf"<mailman\.\d+\.\d+\.\d+\.{re.escape(f.list_name)}@{f.host_name}>",
                                    message.article_message_id)
                assert message.article_message_id.encode() not in mbox
            elif "decorated" in message.flags:
                # Python 2's email package unfolded the header but kept the comment.
                assert "(added by postmaster@" in message.article_message_id
                assert f"<{message.hyperkitty_id}>" in message.article_message_id
                assert "\n" in message.message_id
            else:
                assert message.article_message_id == message.message_id


def test_articles_are_numbered_from_zero_in_archiving_order(var_dir, facts):
    for f in archived(facts):
        pages = sorted(int(p.name[:6]) for p in (var_dir / f.html_dir).glob("*/*.html")
                       if ARTICLE_RE.match(p.name))
        numbers = sorted([m.article for m in f.messages] + [a.article for a in f.extra_articles])
        assert pages == numbers == list(range(len(numbers))), f.list_name
        for message in f.messages:
            assert message.article_url == f"{message.volume}/{message.article:06d}.html"
        if f.list_name == RENUMBERED_LIST:
            continue
        assert [m.article for m in f.messages] == [m.mbox_index for m in f.messages] == list(range(MESSAGES))
        assert not f.extra_articles and f.rebuilt_at is None
        assert all(m.url_before_rebuild is None and "renumbered" not in m.flags for m in f.messages)


def test_the_rebuilt_list_disagrees_with_its_mbox(var_dir, facts):
    f = facts[RENUMBERED_LIST]
    moved = [m for m in f.messages if m.article != m.mbox_index]
    assert moved and all("renumbered" in m.flags for m in moved)
    assert [m.article for m in f.messages] != [m.mbox_index for m in f.messages]
    # Links published before `bin/arch --wipe` pointed elsewhere.
    before = [m for m in f.messages if m.url_before_rebuild]
    assert before and all(m.url_before_rebuild != m.article_url for m in before)
    mbox = (var_dir / f.mbox_path).read_bytes()
    assert f.removed_before_rebuild
    for removed in f.removed_before_rebuild:
        assert removed.message_id.encode() not in mbox
        assert removed.url_before_rebuild not in {m.url_before_rebuild for m in f.messages}
    # The unescaped From line cut one message in two articles; the tail has no message of its own.
    (extra,) = f.extra_articles
    cut = f.messages[extra.cut_from]
    assert "from_in_body" in cut.flags and extra.article == cut.article + 1
    html = page(var_dir, f, extra.article_url)
    assert "<TITLE> No subject" in html
    assert unquote_to_bytes(MADE_RE.search(html).group(2)).decode() == extra.article_message_id
    # pipermail's last resort for a date: the start of the bin/arch run, plus one second.
    assert iso_seconds(extra.date) == iso_seconds(f.rebuilt_at) + 1


# --- the hard cases ------------------------------------------------------------------------------


def test_every_hard_case_is_present_and_real(var_dir, facts):
    flags = {flag for _, m in all_messages(facts) for flag in m.flags}
    assert flags >= {"no_msgid", "duplicate", "from_in_body", "escaped_from", "decorated", "bad_date",
                     "clobbered_date", "tz_boundary", "encoded_headers", "eight_bit_headers", "multipart",
                     "renumbered"}
    charsets = {c for _, m in all_messages(facts) for c in m.header_charsets}
    assert {"iso-8859-1", "utf-8", "koi8-r"} <= charsets and charsets & {"iso-2022-jp", "euc-jp"}
    for f in archived(facts):
        for message, entry in zip(f.messages, mbox_messages(var_dir, f)):
            msg = parse(entry)
            head = entry.split(b"\n\n", 1)[0]
            sender_headers = b"".join(re.findall(rb"(?im)^(?:from|subject):.*(?:\n[ \t].*)*", head))
            if "no_msgid" in message.flags:
                assert msg["Message-ID"] is None and message.hyperkitty_id is None
            if "decorated" in message.flags:
                assert "(added by" in message.message_id
            if "bad_date" in message.flags:
                assert parsedate_tz(msg["Date"]) is None
            if "clobbered_date" in message.flags:
                assert parsedate_tz(msg["X-Original-Date"]) is None and parsedate_tz(msg["Date"]) is not None
            if "tz_boundary" in message.flags:
                local = parsedate_tz(msg["Date"])
                assert (local[0], local[1]) != tuple(int(x) for x in message.date[:7].split("-"))
            if "escaped_from" in message.flags:
                assert re.search(rb"(?m)^>From ", entry)
            if "eight_bit_headers" in message.flags:
                assert any(b > 127 for b in sender_headers)
            if "encoded_headers" in message.flags:
                assert re.search(rb"=\?[^?]+\?[QqBb]\?", sender_headers)
            if "multipart" in message.flags:
                assert msg.is_multipart() and message.attachments
                assert "-------------- next part --------------" in page(var_dir, f, message.article_url)
    duplicates = [m for _, m in all_messages(facts) if "duplicate" in m.flags]
    assert len(duplicates) >= 2 and len({m.hyperkitty_id for m in duplicates}) < len(duplicates)
    assert {m.subject for m in duplicates if m.hyperkitty_duplicate_of is None} != {
        m.subject for m in duplicates if m.hyperkitty_duplicate_of is not None}


def test_mbox_readers_missplit_the_unescaped_from_line(var_dir, facts):
    for f in archived(facts):
        found = len(mailbox.mbox(var_dir / f.mbox_path))
        cut = len(f.with_flag("from_in_body"))
        assert found == f.mbox_reader_count == f.message_count + cut
    f = facts[RENUMBERED_LIST]
    assert f.mbox_reader_count > f.message_count
    (message,) = f.with_flag("from_in_body")
    read = mailbox.mbox(var_dir / f.mbox_path)[message.mbox_index]
    assert read["Message-ID"] == message.message_id
    assert "minutes of our last meeting" not in read.get_payload()


def test_duplicate_message_ids_leave_the_earlier_page_unindexed(var_dir, facts):
    f = facts["cuisine-fr"]
    first, second = f.with_flag("duplicate")
    assert first.volume == second.volume and first.article_message_id == second.article_message_id
    dates = page(var_dir, f, f"{first.volume}/date.html")
    assert dates.count(f'HREF="{second.article:06d}.html"') == 2
    assert f'HREF="{first.article:06d}.html"' not in dates


# --- determinism, facts, CLI, benchmark tree -------------------------------------------------------


def test_same_seed_same_bytes(tmp_path):
    digests, jsons = [], []
    for run in ("a", "b"):
        root = tmp_path / run
        generate_tree(root, members=3)
        facts = generate_archives(root, messages=MIN_MESSAGES)
        jsons.append(facts_to_json(facts))
        digests.append(tree_digest(root / "archives"))
    # The smallest size still holds every case, the purged spam included.
    rebuilt = facts[RENUMBERED_LIST]
    mbox = (root / rebuilt.mbox_path).read_bytes()
    assert len(rebuilt.removed_before_rebuild) == 2 and rebuilt.extra_articles
    assert not any(r.message_id.encode() in mbox for r in rebuilt.removed_before_rebuild)
    assert b"Cheap watches" not in mbox
    assert digests[0] == digests[1] and jsons[0] == jsons[1]
    other = tmp_path / "other"
    generate_tree(other, members=3)
    generate_archives(other, messages=MIN_MESSAGES, seed=2)
    assert tree_digest(other / "archives") != digests[0]


def test_facts_round_trip_through_json(facts):
    assert facts_from_json(facts_to_json(facts)) == facts


def test_too_few_messages_are_refused(var_dir):
    with pytest.raises(ValueError):
        generate_archives(var_dir, messages=MIN_MESSAGES - 1, lists=["roster-cases"])


def test_cli_writes_archives_and_facts(tmp_path, capsys):
    generate_tree(tmp_path, members=3)
    facts_file = tmp_path / "facts.json"
    argv = [str(tmp_path), "--messages", str(MIN_MESSAGES), "-l", "kultur-de", "--facts", str(facts_file)]
    assert main(argv) == 0
    assert "kultur-de: 12 messages" in capsys.readouterr().out
    assert list(facts_from_json(facts_file.read_text(encoding="utf-8"))) == ["kultur-de"]
    assert main(["--article-tree", str(tmp_path / "tree"), "--articles", "30"]) == 0
    assert "30 articles" in capsys.readouterr().out


def test_article_tree_for_benchmarks(tmp_path):
    manifest = tmp_path / "manifest.tsv"
    report = generate_article_tree(tmp_path / "tree", 500, manifest=manifest)
    pages = [p for p in (tmp_path / "tree").rglob("*.html") if ARTICLE_RE.match(p.name)]
    assert report.articles == len(pages) == 500
    rows = [line.split("\t") for line in manifest.read_text().splitlines()]
    assert len(rows) == 500
    for name, url, message_id in rows[::25]:
        html = (tmp_path / "tree" / "archives" / "private" / name / url).read_text("ascii")
        assert unquote_to_bytes(MADE_RE.search(html).group(2)).decode() == message_id
        assert VOLUME_RE[1].match(url.split("/")[0]) or VOLUME_RE[0].match(url.split("/")[0])
    assert report.rate > 0
    print(f"article tree: {report.articles} pages in {report.seconds:.2f} s, {report.rate:.0f} pages/s")
