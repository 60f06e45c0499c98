"""``lwz serve``: start the web app.

Before serving, and then every ``STALE_SWEEP_S`` seconds, generations left ``streaming`` by a
process that died are closed as ``interrupted`` (``storage.generations.mark_stale_interrupted``:
only rows no process has saved for a while, so several ``lwz serve`` processes on one database
never close each other's live rows).
"""

from __future__ import annotations

import argparse
import threading

from generation.templates import TEMPLATE_NAMES

STALE_SWEEP_S = 60.0


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="start the web app (upgrades the database first)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    p.add_argument("--auth", action="store_true", help="sign users in against the users table (lwz users add)")
    p.add_argument("--backend", choices=["local", "openai"], default=None,
                   help="with --model: register it on this backend (default: local)")
    p.add_argument("--base-url", help="OpenAI-compatible server of --model, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", help="the model picked by default; registered at start when --backend/--base-url say "
                                   "where it runs (default: the bundled smollm2-135m on the local backend)")
    p.add_argument("--template", choices=TEMPLATE_NAMES, default=None,
                   help="prompt template of a model registered at start (default: the model's own, see lwz models add)")
    p.add_argument("--api", choices=["completions", "chat"], default=None,
                   help="with --backend openai: completions sends the raw LongWriter-Zero template to /v1/completions "
                        "(the model card's path); chat uses /v1/chat/completions (default: as registered, else chat)")
    p.add_argument("--trusted-origin", action="append", default=None, metavar="ORIGIN",
                   help="an origin besides the app's own whose pages may send sign-ins, votes and other changes, "
                        "e.g. https://writer.example.org behind a proxy that rewrites the Host header; repeat for "
                        "several (default: LWZ_TRUSTED_ORIGINS, comma-separated, else none)")
    p.add_argument("--concurrency", type=int, default=16,
                   help="how many generations stream at once through the app (default 16)")
    p.add_argument("--stall-seconds", default=None,
                   help="end a generation as interrupted when the model sends no token for this many seconds "
                        "(default: LWZ_STALL_SECONDS, else 60; 0 turns the limit off)")
    p.add_argument("--bundled-via", choices=["local", "vllm"], default="local",
                   help="vllm: serve the bundled model through a vLLM child process (about twice as fast); the page "
                        "works at once, in-process, until the child has warmed up (minutes). Default local")
    p.add_argument("--vllm-python", default=".venv-vllm/bin/python",
                   help="with --bundled-via vllm: the python of the vLLM environment (default .venv-vllm/bin/python)")
    p.set_defaults(handler=cmd_serve)


def close_stale_rows(engine) -> int:
    """Mark generations whose process died ``interrupted``; returns how many."""
    from storage.engine import session_scope
    from storage.generations import mark_stale_interrupted

    with session_scope(engine) as session:
        return mark_stale_interrupted(session)


def sweep_stale_rows(engine, *, stop: threading.Event, every_s: float = STALE_SWEEP_S, on_sweep=None) -> None:
    """Run :func:`close_stale_rows` every ``every_s`` seconds until ``stop`` is set. A failed
    sweep (database briefly unreachable) is logged in one line and tried again next time.
    ``on_sweep(count)`` is called after each sweep (for tests)."""
    import logging

    log = logging.getLogger("lwz.serve")
    while not stop.wait(every_s):
        try:
            count = close_stale_rows(engine)
        except Exception as exc:  # keep sweeping: the next one may reach the database
            log.warning("closing stale generations failed: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            continue
        if count:
            log.info("closed %d generation(s) left streaming by a process that died", count)
        if on_sweep is not None:
            on_sweep(count)


def trusted_origins(flags: list[str] | None) -> tuple[str, ...]:
    """The ``--trusted-origin`` values, else ``LWZ_TRUSTED_ORIGINS`` (comma-separated), without a trailing slash."""
    import os

    values = flags if flags is not None else os.environ.get("LWZ_TRUSTED_ORIGINS", "").split(",")
    return tuple(v.strip().rstrip("/").lower() for v in values if v.strip())


def cmd_serve(args: argparse.Namespace) -> int:
    from generation import stall
    from lwz_cli.common import open_engine
    from webapp.app import AppContext, ServeSettings, serve
    from webapp.serving import settle_default_model

    settings = ServeSettings(host=args.host, port=args.port, auth=args.auth, concurrency=args.concurrency,
                             trusted_origins=trusted_origins(args.trusted_origin))
    settings.validate()
    if args.stall_seconds is not None:
        stall.configure(args.stall_seconds)
    else:
        stall.stall_seconds()  # a bad LWZ_STALL_SECONDS is refused now, not at the first generation
    engine = open_engine(args, upgrade=True)
    model = settle_default_model(engine, backend=args.backend, base_url=args.base_url, model=args.model,
                                 template=args.template)
    if args.api is not None:
        _set_api(engine, model, args.api)
    closed = close_stale_rows(engine)
    if closed:
        print(f"closed {closed} generation(s) left streaming by a process that died (now interrupted)")
    child = _start_vllm_child(args.vllm_python) if args.bundled_via == "vllm" else None
    stop = threading.Event()
    threading.Thread(target=sweep_stale_rows, args=(engine,), kwargs={"stop": stop}, name="lwz-stale-sweep",
                     daemon=True).start()
    try:
        serve(AppContext(engine=engine, settings=settings, default_model=model))
    finally:
        stop.set()
        if child is not None:
            child.stop()
    return 0


def _start_vllm_child(python: str):
    """Start the bundled model's vLLM child (``generation.backends.managed``) and say so in one line."""
    from generation.backends.managed import EXPECTED_WARMUP_S, start_child
    from generation.bundled import lwz_home

    child = start_child(python, log_dir=lwz_home() / "logs")
    print(f"vLLM server for the bundled model warming up at {child.base_url} (log: {child.log_path}); the bundled "
          f"model runs in-process until it is ready, in about {EXPECTED_WARMUP_S} s", flush=True)
    return child


def _set_api(engine, name: str, api: str) -> None:
    """Record ``--api`` on the default model's entry (an openai-backend model only)."""
    from core.errors import UserError
    from storage.catalog import get_model
    from storage.engine import session_scope

    with session_scope(engine) as session:
        entry = get_model(session, name=name)
        if entry is None or entry.backend != "openai":
            raise UserError("--api chooses the server endpoint of an openai-backend model: give --backend openai "
                            "--base-url URL --model NAME")
        entry.sampling = {**(entry.sampling or {}), "api": api}
        session.add(entry)
