"""Backends behind one protocol: ``OpenAIBackend`` (vLLM/SGLang servers) and ``LocalBackend``
(the embedded transformers model). ``backend_for(entry)`` picks and caches one per model entry,
wrapped in the stall limit (``generation.stall``).

Nothing heavy is imported here: torch and the openai client load when a backend is built.
"""

from __future__ import annotations

import threading

from generation.backends.base import Backend, BackendError, BackendRequest, Delta, Finish

__all__ = ["Backend", "BackendError", "BackendRequest", "Delta", "Finish", "backend_for", "OpenAIBackend", "LocalBackend"]

_LOCAL: dict[str, object] = {}
_LOCK = threading.Lock()


def backend_for(entry) -> Backend:
    """The backend serving ``entry`` (a registered model: its name, backend, base_url, model_id, path,
    sampling). Local backends are cached, one per model folder per process
    (``entry.path`` None means the bundled model); OpenAI backends are cheap and built per call. The
    bundled model goes to the vLLM child of ``generation.backends.managed`` once that is ready.
    Either comes wrapped in the stall limit."""
    from core.errors import UserError
    from generation.stall import StallGuarded

    if entry.backend == "openai":
        from generation.backends.openai_backend import OpenAIBackend

        if not entry.base_url:
            raise UserError(f"model {entry.name!r} uses the openai backend but has no base URL: lwz models add ... --base-url URL --replace")
        return StallGuarded(OpenAIBackend(base_url=entry.base_url, model=entry.model_id or entry.name,
                                          api=(entry.sampling or {}).get("api", "chat")))
    if entry.backend == "local":
        from generation.backends.managed import bundled_base_url

        child_url = None if entry.path else bundled_base_url()
        if child_url:  # the bundled model, while `lwz serve --bundled-via vllm` has its vLLM child ready
            from generation.backends.openai_backend import OpenAIBackend
            from generation.bundled import BUNDLED_NAME

            return StallGuarded(OpenAIBackend(base_url=child_url, model=BUNDLED_NAME))
        from generation.backends.local import LocalBackend
        from generation.bundled import ensure_bundled_model
        from pathlib import Path

        folder = str(Path(entry.path).expanduser().resolve()) if entry.path else str(ensure_bundled_model())
        with _LOCK:
            backend = _LOCAL.get(folder)
            if backend is None:
                backend = _LOCAL[folder] = StallGuarded(LocalBackend(folder), from_start=False)
        return backend  # type: ignore[return-value]
    raise UserError(f"model {entry.name!r} has unknown backend {entry.backend!r}: use local or openai")


def __getattr__(name: str):
    if name == "OpenAIBackend":
        from generation.backends.openai_backend import OpenAIBackend

        return OpenAIBackend
    if name == "LocalBackend":
        from generation.backends.local import LocalBackend

        return LocalBackend
    raise AttributeError(name)
