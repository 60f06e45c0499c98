"""Which languages a model writes, which language a request is in, and the line that refuses a
request in a language its model does not write, before any token.

Measured: the bundled model (SmolLM2-135M, an English model), asked for 2,000 Chinese characters,
wrote spam URLs, letter runs and "；；；" (317 Chinese characters), and the product said nothing
before it started. A request in a language its model does not write is now refused with one line
(the CLI lets the writer insist).

The rules, kept simple on purpose:

- **the request's language** is the templates' rule (``generation.templates.language_of``): a
  request with any CJK ideograph is Chinese, any other is English. It is the rule the prompts are
  rendered with, and the one the word count follows (Chinese is counted in characters).
- **a model's languages**: the ``languages`` list of its entry's ``sampling`` JSON (codes such as
  ``["en"]``; no schema change). The bundled model writes English (``BUNDLED_LANGUAGES``), also
  when it was registered before entries recorded it. An entry that says nothing writes any.
"""

from __future__ import annotations

from typing import Optional

from generation.bundled import BUNDLED_LANGUAGES
from generation.templates import language_of

LANGUAGE_NAMES = {"en": "English", "zh": "Chinese"}
WHY = {"zh": "it has Chinese characters", "en": "it has no Chinese characters"}


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def request_language(prompt: str) -> str:
    """``'zh'`` or ``'en'``: the language a request is written in (see the module docstring)."""
    return language_of(prompt)


def is_bundled(entry) -> bool:
    """True for an entry serving the bundled model (the local backend with no model folder)."""
    return entry.backend == "local" and not entry.path


def model_languages(entry) -> Optional[tuple[str, ...]]:
    """The languages ``entry``'s model writes, or None when it may write any."""
    listed = (entry.sampling or {}).get("languages")
    if listed:
        return tuple(str(code) for code in listed)
    return tuple(BUNDLED_LANGUAGES) if is_bundled(entry) else None


def language_refusal(entry, prompt: str) -> Optional[str]:
    """One line saying that ``entry``'s model does not write the request's language, or None
    when it does (or may)."""
    languages = model_languages(entry)
    wanted = request_language(prompt)
    if languages is None or wanted in languages:
        return None
    writes = " and ".join(language_name(code) for code in languages)
    return (f"model {entry.name!r} writes {writes} only, and this request is in {language_name(wanted)} "
            f"({WHY.get(wanted, 'by its characters')}): pick a model that writes {language_name(wanted)}, "
            f"or write the request in {writes}")
