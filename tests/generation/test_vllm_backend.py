"""The OpenAI backend and the service against a real vLLM server (the CPU build serving the
bundled model): both server paths, truncation, cancel, bad model ids, unreachable servers,
length and think-budget control, and the rows they leave. Kept lean: few tokens each."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

import pytest

from generation.backends.base import BackendRequest, Delta, Finish
from generation.backends.openai_backend import OpenAIBackend
from generation.events import Answer, Done, Started, Think
from generation.request import GenerationRequest
from generation.service import stream_generation
from writing.store import generate_and_store, generate_to_row
from generation.templates import render
from core.errors import UserError
from storage.models import ModelEntry
from tests.generation.helpers import collect, metric, register, row

pytestmark = pytest.mark.slow


def test_completions_path_streams_raw_template(vllm_server):
    backend = OpenAIBackend(base_url=vllm_server.base_url, model=vllm_server.model, api="completions")
    rendered = render("think", "Write two sentences about rain.")
    request = BackendRequest(prompt=rendered.raw, system=rendered.system, user=rendered.user, assistant="",
                             use_chat=False, max_tokens=12, seed=1, stop=rendered.stop)

    async def go():
        items = await collect(backend.stream(request))
        return items, await backend.prompt_tokens(request)

    items, prompt_tokens = asyncio.run(go())
    deltas = [i for i in items if isinstance(i, Delta)]
    assert deltas and "".join(d.text for d in deltas).strip()
    finish = items[-1]
    assert isinstance(finish, Finish) and finish.finish_reason in ("stop", "length")
    assert finish.prompt_tokens == prompt_tokens and 1 <= finish.completion_tokens <= 12
    assert sum(d.tokens for d in deltas) == finish.completion_tokens
    assert {d.prompt_tokens for d in deltas} == {prompt_tokens}  # reported with the text already


def test_chat_path_prefills_think_and_forces_the_answer(vllm_server):
    entry = ModelEntry(name="t", backend="openai", base_url=vllm_server.base_url, model_id=vllm_server.model,
                       template="think", sampling={"api": "chat"})
    request = GenerationRequest("Write a short note to a friend.", think_budget=8, max_tokens=16, seed=2)
    events = asyncio.run(collect(stream_generation(entry, request)))
    assert any(isinstance(e, Think) and e.text.strip() for e in events)
    assert any(isinstance(e, Answer) and e.text.strip() for e in events)
    done = events[-1]
    assert isinstance(done, Done) and done.completion_tokens >= 8


def test_truncated_row_records_params_tokens_and_times(engine, vllm_server):
    register(engine, "direct", base_url=vllm_server.base_url, model=vllm_server.model, template="direct")
    gen = generate_to_row(engine, model="direct", request=GenerationRequest("Write a long essay about the sea.", max_tokens=16))
    assert gen.status == "truncated" and gen.finish_reason == "length"
    assert gen.completion_tokens == 16 and gen.prompt_tokens > 0
    assert gen.answer.strip() and gen.answer_words > 0 and gen.think == ""
    assert gen.seed is not None and gen.params["seed"] == gen.seed  # a random seed, recorded
    assert gen.params["template"] == "direct" and gen.params["max_tokens"] == 16
    assert gen.ttft_ms > 0 and gen.duration_ms >= gen.ttft_ms


def test_same_seed_same_text(sqlite_engine, vllm_server):
    register(sqlite_engine, "direct", base_url=vllm_server.base_url, model=vllm_server.model, template="direct")
    request = dict(prompt="Describe a lighthouse.", max_tokens=12, seed=1234)
    first = generate_to_row(sqlite_engine, model="direct", request=GenerationRequest(**request))
    second = generate_to_row(sqlite_engine, model="direct", request=GenerationRequest(**request))
    assert first.answer == second.answer and first.id != second.id


def test_cancel_mid_stream_aborts_the_server_request(engine, vllm_server):
    register(engine, "direct", base_url=vllm_server.base_url, model=vllm_server.model, template="direct")
    request = GenerationRequest("Write a very long story about a dragon.", target_words=1500, seed=5)

    async def go():
        cancel = asyncio.Event()
        answers, generation_id, running_during = 0, None, None
        async with aclosing(generate_and_store(engine, model="direct", request=request, cancel=cancel)) as events:
            async for event in events:
                if isinstance(event, Started):
                    generation_id = event.generation_id
                elif isinstance(event, Answer):
                    answers += 1
                    if answers == 6:
                        running_during = metric(vllm_server.root_url, "vllm:num_requests_running")
                        cancel.set()
        return generation_id, running_during

    generation_id, running_during = asyncio.run(go())
    assert running_during >= 1
    gen = row(engine, generation_id)
    assert gen.status == "interrupted" and gen.finish_reason == "cancelled"
    assert gen.answer.strip() and gen.answer_words < 100  # min_tokens would have forced ~2000 tokens
    # The server stops generating: nothing keeps running, the token counter stands still.
    deadline = time.monotonic() + 15
    while metric(vllm_server.root_url, "vllm:num_requests_running") > 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    before = metric(vllm_server.root_url, "vllm:generation_tokens_total")
    time.sleep(2)
    assert metric(vllm_server.root_url, "vllm:num_requests_running") == 0
    assert metric(vllm_server.root_url, "vllm:generation_tokens_total") == before


def test_closing_the_stream_leaves_an_interrupted_row(sqlite_engine, vllm_server):
    register(sqlite_engine, "direct", base_url=vllm_server.base_url, model=vllm_server.model, template="direct")

    async def go():
        agen = generate_and_store(sqlite_engine, model="direct", request=GenerationRequest("Write about snow.", max_tokens=200))
        generation_id = None
        async for event in agen:
            if isinstance(event, Started):
                generation_id = event.generation_id
            if isinstance(event, Answer):
                break
        await agen.aclose()
        return generation_id

    gen = row(sqlite_engine, asyncio.run(go()))
    assert gen.status == "interrupted" and gen.answer.strip()


def test_wrong_model_id_lists_served_models(vllm_server):
    entry = ModelEntry(name="t", backend="openai", base_url=vllm_server.base_url, model_id="no-such-model", template="direct")
    with pytest.raises(UserError) as info:
        asyncio.run(collect(stream_generation(entry, GenerationRequest("Hi."))))
    assert "no-such-model" in str(info.value) and vllm_server.model in str(info.value)


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:{closed}/v1", "http://10.255.255.1:8000/v1"])
def test_unreachable_backend_names_the_url_without_hanging(sqlite_engine, base_url):
    from tests.helpers import free_port

    base_url = base_url.format(closed=free_port())
    register(sqlite_engine, "gone", base_url=base_url, model="m", template="direct")

    async def go():
        return await collect(generate_and_store(sqlite_engine, model="gone", request=GenerationRequest("Hi.")))

    async def bounded():
        return await asyncio.wait_for(go(), timeout=120)  # a hang guard; the time itself is in benchmarks/bench_unreachable.py

    with pytest.raises(UserError, match=base_url.replace(".", r"\.")):
        asyncio.run(bounded())
    from storage.engine import session_scope
    from storage.generations import list_generations

    with session_scope(sqlite_engine) as session:
        assert list_generations(session) == []  # nothing half-written


def test_over_the_context_refused_before_generating(sqlite_engine, vllm_server):
    register(sqlite_engine, "think", base_url=vllm_server.base_url, model=vllm_server.model)
    before = metric(vllm_server.root_url, "vllm:request_success_total")
    context = asyncio.run(OpenAIBackend(base_url=vllm_server.base_url, model=vllm_server.model).context_length())
    with pytest.raises(UserError, match=rf"the prompt \(\d+ tokens\) plus the generation budget .* context of {context} tokens"):
        generate_to_row(sqlite_engine, model="think", request=GenerationRequest("Write a saga.", target_words=20000))
    assert metric(vllm_server.root_url, "vllm:request_success_total") == before


def test_length_control_with_think_budget(sqlite_engine, vllm_server):
    register(sqlite_engine, "think", base_url=vllm_server.base_url, model=vllm_server.model)
    request = GenerationRequest("Write a 60-word thank-you note to a neighbour.", target_words=60, think_budget=12, seed=7)
    gen = generate_to_row(sqlite_engine, model="think", request=request)
    assert gen.think.strip() and gen.extra["forced_answer"] is True and gen.extra["rounds"] >= 2
    assert 0.85 * 60 <= gen.answer_words <= 1.2 * 60, gen.answer
    assert gen.status in ("complete", "truncated") and gen.params["budget"]["think"] == 12
    assert gen.params["tokens_per_word"] > 1.0


def test_error_event_when_backend_refuses_mid_plan(vllm_server):
    """A server-side refusal (here: a bad sampling value slipped past the client) is an Error event."""
    from generation.backends.base import BackendError

    backend = OpenAIBackend(base_url=vllm_server.base_url, model=vllm_server.model, api="chat")
    request = BackendRequest(prompt="", system="s", user="u", assistant="", use_chat=True, max_tokens=100_000)
    with pytest.raises(BackendError, match="refused the request"):
        asyncio.run(collect(backend.stream(request)))


def test_prompt_bound_holds_on_the_real_tokenizer(vllm_server):
    prompts = ["Write.", "Écris une histoire sur un phare 🌊, s'il te plaît.", "写一篇关于灯塔的故事。" * 20,
               "a\n\n  b\t" * 50, "Text with <|im_end|> and <|im_start|>user inside it.", "x" * 3000]
    checked = 0
    for api in ("chat", "completions"):
        backend = OpenAIBackend(base_url=vllm_server.base_url, model=vllm_server.model, api=api)
        for template in ("think", "direct"):
            for prompt in prompts:
                rendered = render(template, prompt)
                request = BackendRequest(prompt=rendered.raw, system=rendered.system, user=rendered.user,
                                         assistant=rendered.prefill if api == "chat" else "",
                                         use_chat=api == "chat", max_tokens=1)

                async def both():
                    return await backend.prompt_tokens_at_most(request), await backend.prompt_tokens(request)

                at_most, exact = asyncio.run(both())
                assert exact <= at_most, (api, template, prompt[:30], exact, at_most)
                checked += 1
    assert checked == 24


def _long_prefix(words: int) -> str:
    """Varied prose of about ``words`` words (numbered so the tokenizer cannot fold repeats)."""
    lines = [f"Note {i}: the keeper logged wind from the {('north', 'south', 'east', 'west')[i % 4]} at {i % 37 + 3} knots, "
             f"and the lamp turned {i % 11 + 2} times before the tide came in." for i in range(words // 22 + 1)]
    return "\n".join(lines)


def test_prompt_plus_output_past_8192_tokens_through_the_real_server(sqlite_engine, vllm_server):
    """The paper's scale: a long prefix (cheap to prefill) and a short output, past the bundled
    model's trained 8,192 tokens, stored as one row."""
    register(sqlite_engine, "direct", base_url=vllm_server.base_url, model=vllm_server.model, template="direct")
    prompt = _long_prefix(6200) + "\n\nSummarise these notes in one sentence."
    gen = generate_to_row(sqlite_engine, model="direct", request=GenerationRequest(prompt, max_tokens=24, seed=3))
    assert gen.status in ("complete", "truncated") and gen.answer.strip()
    assert gen.prompt_tokens + gen.completion_tokens > 8192, (gen.prompt_tokens, gen.completion_tokens)


