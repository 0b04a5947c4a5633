"""Pipermail volume names, article pages and the archive walk, on pages shaped like Mailman 2.1's."""

from __future__ import annotations

import subprocess
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.archives.msgid import normalise
from migrate.archives.pipermail import (
    BODY_ERE,
    DAILY,
    LINK_ERE,
    MONTHLY,
    QUARTERLY,
    WEEKLY,
    YEARLY,
    message_id_in,
    parse_volume_name,
    read_article,
    volume_name,
    walk_archive,
)


def py2_quote(raw: bytes) -> str:
    """Python 2's urllib.quote, which HyperArch's url_quote is: only letters, digits, `_.-/` stay."""
    return "".join(chr(b) if chr(b).isalnum() and b < 128 or chr(b) in "_.-/" else f"%{b:02X}" for b in raw)


def article_page(message_id: bytes | None, *, subject: str = "Re: [Team] Meeting", author: str = "Alice Example",
                 charset: str = "us-ascii", body: str = "Hello.", padding: int = 0) -> bytes:
    """An article page as Mailman 2.1.39's templates/en/article.html renders it."""
    reply = f"&In-Reply-To={py2_quote(message_id)}" if message_id is not None else ""
    subject_url = py2_quote(("Re: " + subject).encode(charset, "replace"))
    page = f"""<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">
<HTML>
 <HEAD>
   <TITLE> {subject}
   </TITLE>
   <LINK REL="Index" HREF="index.html" >
   <LINK REL="made" HREF="mailto:team%40lists.example.org?Subject={subject_url}{reply}">
   <META NAME="robots" CONTENT="index,nofollow">
   <style type="text/css">
       pre {{
           white-space: pre-wrap;       /* css-2.1, curent FF, Opera, Safari */
           }}
   </style>
   <META http-equiv="Content-Type" content="text/html; charset={charset}">
   <!-- {"x" * padding} -->
   <LINK REL="Previous"  HREF="000041.html">
 </HEAD>
 <BODY BGCOLOR="#ffffff">
   <H1>{subject}</H1>
    <B>{author}</B>
    <A HREF="mailto:team%40lists.example.org?Subject={subject_url}{reply}"
       TITLE="{subject}">alice at example.org
       </A><BR>
    <I>Mon Feb  8 10:00:00 CET 2016</I>
    <P><UL>
        <LI>Previous message (by thread): <A HREF="000041.html">[Team] Meeting
</A></li>
         <LI> <B>Messages sorted by:</B>
              <a href="date.html#42">[ date ]</a>
         </LI>
       </UL>
    <HR>
<!--beginarticle-->
<PRE>{body}
</PRE>

<!--endarticle-->
    <HR>
</body></html>
"""
    return page.encode(charset, "xmlcharrefreplace")


# --- volume names -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("day", "frequency", "expected"),
    [
        (date(2019, 2, 14), YEARLY, "2019"),
        (date(2019, 2, 14), MONTHLY, "2019-February"),
        (date(2019, 2, 14), QUARTERLY, "2019q1"),
        (date(2019, 12, 31), QUARTERLY, "2019q4"),
        (date(2016, 2, 11), WEEKLY, "Week-of-Mon-20160208"),   # a Thursday
        (date(2016, 2, 8), WEEKLY, "Week-of-Mon-20160208"),    # the Monday itself
        (date(2016, 2, 14), WEEKLY, "Week-of-Mon-20160208"),   # Sunday ends the week
        (date(2016, 1, 1), WEEKLY, "Week-of-Mon-20151228"),    # across the year
        (date(2016, 2, 11), DAILY, "20160211"),
    ],
)
def test_volume_name(day, frequency, expected):
    assert volume_name(day, frequency) == expected


def test_volume_name_rejects_unknown_frequency():
    with pytest.raises(ValueError):
        volume_name(date(2019, 1, 1), 5)


def first_day(day: date, frequency: int) -> date:
    if frequency == YEARLY:
        return date(day.year, 1, 1)
    if frequency == MONTHLY:
        return date(day.year, day.month, 1)
    if frequency == QUARTERLY:
        return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    if frequency == WEEKLY:
        return day - timedelta(days=day.weekday())
    return day


