"""Which model the Write tab picks by default, registered at start when ``lwz serve`` says where it runs."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from storage.catalog import get_model
from storage.engine import session_scope
from core.errors import UserError
from writing.models import register_model


def settle_default_model(
    engine: Engine,
    *,
    backend: str | None,
    base_url: str | None,
    model: str | None,
    template: str | None = None,
) -> str:
    """The name of the model to pick by default, registering or updating it as asked.

    - no options: the bundled model on the local backend (registered if absent);
    - ``--model NAME`` alone: NAME must be registered already;
    - ``--backend openai --base-url URL --model NAME``: NAME (served under that id) is registered,
      or updated to point at URL;
    - ``--backend local [--model NAME]``: NAME (default the bundled model) on the embedded backend.

    ``template`` is a new entry's; without it a new entry gets the defaults of the model it serves
    (``writing.models.register_model``: the bundled model's own template, ``auto``, and its
    repetition penalty, as ``lwz models prepare`` gives it; else ``think``).
    """
    from generation.bundled import BUNDLED_NAME

    if base_url and backend is None:
        backend = "openai"
    if backend == "openai" and not base_url:
        raise UserError("--backend openai needs --base-url (for example http://127.0.0.1:8000/v1)")
    if backend == "openai" and not model:
        raise UserError("--backend openai needs --model, the name the server serves the model under")
    name = model or BUNDLED_NAME
    with session_scope(engine) as session:
        entry = get_model(session, name=name)
        if backend is None:
            if entry is not None:
                return entry.name
            if name != BUNDLED_NAME:
                raise UserError(f"model {name!r} is not registered: add --backend/--base-url or run lwz models add")
            backend = "local"
        if backend == "openai":
            if entry is None or entry.backend != "openai" or entry.base_url != base_url:
                model_id = entry.model_id if entry is not None and entry.backend == "openai" and entry.model_id else name
                register_model(session, name=name, backend="openai", base_url=base_url, model_id=model_id,
                               template=entry.template if entry is not None else template,
                               settings={**(entry.sampling or {})} if entry is not None else None, replace=True)
            return name
        if entry is None:
            if name != BUNDLED_NAME:
                raise UserError(f"local model {name!r} is not registered: lwz models add {name} --backend local --path DIR")
            register_model(session, name=name, backend="local", template=template)
        elif entry.backend != "local":
            raise UserError(f"model {name!r} is registered on the {entry.backend} backend, not local")
        return name
