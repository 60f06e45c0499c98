"""Reward functions for GRPO, in TRL's signature ``(completions, **kwargs) -> list[float | None]``.

Rewards with parameters are small classes that pickle (TRL may copy them to worker processes);
anything heavy (the embedding model, the reward model) loads lazily on first call and is not
pickled. The metrics themselves live in ``evaluation.metrics`` and are shared, not copied.

- :class:`LengthReward`: the paper's length reward, 1 inside ``[L_lower, L_upper]``, ``len / L_lower``
  below, ``(L_max - len) / (L_max - L_upper)`` above.
- :class:`FormatReward`: 1 for exactly one think part followed by one answer, minus a repetition
  penalty (the longest repeated n-gram span and embedding near-duplicate paragraphs).
- :class:`QualityReward`: a trained reward model scoring exactly the token sequence it was trained
  on, batched, up to the model's context, with truncation counted.
- :class:`AntiHackingPenalty`: 0 for honest text, negative for keyword stuffing and padding.

The paper's combination (each reward normalised within its generation group, then combined) is
TRL's own ``GRPOConfig(multi_objective_aggregation="normalize_then_sum")``; see ``training.trainers``.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

from training.ranges import present, range_problem, word_range

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


def length_score(words: int, *, lower: float, upper: float, l_max: float) -> float:
    """The paper's length reward: 1 inside ``[lower, upper]``; ``words / lower`` below;
    ``(l_max - words) / (l_max - upper)`` above, reaching 0 at ``l_max`` (and 0 past it).

    Requires ``0 < lower <= upper < l_max`` (see :func:`range_problem`).
    """
    if lower <= words <= upper:
        return 1.0
    if words < lower:
        return words / lower
    return max(0.0, (l_max - words) / (l_max - upper))


def _column(kwargs: dict[str, Any], name: str, n: int) -> list[Any]:
    values = kwargs.get(name)
    return [None] * n if values is None else list(values)


class LengthReward:
    """The paper's length reward (LongWriter-Zero, arXiv 2506.18841) on the answer's word count
    (CJK-aware, ``count_words``), with every parameter explicit:

    - ``[L_lower, L_upper]``: the prompt's ``min_words``/``max_words`` columns (the prompt file's
      range), or else ``target_words`` times ``1 ± tolerance``;
    - ``L_max``: the per-prompt ``l_max_words`` column, else ``l_max`` (words, for every prompt),
      else ``l_max_factor * L_upper``. The reward reaches 0 at ``L_max``.

    A prompt without a usable range (none, ``[0, 0]``, inverted, ``L_max <= L_upper``) gets None, which
    TRL leaves out of the combination: a neutral reward, never a crash. ``training.data.prompt_dataset``
    rejects or counts such rows before a run starts, so in a run this only guards hand-made calls.
    """

    def __init__(self, *, tolerance: float = 0.2, l_max: int | None = None, l_max_factor: float = 2.0) -> None:
        if not 0 <= tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
        if l_max is not None and l_max < 2:
            raise ValueError(f"l_max must be at least 2 words, got {l_max}")
        if not l_max_factor > 1:
            raise ValueError(f"l_max_factor must be above 1, got {l_max_factor}")
        self.tolerance, self.l_max, self.l_max_factor = tolerance, l_max, l_max_factor
        self.__name__ = "length"

    def bounds(self, low: Any, high: Any, target: Any, l_max: Any = None) -> tuple[float, float, float] | None:
        """``(L_lower, L_upper, L_max)`` for one prompt, or None when it has no usable range."""
        if not (present(low) and present(high)):
            found = word_range(target=int(target) if present(target) else None, tolerance=self.tolerance)
            if found is None:
                return None
            low, high = found
        ceiling = l_max if present(l_max) else self.l_max
        if ceiling is None and present(high):
            ceiling = self.l_max_factor * float(high)
        if range_problem(low, high, l_max=ceiling) is not None:
            return None
        return float(low), float(high), float(ceiling)

    def __call__(self, completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        from generation.counting import count_words

        n = len(completions)
        lows, highs = _column(kwargs, "min_words", n), _column(kwargs, "max_words", n)
        targets, ceilings = _column(kwargs, "target_words", n), _column(kwargs, "l_max_words", n)
        scores: list[float | None] = []
        for completion, low, high, target, ceiling in zip(completions, lows, highs, targets, ceilings):
            bounds = self.bounds(low, high, target, ceiling)
            if bounds is None:
                scores.append(None)
                continue
            lower, upper, l_max = bounds
            words = count_words(answer_text(completion_text(completion)))
            scores.append(length_score(words, lower=lower, upper=upper, l_max=l_max))
        return scores


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
        scores = []
        for completion, request in zip(completions, requests_of(kwargs, len(completions))):
            answer = answer_text(completion_text(completion))
            scores.append(-(self.stuffing(request, answer) + self.padding(answer)))
        return scores


def requests_of(kwargs: dict[str, Any], n: int) -> list[str]:
    """The user's requests behind ``n`` completions: the rows' ``request`` column when there is one
    (on the completions path the prompt is the whole raw served text), else the prompts' last user turn."""
    requests = kwargs.get("request")
    if requests is not None:
        return [str(r or "") for r in requests]
    return [prompt_text(p or "") for p in _column(kwargs, "prompts", n)]


