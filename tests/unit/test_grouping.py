"""Story grouping: MinHash fingerprints, the story book, state records."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from newsmon.alerter.grouping import (
    NUM_PERM,
    SIGNATURE_VERSION,
    Pending,
    StoryBook,
    StoryState,
    fingerprint,
    fingerprint_v1,
    jaccard_estimate,
    normalize,
    shingles,
    story_from_json,
    story_to_json,
)
from newsmon.shared.messages import AlertSource, Article, Classified

T0 = datetime(2024, 11, 5, 8, 0, tzinfo=UTC)

LEDE = (
    "North Korean troops have suffered heavy casualties in Russia's Kursk region, South Korea's "
    "spy agency told lawmakers on Wednesday, adding that Pyongyang was preparing to send more "
    "soldiers and artillery to support Moscow's offensive."
)


def item(
    article_id: str,
    title: str = "North Korean troops suffer heavy losses in Kursk, Seoul says",
    summary: str = LEDE,
    *,
    source: str = "Yonhap",
    at: datetime = T0,
    categories: tuple[str, ...] = ("troops",),
    score: float = 0.9,
) -> Classified:
    return Classified(
        article=Article(
            id=article_id,
            feed=source.lower(),
            source=source,
            url=f"https://{source.lower()}.example/{article_id}",
            title=title,
            summary=summary,
            fetched=at,
        ),
        match=True,
        score=score,
        categories=categories,
        classifier_version="v1",
        classified=at,
    )


def book(hours: float = 48) -> StoryBook:
    return StoryBook(window=timedelta(hours=hours), threshold=0.5)


def add(b: StoryBook, c: Classified):  # type: ignore[no-untyped-def]
    a = b.assign(c, story_id_for=c.article.id, alert_id_for="alert-" + c.article.id)
    if not a.duplicate:
        b.apply([a.story])
    return a


def test_normalize_folds_case_accents_punctuation_and_wire_decorations() -> None:
    assert normalize("UPDATE 2- Kim's Troops", "Déjà vu!") == ["kim", "s", "troops", "deja", "vu"]
    assert normalize("(LEAD) N. Korea", "") == ["n", "korea"]


def test_identical_texts_have_identical_signatures() -> None:
    assert fingerprint("a b c", "d e") == fingerprint("A, b. C!", "d   e")
    assert len(fingerprint("x", "y")) == NUM_PERM


def test_estimate_tracks_true_jaccard() -> None:
    words_a = [f"w{i}" for i in range(60)]
    words_b = words_a[:45] + [f"v{i}" for i in range(15)]
    sa, sb = shingles(words_a), shingles(words_b)
    true = len(sa & sb) / len(sa | sb)
    est = jaccard_estimate(fingerprint(" ".join(words_a), ""), fingerprint(" ".join(words_b), ""))
    assert abs(est - true) < 0.15  # 128 permutations: standard error about 0.044


def test_empty_texts_never_match() -> None:
    assert jaccard_estimate(fingerprint("", ""), fingerprint("", "")) == 0.0


def test_three_copies_make_one_story_with_growing_revisions() -> None:
    b = book()
    first = add(b, item("a1"))
    second = add(
        b,
        item(
            "a2",
            "UPDATE 1-North Korean troops suffer heavy losses in Kursk, Seoul says",
            source="Reuters",
            at=T0 + timedelta(hours=2),
            categories=("casualties",),
        ),
    )
    third = add(
        b,
        item(
            "a3",
            "North Korean troops suffer heavy losses in Kursk - Seoul",
            LEDE + " The ministry declined to comment.",
            source="Korea Herald",
            at=T0 + timedelta(hours=5),
            score=0.95,
        ),
    )
    assert first.new_story
    assert not second.new_story
    assert not third.new_story
    story = third.story
    assert story.story_id == "a1"
    assert story.alert_id == "alert-a1"
    assert story.revision == 3
    assert [s.source for s in story.sources] == ["Yonhap", "Reuters", "Korea Herald"]
    assert story.categories == ("troops", "casualties")
    assert story.score == 0.95


def test_a_copy_seen_again_is_a_duplicate_not_an_update() -> None:
    b = book()
    add(b, item("a1"))
    again = add(b, item("a1", source="Yonhap"))
    assert again.duplicate
    assert again.story.revision == 1


def test_different_stories_stay_apart() -> None:
    b = book()
    add(b, item("a1"))
    other = add(
        b,
        item(
            "b1",
            "Putin and Kim sign mutual defence treaty in Pyongyang",
            "The two leaders signed a comprehensive strategic partnership pledging mutual "
            "military assistance if either is attacked, state media reported on Thursday.",
        ),
    )
    assert other.new_story
    assert len(b) == 2


def test_a_copy_outside_the_window_starts_a_new_story() -> None:
    b = book(hours=48)
    add(b, item("a1"))
    late = add(b, item("a2", at=T0 + timedelta(hours=49)))
    assert late.new_story
    assert "a1" not in b.stories, "stories older than the window are forgotten"


def test_overlay_groups_copies_within_one_uncommitted_batch() -> None:
    b = book()
    overlay = Pending()
    for n in range(3):
        c = item(f"a{n}", source=f"Outlet {n}")
        a = b.assign(c, story_id_for=c.article.id, alert_id_for="x", overlay=overlay)
        overlay.add(a.story)
    assert len(overlay) == 1
    assert next(iter(overlay.stories.values())).revision == 3
    assert len(b) == 0, "assign never changes the book"


def test_state_record_round_trip() -> None:
    b = book()
    story = add(b, item("a1")).story
    assert story_from_json(story_to_json(story)) == story


@pytest.mark.parametrize("payload", [b"{}", b'{"schema": "other"}', b"[]", b"not json"])
def test_bad_state_records_are_refused(payload: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        story_from_json(payload)


@given(st.text(max_size=200), st.text(max_size=400))
def test_fingerprint_is_total_and_self_similar(title: str, summary: str) -> None:
    sig = fingerprint(title, summary)
    assert len(sig) == NUM_PERM
    assert all(0 <= v < 2**32 for v in sig)
    if normalize(title, summary):
        assert jaccard_estimate(sig, sig) == 1.0


def _as_legacy_record(story: StoryState) -> bytes:
    """The record as the alerter wrote it before signature version 2 (no version field)."""
    doc = json.loads(story_to_json(story))
    del doc["signature_version"]
    return json.dumps(doc).encode()


def test_stories_stored_before_signature_version_2_keep_grouping_their_copies() -> None:
    first = item("a1")
    legacy = StoryState(
        story_id="a1",
        alert_id="alert-a1",
        revision=1,
        first_fetched=T0,
        signature=fingerprint_v1(first.article.title, first.article.summary),
        sources=(AlertSource(article_id="a1", source="Yonhap", url="u", feed="yonhap"),),
        categories=("troops",),
        score=0.9,
        signature_version=1,
    )
    restored = story_from_json(_as_legacy_record(legacy))
    assert restored == legacy
    b = book()
    b.apply([restored])
    copy = add(b, item("a2", source="Reuters", at=T0 + timedelta(hours=1)))
    assert not copy.new_story
    assert copy.story.story_id == "a1"
    assert copy.story.revision == 2
    assert copy.story.signature_version == 1, "a story keeps its first copy's signature"
    assert add(b, item("a1")).duplicate
    fresh = add(b, item("b1", "Putin and Kim sign a treaty", "The leaders met in Pyongyang."))
    assert fresh.new_story
    assert fresh.story.signature_version == SIGNATURE_VERSION
    assert story_from_json(story_to_json(fresh.story)) == fresh.story


def test_unknown_signature_versions_are_refused() -> None:
    doc = json.loads(story_to_json(add(book(), item("a1")).story))
    doc["signature_version"] = 99
    with pytest.raises(ValueError, match="signature_version"):
        story_from_json(json.dumps(doc).encode())


@given(st.text(max_size=300), st.text(max_size=300))
def test_accent_stripping_drops_exactly_the_combining_marks(title: str, summary: str) -> None:
    # The model: the per-character filter normalize used before its translate table.
    text = f"{title.casefold()} {summary.casefold()}"
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words = re.findall(r"\w+", unicodedata.normalize("NFC", stripped))
    assert set(normalize(title, summary)) <= set(words)
    if not re.match(r"\s*(\(|update|exclusive)", title.casefold()):
        title_words = len(re.findall(r"\w+", title.casefold()))
        assert normalize(title, summary) == words[: title_words + 60]


def _fingerprint_one_by_one(title: str, summary: str) -> tuple[int, ...]:
    """The model: version 2 as it was computed per article before batches (numpy per text)."""
    import zlib

    import numpy as np
    from newsmon.alerter import grouping

    words = normalize(title, summary)
    if not words:
        return (2**32 - 1,) * NUM_PERM
    hashes = np.array([zlib.crc32(w.encode()) for w in words], dtype=np.uint64)
    pairs = (((hashes[:-1] << np.uint64(32)) | hashes[1:]) * grouping._PAIR_MUL) >> np.uint64(32)
    values = grouping._A * np.concatenate((hashes, pairs)) + grouping._B
    return tuple((values.min(axis=1) >> np.uint64(32)).tolist())


@given(st.lists(st.tuples(st.text(max_size=80), st.text(max_size=200)), max_size=12))
def test_batch_fingerprints_equal_one_by_one(texts: list[tuple[str, str]]) -> None:
    from newsmon.alerter.grouping import fingerprints

    expected = [_fingerprint_one_by_one(t, s) for t, s in texts]
    assert [f.signature for f in fingerprints(texts)] == expected
    assert [fingerprint(t, s) for t, s in texts] == expected


def test_batch_fingerprints_across_several_numpy_passes() -> None:
    from newsmon.alerter import grouping

    words = LEDE.split()
    texts = [(f"item {i}", " ".join(words[i % 7 :] + words[: i % 7])) for i in range(400)]
    texts[5] = ("", "")  # no words: the empty signature, in the middle of a pass
    fps = grouping.fingerprints(texts)
    assert sum(2 * len(normalize(t, s)) for t, s in texts) > 2 * grouping._PASS_SHINGLES
    assert [f.signature for f in fps] == [_fingerprint_one_by_one(t, s) for t, s in texts]


def test_band_keys_hold_the_bits_of_the_signature_rows() -> None:
    """A band key is the version and band, then the band's rows: equal keys, equal rows."""
    from newsmon.alerter.grouping import BANDS, fingerprints

    (fp,) = fingerprints([("North Korean troops", LEDE)])
    rows = NUM_PERM // BANDS
    for band, key in enumerate(fp.bands):
        expected = SIGNATURE_VERSION * BANDS + band
        for row in fp.signature[band * rows : (band + 1) * rows]:
            expected = (expected << 32) | row
        assert int.from_bytes(key, "big") == expected


def test_combining_marks_beyond_the_basic_multilingual_plane_are_dropped_too() -> None:
    # U+1D167 (a musical combining mark, class 1) and U+0301 (combining acute, class 230).
    assert normalize("Ka\U0001d167bul", "cafe\u0301") == ["kabul", "cafe"]
    assert normalize("Kabul", "cafe\u0301") == ["kabul", "cafe"]