@given(st.dates(min_value=date(1990, 1, 8), max_value=date(2099, 12, 31)),
       st.sampled_from([YEARLY, MONTHLY, QUARTERLY, WEEKLY, DAILY]))
def test_parse_volume_name_round_trip(day, frequency):
    assert parse_volume_name(volume_name(day, frequency)) == (frequency, first_day(day, frequency))


def test_parse_volume_name_accepts_any_month_case():
    # HyperArch compares month names lowercased.
    assert parse_volume_name("2019-february") == (MONTHLY, date(2019, 2, 1))


@pytest.mark.parametrize("name", ["attachments", "database", "2019-Febtober", "20191332", "2019q5",
                                  "Week-of-Mon-20190230", "2019-February.txt.gz", "index.html", "19"])
def test_parse_volume_name_rejects(name):
    with pytest.raises(ValueError):
        parse_volume_name(name)


# --- article pages ------------------------------------------------------------------------------

def test_read_article():
    article = read_article(article_page(b"<CAF1234.5678@mail.example.org>"))
    assert article.message_id == "<CAF1234.5678@mail.example.org>"
    assert article.subject == "Re: [Team] Meeting"
    assert article.author == "Alice Example"
    assert article.date == "Mon Feb 8 10:00:00 CET 2016"  # white space collapsed, as a browser shows it
    assert article.has_body


def test_read_article_keeps_the_raw_header_value():
    raw = b"<folded.id@example.org>\n\t(added by postmaster@example.org)"
    article = read_article(article_page(raw))
    assert article.message_id == raw.decode()
    assert normalise(article.message_id) == "<folded.id@example.org>"


def test_read_article_latin1_page():
    page = article_page(b"<l1@example.org>", subject="Grüße aus Köln", author="Jürgen", charset="iso-8859-1")
    assert b"\xfc" in page
    article = read_article(page)
    assert (article.subject, article.author, article.charset) == ("Grüße aus Köln", "Jürgen", "iso-8859-1")


def test_read_article_wrong_declared_charset_falls_back():
    page = article_page(b"<u@x>", subject="Grüße", charset="utf-8").replace(b"charset=utf-8", b"charset=us-ascii")
    assert read_article(page).subject == "Grüße"
    page = "<H1>Grüße</H1>".encode("latin-1") + b"\xff\xfe"
    assert read_article(page).subject == "Grüße"


def test_read_article_8bit_message_id():
    article = read_article(article_page(b"<caf\xe9@example.org>", charset="iso-8859-1"))
    assert normalise(article.message_id) == "<caf@example.org>"


def test_read_article_without_link_or_markers():
    # Pages older than Mailman 2.1.10 have no In-Reply-To in their mailto links.
    article = read_article(article_page(None).replace(b"<!--endarticle-->", b""))
    assert article.message_id is None
    assert not article.has_body
    empty = read_article(b"")
    assert empty == type(empty)(None, None, None, None, False, "utf-8")


def test_read_article_escaped_ampersand():
    page = b'<link href="mailto:team%40x?Subject=Re%3A%20x&amp;In-Reply-To=%3Ca%40b%3E" rel="made"/>'
    assert read_article(page).message_id == "<a@b>"


@given(st.binary(min_size=1, max_size=60))
def test_message_id_survives_quoting(raw):
    value = message_id_in(article_page(raw))
    assert value == raw.decode("utf-8", "replace")


# Pieces of the markup around the link, and of what a poster can write, in any order.
_LINE_PIECES = ["href", "HREF", "=", " ", "\t", '"', "'", "mailto:", "MailTo:", "t%40x", "%3Ca%40b%3E", "?",
                "&", "amp;", "In-Reply-To=", "in-reply-to=", "<", ">", "<!--beginarticle-->",
                "<!--BEGINARTICLE-->", "x", "\u00e9", "\r", "\x0b"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_LINE_PIECES), max_size=14).map("".join), min_size=1, max_size=40))
