"""The Arena tab: read two anonymous texts side by side, vote, then see who wrote them.

No `from __future__ import annotations` here: Gradio reads the `gr.Request` annotation at run time.

Handlers are thin adapters over :mod:`arena.service`. Identity comes from
``request.username`` (through ``ctx.require``), never from client state; the battle id the
page holds is only a claim that the server checks against the annotator's assignments.
Model names reach the page only in the answer to a vote, sent once the vote is stored (and
from the API-only reveal event, which is refused until then). Next battle and a vote are each
one POST outside Gradio's queue (``queue=False``): no queued events, no event stream, the
vote's answer carrying the reveal.

Everything stored that the tab shows (the request, both plans, both answers, model names,
live streams too) goes through :func:`webapp.rendering.safe_markdown`, the Write tab's
renderer: a writer's text never reaches an annotator's page as HTML.
"""

import logging
import random
import time
from pathlib import Path

from core.errors import UserError
from arena.service import (
    my_counts, next_battle, reveal_battle, skip_battle, vote_and_reveal,
)
from webapp.reading import TEXT_BOX_HEIGHT, reading_panel, sync_js, vote_js
from webapp.rendering import safe_markdown

GUIDELINES = Path(__file__).with_name("guidelines.md")
VOTE_LABELS = {"A is better": "left", "B is better": "right", "Tie": "tie", "Both bad": "both_bad"}
CRITERION_LABELS = {"length_fit": "Length fit", "coherence": "Coherence", "structure": "Structure", "style": "Style"}
SIDE_CHOICES = {"A": "left", "B": "right", "Tie": "tie"}
CONCURRENCY = 64
LIVE_SIDE_FAILED = "this side stopped: its model server failed (the details are in the server log)"
log = logging.getLogger(__name__)


def winner_from_label(label: str) -> str:
    """Map a button label to a stored winner; any other string is passed on for the server to refuse."""
    return VOTE_LABELS.get(label, label) if isinstance(label, str) else label


def criteria_from_choices(values) -> dict:
    """``{criterion: left/right/tie}`` from the four optional radios (unset ones left out)."""
    out = {}
    for key, value in zip(CRITERION_LABELS, values):
        if value:
            out[key] = SIDE_CHOICES.get(value, value) if isinstance(value, str) else value
    return out


def battle_id_of(value) -> int:
    """The battle id the page holds, checked to be one a table can hold (see :func:`storage.engine.row_id`)."""
    from storage.engine import row_id

    try:
        unset = value in (None, "") or float(value) <= 0
    except (TypeError, ValueError, OverflowError):
        unset = False
    if unset:
        raise UserError("no battle loaded: press Next battle")
    return row_id(value, what="battle")


def reveal_text(shown: dict) -> str:
    """Who wrote A and B, with their word counts (from :func:`arena.service.reveal_battle`)."""
    left, right = safe_markdown(shown["left"]["model"]), safe_markdown(shown["right"]["model"])
    return (f"**A** was written by **{left}** ({shown['left']['words']:,} words) · "
            f"**B** by **{right}** ({shown['right']['words']:,} words). Press Next battle.")


def request_text(prompt: str, target_words=None) -> str:
    """The request as the tab shows it above both texts (escaped)."""
    target = f" (target: {target_words:,} words)" if target_words else ""
    return f"**Request{target}:**\n\n{safe_markdown(prompt)}"


def vote_status(ack: dict) -> str:
    """What the page says once a vote went through: stored now, or the earlier vote kept."""
    note = " It was cast faster than the texts can be read, so it is flagged." if ack["flagged"] else ""
    if ack["created"]:
        return f"Vote stored.{note}"
    return f"You had already voted on this battle; your first vote stands and this one was not stored.{note}"


def counts_text(counts: dict) -> str:
    return (f"**Your votes:** {counts['votes']} · **flagged as too fast:** {counts['flagged']} · "
            f"**skipped:** {counts['skipped']}")