def test_model_card_max_tokens_15500_is_accepted(vllm_server):
    """The released model's card asks for max_tokens=15500: the plan accepts it and so does the
    server (the stream starts; it is cancelled after its first words)."""
    entry = ModelEntry(name="t", backend="openai", base_url=vllm_server.base_url, model_id=vllm_server.model,
                       template="think", sampling={"api": "chat"})
    from generation.service import prepare
    from generation.rendering import recommended_sampling

    max_tokens = recommended_sampling()["max_tokens"]
    assert max_tokens == 15500
    plan = asyncio.run(prepare(entry, GenerationRequest("Write a long story.", max_tokens=max_tokens, seed=1)))
    assert plan.budget.answer_max == max_tokens
    backend = OpenAIBackend(base_url=vllm_server.base_url, model=vllm_server.model, api="chat")
    rendered = render("think", "Write a long story.")
    request = BackendRequest(prompt=rendered.raw, system=rendered.system, user=rendered.user, assistant=rendered.prefill,
                             use_chat=True, max_tokens=plan.budget.total, seed=1)

    async def first_words():
        cancel = asyncio.Event()
        items = []
        async for item in backend.stream(request, cancel=cancel):
            items.append(item)
            if isinstance(item, Delta):
                cancel.set()
        return items

    items = asyncio.run(first_words())
    assert any(isinstance(i, Delta) and i.text for i in items) and items[-1] == Finish("cancelled", items[-1].prompt_tokens,
                                                                                      items[-1].completion_tokens)


def test_repetition_penalty_is_the_models_own_unless_the_request_sets_one(vllm_server):
    # The model's registered penalty reaches the server (the same seed writes otherwise without it),
    # and the request's own value wins over it; the stored params record what was used.
    looping = ModelEntry(name="p", backend="openai", base_url=vllm_server.base_url, model_id=vllm_server.model,
                         template="direct", sampling={"api": "chat", "repetition_penalty": 1.5})
    plain = ModelEntry(name="q", backend="openai", base_url=vllm_server.base_url, model_id=vllm_server.model,
                       template="direct", sampling={"api": "chat"})

    def answer(entry, **kw):
        request = GenerationRequest("List the colours of the rainbow, again and again.", max_tokens=48, seed=5,
                                    temperature=0.0, **kw)
        return "".join(e.text for e in asyncio.run(collect(stream_generation(entry, request))) if isinstance(e, Answer))

    unpenalised = answer(plain)
    assert answer(looping) != unpenalised
    assert answer(looping, repetition_penalty=1.0) == unpenalised
    with pytest.raises(UserError, match="repetition penalty must be between 1 and 2"):
        GenerationRequest("x", repetition_penalty=0.5)
