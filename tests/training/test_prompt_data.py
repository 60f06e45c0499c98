"""The GRPO prompt set at dataset time: per-prompt ranges, targets, and bad ranges caught before a run."""

from __future__ import annotations

import pandas as pd
import pytest

from core.errors import UserError
from training.data import prompt_dataset


def _frame(*rows):
    return pd.DataFrame([{"prompt": f"Write text {i}.", **row} for i, row in enumerate(rows)])


def test_ranges_come_from_the_file_or_the_target():
    rows, report = prompt_dataset(_frame({"min_words": 300, "max_words": 500, "target_words": None},
                                         {"min_words": None, "max_words": None, "target_words": 100}),
                                  template="none", tolerance=0.1)
    assert [(r["min_words"], r["max_words"]) for r in rows] == [(300, 500), (90, 110)]
    assert report["kept"] == 2 and report["dropped_no_target"] == 0


def test_unmeetable_zero_range_is_left_out_and_counted_not_a_crash():
    rows, report = prompt_dataset(_frame({"min_words": 0, "max_words": 0}, {"min_words": 10, "max_words": 20}),
                                  template="none", tolerance=0.2)
    assert len(rows) == 1 and report["dropped_unmeetable_range"] == 1 and report["rows_unmeetable_range"] == "1"


@pytest.mark.parametrize("row, l_max, message", [
    ({"min_words": 50, "max_words": 20}, None, "row 2: .50, 20. is inverted"),
    ({"min_words": -1, "max_words": 20}, None, "row 2: .* at or below zero"),
    ({"min_words": 10, "max_words": None, "target_words": None}, None, "row 2: only one of min_words/max_words"),
    ({"min_words": 10, "max_words": 20}, 15, "row 2: L_max 15 is not above max_words 20"),
])
def test_bad_ranges_are_one_line_errors_naming_the_row(row, l_max, message):
    with pytest.raises(UserError, match=message):
        prompt_dataset(_frame({"min_words": 5, "max_words": 9}, row), template="none", tolerance=0.2, l_max=l_max)


def test_rows_without_range_or_target_are_named():
    frame = _frame({"target_words": 100}, {"target_words": None}, {"target_words": 50}, {"target_words": None})
    rows, report = prompt_dataset(frame, template="none", tolerance=0.2)
    assert len(rows) == 2 and report["dropped_no_target"] == 2 and report["rows_no_target"] == "2, 4"
