"""The Write tab: request, streamed plan and text, live length, Stop, downloads, history, arena.

No ``from __future__ import annotations`` here: Gradio reads ``request: gr.Request`` at run time.

Every handler is a short adapter: it asks ``ctx.require(request, "write")`` who is calling
(refusing visitors and roles that may not write, even for a hand-made POST), then calls the
plain functions of :mod:`webapp.writing`, :mod:`webapp.history` and :mod:`webapp.rendering`.
Updates are returned as ``{component: value}`` dicts. Streaming updates are sent at most every
``update_interval(words)``, once the text grew by a few words (:func:`update_due`), and at every
change of phase, which keeps the app's own CPU use small when many people write at once, and the
browser's: it renders the whole text at each update, so past ``STEADY_WORDS`` the updates come
less often as the text grows. The first update waits for the model's first words (at most
``FIRST_UPDATE_WAIT_S``), so the request reaches the model server before Gradio does any work
for the page. Gradio rebuilds every output component an update leaves out, so Generate streams
into a few cheap components, and a follow-up event shows the downloads, Send to arena and the
history once the text is stored.
"""

import logging
import tempfile
import time
from pathlib import Path
from typing import Optional

from generation.control import LOOPING
from generation.events import Error, Started
from generation.request import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, TEMPERATURE_RANGE
from generation.templates import METHODS
from storage.catalog import list_models
from storage.engine import session_scope
from storage.models import GenerationStatus
from writing.status import CONTINUABLE, loops_caught_note
from core.errors import UserError
from webapp.history import HISTORY_COLUMNS, history_rows, offer_to_arena, open_generation
from evaluation.metrics import distinct_n
from webapp.rendering import (
    REPETITION_MIN_WORDS, Summary, download_texts, progress_html, safe_markdown, slug, thinking_label,
)
from webapp.downloads import write_downloads
from webapp.writing import (
    CLOSED, ActiveRuns, WriteView, check_inputs, method_line, run_continuation, run_generation,
)

UPDATE_INTERVAL_S = 0.1
STEADY_WORDS = 2000
"""Up to this many words the page is updated every UPDATE_INTERVAL_S; past it, the interval grows
with the text (0.5 s at 10,000 words), so the browser's rendering per second stays what it is at 2,000."""
FIRST_UPDATE_WAIT_S = 0.25
GENERATE_LABEL, STOP_LABEL = "Generate", "Stop"
QUICK_CONCURRENCY = 32
log = logging.getLogger(__name__)


UPDATE_CHARS = 12
"""About two words: what UPDATE_INTERVAL_S brings at 20 words a second (the bundled model's pace here)."""
MAX_QUIET_S = 2.0
"""A slow model's text still shows at least this often, however little it wrote."""


def update_interval(words: int) -> float:
    """Least seconds between two streamed updates of a text of ``words`` words."""
    return UPDATE_INTERVAL_S * max(1.0, words / STEADY_WORDS)


def update_due(*, words: int, elapsed: float, new_chars: int) -> bool:
    """Whether the page gets the next update now, ``elapsed`` seconds and ``new_chars`` characters
    after the last one, with the answer at ``words`` words.

    No sooner than :func:`update_interval`, and then once the text grew by UPDATE_CHARS, scaled like
    the interval (60 characters at 10,000 words), or MAX_QUIET_S went by. An update costs the app
    and the browser in proportion to the text, so paced by time alone, a model that slows as its text
    grows made each 1,000 words cost more updates; paced by what was written, they cost the same
    whatever the model's speed.
    """
    scale = max(1.0, words / STEADY_WORDS)
    if elapsed < UPDATE_INTERVAL_S * scale:
        return False
    return new_chars >= UPDATE_CHARS * scale or elapsed >= MAX_QUIET_S


def model_names(engine) -> list[str]:
    with session_scope(engine) as session:
        return [m.name for m in list_models(session)]


METHOD_WORDS = {
    "think": "plans in its head, then writes in one request",
    "direct": "writes in one request",
    "plan": "long texts are planned in sections",
    "auto": "long texts are planned in sections",
}
"""What each template does, in the writer's words, for the model list."""


