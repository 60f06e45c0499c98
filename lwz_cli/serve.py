"""``lwz serve``: start the web app."""

from __future__ import annotations

import argparse


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
    p.add_argument("--template", choices=["think", "direct"], default="think",
                   help="prompt template of a model registered at start (default think)")
    p.add_argument("--concurrency", type=int, default=16,
                   help="how many generations stream at once through the app (default 16)")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from lwz_cli.common import open_engine
    from webapp.app import AppContext, ServeSettings, serve
    from webapp.serving import settle_default_model

    settings = ServeSettings(host=args.host, port=args.port, auth=args.auth, concurrency=args.concurrency)
    settings.validate()
    engine = open_engine(args, upgrade=True)
    model = settle_default_model(engine, backend=args.backend, base_url=args.base_url, model=args.model,
                                 template=args.template)
    serve(AppContext(engine=engine, settings=settings, default_model=model))
    return 0
