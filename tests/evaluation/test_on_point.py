"""Sections against their points on hand-made texts: a counting embedder for the arithmetic, the
real offline all-MiniLM-L6-v2 model for the meaning."""

from __future__ import annotations

import re

import pytest

from evaluation.on_point import CHUNK_WORDS, on_point, row_on_point, section_texts

CATS = "The cat sleeps on the warm windowsill, and the cat purrs when the cat is stroked."
SHIPS = "The ship left the harbour at dawn; the ship's sails filled as the ship turned to sea."
BREAD = "Knead the bread dough, let the dough rise, then bake the bread until the crust is brown."


def counting_embedder(vocabulary: list[str]):
    """Each text as the counts of the given words in it."""
    def embed(texts):
        return [[len(re.findall(rf"\b{word}\b", text.lower())) for word in vocabulary] for text in texts]

    return embed


BAG = counting_embedder(["cat", "ship", "bread", "sea", "dough"])


def test_sections_on_their_points_beat_the_shuffled_pairs():
    result = on_point([CATS, SHIPS, BREAD], ["the cat", "the ship at sea", "baking bread from dough"], embed=BAG)
    assert result.with_point == 1.0 and result.above_shuffled == 1.0 and result.closest == 1.0
    for figure in result.sections:
        assert figure.own > 0.5 and figure.others == pytest.approx(0.0) and figure.rank == 1.0
    assert result.margin == pytest.approx(result.own - result.others)


def test_sections_written_off_their_points_are_caught():
    result = on_point([CATS, SHIPS, BREAD], ["the ship at sea", "baking bread from dough", "the cat"], embed=BAG)
    assert result.own == pytest.approx(0.0) and result.margin < 0
    assert result.above_shuffled == 0.0 and result.closest == 0.0


def test_sections_without_a_point_count_against_the_share_and_are_not_measured():
    result = on_point([CATS, SHIPS, BREAD], ["the cat", "", "  "], embed=BAG)
    assert result.with_point == pytest.approx(1 / 3)
    cat, ship, bread = result.sections
    assert ship.own is None and bread.own is None
    assert cat.own == pytest.approx(1.0) and cat.others is None  # no other point to compare with
    assert result.margin is None and result.above_shuffled is None


def test_a_long_section_counts_as_a_whole_not_its_opening():
    seen = []

    def embed(texts):
        seen.extend(texts)
        return BAG(texts)

    section = " ".join(["filler"] * CHUNK_WORDS) + " " + CATS
    result = on_point([section, SHIPS], ["the cat", "the ship"], embed=embed)
    assert len(seen) == 5  # two pieces of the long section, the short one, two points
    assert result.sections[0].own == pytest.approx(1.0)


def test_the_recorded_sections_are_cut_from_the_answer():
    answer = CATS + "\n\n" + SHIPS
    sections = [{"point": "the cat", "start": 0, "end": len(CATS)},
                {"point": "the ship", "start": len(CATS) + 2, "end": len(answer)}, {"point": "old row"}]
    assert section_texts(answer, sections) == [CATS, SHIPS, ""]
    result = row_on_point(answer, {"sections": sections}, embed=BAG)
    assert result.with_point == 1.0 and [f.rank for f in result.sections] == [1.0, 1.0, None]


def test_a_point_for_every_section_is_required():
    with pytest.raises(ValueError, match="2 sections but 1 points"):
        on_point([CATS, SHIPS], ["the cat"], embed=BAG)


def test_with_the_shipped_embedding_model():
    sections = [
        "She chopped the onions, browned them in butter, added the rice and stirred in hot stock a ladle at a "
        "time until the risotto was creamy.",
        "The telescope's mirror gathered the faint light of the galaxy; through the eyepiece the spiral arms "
        "and the bright core of the distant stars appeared.",
        "The striker dribbled past two defenders and shot; the goalkeeper dived, but the ball curled into the "
        "corner of the net and the stadium roared.",
    ]
    points = ["cooking a risotto", "looking at a galaxy through a telescope", "a goal in a football match"]
    result = on_point(sections, points)
    assert result.closest == 1.0 and result.margin > 0.2
    shuffled = on_point(sections, points[1:] + points[:1])
    assert shuffled.closest == 0.0 and shuffled.margin < 0