def model_label(entry) -> str:
    """The model list's entry: its name and what it is for (a ``description`` in the entry's
    JSON, else what it is and where it runs, and how it writes)."""
    from generation.language import is_bundled, language_name, model_languages

    languages = model_languages(entry)
    tongue = " and ".join(language_name(code) for code in languages) + " " if languages else ""
    what = (entry.sampling or {}).get("description")
    if not what:
        if is_bundled(entry):
            what = f"small {tongue}model on this machine"
        elif entry.backend == "local":
            what = f"{tongue}model from a folder on this machine"
        else:
            what = f"{tongue}model on a model server"
    method = METHOD_WORDS.get(entry.template, f"the {entry.template} template")
    return f"{entry.name} — {what}; {method}"


def model_choices(engine) -> list[tuple[str, str]]:
    """``(label, name)`` for the model list: the label says what each model is for."""
    with session_scope(engine) as session:
        return [(model_label(m), m.name) for m in list_models(session)]


def language_line(engine, *, model: str, prompt: str) -> Optional[str]:
    """The line refusing a request in a language the model does not write, or None."""
    from generation.language import language_refusal
    from storage.catalog import get_model

    with session_scope(engine) as session:
        entry = get_model(session, name=model)
        return language_refusal(entry, prompt) if entry is not None else None


def looping_note(answer: str) -> str:
    """What the page says of a text the loop guard stopped, and what to do."""
    from generation.loopguard import loop_position

    at = loop_position(answer)
    where = f" at about {at:,} words" if at is not None else ""
    return (f"The text started repeating itself{where}; it was stopped. "
            "Continue with a plan, or with a higher repetition penalty.")


def slow_note(words_per_s: float, seconds_left: Optional[float], target: Optional[int]) -> str:
    """What the page says while a model writes too slowly for what was asked."""
    pace = f"Writing slowly: this model writes {words_per_s:.1f} words a second"
    if seconds_left is None or not target:
        return pace + "."
    minutes = seconds_left / 60
    left = f"about {minutes / 60:.1f} hours" if minutes >= 90 else f"about {minutes:.0f} minutes"
    return f"{pace}; {target:,} words would take {left} more at this pace."


def sent(component, value):
    """``value`` as the page receives it, i.e. what Gradio's postprocess makes of it.

    The Write tab's events send their values as they are (postprocess off), since Gradio would
    spend a thread hop per output component on every streamed update; the values that need
    converting (files, tables) go through this instead.
    """
    value = component.postprocess(value)
    return value.model_dump() if hasattr(value, "model_dump") else value


def arena_battles(ctx, generation_id: int) -> int:
    """How many battles a text just sent is in, once the pool has formed the ones it can."""
    from arena.service import battles_of

    return battles_of(ctx.engine, generation_id=generation_id, settings=ctx.arena)


def sent_note(generation_id: int, battles: int) -> str:
    """What Send to arena says: the battles formed, or exactly what a battle still needs."""
    if battles:
        return (f"#{generation_id} is in the arena: {battles} battle{'s' if battles != 1 else ''} "
                "against another model's text for the same request, ready for annotators.")
    return (f"#{generation_id} is in the arena pool, but in no battle yet: a battle needs a complete text for "
            "the same request by another model. Write the same request with another model and send that too.")


