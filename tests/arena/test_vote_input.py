"""What a vote may hold, checked before anything reaches the database (raw POSTs send anything)."""

import pytest

from arena.rules import validate_vote_input
from core.errors import UserError
from webapp.arena_tab import battle_id_of, criteria_from_choices, winner_from_label


@pytest.mark.parametrize("kw,fragment", [
    (dict(winner=["left"]), "invalid choice"),
    (dict(winner=7), "invalid choice"),
    (dict(criteria=["length_fit"]), "criteria must be a mapping"),
    (dict(criteria={"style": ["left"]}), "invalid criterion"),
    (dict(criteria={1: "left"}), "invalid criterion"),
    (dict(reason={"x": 1}), "the reason must be text"),
    (dict(reason=12), "the reason must be text"),
    (dict(reason="fine\x00then"), "NUL"),
])
def test_wrong_types_and_nul_are_one_line(kw, fragment):
    values = {"winner": "left", "criteria": None, "reason": None, **kw}
    with pytest.raises(UserError) as err:
        validate_vote_input(**values)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_tab_passes_odd_values_on_to_the_rules():
    assert winner_from_label(["A is better"]) == ["A is better"]
    assert criteria_from_choices([["A"], None, "B", None]) == {"length_fit": ["A"], "structure": "right"}


@pytest.mark.parametrize("value,fragment", [
    (2**70, "there is no battle #"), (2**31, "there is no battle #"), (-3, "no battle loaded"),
    ("1e400", "not a battle number"), (float("inf"), "not a battle number"), (1.5, "not a battle number"),
    (None, "no battle loaded"), ("", "no battle loaded"), ([1], "not a battle number"),
])
def test_battle_ids_beyond_any_table_are_refused(value, fragment):
    with pytest.raises(UserError, match=fragment):
        battle_id_of(value)
    assert battle_id_of(12.0) == 12 and battle_id_of("7") == 7


def test_a_repeated_vote_does_not_claim_to_be_stored():
    from webapp.arena_tab import vote_status

    assert vote_status({"created": True, "flagged": False}) == "Vote stored."
    again = vote_status({"created": False, "flagged": False})
    assert "Vote stored" not in again and "first vote stands" in again and "not stored" in again
    assert "flagged" in vote_status({"created": True, "flagged": True})
