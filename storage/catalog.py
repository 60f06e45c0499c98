"""Models and prompts: what can write, and what it is asked to write."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from pathlib import Path
from typing import Any, Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.errors import UserError
from storage.models import Backend, ModelEntry, Prompt

_CJK = re.compile(r"[\u4e00-\u9fff]")


def detect_language(text: str) -> str:
    """'zh' when the text has a CJK ideograph, else 'en' (the rule of the LongWriter-Zero template)."""
    return "zh" if _CJK.search(text) else "en"


def prompt_hash(text: str) -> str:
    """Content hash used to de-duplicate prompts: NFC-normalised, surrounding whitespace ignored."""
    return hashlib.sha256(unicodedata.normalize("NFC", text.strip()).encode()).hexdigest()


def add_model(
    session: Session,
    *,
    name: str,
    backend: str,
    base_url: str | None = None,
    model_id: str | None = None,
    path: str | None = None,
    template: str = "think",
    sampling: dict[str, Any] | None = None,
    parent: str | None = None,
    replace: bool = False,
) -> ModelEntry:
    """Register a model. With ``replace``, an entry of the same name is updated in place. The
    template name is stored as given: which names exist, and the defaults of a new entry, are the
    stored workflow's to check (``writing.models.register_model``)."""
    if backend not in {b.value for b in Backend}:
        raise UserError(f"unknown backend {backend!r}: choose local or openai")
    if backend == "openai" and not base_url:
        raise UserError("an openai-backend model needs --base-url (for example http://127.0.0.1:8000/v1)")
    parent_id = None
    if parent is not None:
        parent_entry = get_model(session, name=parent)
        if parent_entry is None:
            raise UserError(f"parent model {parent!r} is not registered")
        parent_id = parent_entry.id
    entry = get_model(session, name=name)
    if entry is not None and not replace:
        raise UserError(f"model {name!r} is already registered")
    entry = entry or ModelEntry(name=name, backend=backend)
    entry.backend, entry.base_url, entry.model_id, entry.path = backend, base_url, model_id, path
    entry.template, entry.sampling, entry.parent_id = template, dict(sampling or {}), parent_id
    session.add(entry)
    session.flush()
    return entry


def get_model(session: Session, *, name: str) -> ModelEntry | None:
    return session.exec(select(ModelEntry).where(ModelEntry.name == name)).first()


def list_models(session: Session) -> list[ModelEntry]:
    return list(session.exec(select(ModelEntry).order_by(ModelEntry.id)))


WRITER_SOURCE = "generate"
"""The ``source`` of a prompt first stored by writing (the Write tab, ``lwz generate``): a writer's
private request. It enters the arena only through a text its author sends there; ``lwz battles
fill --all`` takes only prompts of other sources (imported for the arena)."""


def get_or_add_prompt(
    session: Session,
    *,
    text: str,
    category: str | None = None,
    target_words: int | None = None,
    source: str | None = None,
) -> tuple[Prompt, bool]:
    """The prompt with this text, added if new. Returns ``(prompt, created)``. Two writers adding
    the same new text at once both get the one row: the loser of the insert reads the winner's."""
    digest = prompt_hash(text)
    existing = session.exec(select(Prompt).where(Prompt.content_hash == digest)).first()
    if existing is not None:
        if existing.source == WRITER_SOURCE and source not in (None, WRITER_SOURCE):
            existing.source = source  # imported for the arena too: the same words are no longer private
            session.add(existing)
            session.flush()
        return existing, False
    prompt = Prompt(
        text=text,
        category=category,
        target_words=target_words,
        language=detect_language(text),
        source=source,
        content_hash=digest,
    )
    try:
        with session.begin_nested():
            session.add(prompt)
    except IntegrityError:
        existing = session.exec(select(Prompt).where(Prompt.content_hash == digest)).first()
        if existing is None:
            raise
        return existing, False
    return prompt, True


def parse_prompt_lines(lines: Iterable[str], *, source: str, keep: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Parse JSON lines with ``prompt`` and optional ``type`` and ``length``; errors name the line.

    ``keep`` names further fields copied as they are (None when absent), with the line number as ``line``.
    """
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{source}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str) or not obj["prompt"].strip():
            raise UserError(f"{source}:{number}: expected an object with a non-empty string 'prompt'")
        length = obj.get("length")
        if length is not None and (not isinstance(length, int) or isinstance(length, bool) or length <= 0):
            raise UserError(f"{source}:{number}: 'length' must be a positive integer, got {length!r}")
        category = obj.get("type")
        rows.append({"text": obj["prompt"], "category": None if category is None else str(category), "target_words": length,
                     **({"line": number, **{key: obj.get(key) for key in keep}} if keep else {})})
    return rows


def import_prompts(session: Session, *, path: str | Path) -> dict[str, int]:
    """Import a JSON-lines file in one transaction. Returns ``{"added": n, "skipped": m}``.

    The whole file is parsed before anything is written, so a malformed line imports nothing.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    rows = parse_prompt_lines(_decoded_lines(path), source=str(path))
    added = skipped = 0
    for row in rows:
        _, created = get_or_add_prompt(session, source=path.name, **row)
        added, skipped = added + created, skipped + (not created)
    return {"added": added, "skipped": skipped}


def _decoded_lines(path: Path) -> Iterator[str]:
    """The file's lines as text; a line that is not UTF-8 is a UserError naming it."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise UserError(f"{path}:{number}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def list_prompts(session: Session, *, category: str | None = None, limit: int | None = None,
                 arena_only: bool = False) -> list[Prompt]:
    """Prompts in id order; ``arena_only`` leaves out writers' private requests (:data:`WRITER_SOURCE`)."""
    query = select(Prompt).order_by(Prompt.id)
    if arena_only:
        query = query.where(sa.or_(Prompt.source.is_(None), Prompt.source != WRITER_SOURCE))
    if category is not None:
        query = query.where(Prompt.category == category)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))
