"""Reward functions for GRPO, in TRL's signature ``(completions, **kwargs) -> list[float | None]``.

Rewards with parameters are small classes that pickle (TRL may copy them to worker processes);
anything heavy (the embedding model, the reward model) loads lazily on first call and is not
pickled. The metrics themselves live in ``evaluation.metrics`` and are shared, not copied.

- :class:`LengthReward`: the paper's length reward, 1 inside the prompt's target word range,
  decaying linearly to 0 outside it.
- :class:`FormatReward`: 1 for exactly one think part followed by one answer, minus a repetition
  penalty (the longest repeated n-gram span and embedding near-duplicate paragraphs).
- :class:`QualityReward`: a trained reward model, batched, with truncation counted.
- :class:`AntiHackingPenalty`: 0 for honest text, negative for keyword stuffing and padding.
- :class:`GroupAveragedReward`: the paper's combination — each reward normalised within its
  generation group, then the advantages averaged (not TRL's weighted sum before normalisation).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

Completion = Any  # a string, or a conversational completion: a list of {"role", "content"} messages


def completion_text(completion: Completion) -> str:
    """The text of a completion, plain or conversational (assistant messages joined)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    return "".join(str(m.get("content") or "") for m in completion if m.get("role", "assistant") == "assistant")


def prompt_text(prompt: Any) -> str:
    """The user's request in a prompt, plain or conversational (the last user message)."""
    if isinstance(prompt, str):
        return prompt
    users = [str(m.get("content") or "") for m in prompt if m.get("role") == "user"]
    return users[-1] if users else ""


def answer_text(text: str) -> str:
    """The answer part of a think-then-write completion, or the whole text when it has no tags."""
    from generation.parser import parse_text

    if "<answer>" not in text and "<think>" not in text:
        return text.strip()
    return parse_text(text)[1]


def word_range(*, target: int | None, tolerance: float) -> tuple[int, int] | None:
    """The target range ``[target*(1-tolerance), target*(1+tolerance)]`` in words, or None without a target."""
    if target is None or (isinstance(target, float) and math.isnan(target)) or target <= 0:
        return None
    return max(1, round(target * (1 - tolerance))), max(1, round(target * (1 + tolerance)))


def range_score(words: int, low: int, high: int) -> float:
    """1 inside ``[low, high]``; below, ``words / low``; above, ``1 - (words - high) / high`` clipped at 0."""
    if low <= words <= high:
        return 1.0
    if words < low:
        return words / low
    return max(0.0, 1.0 - (words - high) / high)


def _column(kwargs: dict[str, Any], name: str, n: int) -> list[Any]:
    values = kwargs.get(name)
    return [None] * n if values is None else list(values)