def build_arena_tab(gr, ctx) -> None:
    """Add the Arena's components and events to the open Blocks context (annotators, researchers, admins)."""
    settings, refresher = ctx.arena, ctx.arena_pool

    with gr.Accordion("Guidelines", open=False):
        gr.Markdown(GUIDELINES.read_text(encoding="utf-8"))
    counts = gr.Markdown("", elem_id="arena-counts")
    status = gr.Markdown("Press **Next battle** to start.", elem_id="arena-status")
    battle_id = gr.Number(value=0, visible="hidden", precision=0, elem_id="arena-battle-id")
    request_md = gr.Markdown("", elem_id="arena-request")
    with gr.Row():
        show_think = gr.Checkbox(label="Show the plans (think parts)", value=False, elem_id="arena-show-think")
        sync = gr.Checkbox(label="Scroll both texts together", value=False, elem_id="arena-sync")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=360):
            gr.Markdown("### A")
            think_a = gr.Markdown("", visible=False, elem_id="arena-think-a")
            reading_panel(gr, "a")
            text_a = gr.Markdown("", max_height=TEXT_BOX_HEIGHT, elem_id="arena-text-a")
        with gr.Column(min_width=360):
            gr.Markdown("### B")
            think_b = gr.Markdown("", visible=False, elem_id="arena-think-b")
            reading_panel(gr, "b")
            text_b = gr.Markdown("", max_height=TEXT_BOX_HEIGHT, elem_id="arena-text-b")
    # Filled by the page just before a vote (webapp/reading.py): how far each side was read.
    reading = gr.Textbox(value="", visible="hidden", elem_id="arena-reading")
    with gr.Accordion("Per-criterion choices (optional)", open=False):
        with gr.Row():
            radios = [gr.Radio(list(SIDE_CHOICES), label=label, value=None) for label in CRITERION_LABELS.values()]
    reason = gr.Textbox(label="Reason (optional, at most 5,000 characters)", lines=2, elem_id="arena-reason")
    with gr.Row(visible=False, elem_id="arena-vote-row") as vote_row:  # shown while a battle awaits a vote
        vote_buttons = [gr.Button(label, variant="primary") for label in VOTE_LABELS]
        skip_button = gr.Button("Skip")
    reveal_md = gr.Markdown("", elem_id="arena-reveal")
    next_button = gr.Button("Next battle", elem_id="arena-next")
    with gr.Accordion("Live battle (optional): two anonymous models write your request at once", open=False):
        live_prompt = gr.Textbox(label="Request", lines=2, elem_id="arena-live-prompt")
        live_target = gr.Number(label="Target words (optional)", value=None, precision=0)
        live_button = gr.Button("Start live battle", elem_id="arena-live-start")

    def fail(exc: UserError):
        raise gr.Error(str(exc), print_exception=False) from None

    def cleared(message: str, counts_value: str | None = None):
        updates = {
            status: message, battle_id: 0, request_md: "", think_a: "", think_b: "", text_a: "", text_b: "",
            reveal_md: "", reason: "", vote_row: gr.update(visible=False), **{r: None for r in radios},
        }
        if counts_value is not None:
            updates[counts] = counts_value
        return updates

    def load(request: gr.Request):
        try:
            who = ctx.require(request, "vote")
            refresher.maybe_refresh(ctx.engine)
            result = next_battle(ctx.engine, annotator_id=who.user_id, settings=settings)
            tally = counts_text(my_counts(ctx.engine, annotator_id=who.user_id))
        except UserError as exc:
            fail(exc)
        if "message" in result:
            return cleared(result["message"], tally)
        view = result["battle"]
        return {
            **cleared("Read both texts, then vote.", tally),
            battle_id: view["battle_id"],
            request_md: request_text(view["prompt"], view.get("target_words")),
            think_a: safe_markdown(view["left"]["think"]) or "_(no plan)_",
            think_b: safe_markdown(view["right"]["think"]) or "_(no plan)_",
            text_a: safe_markdown(view["left"]["answer"]),
            text_b: safe_markdown(view["right"]["answer"]),
            vote_row: gr.update(visible=True),
        }

    def vote(label: str, battle, length_fit, coherence, structure, style, why: str, read, request: gr.Request):
        try:
            who = ctx.require(request, "vote")
            ack = vote_and_reveal(
                ctx.engine, annotator_id=who.user_id, battle_id=battle_id_of(battle),
                winner=winner_from_label(label),
                criteria=criteria_from_choices([length_fit, coherence, structure, style]),
                reason=why, settings=settings, reading=read,
            )
        except UserError as exc:
            fail(exc)
        return {
            status: vote_status(ack),
            counts: counts_text(ack["counts"]),
            vote_row: gr.update(visible=False),
            reveal_md: reveal_text(ack["reveal"]),
        }

    def reveal(battle: float | None, request: gr.Request) -> str:
        """The reveal on its own (API only): refused until this annotator's vote is stored."""
        try:
            who = ctx.require(request, "vote")
            return reveal_text(reveal_battle(ctx.engine, annotator_id=who.user_id, battle_id=battle_id_of(battle)))
        except UserError as exc:
            fail(exc)

    def skip(battle, request: gr.Request):
        try:
            who = ctx.require(request, "vote")
            number = battle_id_of(battle)
            if not skip_battle(ctx.engine, annotator_id=who.user_id, battle_id=number):
                raise UserError(f"battle {number} is not an open battle of yours: nothing was skipped")
        except UserError as exc:
            fail(exc)
        return {status: "Skipped."}

    async def live(prompt: str, target, request: gr.Request):
        from arena.live import live_battle
        from arena.pool import load_name_words
        from generation.events import Answer, Error, Think

        try:
            who = ctx.require(request, "vote")
            target_words = int(target) if target not in (None, "", 0) else None
            words = load_name_words(settings.name_words_file)
        except (UserError, ValueError) as exc:
            fail(UserError(str(exc)))
        texts = {"left": ["", ""], "right": ["", ""]}
        panes = {"left": (think_a, text_a), "right": (think_b, text_b)}
        yield {**cleared("Both sides are writing; each streams at its own pace."), counts: gr.update()}
        seed = random.SystemRandom().randrange(2**31)
        last = 0.0
        try:
            async for side, event in live_battle(ctx.engine, annotator_id=who.user_id, prompt=prompt or "",
                                                 seed=seed, target_words=target_words, name_words=words):
                if side == "battle":
                    if "battle_id" not in event:
                        yield {status: safe_markdown(event["message"])}
                        return
                    yield {status: "Both finished. Read both texts, then vote.", battle_id: event["battle_id"],
                           request_md: request_text(prompt or "", target_words), vote_row: gr.update(visible=True)}
                    return
                if isinstance(event, (Think, Answer)):
                    texts[side][0 if isinstance(event, Think) else 1] += event.text  # escaped whole when shown
                elif isinstance(event, Error):
                    # The backend's message may name its host and port: the log keeps it, the page does not.
                    log.warning("live battle side %s failed: %s", side, event.message)
                    texts[side][1] += f"\n\n_({LIVE_SIDE_FAILED})_"
                now = time.monotonic()
                if now - last >= 0.2 or isinstance(event, Error):
                    last = now
                    yield {pane: safe_markdown(texts[s][i]) for s, pair in panes.items() for i, pane in enumerate(pair)}
        except UserError as exc:
            fail(exc)

    def toggle(show: bool):
        return gr.update(visible=show), gr.update(visible=show)

    # Raw values in and out (preprocess/postprocess off): every handler checks its inputs itself,
    # and each component would otherwise cost a thread hop per event.
    raw = dict(preprocess=False, postprocess=False, concurrency_limit=CONCURRENCY)
    shown_outputs = [status, battle_id, request_md, think_a, think_b, text_a, text_b, reveal_md, reason,
                     vote_row, counts, *radios]
    # Next battle is one POST outside the queue too: it streams nothing, so a queued event's join,
    # event stream and queue bookkeeping would only add cost.
    next_button.click(load, None, shown_outputs, api_name="arena_next", queue=False, preprocess=False,
                      postprocess=False)
    vote_inputs = [None, battle_id, *radios, reason, reading]  # None: the button itself
    for button in vote_buttons:
        # One POST outside the queue (/gradio_api/run/...), answered with the reveal once the vote
        # is stored; the handler checks who asks as every queued event does. The page's reading
        # report rides in the last input (an API caller may send "" for none).
        button.click(
            vote, [button, *vote_inputs[1:]], [status, counts, vote_row, reveal_md],
            js=vote_js(len(vote_inputs)),
            api_name="arena_vote" if button is vote_buttons[0] else None,
            api_visibility="public" if button is vote_buttons[0] else "private",
            trigger_mode="once", queue=False, preprocess=False, postprocess=False,
        )
    gr.api(reveal, api_name="arena_reveal", api_visibility="private", concurrency_limit=CONCURRENCY,
           concurrency_id="arena_reveal")
    skip_button.click(skip, [battle_id], [status], api_name="arena_skip", **raw).then(
        load, None, shown_outputs, api_visibility="private", concurrency_id="arena_next", **raw)
    live_button.click(live, [live_prompt, live_target], shown_outputs, api_name="arena_live",
                      concurrency_limit=8, concurrency_id="arena_live")
    show_think.change(toggle, show_think, [think_a, think_b], queue=False, api_visibility="private")
    sync.change(None, sync, None, js=sync_js(), queue=False, api_visibility="private")
