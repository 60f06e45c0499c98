"""``POST /login`` and ``POST /logout``: sessions in the database, in the cookies Gradio reads.

``POST /login`` checks the password (throttled, see :func:`webapp.auth.sign_in`), stores a session
(see :mod:`storage.sessions`) and hands its token to the browser in Gradio's two cookie names,
both ``Secure`` when the browser came over TLS (uvicorn applies ``X-Forwarded-Proto`` from a
trusted proxy). ``POST /logout`` revokes every session of the user, on every process. A plain
link cannot sign anyone out: ``GET /logout`` is refused.

Password checks are slow on purpose, so they run off the event loop in a bounded pool
(:class:`PasswordChecks`): at most :data:`PASSWORD_CHECKS_AT_ONCE` at once per process, and at
most one per client address, so a burst of wrong sign-ins from one address holds one slot and
another user's sign-in takes the other.
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' `Request` annotations at run time.

import logging

from sqlalchemy.engine import Engine

from webapp.http import COOKIE_ID, COOKIE_NAMES, client_address, is_https, request_token, user_for_token

log = logging.getLogger("lwz.auth")

PASSWORD_CHECKS_AT_ONCE = 2
"""Password hashes computed at once per process; more sign-ins wait their turn, the event loop never."""
AUTH_MESSAGE = "After 10 failed sign-ins for a name or from one address, sign-in pauses for 5 minutes."


class PasswordChecks:
    """A bounded pool for password checks: ``at_once`` threads, and one lane per client address.

    A sign-in waits first for its address's lane (so one address never holds more than one
    thread), then for a thread. Made inside the server's event loop, on first use.
    """

    def __init__(self, at_once: int = PASSWORD_CHECKS_AT_ONCE):
        self.at_once = at_once
        self.limiter = None
        self.lanes: dict[str, list] = {}  # address -> [lock, sign-ins waiting or running]

    async def run(self, address: str, work):
        import anyio

        if self.limiter is None:
            self.limiter = anyio.CapacityLimiter(self.at_once)
        lane = self.lanes.setdefault(address, [anyio.Lock(), 0])
        lane[1] += 1
        try:
            async with lane[0]:
                return await anyio.to_thread.run_sync(work, limiter=self.limiter)
        finally:
            lane[1] -= 1
            if lane[1] == 0:
                del self.lanes[address]


class DatabaseTokens:
    """Stands in for Gradio's ``app.tokens`` dict: every lookup asks the sessions table."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def get(self, token, default=None):
        return user_for_token(self.engine, token) or default

    def __contains__(self, token) -> bool:
        return self.get(token) is not None

    def __getitem__(self, token):
        name = self.get(token)
        if name is None:
            raise KeyError(token)
        return name

    def __setitem__(self, token, name) -> None:
        raise RuntimeError("sessions are created by webapp.signin_routes's /login only")

    def keys(self):
        return []


def add_signin_routes(server, engine: Engine) -> None:
    """Add ``/login`` and ``/logout`` to ``server`` (before Gradio is mounted, so they shadow Gradio's)."""
    import anyio
    from fastapi import Request
    from fastapi.responses import JSONResponse, RedirectResponse

    import webapp.auth as rules
    from webapp.auth import SigninRefused, SigninThrottled

    checks = PasswordChecks()

    @server.post("/login")
    @server.post("/login/")
    async def login(request: Request):
        form = await request.form()
        name, password = str(form.get("username") or "").strip(), str(form.get("password") or "")
        address = client_address(request)
        try:
            token = await checks.run(address, lambda: rules.sign_in(engine, name=name, password=password,
                                                                    address=address))
        except SigninThrottled as exc:
            return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after)})
        except SigninRefused as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        response = JSONResponse({"success": True})
        secure, plain = COOKIE_NAMES
        response.set_cookie(secure, token, httponly=True, samesite="lax", secure=True)
        response.set_cookie(plain, token, httponly=True, samesite="lax", secure=is_https(request))
        return response

    @server.post("/logout")
    @server.post("/logout/")
    async def logout(request: Request):
        token = request_token(request.headers)
        name = await anyio.to_thread.run_sync(lambda: rules.sign_out(engine, token))
        if name is not None:
            log.info("signed out: name=%r address=%s", name, client_address(request))
        response = RedirectResponse(url="./", status_code=303)
        for cookie in COOKIE_NAMES:
            response.delete_cookie(cookie, path="/")
        return response

    @server.get("/logout")
    @server.get("/logout/")
    async def logout_link():
        return JSONResponse({"detail": "sign out with the Sign out button (a POST)"}, status_code=405,
                            headers={"Allow": "POST"})


def attach_tokens(gradio_app, engine: Engine) -> None:
    """Make the mounted Gradio app read sessions from the database, under one cookie name on every process."""
    gradio_app.cookie_id = COOKIE_ID
    gradio_app.tokens = DatabaseTokens(engine)