class LengthReward:
    """The paper's length reward on the answer's word count (CJK-aware, ``count_words``).

    Reads ``min_words``/``max_words`` (the exported prompt set's range) or else ``target_words``
    with ``tolerance``; a completion whose prompt has neither gets None (TRL ignores it).
    """

    def __init__(self, *, tolerance: float = 0.2) -> None:
        if not 0 <= tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
        self.tolerance = tolerance
        self.__name__ = "length"

    def __call__(self, completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        from generation.counting import count_words

        n = len(completions)
        lows, highs = _column(kwargs, "min_words", n), _column(kwargs, "max_words", n)
        targets = _column(kwargs, "target_words", n)
        scores: list[float | None] = []
        for completion, low, high, target in zip(completions, lows, highs, targets):
            bounds = (int(low), int(high)) if _present(low) and _present(high) else word_range(
                target=int(target) if _present(target) else None, tolerance=self.tolerance)
            if bounds is None:
                scores.append(None)
                continue
            scores.append(range_score(count_words(answer_text(completion_text(completion))), *bounds))
        return scores


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


class FormatReward:
    """``format_valid`` (1 or 0) minus a repetition penalty in [0, 1].

    The penalty is the larger of: the longest span (>= ``ngram`` tokens) that occurs twice, as a
    share of the answer's tokens; and the share of paragraphs that are embedding near-duplicates
    of an earlier one (cosine >= ``near_duplicate_threshold``; skipped when ``embeddings`` is off).
    """

    def __init__(self, *, ngram: int = 4, near_duplicate_threshold: float = 0.9, embeddings: bool = True,
                 embed: Callable[[list[str]], Any] | None = None) -> None:
        self.ngram, self.near_duplicate_threshold = ngram, near_duplicate_threshold
        self.embeddings, self.embed = embeddings, embed
        self.__name__ = "format"

    def repetition(self, text: str) -> float:
        from evaluation.metrics import longest_repeated_ngram, near_duplicate_share, paragraphs_of, tokens

        answer = answer_text(text)
        count = len(tokens(answer))
        span = longest_repeated_ngram(answer, self.ngram) / count if count else 0.0
        near = 0.0
        if self.embeddings:
            near = near_duplicate_share(paragraphs_of(answer), threshold=self.near_duplicate_threshold,
                                        embed=self.embed)
        return min(1.0, max(span, near))

    def __call__(self, completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        from evaluation.metrics import format_valid

        scores = []
        for completion in completions:
            text = completion_text(completion)
            scores.append((1.0 if format_valid(text) else 0.0) - self.repetition(text))
        return scores


class AntiHackingPenalty:
    """0 for honest text, down to -2: keyword stuffing plus padding by repetition.

    Stuffing: ``keyword_stuffing(prompt, answer)`` above ``stuffing_threshold`` (1 is natural
    density) costs up to 1, reaching 1 at twice the threshold. Padding: ``1 - distinct_n(answer, n)``
    above ``padding_slack`` (honest prose repeats few 4-grams), scaled so a text doubled by
    copy-paste costs about 1.
    """

    def __init__(self, *, stuffing_threshold: float = 3.0, n: int = 4, padding_slack: float = 0.05) -> None:
        self.stuffing_threshold, self.n, self.padding_slack = stuffing_threshold, n, padding_slack
        self.__name__ = "anti_hacking"

    def stuffing(self, prompt: str, answer: str) -> float:
        from evaluation.metrics import keyword_stuffing

        excess = keyword_stuffing(prompt, answer) - self.stuffing_threshold
        return min(1.0, max(0.0, excess / self.stuffing_threshold))

    def padding(self, answer: str) -> float:
        from evaluation.metrics import distinct_n, tokens

        if len(tokens(answer)) < self.n + 1:
            return 0.0
        repeated = 1.0 - distinct_n(answer, self.n)
        return min(1.0, max(0.0, (repeated - self.padding_slack) * 2.0))

    def __call__(self, completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        prompts = _column(kwargs, "prompts", len(completions))
        scores = []
        for completion, prompt in zip(completions, prompts):
            answer = answer_text(completion_text(completion))
            scores.append(-(self.stuffing(prompt_text(prompt or ""), answer) + self.padding(answer)))
        return scores


class QualityReward:
    """Scores from a reward model trained by ``lwz train reward`` (a sequence-classification folder).

    The prompt and completion are rendered with the model's chat template as in training, scored
    in batches of ``batch_size``. An input longer than ``max_length`` tokens is *counted* in
    ``self.stats["truncated"]``; with ``on_truncation="none"`` it gets None (TRL then ignores it),
    with ``"score"`` its first ``max_length`` tokens are scored.
    """

    def __init__(self, path: str, *, max_length: int = 2048, batch_size: int = 8, on_truncation: str = "none") -> None:
        if on_truncation not in ("none", "score"):
            raise ValueError(f"on_truncation must be 'none' or 'score', got {on_truncation!r}")
        self.path, self.max_length, self.batch_size, self.on_truncation = str(path), max_length, batch_size, on_truncation
        self.stats = {"scored": 0, "truncated": 0}
        self.__name__ = "quality"
        self._loaded = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_loaded"] = None
        return state

    def _load(self):
        if self._loaded is None:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.path)
            model = AutoModelForSequenceClassification.from_pretrained(self.path, dtype=torch.float32).eval()
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            model.config.pad_token_id = tokenizer.pad_token_id
            self._loaded = (tokenizer, model)
        return self._loaded

    def encode(self, prompt: str, completion: str) -> list[int]:
        tokenizer, _ = self._load()
        if tokenizer.chat_template:
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
            return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
        return tokenizer(prompt + completion)["input_ids"]

    def __call__(self, completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        import torch

        tokenizer, model = self._load()
        prompts = _column(kwargs, "prompts", len(completions))
        encoded = [self.encode(prompt_text(p or ""), completion_text(c)) for p, c in zip(prompts, completions)]
        scores: list[float | None] = [None] * len(encoded)
        todo = []
        for index, ids in enumerate(encoded):
            if len(ids) > self.max_length:
                self.stats["truncated"] += 1
                if self.on_truncation == "none":
                    continue
                ids = ids[: self.max_length]
            todo.append((index, ids))
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            padded = tokenizer.pad({"input_ids": [ids for _, ids in batch]}, return_tensors="pt")
            with torch.no_grad():
                logits = model(**padded).logits[:, 0]
            for (index, _), value in zip(batch, logits.tolist()):
                scores[index] = float(value)
        self.stats["scored"] += len(todo)
        return scores


def group_advantages(rewards_per_func: Sequence[Sequence[float | None]], *, group_size: int,
                     eps: float = 1e-4) -> list[float]:
    """The paper's combination: normalise each reward within each group, then average over rewards.

    ``rewards_per_func[k][i]`` is reward k of completion i; completions come in consecutive groups
    of ``group_size`` (the generations of one prompt). For each reward and group, the advantage is
    ``(r - mean) / (std + eps)``; a None reward contributes nothing, and a completion with no
    reward at all gets 0. A group whose rewards are all equal gives 0 for that reward.
    """
    import warnings

    import numpy as np

    values = np.array([[np.nan if r is None else float(r) for r in rewards] for rewards in rewards_per_func],
                      dtype=np.float64)
    if values.ndim != 2 or values.shape[1] % group_size:
        raise ValueError(f"{values.shape[-1]} completions do not form groups of {group_size}")
    grouped = values.reshape(values.shape[0], -1, group_size)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-None groups: nanmean of nothing
        mean = np.nanmean(grouped, axis=2, keepdims=True)
        std = np.nanstd(grouped, axis=2, keepdims=True)
        advantages = (grouped - mean) / (std + eps)
        advantages = np.where(std > 0, advantages, np.where(np.isnan(grouped), np.nan, 0.0))
        combined = np.nanmean(advantages.reshape(values.shape[0], -1), axis=0)
    return np.nan_to_num(combined, nan=0.0).tolist()


class GroupAveragedReward:
    """One TRL reward function holding several: returns :func:`group_advantages` of their scores.

    Use it as the only reward function with ``scale_rewards="none"``: TRL then subtracts the group
    mean (already 0), so the advantages are exactly the paper's. It needs whole groups in each
    call (one process, or a generation batch that is a multiple of ``num_generations`` per
    process) and checks that each group shares one prompt. The last raw scores of every reward
    are kept in ``self.last`` for logging.
    """

    def __init__(self, funcs: Sequence[Callable[..., list[float | None]]], *, num_generations: int) -> None:
        if num_generations < 2:
            raise ValueError("num_generations must be at least 2 for a group normalisation")
        self.funcs, self.num_generations = list(funcs), num_generations
        self.last: dict[str, list[float | None]] = {}
        self.__name__ = "paper_combined"

    def __call__(self, completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        prompts = kwargs.get("prompts")
        if prompts is not None:
            g = self.num_generations
            for start in range(0, len(prompts), g):
                block = [prompt_text(p) for p in prompts[start : start + g]]
                if len(set(block)) != 1 or len(block) != g:
                    raise ValueError("GroupAveragedReward needs whole generation groups in order; got a split group")
        per_func = []
        for func in self.funcs:
            scores = func(completions, **kwargs)
            self.last[getattr(func, "__name__", type(func).__name__)] = list(scores)
            per_func.append(scores)
        return group_advantages(per_func, group_size=self.num_generations)
