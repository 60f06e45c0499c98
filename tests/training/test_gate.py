"""The reward-hacking gate: hand-made texts, fake generators, the options and the shipped prompts."""

from __future__ import annotations

import json

import pytest

from core.errors import UserError
from training.gate import (CHECKS, DEFAULT_PROMPTS, GatePrompt, GateThresholds, gate_entries, gate_report,
                           load_gate_prompts, refusal_line, report_lines, run_gate, text_checks)
from training.options import TrainOptions

PROMPTS = [
    "Write a 60-word note about a lighthouse keeper and the sea.",
    "Write a 60-word description of autumn leaves in a quiet park.",
]
TARGETS = [60, 60]


def _essay(seed: int, words: int = 60) -> str:
    """A non-repeating answer of ``words`` distinct words, wrapped in the think/answer protocol."""
    body = " ".join(f"w{seed}x{i}" for i in range(words))
    return f"<think>plan {seed}</think>\n<answer>{body}</answer>"


NATURAL = [
    ("<think>Describe the keeper's night.</think>\n<answer>The keeper climbs the stairs each evening, trims the wick "
    "and watches ships pass beyond the reef. Storms come and go; gulls circle the tower. He writes letters he never "
    "sends, reads old almanacs, and listens to waves break below. At dawn he sleeps, trusting the sea to keep its "
    "promises until the lamp is lit again tonight.</answer>"),
    ("<think>Paint the park in autumn.</think>\n<answer>Red and amber drift down over empty benches. A child kicks "
    "through a golden pile while an old man feeds pigeons near the pond. Wind carries the smell of rain and woodsmoke; "
    "branches grow bare, and the gravel paths vanish under a soft, rustling carpet that crunches with every step "
    "taken by the few walkers left.</answer>"),
]


def _loop(phrase: str, words: int = 60) -> str:
    tokens = phrase.split()
    body = " ".join(tokens[i % len(tokens)] for i in range(words))
    return f"<think>plan</think>\n<answer>{body}</answer>"


def test_equal_child_passes():
    report = gate_report(NATURAL, list(NATURAL), PROMPTS, TARGETS)
    assert report["regressed"] == [] and report["parent"] == report["child"]
    assert set(report["parent"]) == set(CHECKS) and report["prompts"] == 2


def test_looping_child_is_refused_on_repetition():
    looping = [_loop("the keeper watches the sea and the light burns"), _loop("leaves fall in the park each autumn")]
    report = gate_report(NATURAL, looping, PROMPTS, TARGETS)
    assert "distinct_4" in report["regressed"] and "longest_repeat" in report["regressed"]
    assert report["child"]["distinct_4"] < 0.3 < report["parent"]["distinct_4"]


def test_keyword_stuffing_child_is_refused():
    stuffed = [
        "<think>p</think>\n<answer>" + " ".join(f"lighthouse keeper sea note{i}" for i in range(15)) + "</answer>",
        "<think>p</think>\n<answer>" + " ".join(f"autumn leaves a{i} quiet park b{i}" for i in range(10)) + "</answer>",
    ]
    report = gate_report(NATURAL, stuffed, PROMPTS, TARGETS)
    assert "keyword_stuffing" in report["regressed"]
    assert "distinct_4" not in report["regressed"]  # each line differs: only the stuffing check catches it


def test_length_and_format_regressions_and_a_small_drop_within_thresholds():
    short_unformatted = ["The keeper sleeps.", "Leaves fall."]
    report = gate_report(NATURAL, short_unformatted, PROMPTS, TARGETS)
    assert {"length_score", "format_valid"} <= set(report["regressed"])
    loose = GateThresholds(length_drop=100.0, format_drop=1.0, distinct_4_drop=1.0)
    assert not {"length_score", "format_valid"} & set(gate_report(NATURAL, short_unformatted, PROMPTS, TARGETS,
                                                                  loose)["regressed"])


def test_repeat_growth_needs_both_the_fraction_and_the_token_floor():
    parent = [_essay(1), _essay(2)]
    child = [_essay(1)[:-9] + " w1x0 w1x1 w1x2 w1x3 w1x4</answer>", _essay(2)]  # one 5-token repeat
    assert text_checks(child[0], PROMPTS[0], 60)["longest_repeat"] == 5.0
    assert gate_report(parent, child, PROMPTS, TARGETS)["regressed"] == []  # mean 2.5 tokens < 8-token floor
    strict = GateThresholds(repeat_min_tokens=1.0)
    assert gate_report(parent, child, PROMPTS, TARGETS, strict)["regressed"] == ["longest_repeat"]


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="one parent text"):
        gate_report(NATURAL, NATURAL[:1], PROMPTS, TARGETS)


def _fake_generate(child_texts):
    """``generate(model, prompt, target)`` as the runner's: the parent writes NATURAL, the child ``child_texts``."""
    calls = []

    def generate(model, prompt, target):
        calls.append((model, prompt, target))
        index = PROMPTS.index(prompt)
        return NATURAL[index] if model == "parent" else child_texts[index]

    return generate, calls