def test_the_legacy_hosts_grep_patterns_pick_the_lines_the_python_reader_reads(tmp_path_factory, lines):
    """The redirect listing runs grep with LINK_ERE and BODY_ERE and reads the first matching line
    with message_id_in: grep must match exactly the lines where the reader finds a link or the body."""
    path = tmp_path_factory.mktemp("lines") / "page.html"
    path.write_bytes("\n".join(lines).encode() + b"\n")
    result = subprocess.run(["grep", "-n", "-i", "-E", "-a", "-e", LINK_ERE, "-e", BODY_ERE, str(path)],
                            capture_output=True, env={"LC_ALL": "C"}, check=False)
    by_grep = {int(line.split(b":", 1)[0]) - 1 for line in result.stdout.split(b"\n") if line}
    by_python = {i for i, line in enumerate(lines)
                 if message_id_in(line.encode()) is not None or "<!--beginarticle-->" in line.lower()}
    assert by_grep == by_python


# --- walk ---------------------------------------------------------------------------------------

@pytest.fixture
def list_dir(tmp_path: Path) -> Path:
    root = tmp_path / "team"
    pages = {
        "2019-February/000000.html": article_page(b"<a0@x>"),
        "2019-February/000001.html": article_page(b"<a1@x>", padding=9000),
        "2019-February/000010.html": article_page(None),
        "2019-March/000002.html": article_page(b"<a2@x>"),
        "2018-December/000003.html": article_page(b"<a3@x>"),
        "2019-February/thread.html": b"<html>index</html>",
        "2019-February/index.html": b"<html>index</html>",
        "attachments/20190201/0a1b2c/attachment.html": b"<html>attachment</html>",
        "database/2019-February-date": b"",
        "index.html": b"<html>toc</html>",
        "2019-February.txt.gz": b"",
    }
    for relative, content in pages.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def test_walk_archive(list_dir):
    refs = list(walk_archive(list_dir))
    assert [(r.volume, r.number, r.relative_url, r.message_id) for r in refs] == [
        ("2018-December", 3, "2018-December/000003.html", "<a3@x>"),
        ("2019-February", 0, "2019-February/000000.html", "<a0@x>"),
        ("2019-February", 1, "2019-February/000001.html", "<a1@x>"),
        ("2019-February", 10, "2019-February/000010.html", None),
        ("2019-March", 2, "2019-March/000002.html", "<a2@x>"),
    ]
    assert refs[0].path == list_dir / "2018-December" / "000003.html"


