"""Build the Gradio Blocks app. Handlers are short adapters over plain functions.

Each tab lives in its own module with a ``build_*_tab(gr, ctx)`` function that adds its
components to the open Blocks context. Permission checks happen inside the handlers, through
``ctx.require(request, action)``; tab visibility per role (set when the page loads) is only a
convenience on top of them.

No ``from __future__ import annotations`` here: this module defines a Gradio handler, and
Gradio reads ``request: gr.Request`` at run time.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from sqlalchemy.engine import Engine

from arena.rules import ArenaSettings
from arena.service import PoolRefresher
from webapp.auth import Identity, PermissionDenied, ensure_local_user, identify, require
from webapp.http import refuse_with
from webapp.rendering import safe_markdown
from webapp.writing import MAX_RUNS_PER_USER, ActiveRuns

SIGN_OUT_FORM = ('<form method="post" action="logout" style="margin:0">'
                 '<button type="submit" class="lg secondary sm">Sign out</button></form>')
"""Signing out is a POST from the app's own page (a link, or another site's page, cannot sign anyone out)."""

# (tab label, module, builder, action a user needs to see the tab)
TABS = (
    ("Write", "webapp.write_tab", "build_write_tab", "write"),
    ("Arena", "webapp.arena_tab", "build_arena_tab", "vote"),
    ("Leaderboard", "webapp.leaderboard_tab", "build_leaderboard_tab", "leaderboard"),
    ("Data", "webapp.data_tab", "build_data_tab", "data"),
)


@dataclass(frozen=True)
class ServeSettings:
    """Settings of one ``lwz serve`` process."""

    host: str = "127.0.0.1"
    port: int = 7860
    auth: bool = False
    concurrency: int = 16
    trusted_origins: tuple[str, ...] = ()
    """Origins besides the app's own (scheme and Host) whose pages may send state-changing requests:
    the public address of a proxy that rewrites the Host header (``--trusted-origin``)."""

    def validate(self) -> None:
        """Reject settings that cannot work, with a message saying what to change."""
        from core.errors import UserError
        from webapp.http import origin_of

        for origin in self.trusted_origins:
            if origin_of(origin) != origin.rstrip("/").lower():
                raise UserError(f"--trusted-origin takes an origin such as https://writer.example.org "
                                f"(scheme, host, optional port; no path), got {origin!r}")
        if not 0 < self.port < 65536:
            raise UserError(f"--port must be between 1 and 65535, got {self.port}")
        if self.concurrency < 1:
            raise UserError(f"--concurrency must be at least 1, got {self.concurrency}")


@dataclass
class AppContext:
    """What every handler needs, built once per process (by ``lwz serve``). Nothing per user lives here.

    ``runs`` and ``arena_pool`` are made from the settings when not given; ``downloads`` is the
    folder of the Write tab's files, made inside Gradio's cache when the tab is built.
    """

    engine: Engine
    settings: ServeSettings
    default_model: Optional[str] = None
    arena: ArenaSettings = field(default_factory=ArenaSettings.from_env)
    arena_pool: Optional[PoolRefresher] = None
    runs: Optional[ActiveRuns] = None
    downloads: Optional[Path] = None

    def __post_init__(self) -> None:
        if self.arena_pool is None:
            self.arena_pool = PoolRefresher(self.arena)
        if self.runs is None:  # one person per account only with sign-in; local mode is one user
            self.runs = ActiveRuns(max_per_user=MAX_RUNS_PER_USER if self.settings.auth else None)

    def identify(self, request) -> Identity:
        """Who is asking (PermissionDenied for a visitor when sign-in is on)."""
        username = getattr(request, "username", None) if request is not None else None
        try:
            return identify(self.engine, username=username, auth=self.settings.auth)
        except PermissionDenied:
            refuse_with(403)
            raise

    def require(self, request, action: str) -> Identity:
        """Who is asking, if they may do ``action``; PermissionDenied otherwise (the HTTP answer: 403)."""
        username = getattr(request, "username", None) if request is not None else None
        try:
            return require(self.engine, username=username, auth=self.settings.auth, action=action)
        except PermissionDenied:
            refuse_with(403)
            raise


def build_app(ctx: AppContext):
    import importlib

    import gradio as gr

    from core.errors import UserError
    from webapp.write_tab import model_choices

    tabs, parts = [], {}
    with gr.Blocks(title="LongWriter Studio") as demo:
        with gr.Row():
            gr.Markdown("# LongWriter Studio")
            whoami = gr.Markdown("", elem_id="lwz-whoami")
            if ctx.settings.auth:  # a form: signing out is a POST, which no other site's page can send
                gr.HTML(SIGN_OUT_FORM, elem_id="lwz-logout", padding=False)
        refused = gr.Markdown("", visible=False, elem_id="lwz-refused")
        with gr.Tabs(elem_id="lwz-tabs") as tabset:
            for label, module, builder, action in TABS:
                with gr.Tab(label, id=label.lower(), visible=False, elem_id=f"lwz-tab-{label.lower()}") as tab:
                    built = getattr(importlib.import_module(module), builder)(gr, ctx)
                tabs.append((tab, action))
                if label == "Write":
                    parts = built or {}

        def on_load(request: gr.Request):
            try:
                who = ctx.identify(request)
            except UserError as exc:
                return {refused: gr.Markdown(f"**{safe_markdown(str(exc))}**", visible=True),
                        **{tab: gr.Tab(visible=False) for tab, _ in tabs}}
            updates = {tab: gr.Tab(visible=who.can(action)) for tab, action in tabs}
            # Open the first tab this role may see (an annotator's first tab is the Arena, not Write).
            first = next((label for label, _, _, action in TABS if who.can(action)), None)
            if first is not None:
                updates[tabset] = gr.Tabs(selected=first.lower())
            updates[whoami] = f"Signed in as **{safe_markdown(who.name)}** ({who.role})" if ctx.settings.auth else "Local mode"
            if "model" in parts:
                choices = model_choices(ctx.engine)
                names = [name for _, name in choices]
                default = ctx.default_model if ctx.default_model in names else (names[0] if names else None)
                updates[parts["model"]] = gr.Dropdown(choices=choices, value=default)
            if "history" in parts and who.can("write"):
                from webapp.history import history_rows

                updates[parts["history"]] = history_rows(ctx.engine, who=who)
            return updates

        outputs = [refused, whoami, tabset] + [tab for tab, _ in tabs] + list(parts.values())
        demo.load(on_load, None, outputs, concurrency_limit=ctx.settings.concurrency, api_name=False)
    return demo


def serve(ctx: AppContext) -> None:
    import os

    # Gradio re-summarises up to 10,000 past events with pandas after *every* event (for its
    # monitoring page), so latency grows with uptime; summarise rarely, over fewer events.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "500")
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "2000")
    if not ctx.settings.auth:
        ensure_local_user(ctx.engine)
    demo = build_app(ctx)
    demo.queue(default_concurrency_limit=ctx.settings.concurrency)
    run_server(ctx, demo)


def run_server(ctx: AppContext, demo) -> None:
    """Serve ``demo`` inside the FastAPI layer of :mod:`webapp.server` (sessions in the database,
    throttled sign-in, page ownership, the fast vote route) until interrupted."""
    import logging
    import sys

    import uvicorn

    from webapp.server import build_server

    lwz_log = logging.getLogger("lwz")
    if not lwz_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        lwz_log.addHandler(handler)
        lwz_log.setLevel(logging.INFO)
    server = build_server(ctx, demo)
    print(f"* Running on local URL:  http://{ctx.settings.host}:{ctx.settings.port}", flush=True)
    uvicorn.run(server, host=ctx.settings.host, port=ctx.settings.port, log_level="warning")