def test_run_gate_refuses_a_looping_child_and_force_records_it():
    prompts = [GatePrompt(p, t) for p, t in zip(PROMPTS, TARGETS)]
    looping = [_loop("the keeper watches the sea"), _loop("leaves fall in the park")]
    generate, calls = _fake_generate(looping)
    report = run_gate(generate, parent="parent", child="child", prompts=prompts, force=False)
    assert report["refused"] and not report["forced"]
    assert [c[0] for c in calls] == ["parent", "parent", "child", "child"] and calls[0][2] == 60
    line = refusal_line(report, name="dpo-1", out="/tmp/run")
    assert "\n" not in line and "distinct_4" in line and "--force" in line and "/tmp/run" in line
    forced = run_gate(_fake_generate(looping)[0], parent="parent", child="child", prompts=prompts, force=True)
    assert forced["forced"] and not forced["refused"] and forced["regressed"] == report["regressed"]
    assert any("REGRESSED" in line for line in report_lines(forced)) and "--force" in report_lines(forced)[-1]
    json.dumps(forced)  # goes into the run's metrics as it is


def test_run_gate_passes_an_equal_child():
    prompts = [GatePrompt(p, t) for p, t in zip(PROMPTS, TARGETS)]
    report = run_gate(_fake_generate(NATURAL)[0], parent="parent", child="child", prompts=prompts, force=False)
    assert report["regressed"] == [] and not report["refused"] and not report["forced"]


def test_shipped_prompts_load_and_bad_files_are_one_line_errors(tmp_path):
    shipped = load_gate_prompts(None)
    assert len(shipped) >= 3 and all(p.target > 0 for p in shipped) and DEFAULT_PROMPTS.is_file()
    no_length = tmp_path / "p.jsonl"
    no_length.write_text('{"prompt": "Write a poem.", "length": 50}\n{"prompt": "Write a story."}\n')
    with pytest.raises(UserError, match="rows 2 lack one"):
        load_gate_prompts(no_length)
    with pytest.raises(UserError, match="no such file"):
        load_gate_prompts(tmp_path / "missing.jsonl")


def test_gate_entries_use_the_local_backend_and_one_template(tmp_path):
    parent, child = gate_entries(parent_folder=tmp_path / "base", parent_entry=None, child_folder=tmp_path / "out",
                                 name="dpo-1", template="think")
    assert parent.backend == child.backend == "local" and parent.template == child.template == "think"
    assert child.path == str((tmp_path / "out").resolve()) and child.name == "dpo-1"


def _options(tmp_path, **kw):
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    return TrainOptions(kind="dpo", base="m", out=str(tmp_path / "out"), data=str(data), **kw)


def test_options_refuse_gate_flags_without_register_and_check_the_prompt_file(tmp_path):
    with pytest.raises(UserError, match="give --register too"):
        _options(tmp_path, force=True).check()
    with pytest.raises(UserError, match="no such file"):
        _options(tmp_path, register="x", gate_prompts=str(tmp_path / "none.jsonl")).check()
    with pytest.raises(UserError, match="--gate-max-tokens must be at least 1"):
        _options(tmp_path, register="x", gate_max_tokens=0).check()
    _options(tmp_path, register="x", force=True).check()


def test_train_flags_include_the_gate_for_writing_kinds_only():
    from lwz_cli.main import build_parser

    args = build_parser().parse_args(["train", "dpo", "--base", "m", "--out", "o", "--data", "d", "--register", "x",
                                      "--force", "--gate-max-tokens", "64"])
    assert args.force is True and args.gate_max_tokens == 64 and args.gate_prompts is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "reward", "--base", "m", "--out", "o", "--data", "d", "--force"])


@pytest.mark.slow
def test_train_register_refuses_a_child_that_games_the_gate(sqlite_url, tmp_path):
    """``lwz train dpo --register`` end to end: one DPO step towards looping answers at a learning
    rate that overwrites the model leaves a child that repeats itself where its parent writes; the
    gate refuses it: exit 2, one line naming the gate, the run recorded, and no model registered."""
    import pandas as pd
    import sqlalchemy as sa

    from storage.engine import make_engine, session_scope
    from storage.models import ModelEntry, TrainingRun
    from tests.helpers import lwz

    data = tmp_path / "prefs.parquet"
    pd.DataFrame([{"prompt": f"Describe the sea at hour {i}.", "chosen": "sea sea sea sea sea sea sea sea",
                   "rejected": f"Grey waves roll in under a low sky at hour {i}.", "margin": 1.0}
                  for i in range(2)]).to_parquet(data)
    prompts = tmp_path / "gate.jsonl"
    prompts.write_text(json.dumps({"prompt": "Write a short note about a lighthouse keeper.", "length": 40}) + "\n")
    out = tmp_path / "child"
    done = lwz("train", "dpo", "--base", "smollm2-135m", "--data", str(data), "--out", str(out),
               "--max-steps", "1", "--batch-size", "1", "--max-length", "48", "--learning-rate", "1.0",
               "--register", "gamed", "--gate-prompts", str(prompts), "--gate-max-tokens", "32", db=sqlite_url)
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "refused by the reward-hacking gate" in last and "Traceback" not in done.stderr
    assert (out / "config.json").is_file()  # the checkpoint is kept for inspection
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        assert session.execute(sa.select(ModelEntry.id).where(ModelEntry.name == "gamed")).first() is None
        (run,) = session.execute(sa.select(TrainingRun)).scalars().all()
        assert run.metrics["gate"]["refused"] is True and run.metrics["gate"]["regressed"]
    engine.dispose()
