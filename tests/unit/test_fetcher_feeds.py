"""Feed configuration: the TOML file format, its errors, and OPML import/export."""

from __future__ import annotations

from pathlib import Path

import pytest
from newsmon.fetcher.feeds import (
    FeedConfig,
    FeedsFileError,
    derive_name,
    dump_feeds,
    feeds_from_opml,
    feeds_to_opml,
    load_feeds,
    parse_feeds,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "feeds"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_full_entry(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[[feed]]
name = "yonhap"
url = "https://en.yna.co.kr/RSS/news.xml"
interval_min = 120
interval_max = 1800.5
full_text = false
lang = "en-US"
enabled = false
""",
    )
    assert load_feeds(path) == [
        FeedConfig(
            name="yonhap",
            url="https://en.yna.co.kr/RSS/news.xml",
            interval_min_s=120.0,
            interval_max_s=1800.5,
            full_text=False,
            lang="en",
            enabled=False,
        )
    ]


def test_load_minimal_entry_derives_name_and_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[feed]]\nurl = "https://www.newindianexpress.com/stories.rss"\n')
    (feed,) = load_feeds(path)
    assert feed == FeedConfig(
        name="newindianexpress",
        url="https://www.newindianexpress.com/stories.rss",
        interval_min_s=None,
        interval_max_s=None,
        full_text=None,
        lang=None,
        enabled=True,
    )


def test_interval_sets_the_minimum(tmp_path: Path) -> None:
    (feed,) = load_feeds(_write(tmp_path, '[[feed]]\nurl = "https://e.com/f"\ninterval = 30\n'))
    assert feed.interval_min_s == 30.0
    assert feed.interval_max_s is None


def test_empty_file_has_no_feeds(tmp_path: Path) -> None:
    assert load_feeds(_write(tmp_path, "# nothing yet\n")) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[feed]]\nname = "x"\n', "feed #1: missing url"),
        (
            '[[feed]]\nurl = "ftp://example.org/feed"\n',
            "must start with http://, https:// or file://",
        ),
        ('[[feed]]\nurl = "https://"\n', "has no host"),
        ('[[feed]]\nurl = "https://e.com/f"\nintervall = 3\n', "unknown key(s) intervall"),
        ('[[feed]]\nurl = "https://e.com/f"\ninterval = 0\n', "positive number of seconds"),
        ('[[feed]]\nurl = "https://e.com/f"\ninterval = true\n', "must be a number of seconds"),
        ('[[feed]]\nurl = "https://e.com/f"\ninterval = "5m"\n', "must be a number of seconds"),
        (
            '[[feed]]\nurl = "https://e.com/f"\ninterval_min = 60\ninterval_max = 30\n',
            "is above interval_max",
        ),
        (
            '[[feed]]\nurl = "https://e.com/f"\ninterval = 60\ninterval_min = 60\n',
            "either interval or interval_min",
        ),
        ('[[feed]]\nurl = "https://e.com/f"\nfull_text = "yes"\n', "full_text must be a bool"),
        ('[[feed]]\nurl = "https://e.com/f"\nlang = "english"\n', "not a language code"),
        ('[[feed]]\nurl = "https://e.com/f"\nname = "Has Spaces"\n', "is not a feed id"),
        ('[[feeds]]\nurl = "https://e.com/f"\n', "unknown top-level key(s) feeds"),
        ('feed = "x"\n', "must be an array of tables"),
        ("[[feed]\n", "not valid TOML"),
    ],
)
def test_errors_name_the_file_and_entry(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(FeedsFileError) as info:
        load_feeds(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_duplicate_name_is_an_error(tmp_path: Path) -> None:
    body = '[[feed]]\nname = "a"\nurl = "https://e.com/1"\n[[feed]]\nname = "a"\nurl = "https://e.com/2"\n'
    with pytest.raises(FeedsFileError, match=r"feed #2 \(https://e.com/2\): duplicate name 'a'"):
        load_feeds(_write(tmp_path, body))


def test_duplicate_derived_name_asks_for_explicit_names(tmp_path: Path) -> None:
    body = (
        '[[feed]]\nurl = "https://www.theguardian.com/world/rss"\n'
        '[[feed]]\nurl = "https://www.theguardian.com/world/north-korea/rss"\n'
    )
    with pytest.raises(FeedsFileError, match=r"derived from the host.*unique name"):
        load_feeds(_write(tmp_path, body))


def test_duplicate_url_is_an_error(tmp_path: Path) -> None:
    body = '[[feed]]\nname = "a"\nurl = "https://e.com/1"\n[[feed]]\nname = "b"\nurl = "https://e.com/1"\n'
    with pytest.raises(FeedsFileError, match="duplicate url"):
        load_feeds(_write(tmp_path, body))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(FeedsFileError, match="cannot read feeds file"):
        load_feeds(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://en.yna.co.kr/RSS/news.xml", "yna"),
        ("https://www.newindianexpress.com/stories.rss", "newindianexpress"),
        ("https://feeds.bbci.co.uk/news/world/rss.xml", "bbci"),
        ("https://tass.com/rss/v2.xml", "tass"),
        ("https://www.38north.org/feed/", "38north"),
        ("http://127.0.0.1:8080/e2e.xml", "127-0-0-1"),
        ("http://localhost/feed", "localhost"),
    ],
)
def test_derive_name(url: str, name: str) -> None:
    assert derive_name(url) == name


def test_feedconfig_validates_on_construction() -> None:
    with pytest.raises(ValueError, match="must start with http"):
        FeedConfig(name="x", url="javascript:alert(1)")
    with pytest.raises(ValueError, match="lower-case ISO 639-1"):
        FeedConfig(name="x", url="https://e.com/", lang="en-US")


def test_dump_round_trips() -> None:
    feeds = [
        FeedConfig(name="a", url="https://e.com/a"),
        FeedConfig(
            name="b-2",
            url='https://e.com/b?q="quoted"&x=\\',
            interval_min_s=90,
            interval_max_s=1800.5,
            full_text=True,
            lang="ko",
            enabled=False,
        ),
    ]
    text = dump_feeds(feeds)
    assert text.startswith("[[feed]]\n")
    assert parse_feeds(text) == feeds


def test_shipped_default_list_loads() -> None:
    feeds = load_feeds(REPO / "deploy" / "feeds.toml")
    assert feeds[0].url == "https://www.newindianexpress.com/stories.rss"
    assert len(feeds) >= 11
    hosts = " ".join(f.url for f in feeds)
    for outlet in ("yna.co.kr", "koreaherald", "koreatimes", "nknews", "kyivindependent",
                   "theguardian", "bbci", "themoscowtimes", "tass"):  # fmt: skip
        assert outlet in hosts, outlet
    # Reuters and AP have no first-party RSS: none is invented.
    assert "reuters" not in hosts
    assert "apnews" not in hosts
    assert all(f.url.startswith("https://") for f in feeds)


# -- OPML ------------------------------------------------------------------------------------


def test_opml_import() -> None:
    feeds = feeds_from_opml((FIXTURES / "subscriptions.opml").read_bytes())
    assert [(f.name, f.url, f.lang) for f in feeds] == [
        ("yonhap-news", "https://en.yna.co.kr/RSS/news.xml", None),
        ("nk-news", "https://www.nknews.org/feed/", "en"),
        ("bbc", "https://feeds.bbci.co.uk/news/world/rss.xml", None),
        ("bbc-2", "https://feeds.bbci.co.uk/news/world/asia/rss.xml", None),
        ("no-text-attribute", "https://tass.com/rss/v2.xml", None),
    ]


def test_opml_round_trip() -> None:
    feeds = [
        FeedConfig(name="yonhap", url="https://en.yna.co.kr/RSS/news.xml", lang="en"),
        FeedConfig(name="tass", url="https://tass.com/rss/v2.xml?a=1&b=2"),
    ]
    text = feeds_to_opml(feeds)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    assert feeds_from_opml(text.encode("utf-8")) == feeds


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaa">]><opml><body/></opml>',
        b'<!DOCTYPE opml SYSTEM "http://evil.example/x.dtd"><opml><body/></opml>',
        (FIXTURES / "billion-laughs.xml").read_bytes(),
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE o [<!ENTITY a "b">]><opml/>'.encode(
            "utf-16"
        ),
    ],
)
def test_opml_refuses_doctype_and_entities(document: bytes) -> None:
    with pytest.raises(FeedsFileError, match="DOCTYPE or ENTITY"):
        feeds_from_opml(document)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"<opml><body><outline", "not well-formed"),
        (b"<rss/>", "expected <opml>"),
        (b'<opml><body><outline text="x" xmlUrl="ftp://e.com/f"/></body></opml>', "outline #1"),
    ],
)
def test_opml_errors(document: bytes, message: str) -> None:
    with pytest.raises(FeedsFileError, match=message):
        feeds_from_opml(document)
