"""The checks on names that become URLs, paths and command arguments, and the REST path builder."""

from __future__ import annotations

import string
from urllib.parse import unquote, urljoin

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrate.core import names
from migrate.mailman.mm3 import Mailman3Error, rest_path

DOMAIN_CHARS = set(string.ascii_letters + string.digits + ".-")
LIST_NAME_CHARS = set(string.ascii_lowercase + string.digits + "-+_.=")


@given(st.text(max_size=80))
def test_an_accepted_domain_is_plain_ascii_labels(value):
    try:
        names.domain(value)
    except names.InvalidName as exc:
        assert repr(value) in str(exc)
        return
    assert set(value) <= DOMAIN_CHARS and ".." not in value and not value.startswith(".")
    assert not value.endswith((".", "\n")) and len(value) <= 253


@given(st.text(alphabet=st.sampled_from(sorted(LIST_NAME_CHARS) + ["\n", "/", " ", "A", "\u0663"]), max_size=70))
def test_an_accepted_list_name_is_a_dot_string_of_mailman_2_characters(value):
    if not names.is_list_name(value):
        return
    assert set(value) <= LIST_NAME_CHARS and 0 < len(value) <= 64
    assert value[0].isalnum() and ".." not in value and not value.endswith(".")


@pytest.mark.parametrize("value", ["team\n", "team\r\n", "\u0663team", "te\u0430m", "team\x00", "\u212ateam"])
def test_the_holes_of_regular_expressions_are_closed(value):
    # `$` takes a trailing newline, `\d` other scripts' digits, re.I the Kelvin sign for k.
    assert not names.is_list_name(value)
    with pytest.raises(names.InvalidName):
        names.domain(value.replace("team", "lists.example.org"))


def test_a_list_address_is_a_list_name_at_a_domain():
    assert names.list_address("team@lists.example.org") == "team@lists.example.org"
    for bad in ("team", "team@", "@lists.example.org", "team@x/../victim@real.org", "Team@lists.example.org",
                "team@lists.example.org\n"):
        with pytest.raises(names.InvalidName) as excinfo:
            names.list_address(bad)
        assert repr(bad) in str(excinfo.value)


@given(st.lists(st.text(min_size=1).filter(lambda s: s not in (".", "..")), min_size=1, max_size=4))
def test_rest_path_keeps_each_segment_one_segment(segments):
    path = rest_path(*segments)
    assert [unquote(part) for part in path.split("/")] == segments
    base = "http://127.0.0.1:8001/3.1/"
    # The client joins the path to its base URL: nothing may climb out of or past the segments.
    assert urljoin(base, path).startswith(base) and urljoin(base, path).count("/") == base.count("/") + path.count("/")


@pytest.mark.parametrize("segment", [".", "..", ""])
def test_rest_path_refuses_segments_url_joining_would_resolve(segment):
    with pytest.raises(Mailman3Error):
        rest_path("lists", segment)


def test_rest_path_of_the_hostile_address_stays_below_lists():
    assert rest_path("lists", "evil@x/../victim@real.org") == "lists/evil@x%2F..%2Fvictim@real.org"