@pytest.mark.parametrize("cut", range(4070, 4100))
def test_walk_finds_an_id_cut_by_the_first_read(tmp_path, cut):
    link = b'<LINK REL="made" HREF="mailto:t%40x?Subject=x&In-Reply-To=%3Clong.id.value%40example.org%3E">'
    page = b"x" * (cut - len(link) // 2) + link + b"\n" + article_page(b"<other@x>")
    volume = tmp_path / "team" / "2019"
    volume.mkdir(parents=True)
    (volume / "000000.html").write_bytes(page)
    (ref,) = walk_archive(tmp_path / "team")
    assert ref.message_id == "<long.id.value@example.org>"


def test_walk_value_at_end_of_file(tmp_path):
    volume = tmp_path / "team" / "20190201"
    volume.mkdir(parents=True)
    (volume / "000000.html").write_bytes(b'<a href="mailto:t?In-Reply-To=%3Cend%40x%3E')
    (ref,) = walk_archive(tmp_path / "team")
    assert ref.message_id == "<end@x>"


# --- against the lab's Mailman 2 archive generator ----------------------------------------------

@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Mailman 2 trees written by the lab's generator, with its ground truth per list."""
    from migrate.lab.mailman2_archives import MIN_MESSAGES, generate_archives
    from migrate.lab.mailman2_seed import generate_tree

    var_dir = tmp_path_factory.mktemp("mailman2")
    generate_tree(var_dir, members=3)
    return var_dir, generate_archives(var_dir, messages=MIN_MESSAGES)


def test_walk_agrees_with_generated_archives(generated):
    var_dir, facts = generated
    frequencies = set()
    for name, fact in facts.items():
        if not fact.archived:
            continue
        frequencies.add(fact.volume_frequency)
        found = {ref.relative_url: ref.message_id for ref in walk_archive(var_dir / fact.html_dir)}
        expected = {m.article_url: m.article_message_id for m in fact.messages}
        expected |= {a.article_url: a.article_message_id for a in fact.extra_articles}
        assert found == expected, name
        for message in fact.messages:
            filed = datetime.fromisoformat(message.date.replace("Z", "+00:00")).date()
            assert volume_name(filed, fact.volume_frequency) == message.volume
            assert parse_volume_name(message.volume)[0] == fact.volume_frequency
            page = (var_dir / fact.html_dir / message.article_url).read_bytes()
            article = read_article(page)
            assert (article.subject, article.has_body) == (message.subject, True), message.article_url
    assert frequencies == {YEARLY, MONTHLY, QUARTERLY, WEEKLY, DAILY}


def test_walk_follows_no_symbolic_link_and_reports_each(tmp_path):
    """A volume or article that is a symbolic link may point at another list's pages or any file:
    neither the walk nor the legacy host's listing follows it, and the walk says what it left."""
    from migrate.archives.redirect_steps import parse_pipermail_listing, pipermail_listing_argv
    from migrate.core.transport import LocalTransport

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "2019-February").mkdir(parents=True)
    (elsewhere / "2019-February" / "000001.html").write_bytes(article_page(b"<stolen@x>"))
    (elsewhere / "secret.html").write_bytes(article_page(b"<secret@x>"))
    (tmp_path / "lists" / "team").mkdir(parents=True)
    root = tmp_path / "archives" / "private" / "team"
    (root / "2019-January").mkdir(parents=True)
    (root / "2019-January" / "000000.html").write_bytes(article_page(b"<own@x>"))
    (root / "2019-January" / "000002.html").symlink_to(elsewhere / "secret.html")
    (root / "2019-February").symlink_to(elsewhere / "2019-February")
    (root / "2019-March").symlink_to(root / "2019-January")

    skipped: list[str] = []
    refs = list(walk_archive(root, skipped=skipped))
    assert [(r.relative_url, r.message_id) for r in refs] == [("2019-January/000000.html", "<own@x>")]
    assert len(skipped) == 3
    for name, target in (("2019-January/000002.html", elsewhere / "secret.html"),
                         ("2019-February", elsewhere / "2019-February"), ("2019-March", root / "2019-January")):
        assert any(name in line and str(target) in line for line in skipped), skipped

    listing = LocalTransport().run(pipermail_listing_argv(str(tmp_path), ["team"])).check().stdout
    remote = parse_pipermail_listing(listing)["team"].articles
    assert [(r.relative_url, r.message_id) for r in remote] == [("2019-January/000000.html", "<own@x>")]


@pytest.mark.parametrize("name", ["\u0662\u0660\u0661\u0669", "\uff12\uff10\uff11\uff19-February",
                                  "\u06620\u06619q1", "Week-of-Mon-2016020\u0668", "2016021\u0661"])
def test_volume_names_take_ascii_digits_only(name):
    # int() reads Arabic-Indic and fullwidth digits, so `\d` would turn these into real volumes.
    with pytest.raises(ValueError):
        parse_volume_name(name)


def test_walk_and_listing_skip_pages_and_volumes_numbered_in_other_digits(tmp_path):
    from migrate.archives.redirect_steps import parse_pipermail_listing, pipermail_listing_argv
    from migrate.core.transport import LocalTransport

    (tmp_path / "lists" / "team").mkdir(parents=True)
    root = tmp_path / "archives" / "private" / "team"
    pages = {"2019/000000.html": b"<a@x>", "2019/\u0660\u0660\u0660\u0660\u0660\u0661.html": b"<b@x>",
             "\u0662\u0660\u0661\u0669/000002.html": b"<c@x>"}
    for relative, message_id in pages.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(article_page(message_id))
    assert [r.relative_url for r in walk_archive(root)] == ["2019/000000.html"]
    listing = LocalTransport().run(pipermail_listing_argv(str(tmp_path), ["team"])).check().stdout
    assert [r.relative_url for r in parse_pipermail_listing(listing)["team"].articles] == ["2019/000000.html"]
