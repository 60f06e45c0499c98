"""A request as the model is trained on it, which is exactly how it is served.

A model is served on one of two paths (``ModelEntry.sampling["api"]``, ``generation.templates``):

- ``chat``: ``/v1/chat/completions`` and the embedded backend: the template's system message and the
  user's request, rendered by the tokenizer's chat template. Training rows are then conversations,
  and TRL applies the same chat template.
- ``completions``: ``/v1/completions`` with the template's raw prompt (for ``think``, the released
  LongWriter-Zero model's ``… <|user|>: {question} <|assistant|>:`` text). Training rows are then that
  exact string, and TRL tokenises it as the server does (the tokenizer's own special tokens, no chat
  template), so a model trained here sees what it is served.

The rendering itself belongs to ``generation.templates``; this module only picks the form.
"""

from __future__ import annotations

from typing import Any

APIS = ("chat", "completions")


def messages_for(prompt: str, *, template: str) -> list[dict[str, str]]:
    """The chat messages a model with ``template`` (think, direct, none) is prompted with."""
    if template == "none":
        return [{"role": "user", "content": prompt}]
    from generation.templates import render

    rendered = render(template, prompt)
    return [{"role": "system", "content": rendered.system}, {"role": "user", "content": rendered.user}]


def served_text(prompt: str, *, template: str) -> str:
    """The raw completion prompt a ``completions`` server is sent for ``prompt`` (``none``: the request alone)."""
    if template == "none":
        return prompt
    from generation.templates import render

    return render(template, prompt).raw


def training_prompt(prompt: str, *, template: str, api: str) -> Any:
    """The prompt column of a training row: messages on the chat path, the raw text on the completions path."""
    if api not in APIS:
        raise ValueError(f"api must be one of {', '.join(APIS)}, got {api!r}")
    return messages_for(prompt, template=template) if api == "chat" else served_text(prompt, template=template)


def training_completion(text: str, *, api: str) -> Any:
    """A completion column matching :func:`training_prompt`'s form (TRL wants both forms alike)."""
    return [{"role": "assistant", "content": text}] if api == "chat" else text
