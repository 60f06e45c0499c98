"""The table of templates: the only place a template's name decides anything; ``auto`` picks by
length; the bundled model's defaults come with it whichever command registers it."""

from __future__ import annotations

import ast
import asyncio

import pytest

from core.errors import UserError
from generation.bundled import BUNDLED_ONE_REQUEST_WORDS, BUNDLED_TEMPLATE
from generation.length import Budget
from generation.request import GenerationRequest
from generation.templates import METHODS, TEMPLATE_NAMES, choose, method_template
from tests.conftest import REPO_ROOT
from tests.generation.test_control_logic import ScriptedBackend, SizedBackend, words

TABLE = REPO_ROOT / "generation" / "templates.py"
PACKAGES = ("core", "storage", "generation", "writing", "arena", "evaluation", "webapp", "lwz_cli")
"""Every package but ``training``, whose ``--template`` option has values of its own (``none``,
and ``auto`` for "the base model's")."""


def _names_asked(path) -> list[str]:
    """Places in ``path`` that compare with a template's name or list template names (choices)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                items = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                if any(isinstance(i, ast.Constant) and i.value in TEMPLATE_NAMES for i in items):
                    found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            if sum(isinstance(i, ast.Constant) and i.value in TEMPLATE_NAMES for i in node.elts) >= 2:
                found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    return found


def test_only_the_table_asks_a_template_by_its_name():
    asked = [place for package in PACKAGES for path in sorted((REPO_ROOT / package).rglob("*.py"))
             if path != TABLE and "migrations" not in path.parts for place in _names_asked(path)]
    assert asked == []


@pytest.mark.parametrize("target, picked", [(None, "direct"), (300, "direct"), (BUNDLED_ONE_REQUEST_WORDS, "direct"),
                                            (BUNDLED_ONE_REQUEST_WORDS + 1, "plan"), (10_000, "plan")])
def test_auto_writes_in_one_request_up_to_what_the_model_holds_and_plans_above(target, picked):
    choice = choose("auto", target_words=target, holds_words=BUNDLED_ONE_REQUEST_WORDS)
    assert choice.template.name == picked and choice.asked == "auto"
    if target and target > BUNDLED_ONE_REQUEST_WORDS:
        assert choice.why == f"{target:,} words > {BUNDLED_ONE_REQUEST_WORDS:,} this model holds in one request: planned in sections"


def test_auto_without_a_measured_length_is_refused():
    with pytest.raises(UserError, match="one request"):
        choose("auto", target_words=3000, holds_words=None)


def test_the_writer_s_method_overrides_the_model_s_template():
    assert method_template(METHODS[0], "auto") is None
    assert method_template("one request", "auto") == "direct" and method_template("one request", "think") == "think"
    assert method_template("plan", "think") == "plan"
    choice = choose("direct", target_words=3000, holds_words=2000, by_writer=True)
    assert choice.template.name == "direct" and choice.why == (
        "chosen by you: written in one request (3,000 words > 2,000 this model holds in one request: "
        "it may loop or break down)")
    with pytest.raises(UserError, match="unknown method"):
        method_template("fastest", "auto")


def _entry(template, sampling):
    from storage.models import ModelEntry

    return ModelEntry(name="m", backend="openai", base_url="http://x/v1", model_id="m", template=template,
                      sampling={"api": "chat", **sampling})


def test_an_auto_model_asked_for_10000_words_plans_its_sections(monkeypatch):
    import generation.backends
    from generation.service import prepare, run_plan

    from tests.generation.test_agentwrite_levels import kind, planning_model

    class Responder(SizedBackend):  # answers each request from what it asks; sized for prepare()
        def __init__(self, respond) -> None:
            super().__init__(at_most=60, exact=60)
            self.respond = respond

        async def stream(self, request, *, cancel=None):
            self.replies = [self.respond(request)]
            async for item in super().stream(request, cancel=cancel):
                yield item

    backend = Responder(planning_model("\n".join(f"Part {i} - Main point: stage {i} of the story" for i in range(1, 6)),
                                       lambda i, n: f"Section {i} - Main point: event {n} - Word count: 250 words",
                                       sections=8, words=250))
    monkeypatch.setattr(generation.backends, "backend_for", lambda entry: backend)
    entry = _entry(BUNDLED_TEMPLATE, {"one_request_words": BUNDLED_ONE_REQUEST_WORDS})
    plan = asyncio.run(prepare(entry, GenerationRequest("Write a long story.", target_words=10_000, seed=1)))
    assert plan.template.name == "plan"
    assert plan.params()["template"] == "plan" and plan.params()["method"] == {
        "asked": "auto", "why": "10,000 words > 500 this model holds in one request: planned in sections"}

    async def go():
        return [e async for e in run_plan(plan)]

    asyncio.run(go())
    sections = plan.stats["sections"]
    assert len(sections) == 40 and all(s["point"].strip() for s in sections)
    writes = [r for r in backend.requests if kind(r) == "write"]
    assert len(writes) == 40 and "section 40 of 40" in writes[-1].user


def test_an_auto_model_asked_for_a_short_text_writes_it_in_one_request(monkeypatch):
    import generation.backends
    from generation.service import prepare

    backend = SizedBackend(at_most=60, exact=60)
    monkeypatch.setattr(generation.backends, "backend_for", lambda entry: backend)
    entry = _entry(BUNDLED_TEMPLATE, {"one_request_words": BUNDLED_ONE_REQUEST_WORDS})
    plan = asyncio.run(prepare(entry, GenerationRequest("Write a poem.", target_words=300, seed=1)))
    assert plan.template.name == "direct" and plan.budget.think == 0 and plan.params()["method"]["asked"] == "auto"


def test_a_backend_failure_ends_either_kind_of_stream_with_one_error():
    """One stream loop for a backend request: a template's rounds and the plan's sections both end
    with the server's message as an Error event."""
    from generation.backends.base import BackendError
    from generation.events import Error
    from generation.service import run_plan
    from tests.generation.test_control_logic import plan_for

    class Dying(ScriptedBackend):
        async def stream(self, request, *, cancel=None):
            self.requests.append(request)
            raise BackendError("the server went away")
            yield  # an async generator

    for template in ("direct", "plan"):
        plan = plan_for(Dying([]), template=template, target=100, think=50, answer_max=200)

        async def go():
            return [e async for e in run_plan(plan)]

        events = asyncio.run(go())
        assert events[-1] == Error("the server went away"), template


def test_the_default_model_of_make_run_plans_a_10000_word_text(sqlite_engine):
    """``make run`` serves the bundled model as ``lwz serve`` registers it; asked for 10,000 words,
    the real embedded backend's checks pass and the text is planned in sections."""
    from generation.service import prepare
    from webapp.serving import settle_default_model
    from writing.models import lookup_model

    entry = lookup_model(sqlite_engine, name=settle_default_model(sqlite_engine, backend=None, base_url=None, model=None))
    request = GenerationRequest("Write a 10,000-word story about a lighthouse keeper.", target_words=10_000)
    plan = asyncio.run(prepare(entry, request))
    assert plan.template.name == "plan" and plan.request.repetition_penalty == 1.1
    assert plan.budget.think > 0  # the plan of sections has its own budget
