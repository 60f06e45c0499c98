"""``POST /login`` and ``POST /logout``: sessions in the database, in the cookies Gradio reads.

``POST /login`` checks the password (throttled, see :func:`webapp.auth.sign_in`), stores a session
(see :mod:`storage.sessions`) and hands its token to the browser in Gradio's two cookie names,
both ``Secure`` when the browser came over TLS (uvicorn applies ``X-Forwarded-Proto`` from a
trusted proxy). ``POST /logout`` revokes every session of the user, on every process. A plain
link cannot sign anyone out: ``GET /logout`` is refused.

Password checks are slow on purpose, so they run off the event loop in a bounded pool
(:class:`PasswordChecks`): at most :data:`PASSWORD_CHECKS_AT_ONCE` at once per process, at most
one per client address, names that signed in before served first and addresses whose last check
failed served last, so a crowd of wrong sign-ins (from one address, from many that failed before,
or from many fresh ones) cannot queue ahead of a returning user.
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' `Request` annotations at run time.

import logging
import time
from collections import deque

from sqlalchemy.engine import Engine

from webapp.http import COOKIE_ID, COOKIE_NAMES, client_address, is_https, request_token, user_for_token

log = logging.getLogger("lwz.auth")

PASSWORD_CHECKS_AT_ONCE = 2
"""Password hashes computed at once per process; more sign-ins wait their turn, the event loop never."""
SUSPECT_S = 300.0
"""How long an address whose password check failed waits behind other addresses' sign-ins."""
TRUSTED_S = 30 * 24 * 3600.0
"""How long a name whose password check succeeded is served first (until one fails)."""
MAX_REMEMBERED = 100_000
"""Addresses with a recent failure, and names with a recent success, kept in memory per process
(the oldest are forgotten first)."""
AUTH_MESSAGE = "After 10 failed sign-ins for a name or from one address, sign-in pauses for 5 minutes."


class PasswordChecks:
    """A bounded pool for password checks: ``at_once`` threads, one lane per client address, and
    three ranks of sign-ins, one thread kept for the first.

    A sign-in waits first for its address's lane (so one address never holds more than one
    thread), then for a thread. When every thread is busy the waiting sign-ins are served by rank,
    in order within each: first a *returning* name (its last check succeeded within ``trusted_s``
    seconds and none failed since), then any other, and last those from an address whose last
    check failed within ``suspect_s`` seconds. So a crowd of wrong sign-ins from addresses that
    failed before makes nobody wait for more than the checks already running, and a crowd from
    fresh addresses (each new, so nothing tells it from a first sign-in) does not hold up a user
    who signed in before, from wherever they come. Only a returning name may take the last free
    thread (with two threads, everyone else's checks run one at a time), so a returning user
    waits for no check at all, only shares the cores with one. A first sign-in from a fresh address waits
    its turn with the crowd; so does a name the crowd is guessing (its failures take its rank
    away, and the name throttle stops them). Made inside the server's event loop, on first use;
    in one process only (each process has its own pool).
    """

    def __init__(self, at_once: int = PASSWORD_CHECKS_AT_ONCE, *, suspect_s: float = SUSPECT_S,
                 trusted_s: float = TRUSTED_S):
        self.at_once, self.suspect_s, self.trusted_s = at_once, suspect_s, trusted_s
        self.running = 0
        self.unproven = 0  # threads held by sign-ins other than returning names
        self.waiting: tuple[deque, deque, deque] = (deque(), deque(), deque())  # (returning, others, suspect)
        self.lanes: dict[str, list] = {}  # address -> [lock, sign-ins waiting or running]
        self.failed: dict[str, float] = {}  # address -> monotonic time of its last failed check
        self.succeeded: dict[str, float] = {}  # name -> monotonic time of its last good check

    def suspect(self, address: str) -> bool:
        """Whether ``address``'s last check failed within ``suspect_s`` seconds."""
        at = self.failed.get(address)
        return at is not None and time.monotonic() - at < self.suspect_s

    def returning(self, name: str) -> bool:
        """Whether ``name``'s last check succeeded within ``trusted_s`` seconds (none failed since)."""
        at = self.succeeded.get(name)
        return at is not None and time.monotonic() - at < self.trusted_s

    def rank(self, address: str, name: str) -> int:
        """0: a returning name from an address not suspect; 1: any other; 2: a suspect address."""
        if self.suspect(address):
            return 2
        return 0 if name and self.returning(name) else 1

    async def run(self, address: str, work, *, name: str = ""):
        import anyio

        lane = self.lanes.setdefault(address, [anyio.Lock(), 0])
        lane[1] += 1
        try:
            async with lane[0]:
                rank = self.rank(address, name)
                await self._take(rank)
                try:
                    result = await anyio.to_thread.run_sync(work)
                except Exception:
                    _remember(self.failed, address, self.suspect_s)
                    self.succeeded.pop(name, None)
                    raise
                finally:
                    self._give_back(rank)
                self.failed.pop(address, None)
                if name:
                    _remember(self.succeeded, name, self.trusted_s)
                return result
        finally:
            lane[1] -= 1
            if lane[1] == 0:
                del self.lanes[address]

    @property
    def unproven_cap(self) -> int:
        """Threads that sign-ins other than returning names may hold at once: one is kept for those."""
        return max(1, self.at_once - 1)

    def _free_for(self, rank: int) -> bool:
        return self.running < self.at_once and (rank == 0 or self.unproven < self.unproven_cap)

    async def _take(self, rank: int) -> None:
        """Wait for a thread: at once when one is free for this rank and nobody of the same or a
        better rank waits."""
        import anyio

        if self._free_for(rank) and not any(self.waiting[r] for r in range(rank + 1)):
            self._hold(rank)
            return
        turn = anyio.Event()
        queue = self.waiting[rank]
        queue.append(turn)
        try:
            await turn.wait()
        except BaseException:
            if turn in queue:
                queue.remove(turn)
            else:  # handed a thread while being cancelled: pass it on
                self._give_back(rank)
            raise

    def _hold(self, rank: int) -> None:
        self.running += 1
        self.unproven += rank > 0

    def _give_back(self, rank: int) -> None:
        """Free a thread held by a sign-in of ``rank``, and hand the free threads to the first
        waiting sign-ins of the best rank that may take them."""
        self.running -= 1
        self.unproven -= rank > 0
        for waiting_rank, queue in enumerate(self.waiting):
            while queue and self._free_for(waiting_rank):
                self._hold(waiting_rank)
                queue.popleft().set()


def _remember(times: dict, key: str, keep_s: float) -> None:
    """``times[key]`` = now; memory stays bounded (MAX_REMEMBERED; the stale ones are forgotten first)."""
    now = time.monotonic()
    if len(times) >= MAX_REMEMBERED:
        for stale in [k for k, t in times.items() if now - t >= keep_s]:
            del times[stale]
        if len(times) >= MAX_REMEMBERED:
            times.pop(next(iter(times)))
    times.pop(key, None)  # re-inserted last: the oldest stay first in line to be forgotten
    times[key] = now


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
                                                                    address=address), name=name)
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
