"""Base models in, checkpoints out: resolve ``--base`` and register a finished checkpoint.

A registered checkpoint is a local-backend model whose ``path`` is the checkpoint folder and
whose parent is the base model's entry, so the arena can pit it against its parent. On a GPU
host the same folder is served by vLLM (:func:`vllm_serve_command`).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from core.errors import UserError


def resolve_base(session, *, base: str):
    """``(folder, entry)`` for a registered model name or a model folder (entry None if unregistered).

    The bundled model's entry (local backend, no path) resolves to the converted bundled folder.
    """
    from storage.catalog import get_model, list_models

    entry = get_model(session, name=base)
    if entry is not None:
        if entry.backend != "local":
            raise UserError(f"model {base!r} is served over HTTP ({entry.base_url}); train from its weights folder instead")
        if entry.path is None:
            from generation.bundled import ensure_bundled_model

            return ensure_bundled_model(), entry
        folder = Path(entry.path).expanduser()
        if not (folder / "config.json").is_file():
            raise UserError(f"model {base!r} points at {folder}, which is not a model folder (missing or no config.json)")
        return folder.resolve(), entry
    folder = Path(base).expanduser()
    if base == _bundled_name():
        from generation.bundled import ensure_bundled_model

        return ensure_bundled_model(), None
    if not folder.exists():
        raise UserError(f"base model {base!r}: no registered model of that name and no such folder (lwz models list)")
    if not (folder / "config.json").is_file():
        raise UserError(f"base model folder {folder} has no config.json: give a Hugging Face model folder")
    resolved = folder.resolve()
    for candidate in list_models(session):
        if candidate.backend == "local" and candidate.path and Path(candidate.path).expanduser().resolve() == resolved:
            return resolved, candidate
    return resolved, None


def _bundled_name() -> str:
    from generation.bundled import BUNDLED_NAME

    return BUNDLED_NAME


def check_register_name(session, *, name: str | None) -> None:
    from storage.catalog import get_model

    if name is not None:
        if not name.strip():
            raise UserError("--register needs a model name")
        if get_model(session, name=name) is not None:
            raise UserError(f"model {name!r} is already registered: choose another --register name")


def register_checkpoint(session, *, name: str, folder: str, parent, template: str):
    """Add ``folder`` as a local-backend model named ``name`` with ``parent`` (an entry or None). The
    child samples as its parent does (its repetition penalty, say), so the two meet in the arena on
    equal terms; only the parent's server endpoint (``api``) is left behind."""
    from storage.catalog import add_model

    sampling = {k: v for k, v in ((parent.sampling if parent is not None else None) or {}).items() if k != "api"}
    return add_model(session, name=name, backend="local", path=str(Path(folder).resolve()),
                     template=template, parent=parent.name if parent is not None else None, sampling=sampling)


def vllm_serve_command(folder: str, *, name: str, port: int = 8000, api: str = "chat") -> str:
    """The command that serves the checkpoint on a GPU host, and how to point the arena at it: on the
    path it was trained for (``api``), so that it is served what it was trained on."""
    return (f"vllm serve {shlex.quote(str(Path(folder).resolve()))} --served-model-name {shlex.quote(name)} "
            f"--port {port} --max-model-len 32768\n"
            f"lwz models add {shlex.quote(name)}-vllm --backend openai --base-url http://HOST:{port}/v1 "
            f"--model-id {shlex.quote(name)}" + (" --api completions" if api == "completions" else ""))


def model_config(folder) -> dict:
    """The model folder's ``config.json`` as a dict (a UserError when missing or unreadable)."""
    import json

    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{folder} is not a model folder ({path.name}: {type(exc).__name__})") from None


def model_context(folder) -> int:
    """The model's context in tokens: ``max_position_embeddings`` (of the text config, for multimodal ones)."""
    config = model_config(folder)
    text = config.get("text_config") or {}
    context = config.get("max_position_embeddings") or text.get("max_position_embeddings")
    if not isinstance(context, int) or context < 1:
        raise UserError(f"{folder}: config.json names no max_position_embeddings; give --max-length")
    return context


def check_reward_model(folder) -> None:
    """Refuse a reward-model folder that is not a sequence-classification model, before training starts."""
    config = model_config(folder)
    architectures = config.get("architectures") or []
    if not any(str(a).endswith("ForSequenceClassification") for a in architectures):
        names = ", ".join(architectures) or "none recorded"
        raise UserError(f"--reward-model {folder} is not a sequence-classification model (architectures: {names}); "
                        "give a folder from lwz train reward")