def build_write_tab(gr, ctx) -> dict:
    """Add the Write tab's components to the open Blocks context.

    Returns ``{"model": dropdown}`` so the app's load event can fill the model picker.
    """
    runs: ActiveRuns = ctx.runs
    if ctx.downloads is None:
        # Inside Gradio's own cache, so Gradio serves the file where it is written (it would copy a
        # file from elsewhere to a path named by a hash), and the owner's id stays in the served path.
        cache = Path(gr.utils.get_upload_folder())
        cache.mkdir(parents=True, exist_ok=True)
        ctx.downloads = Path(tempfile.mkdtemp(prefix="lwz-downloads-", dir=cache))
    downloads = ctx.downloads

    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            request_box = gr.Textbox(label="Request", lines=6, max_lines=20, elem_id="lwz-request",
                                     placeholder="Write a 3,000-word story about a lighthouse keeper who ...")
            with gr.Row():
                target = gr.Number(label="Target length (words, optional)", precision=0, minimum=0,
                                   elem_id="lwz-target")
                # Choices are refreshed on page load; the server checks the name against the registry.
                model = gr.Dropdown(label="Model", choices=model_choices(ctx.engine), value=ctx.default_model,
                                    allow_custom_value=True, elem_id="lwz-model")
            # The writer may pick how the text is written; the line below says which method runs, and why.
            method = gr.Radio(list(METHODS), value=METHODS[0], label="Method", elem_id="lwz-method",
                              info="auto: the model's own (the bundled model plans above the length it holds)")
            method_why = gr.Markdown(safe_markdown(method_line(ctx.engine, model=ctx.default_model, target_words=None)),
                                     elem_id="lwz-method-why")
            with gr.Accordion("Advanced", open=False, elem_id="lwz-advanced"):
                temperature = gr.Slider(*TEMPERATURE_RANGE, value=DEFAULT_TEMPERATURE, step=0.05, label="Temperature")
                top_p = gr.Slider(0.05, 1.0, value=DEFAULT_TOP_P, step=0.05, label="top_p")
                seed = gr.Textbox(label="Seed (blank: random, and stored with the text)", elem_id="lwz-seed")
                think_budget = gr.Number(label="Think budget in tokens (blank: no cap)", precision=0, minimum=0,
                                         elem_id="lwz-think-budget")
            with gr.Row():
                generate_btn = gr.Button(GENERATE_LABEL, variant="primary", elem_id="lwz-generate")
                stop_btn = gr.Button(STOP_LABEL, variant="stop", interactive=False, elem_id="lwz-stop")
        with gr.Column(scale=3, min_width=320):
            status = gr.Markdown("", elem_id="lwz-status")
            progress = gr.HTML(progress_html(0, None), elem_id="lwz-progress")
            with gr.Accordion(thinking_label("pending"), open=True, elem_id="lwz-thinking") as thinking:
                think_md = gr.Markdown("", elem_id="lwz-think", sanitize_html=True, max_height=260)
            answer_md = gr.Markdown("", elem_id="lwz-answer", sanitize_html=True, min_height=120)
            with gr.Row(visible=False, elem_id="lwz-result-actions") as actions:  # shown once a text is stored
                dl_md = gr.DownloadButton("Download .md", elem_id="lwz-download-md", size="sm")
                dl_txt = gr.DownloadButton("Download .txt", elem_id="lwz-download-txt", size="sm")
                send_btn = gr.Button("Send to arena", interactive=False, elem_id="lwz-send", size="sm")
                continue_btn = gr.Button("Continue", interactive=False, elem_id="lwz-continue", size="sm")
    current = gr.State(None)
    with gr.Accordion("My writing", open=False, elem_id="lwz-history-panel"):
        history = gr.Dataframe(headers=HISTORY_COLUMNS, value=[], interactive=False, wrap=True,
                               elem_id="lwz-history")
        with gr.Row():
            open_id = gr.Number(label="Generation #", precision=0, elem_id="lwz-open-id")
            open_btn = gr.Button("Open", elem_id="lwz-open")
            refresh_btn = gr.Button("Refresh", elem_id="lwz-refresh")

    # Gradio rebuilds every output component an update leaves out (a file or table one costs
    # milliseconds), so the streaming event has few outputs, all cheap; what only the end shows
    # (downloads, Send to arena, the history) comes from a follow-up event, ``show_result``.
    stream_outputs = [status, progress, thinking, think_md, answer_md, current, actions, stop_btn, generate_btn]
    result_outputs = [actions, dl_md, dl_txt, send_btn, continue_btn, history]

    def who_or_raise(request, action="write"):
        try:
            return ctx.require(request, action)
        except UserError as exc:
            raise gr.Error(str(exc)) from None

    def stored_view(g):
        """Updates showing a stored generation's text as it ended, with its summary."""
        summary = Summary(words=g.answer_words, target=g.target_words, completion_tokens=g.completion_tokens,
                          seconds=None if g.duration_ms is None else g.duration_ms / 1000, status=g.status,
                          finish_reason=g.finish_reason, error=g.error, generation_id=g.id,
                          distinct4=distinct_n(g.answer, 4) if g.answer_words >= REPETITION_MIN_WORDS else None)
        arena_note = " · in the arena pool" if g.in_pool else ""
        loop_note = "  \n**" + safe_markdown(looping_note(g.answer)) + "**" if g.finish_reason == LOOPING else ""
        caught = loops_caught_note(g.params, g.finish_reason)
        loop_note += "  \n" + safe_markdown(caught) if caught else ""
        return {
            status: summary.markdown() + arena_note + loop_note,
            progress: progress_html(g.answer_words, g.target_words),
            think_md: safe_markdown(g.think),
            answer_md: safe_markdown(g.answer),
            current: g.id,
        }

    def result_actions(g, who):
        """Updates offering a stored generation's downloads and, once complete, Send to arena."""
        files = write_downloads(downloads, owner_id=who.user_id, stem=f"{slug(g.request)}-{g.id}", texts=download_texts(
            request=g.request, think=g.think, answer=g.answer, model=g.model, generation_id=g.id))
        return {
            actions: gr.Row(visible=True),
            dl_md: sent(dl_md, files["md"]),
            dl_txt: sent(dl_txt, files["txt"]),
            send_btn: gr.Button(interactive=g.status == GenerationStatus.complete and not g.in_pool),
            continue_btn: gr.Button(interactive=g.status in CONTINUABLE),
        }

    async def generate(prompt, target_words, model_name, temp, top, seed_value, budget, method_value,
                       request: gr.Request):
        who = who_or_raise(request)
        try:
            inputs = check_inputs(prompt=prompt, target_words=target_words, model=model_name, temperature=temp,
                                  top_p=top, seed=seed_value, think_budget=budget, method=method_value,
                                  known_models=model_names(ctx.engine))
            refusal = language_line(ctx.engine, model=inputs.model, prompt=inputs.prompt)
            if refusal is not None:
                raise UserError(refusal)
            run = runs.add(owner=who.name, session=getattr(request, "session_hash", None))
        except UserError as exc:
            yield {status: "**Not started:** " + safe_markdown(str(exc))}
            return
        # The model server is at work from here on. The page's first update waits for the model's
        # first words (or a place in the queue), up to FIRST_UPDATE_WAIT_S: one update instead of
        # two, and none of Gradio's work on the page's side while the request goes out.
        events = run_generation(ctx.engine, inputs=inputs, author_id=who.user_id, run=run,
                                tick_after=FIRST_UPDATE_WAIT_S)
        async for update in stream_run(events, run, WriteView(started_at=time.monotonic()), inputs.target_words, who):
            yield update

    async def continue_text(generation_id, request: gr.Request):
        """Continue: the shown text (cut, short, interrupted) grows in its own row, streamed like Generate."""
        who = who_or_raise(request)
        try:
            g = open_generation(ctx.engine, who=who, generation_id=generation_id)
            run = runs.add(owner=who.name, session=getattr(request, "session_hash", None))
        except UserError as exc:
            yield {status: "**Not continued:** " + safe_markdown(str(exc))}
            return
        events = run_continuation(ctx.engine, generation_id=g.id, author_id=who.user_id, run=run,
                                  tick_after=FIRST_UPDATE_WAIT_S)
        view = WriteView(started_at=time.monotonic(), think=g.think, answer=g.answer)
        async for update in stream_run(events, run, view, g.target_words, who):
            yield update

    async def stream_run(events, run, view, target_words, who):
        """The page's updates while ``events`` stream into ``view``, then the stored row's."""
        starting = {  # goes with the first update: the last text's downloads hidden, Stop on, Generate off
            actions: gr.Row(visible=False),
            stop_btn: gr.Button(interactive=True), generate_btn: gr.Button(interactive=False),
        }
        last_sent, phase, shown, sent_chars = 0.0, None, {"label": None}, 0
        try:
            try:
                async for event in events:
                    now = time.monotonic()
                    if event is not None:  # None: FIRST_UPDATE_WAIT_S went by
                        view.apply(event, now)
                    if view.generation_id is not None and run.generation_id is None:
                        run.generation_id = view.generation_id
                    if starting:
                        if isinstance(event, Started):  # nothing to show yet
                            continue
                        phase, last_sent, sent_chars = view.phase(), now, len(view.think) + len(view.answer)
                        yield {**live_updates(view, now, target_words, shown), **starting}  # the toggles win
                        starting = {}
                        continue
                    new_phase, chars = view.phase(), len(view.think) + len(view.answer)
                    if new_phase != phase or view.ended or update_due(
                            words=view.answer_words, elapsed=now - last_sent, new_chars=chars - sent_chars):
                        phase, last_sent, sent_chars = new_phase, now, chars
                        yield live_updates(view, now, target_words, shown)
            except UserError as exc:
                view.apply(Error(str(exc)), time.monotonic())
            except Exception as exc:  # a bug, not a user error: keep serving, say so, log the trace
                log.exception("generation failed")
                view.apply(Error(f"internal error ({type(exc).__name__}); the text so far is kept"), time.monotonic())
            final = {**live_updates(view, time.monotonic(), target_words, shown), **starting}
            final.update({stop_btn: gr.Button(interactive=False), generate_btn: gr.Button(interactive=True)})
            if view.generation_id is not None:
                stored = stored_view(open_generation(ctx.engine, who=who, generation_id=view.generation_id))
                final.update(stored)
                if view.error:
                    final[status] = "**Error:** " + safe_markdown(view.error) + "  \n" + stored[status]
            elif view.error:
                final[status] = "**Error:** " + safe_markdown(view.error)
            yield final
        finally:
            run.stop(CLOSED)  # a no-op once the generation ended; stops it if the page left before reading it
            runs.remove(run)

    def live_updates(view, now, target_words, shown: dict):
        """The page's updates for ``view``; the Thinking panel only when its title changed (``shown``
        holds the title on the page), since each property update makes Gradio rebuild the component."""
        label = thinking_label(*view.thinking_state(now))
        if view.queue_position is not None:
            note = f"Waiting for the model: you are **#{view.queue_position}** in the queue."
        elif view.ended:
            note = "Finished."
        elif view.answer:
            slow = view.slow(now, target_words)
            note = slow_note(*slow, target_words) if slow is not None else "Writing…"
        elif view.think_started is not None:
            note = "Planning…"
        else:
            note = "Starting…"
        updates = {
            status: note,
            progress: progress_html(view.answer_words, target_words),
            think_md: safe_markdown(view.think),
            answer_md: safe_markdown(view.answer),
            current: view.generation_id,
            # The buttons' own labels, unchanged: an output an update leaves out is rebuilt by
            # Gradio (a Button costs about 1 ms with its config), a raw value only sets the value.
            stop_btn: STOP_LABEL, generate_btn: GENERATE_LABEL,
        }
        if label != shown["label"]:
            updates[thinking] = gr.Accordion(label=label)
            shown["label"] = label
        return updates

    def page_closed(request: gr.Request):
        """Gradio calls this when a page's session ends (the tab closed or reloaded)."""
        try:
            who = ctx.identify(request)
        except UserError:
            return
        runs.cancel(owner=who.name, session=getattr(request, "session_hash", None), reason=CLOSED)

    def stop(request: gr.Request):
        who = who_or_raise(request)
        stopped = runs.cancel(owner=who.name, session=getattr(request, "session_hash", None))
        return {status: "Stopping…" if stopped else "Nothing is being written."}

    def show_result(generation_id, request: gr.Request):
        """After Generate: the downloads and Send to arena of what was stored, and the history."""
        who = who_or_raise(request)
        updates = {history: sent(history, history_rows(ctx.engine, who=who))}
        if generation_id is not None:
            try:
                updates.update(result_actions(open_generation(ctx.engine, who=who, generation_id=generation_id), who))
            except UserError as exc:
                raise gr.Error(str(exc)) from None
        return updates

    def reopen(generation_id, request: gr.Request):
        who = who_or_raise(request)
        try:
            g = open_generation(ctx.engine, who=who, generation_id=generation_id)
        except UserError as exc:
            return {status: "**Cannot open:** " + safe_markdown(str(exc))}
        updates = {**stored_view(g), **result_actions(g, who)}
        state, seconds = ("done", None) if g.think else ("none", None)
        updates.update({
            request_box: g.request, target: g.target_words, model: g.model,
            thinking: gr.Accordion(label=thinking_label(state, seconds)),
        })
        return updates

    def reopen_selected(evt: gr.SelectData, request: gr.Request):
        row = evt.row_value or []
        return reopen(row[0] if row else None, request)

    def refresh(request: gr.Request):
        who = who_or_raise(request)
        return {history: sent(history, history_rows(ctx.engine, who=who))}

    def send(generation_id, request: gr.Request):
        who = who_or_raise(request)
        try:
            gid = offer_to_arena(ctx.engine, who=who, generation_id=generation_id)
        except UserError as exc:
            return {status: "**Not sent:** " + safe_markdown(str(exc))}
        return {status: sent_note(gid, arena_battles(ctx, gid)),
                send_btn: gr.Button(interactive=False), history: sent(history, history_rows(ctx.engine, who=who))}

    def explain_method(target_words, model_name, method_value, request: gr.Request):
        """The "which method, and why" line for the form as it stands (nothing for a caller who may not write)."""
        try:
            ctx.require(request, "write")
        except UserError:
            return ""
        return safe_markdown(method_line(ctx.engine, model=model_name, target_words=target_words, method=method_value))

    form = [request_box, target, model, temperature, top_p, seed, think_budget, method]
    # Raw values in and out: check_inputs checks the form's values, and the outputs are sent as
    # the page shows them (see ``sent``); Gradio's pre- and postprocess would cost a thread hop
    # per component, before the generation could start and on every streamed update.
    raw = dict(preprocess=False, postprocess=False)
    quick = dict(concurrency_limit=QUICK_CONCURRENCY, postprocess=False)
    for trigger, api_names in ((generate_btn.click, ("write", "write_result")), (request_box.submit, (False, False))):
        # ``success``: a caller refused by ``generate`` is told once, not again by the follow-up.
        trigger(generate, form, stream_outputs, concurrency_limit=ctx.settings.concurrency, show_progress="hidden",
                api_name=api_names[0], **raw).success(
            show_result, [current], result_outputs, show_progress="hidden", api_name=api_names[1], **quick)
    continue_btn.click(continue_text, [current], stream_outputs, concurrency_limit=ctx.settings.concurrency,
                       show_progress="hidden", api_name="continue_writing", **raw).success(
        show_result, [current], result_outputs, show_progress="hidden", api_name=False, **quick)
    stop_btn.click(stop, None, [status], api_name="stop", **quick)
    # Closing or reloading the page ends its session: stop what it was writing, queued or running.
    gr.context.Context.root_block.unload(page_closed)
    reopened = [status, progress, thinking, think_md, answer_md, current, actions, dl_md, dl_txt, send_btn,
                continue_btn, request_box, target, model]
    open_btn.click(reopen, [open_id], reopened, api_name="open_writing", **quick)
    history.select(reopen_selected, None, reopened, api_name=False, **quick)
    refresh_btn.click(refresh, None, [history], api_name="my_writing", **quick)
    for changed in (target.change, model.change, method.change):
        changed(explain_method, [target, model, method], [method_why], show_progress="hidden", api_name=False,
                **raw, concurrency_limit=QUICK_CONCURRENCY)
    send_btn.click(send, [current], [status, send_btn, history], api_name="send_to_arena", **quick)
    return {"model": model, "history": history}