def reward_device(device: str = "auto") -> str:
    """Where the reward model runs: ``auto`` is this rank's GPU (``cuda:LOCAL_RANK``) when there is one, else the CPU."""
    if device != "auto":
        return device
    import os

    import torch

    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"


class QualityReward:
    """Scores from a reward model trained by ``lwz train reward`` (a sequence-classification folder).

    Each completion is scored on exactly the token sequence the reward model was trained on:
    the conversation ``[system: template instructions, user: request, assistant: completion]``
    rendered with the reward model's own template (``template``, else the one its run recorded in
    ``lwz_run.json``) and tokenised by TRL's own dataset tokeniser, as RewardTrainer does.

    ``device`` (``auto``: this rank's GPU, else the CPU) and ``dtype`` (``auto``: bfloat16 on a GPU,
    float32 on the CPU) say where the model runs; on a GPU host each rank loads it onto its own GPU.

    Longer than the context: ``max_length`` defaults to the model's context. A longer input is scored
    on its first ``max_length`` tokens (the request and the opening of the text), never given None:
    TRL would read None as the group's mean and the overlong text would go unpenalised. Every such
    input is counted (``self.stats["truncated"]``, in the run's ``metrics.quality_reward``) and each
    call that truncates prints one line saying how many, so a run whose texts outgrow the reward
    model's context says so while it runs.
    """

    def __init__(self, path: str, *, template: str | None = None, max_length: int | None = None,
                 batch_size: int = 8, device: str = "auto", dtype: str = "auto", log=None) -> None:
        if dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got {dtype!r}")
        self.path, self.batch_size, self.device, self.dtype = str(path), batch_size, device, dtype
        self.template = template or trained_template(path)
        self._max_length = max_length
        self._log = log
        self.stats = {"scored": 0, "truncated": 0}
        self.__name__ = "quality"
        self._loaded = self._tokenizer_cache = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_loaded"] = state["_tokenizer_cache"] = state["_log"] = None
        return state

    def _tokenizer(self):
        if self._tokenizer_cache is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.path)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._tokenizer_cache = tokenizer
        return self._tokenizer_cache

    def _load(self):
        if self._loaded is None:
            import torch
            from transformers import AutoModelForSequenceClassification

            tokenizer = self._tokenizer()
            device = reward_device(self.device)
            dtype = self.dtype if self.dtype != "auto" else ("bfloat16" if device.startswith("cuda") else "float32")
            model = AutoModelForSequenceClassification.from_pretrained(self.path, dtype=getattr(torch, dtype))
            model = model.to(device).eval()
            model.config.pad_token_id = tokenizer.pad_token_id
            self._loaded = (tokenizer, model, device)
        return self._loaded

    @property
    def max_length(self) -> int:
        """The token limit: the one given, else the model's context (``max_position_embeddings``)."""
        if self._max_length is None:
            from training.checkpoints import model_context

            self._max_length = model_context(self.path)
        return self._max_length

    def encode(self, request: str, completion: str) -> list[int]:
        """The token ids RewardTrainer would train on for this request and completion."""
        from trl.data_utils import _tokenize

        from training.prompts import messages_for

        tokenizer = self._tokenizer()
        messages = messages_for(request, template=self.template) + [{"role": "assistant", "content": completion}]
        return list(_tokenize(tokenizer, messages, tools=None)["input_ids"])

    def __call__(self, completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        import torch

        tokenizer, model, device = self._load()
        requests = requests_of(kwargs, len(completions))
        encoded = [self.encode(r, completion_text(c)) for r, c in zip(requests, completions)]
        limit = self.max_length
        cut = sum(len(ids) > limit for ids in encoded)
        encoded = [ids[:limit] for ids in encoded]
        scores: list[float | None] = []
        for start in range(0, len(encoded), self.batch_size):
            padded = tokenizer.pad({"input_ids": encoded[start : start + self.batch_size]}, return_tensors="pt")
            with torch.no_grad():
                logits = model(**padded.to(device)).logits[:, 0]
            scores.extend(float(value) for value in logits.float().tolist())
        self.stats["scored"] += len(encoded)
        self.stats["truncated"] += cut
        if cut:
            line = (f"[lwz train] quality reward: {cut} of {len(encoded)} texts longer than the reward model's "
                    f"{limit} tokens, scored on their first {limit} ({self.stats['truncated']} so far)")
            (self._log or (lambda text: print(text, file=sys.stderr, flush=True)))(line)
        return scores


def trained_template(path: str) -> str:
    """The template a reward model was trained with, as its run recorded it (``none`` if unrecorded)."""
    import json
    from pathlib import Path

    record = Path(path) / "lwz_run.json"
    if record.is_file():
        try:
            return str(json.loads(record.read_text(encoding="utf-8")).get("template") or "none")
        except ValueError:
            return "none"
    return "none"
