"""Model entries as the stored workflow registers and finds them.

:func:`register_model` is the one way a person's command (``lwz models add``, ``lwz models
prepare``, ``lwz serve``) registers a model: the template is checked against the table of
templates, and an entry that serves the bundled model starts from the bundled model's own
defaults (``generation.bundled.model_defaults``: template, repetition penalty, the length it holds
in one request), whichever command registers it. What the person says wins over the defaults.
"""

from __future__ import annotations

from typing import Any, Optional

from core.errors import UserError
from generation.bundled import model_defaults
from generation.templates import ONE_REQUEST_WORDS, Choice, check_one_request_words, choose, holds_words, \
    method_template, template_named
from storage.catalog import add_model, get_model, list_models
from storage.engine import session_scope


def lookup_model(engine, *, name: str):
    """The registered model entry, or UserError listing the registered names."""
    with session_scope(engine) as session:
        entry = get_model(session, name=name)
        if entry is None:
            names = ", ".join(m.name for m in list_models(session)) or "(none; run lwz models prepare)"
            raise UserError(f"no model named {name!r} is registered; registered: {names}")
        return entry


def register_model(session, *, name: str, backend: str, base_url: Optional[str] = None,
                   model_id: Optional[str] = None, path: Optional[str] = None, template: Optional[str] = None,
                   settings: Optional[dict[str, Any]] = None, parent: Optional[str] = None, replace: bool = False):
    """Register (or with ``replace`` update) a model entry; its defaults come from the model it
    serves. UserError for an unknown template, or ``auto`` without the length the model holds."""
    default_template, defaults = model_defaults(backend=backend, path=path, model_id=model_id)
    template = template_named(template or default_template).name
    merged = {**defaults, **{k: v for k, v in (settings or {}).items() if v is not None}}
    check_one_request_words(merged.get(ONE_REQUEST_WORDS))
    if template_named(template).choose is not None and holds_words(merged) is None:
        raise UserError(f"the {template} template needs the length {name} holds in one request: "
                        "add --one-request-words N (measure it), or pick another template")
    return add_model(session, name=name, backend=backend, base_url=base_url, model_id=model_id, path=path,
                     template=template, sampling=merged, parent=parent, replace=replace)


def method_choice(entry, *, target_words: Optional[int], method: Optional[str] = None) -> Choice:
    """Which template writes a text of ``target_words`` with ``entry``'s model when the writer picks
    ``method`` (``generation.templates.METHODS``), and why. The Write tab shows it."""
    override = method_template(method, entry.template)
    return choose(override or entry.template, target_words=target_words, holds_words=holds_words(entry.sampling),
                  by_writer=override is not None)
