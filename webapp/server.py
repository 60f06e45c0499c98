"""Assemble the FastAPI app ``lwz serve`` runs: Gradio mounted at ``/`` behind the app's own layers.

Nothing is decided here; each piece has its module:

- :mod:`webapp.signin_routes`: ``POST /login`` and ``POST /logout``, sessions in the database
  (read by Gradio through :class:`webapp.signin_routes.DatabaseTokens`, so a sign-in made on one
  process is honoured by all), password checks in a bounded pool.
- :mod:`webapp.middleware`: the origin check, body parsing, page and download ownership, and
  403 for refused Gradio calls.
- :mod:`webapp.vote_api`: the arena's JSON routes.
- :mod:`webapp.http`: the shared HTTP vocabulary (tokens, origins, bodies, JSON).

Gradio's CORS layer is replaced by Starlette's with no other origin allowed, so no page on
another origin (another port of localhost included) gets an answer it can read with the
victim's cookies.
"""

from __future__ import annotations

STATIC_PATH = "/lwz-static"
"""Where the app serves ``webapp/static/`` (the page's scripts)."""


def build_server(ctx, demo):
    """The FastAPI app: sign-in routes, the app's static files, the layers of :mod:`webapp.middleware`,
    the vote route, then Gradio at ``/``."""
    import gradio as gr
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles
    from starlette.middleware.cors import CORSMiddleware

    from storage.engine import write_scope
    from storage.sessions import purge_sessions
    from webapp.middleware import DownloadOwnership, JsonBodies, OriginCheck, PageOwnership, RefusalStatus
    from webapp.signin_routes import AUTH_MESSAGE, add_signin_routes, attach_tokens
    from webapp.assets import STATIC_DIR
    from webapp.vote_api import ArenaRoutes

    engine, auth = ctx.engine, ctx.settings.auth
    if auth:
        with write_scope(engine) as session:  # sessions that ended a day ago or more are forgotten
            purge_sessions(session)
    server = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    if auth:
        add_signin_routes(server, engine)
    server.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="lwz-static")
    # Added innermost first: each add_middleware wraps the ones before it.
    server.add_middleware(CORSMiddleware, allow_origins=[], allow_credentials=False)
    server.add_middleware(RefusalStatus)
    server.add_middleware(DownloadOwnership, ctx=ctx)
    server.add_middleware(PageOwnership, engine=engine, auth=auth)
    server.add_middleware(JsonBodies)
    server.add_middleware(ArenaRoutes, ctx=ctx)  # the arena's JSON routes skip the layers above
    server.add_middleware(OriginCheck, trusted=frozenset(ctx.settings.trusted_origins))
    gr.mount_gradio_app(server, demo, path="/", auth=_never if auth else None,
                        auth_message=AUTH_MESSAGE if auth else None, show_error=True)
    gradio_app = next(route.app for route in server.routes if getattr(route, "path", None) == ""
                      and hasattr(route, "app") and hasattr(route.app, "tokens"))
    attach_tokens(gradio_app, engine)
    return server


def _never(name: str, password: str) -> bool:
    """Gradio's own login route is shadowed by :mod:`webapp.signin_routes`; this only turns the sign-in form on."""
    return False
