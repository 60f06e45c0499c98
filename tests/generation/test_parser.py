"""The think/answer parser on hand-made streams: every case the issue lists."""

from __future__ import annotations

import pytest

from generation.events import Answer, Done, Think
from generation.parser import StreamParser, parse_text


def run(chunks, *, prefilled=False, finish="stop"):
    parser = StreamParser(prefilled=prefilled)
    events = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.close(finish, prompt_tokens=3, completion_tokens=7)
    think = "".join(e.text for e in events if isinstance(e, Think))
    answer = "".join(e.text for e in events if isinstance(e, Answer))
    return think, answer, events


def test_well_formed_stream():
    think, answer, events = run(["<think>plan it</think>\n<answer>The text.</answer>"])
    assert (think, answer) == ("plan it", "The text.")
    assert events[-1] == Done("stop", 3, 7)


@pytest.mark.parametrize("split", range(1, 40))
def test_tags_split_at_every_position(split):
    text = "<think>a plan</think><answer>body</answer>tail"
    think, answer, _ = run([text[:split], text[split:]])
    assert (think, answer) == ("a plan", "body")


def test_tag_split_one_char_at_a_time():
    text = "<think>x < y and </th</think> <answer>b <i>c</i></answer>"
    think, answer, _ = run(list(text))
    assert think == "x < y and </th"
    assert answer == "b <i>c</i>"


def test_no_tags_is_all_answer():
    think, answer, _ = run(["Dear Sam,\n", "thank you for ", "your help."])
    assert think == ""
    assert answer == "Dear Sam,\nthank you for your help."


def test_untagged_text_starting_with_angle_bracket():
    think, answer, _ = run(["<", "b>Bold</b> start"])
    assert (think, answer) == ("", "<b>Bold</b> start")


def test_think_never_closed_stays_the_plan():
    think, answer, events = run(["<think>I will plan", " and plan"], finish="length")
    assert (think, answer) == ("I will plan and plan", "")
    assert events[-1].finish_reason == "length"


def test_prefilled_think_then_answer_without_answer_tag():
    think, answer, _ = run(["planning here</think>\n\nThe answer ", "text"], prefilled=True)
    assert (think, answer) == ("planning here", "The answer text")


def test_missing_answer_close_runs_to_end():
    think, answer, _ = run(["<think>p</think><answer>all of ", "this"])
    assert answer == "all of this"


def test_text_after_answer_close_is_dropped():
    think, answer, _ = run(["<answer>kept</answer> dropped ", "<think>also dropped</think>"])
    assert (think, answer) == ("", "kept")


def test_stray_tags_inside_answer_are_dropped():
    think, answer, _ = run(["<think>p</think><answer>one <think>two</think> <answer>three"])
    assert answer == "one two three"


def test_answer_opens_inside_unclosed_think():
    think, answer, _ = run(["<think>plan <answer>body"])
    assert (think, answer) == ("plan ", "body")


def test_pending_fragment_flushed_at_close():
    think, answer, _ = run(["<answer>a <thi"])
    assert answer == "a <thi"


def test_force_answer_switches_state():
    parser = StreamParser(prefilled=True)
    assert [type(e) for e in parser.feed("long plan")] == [Think]
    parser.force_answer()
    assert parser.feed("now the text") == [Answer("now the text")]


def test_events_are_merged_per_chunk():
    _, _, events = run(["<think>a</think><answer>b"])
    assert events == [Think("a"), Answer("b"), Done("stop", 3, 7)]


def test_parse_text_strips_and_splits():
    assert parse_text("  <think> p </think>\n<answer>\n A \n</answer>") == ("p", "A")
    assert parse_text("plain text") == ("", "plain text")
    assert parse_text("plan</think>answer", prefilled=True) == ("plan", "answer")


def test_chinese_stream():
    think, answer, _ = run(["<think>规划", "</think><answer>正文内", "容</answer>"])
    assert (think, answer) == ("规划", "正文内容")
