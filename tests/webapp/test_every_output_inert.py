"""Every event of the whole app, walked: no stored text reaches a Markdown or HTML output as markup.

The app is built in-process on a database whose request, plans, answers and a model name hold
the overlay payload of issue 13. Every Blocks event is then called, in the order it is
registered, with inputs made from its components (the payload for text boxes, the battle and
generation ids for the id fields), as a signed-in admin who may do everything. Generation and
the live battle's backends are replaced by streams that yield the payload, so the Write and
live paths are walked too. Each value sent to a ``gr.Markdown`` or ``gr.HTML`` output is
checked: the payload's tags, links and bare URLs must never appear as markup, and the escaped
payload must have been shown in every pane that shows stored text (so the walk cannot pass by
showing nothing). A handler may refuse (``gr.Error``, one line for the user); one that raises
anything else fails the walk, so a crashing handler cannot drop out of the check.
"""

import asyncio
import inspect
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

PAYLOAD = ('<div style="position:fixed;inset:0;z-index:9999">OVERLAY</div>'
           '<img src=http://evil.invalid/p.png><form action=http://evil.invalid/f><input name=x></form>'
           '[link](http://evil.invalid/l) ![pic](http://evil.invalid/i.png)'
           ' bare http://evil.invalid/b and www.evil.invalid/w and mail x@evil.invalid')
LINKED_NAME = "<img src=http://evil.invalid/m.png>[n](http://evil.invalid/n)"
"""A model name as an attacker registers it (issue 25): it has no battles, so the Leaderboard's
"not rated" note names it."""
LIVE_FAILURE = "cannot reach the model server at http://10.9.8.7:8123/v1: connection refused"
# The payload's own tags and links, as markup (escaped, they read "&lt;div ..." and "\\](http...").
# A bare URL or address is markup too: GFM turns http://..., www.... and x@host into live links.
MARKUP = re.compile(r'<div style="position:fixed|<img src=http|<form action=|<input name=x|(?<!\\)\]\(http'
                    r'|(?<!\\)://evil|www\.evil|(?<!\\)@evil', re.I)
SHOWS_STORED_TEXT = {"arena-request", "arena-think-a", "arena-think-b", "arena-text-a", "arena-text-b",
                     "arena-reveal", "lwz-think", "lwz-answer", "lwz-leaderboard-summary"}


def _seed(engine):
    from arena.rules import ArenaSettings
    from arena.service import refresh_pool
    from storage.catalog import add_model, get_or_add_prompt
    from storage.engine import session_scope
    from storage.generations import create_generation, finish_generation, set_in_pool
    from storage.users import add_user

    with session_scope(engine) as s:
        root = add_user(s, name="root", role="admin", password="pw")
        writer = add_user(s, name="wren", role="writer", password="pw")
        models = [add_model(s, name="m1" + PAYLOAD[:40], backend="local"), add_model(s, name="m2", backend="local")]
        add_model(s, name=LINKED_NAME, backend="local")
        prompt, _ = get_or_add_prompt(s, text="Request " + PAYLOAD)
        ids = []
        for model in models:
            g = create_generation(s, prompt_id=prompt.id, model_id=model.id, author_id=writer.id, params={"seed": 1})
            finish_generation(s, generation_id=g.id, status="complete", finish_reason="stop",
                              think="plan " + PAYLOAD, answer="text " + PAYLOAD, answer_words=9,
                              completion_tokens=10, duration_ms=1000.0)
            set_in_pool(s, generation_id=g.id)
            ids.append(g.id)
        names = [m.name for m in models]
    assert refresh_pool(engine, settings=ArenaSettings()) == 1
    return {"root": root.id, "gid": ids[0], "models": names}


def _fake_generation(gid):
    async def run_generation(engine, **_kwargs):
        from generation.events import Answer, Done, Started, Think

        for event in (Started(gid), Think("plan " + PAYLOAD), Answer("text " + PAYLOAD), Done("stop")):
            yield event
    return run_generation


def _fake_live(engine):
    async def live_battle(_engine, *, annotator_id, prompt, **_kwargs):
        from arena.live import finish_live_battle  # noqa: F401  (the real module is loaded)
        from generation.events import Answer, Error, Think
        from storage.engine import session_scope
        from storage.models import Battle
        from storage.votes import assign_battle

        yield "left", Think("plan " + PAYLOAD)
        yield "right", Answer("text " + PAYLOAD)
        yield "left", Error(LIVE_FAILURE)
        with session_scope(engine) as s:
            battle = s.get(Battle, 1)
            live = Battle(prompt_id=battle.prompt_id, left_generation_id=battle.right_generation_id,
                          right_generation_id=battle.left_generation_id, mode="live", extra={})
            s.add(live)
            s.flush()
            assign_battle(s, battle_id=live.id, annotator_id=annotator_id)
            live_id = live.id
        yield "battle", {"battle_id": live_id}
    return live_battle


