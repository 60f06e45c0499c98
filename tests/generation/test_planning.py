"""The plan as data: the lines models write, budgets, the outline read back, sentence trimming."""

from __future__ import annotations

from generation.control import SentenceGate, last_sentence_end
from generation.planning import (MAX_SECTIONS, Item, Outline, Section, parse_items, part_block, part_count,
                                 parts_line, point_key, read_outline, section_count, split_budget)


def test_plan_lines_as_models_write_them():
    reply = ("Here is the plan:\n"
             "**Section 1** - Main point: the storm arrives - Word count: 300 words\n"
             "### Section 2: The flood (250 words)\n"
             "Section 3 - Main point: <what the section says> - Word count: <number> words\n"
             "4) the rescue, about 400 words\n"
             "Section 5:\n"
             "Main point: the morning after - Word count: 70 words\n"
             "6. 1,000\n"
             "第7节 - 要点：风暴来临 - 字数：300字\n"
             "Section 2-1: Building the tower\n"
             "- 9. The 3 words that saved the ship (120 words)\n"  # as the bundled model numbers them
             "The tower took ten years to build.\n"
             "Some closing remark.\n")
    assert parse_items(reply) == [Item("the storm arrives", 300), Item("The flood", 250), Item("the rescue", 400),
                                  Item("the morning after", 70), Item("风暴来临", 300),
                                  Item("Building the tower"), Item("The 3 words that saved the ship", 120)]
    assert parse_items("I will write a story about the sea.") == []


def test_a_long_point_is_cut_to_a_line():
    (item,) = parse_items("1. " + "word " * 80)
    assert len(item.point.split()) == 32
    (item,) = parse_items("2. Keepers: they lived at the light for years. " + "word " * 40)
    assert item.point == "Keepers: they lived at the light for years"


def test_budgets_follow_the_model_within_bounds_and_sum_to_the_target():
    assert split_budget([30, 50], 100) == [38, 62]
    assert split_budget([None, None, None], 1000) == [334, 333, 333]
    assert split_budget([300, None], 900) == [450, 450]
    assert split_budget([1000, 10, 10], 300, spread_limit=2.0) == [200, 50, 50]
    assert split_budget([333, 334, 333], 1000) == [333, 334, 333]  # an outline's own budgets come back unchanged


def test_lengths_are_planned_in_levels_above_eight_sections():
    assert [section_count(t) for t in (None, 100, 1_500, 5_000, 10_000, 20_000, 40_000)] == [4, 1, 6, 20, 40, 60, 60]
    assert [part_count(section_count(t)) for t in (1_500, 2_000, 2_500, 5_000, 10_000, 20_000)] == [1, 1, 2, 3, 5, 8]
    assert part_count(MAX_SECTIONS) == 8


def test_an_outline_in_parts_reads_back_exactly():
    first = [Section("the founding", 333, 0), Section("the first walls", 334, 0)]
    second = [Section("the siege", 333, 1)]
    text = (parts_line("en", ["the city rises", "the city falls"]) + "\n\n"
            + part_block("en", part=0, point="the city rises", sections=first, first=1, ending=False) + "\n"
            + part_block("en", part=1, point="the city falls", sections=second, first=3, ending=True))
    assert text.splitlines()[-1] == "3. the siege (333 words, the conclusion)"
    outline = read_outline(text, 1000)
    assert outline == Outline(("the city rises", "the city falls"), tuple(first + second))
    assert outline.records()[-1] == {"point": "the siege", "words": 333, "part": 2, "conclusion": True}


def test_plans_stored_before_levels_still_read():
    legacy = ("Section 1 - Main point: the storm - Word count: 40 words\n"
              "Section 2 - Main point: the rescue - Word count: 60 words\n")
    assert read_outline(legacy, 200).sections == (Section("the storm", 80), Section("the rescue", 120))
    parts_only = "Part 1: the storm (500 words)\nPart 2: the rescue (500 words)\n"
    assert [(s.point, s.part) for s in read_outline(parts_only, 1000).sections] == [("the storm", 0), ("the rescue", 1)]


def test_points_compare_without_case_or_punctuation():
    assert point_key("The Storm!") == point_key("the storm") != point_key("the storms")


def test_the_sentence_gate_holds_an_unfinished_sentence():
    assert last_sentence_end('He left. "Go," she said.” And') == len('He left. "Go," she said.”')
    assert last_sentence_end("no end here") == 0
    gate = SentenceGate()
    assert gate.feed("One. Two") == "One." and gate.feed(" three. Four") == " Two three."
    assert gate.close(natural=False) == ""
    lone = SentenceGate()
    assert lone.feed("a sentence that never ends") == ""
    assert lone.close(natural=False) == "a sentence that never"
    assert SentenceGate("all of it").close(natural=True) == "all of it"


def test_a_chinese_outline_reads_back_exactly():
    sections = [Section("风暴来临", 600, 0), Section("小镇重建", 400, 1)]
    text = (part_block("zh", part=0, point="灾难", sections=sections[:1], first=1, ending=False) + "\n"
            + part_block("zh", part=1, point="新生", sections=sections[1:], first=2, ending=True))
    assert text.splitlines()[-1] == "2. 小镇重建（400字，结尾）"
    assert read_outline(text, 1000, "zh") == Outline(("灾难", "新生"), tuple(sections))


def test_lines_that_copy_the_planning_request_are_not_points():
    """The bundled model, asked for a plan at 10,000 words, wrote the request's own form back
    (benchmarks/results/long_browser_default_10k.json): none of it is a point."""
    from generation.planning import parse_items

    reply = "\n".join([
        "Part 1 - Main point: [part number] (the main idea)",
        "Section 2 - Main point: [section title]",
        "Section 3 - Main point: All paragraphs should have one length",
        "Section 4 - Main point: What the section says - Word count: 300 words",
        "Section 5 - Main point: The keeper finds the letter behind the loose brick - Word count: 300 words",
    ])
    assert [item.point for item in parse_items(reply)] == ["The keeper finds the letter behind the loose brick"]