def _input_value(component, ids, gr):
    elem = component.elem_id or ""
    if elem == "arena-battle-id":
        return ids["battle"]
    if elem in ("lwz-open-id",) or isinstance(component, gr.State):
        return ids["gid"]
    if elem == "lwz-seed" or component.visible in (False, "hidden"):  # hidden fields the page fills itself
        return component.value
    if isinstance(component, gr.Textbox):
        return PAYLOAD
    if isinstance(component, gr.Button):
        return component.value
    if isinstance(component, gr.Dropdown):
        return ids["models"][1]
    if isinstance(component, gr.Number):
        return None
    if isinstance(component, gr.Checkbox):
        return True
    return component.value


async def _call(fn, args, request, evt, gr):
    params = inspect.signature(fn).parameters.values()
    values, given = [], iter(args)
    for p in params:
        if p.annotation is gr.Request or p.name == "request":
            values.append(request)
        elif p.annotation is gr.SelectData:
            values.append(evt)
        else:
            values.append(next(given, None))
    result = fn(*values)
    if inspect.isasyncgen(result):
        return [item async for item in result]
    if inspect.isgenerator(result):
        return list(result)
    if inspect.isawaitable(result):
        return [await result]
    return [result]


def _text_of(value):
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("value") if isinstance(value.get("value"), str) else None
    inner = getattr(value, "value", None)
    return inner if isinstance(inner, str) else None


def _pairs(outputs, result):
    if isinstance(result, dict):
        return list(result.items())
    if len(outputs) == 1:
        return [(outputs[0], result)]
    if isinstance(result, (list, tuple)):
        return list(zip(outputs, result))
    return []


def _walk(engine, ids, monkeypatch):
    import gradio as gr

    from webapp.app import AppContext, ServeSettings, build_app

    monkeypatch.setattr("webapp.write_tab.run_generation", _fake_generation(ids["gid"]))
    monkeypatch.setattr("arena.live.live_battle", _fake_live(engine))
    ctx = AppContext(engine=engine, settings=ServeSettings(auth=True), default_model=ids["models"][1])
    demo = build_app(ctx)
    request = gr.Request(username="root", session_hash="walker")
    evt = gr.SelectData(None, {"index": [0, 0], "value": ids["gid"], "row_value": [ids["gid"]]})
    shown, called, failed = {}, [], []

    async def walk():
        for block_fn in demo.fns.values():
            if block_fn.fn is None:
                continue
            from sqlmodel import select

            from storage.engine import session_scope
            from storage.models import Assignment

            with session_scope(engine) as s:  # the id field holds the battle the page was last given
                open_ids = list(s.exec(select(Assignment.battle_id).order_by(Assignment.id)))
            ids["battle"] = open_ids[-1] if open_ids else 1
            args = [_input_value(c, ids, gr) for c in block_fn.inputs]
            try:
                results = await _call(block_fn.fn, args, request, evt, gr)
            except gr.Error as exc:  # a refusal shows no stored text; the walk goes on
                failed.append(f"{block_fn.name}: {exc}")
                continue
            except Exception as exc:
                raise AssertionError(f"{block_fn.name} raised {type(exc).__name__}: {exc}") from exc
            called.append(block_fn.name)
            for result in results:
                for component, value in _pairs(block_fn.outputs, result):
                    if not isinstance(component, (gr.Markdown, gr.HTML)):
                        continue
                    text = _text_of(value)
                    if text is None:
                        continue
                    assert not MARKUP.search(text), f"{block_fn.name} sends markup to #{component.elem_id}: {text[:300]}"
                    assert "10.9.8.7" not in text, f"{block_fn.name} shows a backend address: {text[:300]}"
                    if "position\\:fixed" in text:  # the payload was shown, as (escaped) text
                        shown.setdefault(component.elem_id, set()).add(block_fn.name)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, walk()).result()
    return shown, called, failed


def test_no_event_sends_stored_text_as_markup(sqlite_engine, monkeypatch):
    ids = _seed(sqlite_engine)
    shown, called, failed = _walk(sqlite_engine, ids, monkeypatch)
    for name in ("load", "vote", "live", "generate", "reopen"):
        assert name in called, f"the walk never ran {name}: {called}; failures: {failed}"
    missing = SHOWS_STORED_TEXT - set(shown)
    assert not missing, f"never saw the escaped payload in {sorted(missing)}; saw {shown}"
    assert {"load", "live"} <= shown["arena-text-a"] | shown["arena-text-b"] | shown["arena-think-a"]


@pytest.mark.parametrize("raw", [PAYLOAD])
def test_arena_request_and_reveal_helpers_escape(raw):
    from webapp.arena_tab import request_text, reveal_text

    assert not MARKUP.search(request_text(raw, 3000))
    shown = {"left": {"model": raw, "words": 3}, "right": {"model": "b", "words": 4}}
    assert not MARKUP.search(reveal_text(shown)) and "OVERLAY" in reveal_text(shown)
