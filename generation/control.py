"""Length control, in two pure pieces the round loop (``generation.service.run_plan``) drives:

- :class:`TokenLedger`: tokens spent on the plan and on the answer against the :class:`Budget`,
  and what the next request may ask for (``max_tokens``, ``min_tokens`` from ``Budget.answer_min``);
- :class:`LengthController`: the answer against its target word count. It passes text through,
  asks for the ending once the text nears the target, stops at the first sentence end past the
  target (holding back text until one comes) and cuts at the hard cap. Every answer chunk of
  every template passes through it, target or not, so it also holds the loop guard
  (``generation.loopguard``): a text that starts repeating itself is stopped as ``looping``.

Neither touches a backend, the clock or the database, so each is tested alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from generation.counting import GrowingCount, count_words
from generation.length import SHORT_FRACTION, Budget
from generation.loopguard import LoopGuard

HARD_CAP_FRACTION = 1.2
"""The answer is cut here, sentence end or not."""
CONCLUDE_FRACTION = 0.85
"""Once the answer reaches this share of its target, the model is asked to bring it to an end."""
CONCLUDE_MIN_TARGET = 60
"""Targets below this many words are not steered (a note to conclude would outweigh the text)."""
CONCLUDED_SLACK = 1.1
"""After the request to conclude, the text may run to this share of the target before the
controller stops it at a sentence end: the model gets room to finish its ending."""
WORD_CHECK_TOKENS = 16
"""Answer words are recounted at each sentence end and every this many answer tokens (fewer
for small targets: a tenth of the target)."""
NO_WORDS_TOKENS = 200
"""An answer that gains no word over this many tokens has broken down (one symbol or a foreign
letter repeated, seen from the bundled model past 2,000 words): it is stopped (``degenerate``)
instead of spending the rest of its budget on text that counts for nothing."""
SENTENCE_ENDS = (".", "!", "?", "\n", "。", "！", "？")
CLOSERS = ('"', "”", "'", "’", ")", "」", "*")

# How a text ended, recorded in the row's params as ``ending``. ``broke_down``: stopped as
# ``degenerate`` (no words for NO_WORDS_TOKENS tokens), not cut at its target. ``looping``: stopped
# by the loop guard; it is also the stop reason, and so the row's finish reason.
NATURAL, CONCLUDED, CUT, SHORT, BROKE_DOWN = "natural", "concluded", "cut", "short", "broke_down"
LOOPING = "looping"


def sentence_cut(text: str) -> Optional[int]:
    """Index just past the first sentence end in ``text`` (closing quotes and brackets
    included), or None when no sentence ends in it."""
    for index, char in enumerate(text):
        if char in SENTENCE_ENDS:
            end = index + 1
            while end < len(text) and text[end] in CLOSERS:
                end += 1
            return end
    return None


def last_sentence_end(text: str) -> int:
    """Index just past the last sentence end in ``text`` (closing quotes and brackets included),
    or 0 when no sentence ends in it: where a text stopped mid-sentence is trimmed back to."""
    for index in range(len(text) - 1, -1, -1):
        if text[index] in SENTENCE_ENDS:
            end = index + 1
            while end < len(text) and text[end] in CLOSERS:
                end += 1
            return end
    return 0


@dataclass
class SentenceGate:
    """Passes a stream on up to its last sentence end and holds the rest, so that a stream a cap
    stops mid-sentence is shown (and stored) ending on a complete sentence. Text already passed
    on is never taken back: the unfinished sentence is simply never released."""

    pending: str = ""
    released: bool = False

    def feed(self, chunk: str) -> str:
        """The part of ``pending + chunk`` up to its last sentence end (possibly empty)."""
        self.pending += chunk
        end = last_sentence_end(self.pending)
        out, self.pending = self.pending[:end], self.pending[end:]
        self.released = self.released or bool(out.strip())
        return out

    def close(self, *, natural: bool) -> str:
        """At the stream's end: the unfinished sentence is dropped. Only when nothing was released
        is it kept: whole when the model ended it itself (``natural``), else up to its last word."""
        pending, self.pending = self.pending, ""
        if self.released:
            return ""
        if natural:
            return pending
        cut = max(pending.rfind(" "), pending.rfind("\n"))
        return pending[:cut] if cut > 0 else pending


@dataclass
class TokenLedger:
    """Tokens spent so far, per part, against one budget."""

    budget: Budget
    think: int = 0
    answer: int = 0
    completion: int = 0
    """What the server reported as generated (all rounds); ``think + answer`` is counted per delta."""

    def spend(self, tokens: int, *, thinking: bool) -> None:
        if thinking:
            self.think += tokens
        else:
            self.answer += tokens

    @property
    def think_over(self) -> bool:
        return self.think >= self.budget.think

    @property
    def answer_left(self) -> int:
        return self.budget.answer_max - self.answer

    def limits(self, *, answering: bool, steer_min: bool = True) -> tuple[int, int]:
        """``(max_tokens, min_tokens)`` for the next request. While planning, the plan's unspent
        budget and the whole answer budget; while answering, what is left of the answer budget,
        held open until ``Budget.answer_min`` (unless ``steer_min`` is off: the model was asked to
        conclude and may end when it likes)."""
        if not answering:
            return max(0, self.budget.think - self.think) + self.answer_left, 0
        max_tokens = self.answer_left
        min_tokens = max(0, min(max_tokens, self.budget.answer_min - self.answer)) if steer_min else 0
        return max_tokens, min_tokens


@dataclass
class LengthController:
    """The answer against its target (None: no control). Feed it each new answer chunk with the
    whole answer so far; it says what to release and whether to stop."""

    target: Optional[int]
    steer: bool = True
    """Whether the model is asked to conclude near the target (off for plan sections)."""
    tokens_since_check: int = 0
    held: Optional[str] = None
    held_from_words: int = 0
    concluding: bool = False
    """True once the model has been asked to conclude (then it may run to CONCLUDED_SLACK x target)."""
    conclude_wanted: bool = False
    stop_reason: Optional[str] = None
    """``target`` (a sentence end past the target), ``length`` (the hard cap), ``degenerate``
    (NO_WORDS_TOKENS tokens without a word) or ``looping`` (the loop guard fired)."""
    tokens_seen: int = 0
    tokens_at_last_word: int = 0
    words: int = field(default=0)
    guard: LoopGuard = field(default_factory=LoopGuard)
    """Repetition over the answer, checked with or without a target."""
    _count: GrowingCount = field(default_factory=GrowingCount, repr=False)
    """Counts the growing answer at each check without recounting it from the start."""

    @property
    def soft_limit(self) -> float:
        return self.target * (CONCLUDED_SLACK if self.concluding else 1.0)

    @property
    def hard_cap(self) -> float:
        return self.target * HARD_CAP_FRACTION

    def should_steer(self) -> bool:
        """True when the answer has reached the point where the model should be asked to end."""
        return (self.steer and self.target is not None and self.target >= CONCLUDE_MIN_TARGET and not self.concluding
                and self.words >= CONCLUDE_FRACTION * self.target)

    def words_left(self) -> int:
        return max(0, self.target - self.words) if self.target else 0

    def feed(self, chunk: str, answer: str, tokens: int) -> str:
        """Take ``chunk`` (new answer text; ``answer`` is everything so far, chunk included).
        Returns the text to show now; sets ``stop_reason`` when the answer must end here. The chunk
        on which the loop guard fires is shown: the stored text holds everything the guard saw."""
        if self.stop_reason is None and self.guard.feed(chunk):
            self.stop_reason = LOOPING
            return chunk if self.held is None else self.held + chunk
        if self.target is None or self.stop_reason is not None:
            return chunk if self.stop_reason is None else ""
        if self.held is not None:
            self.held += chunk
            cut = sentence_cut(self.held)
            if cut is not None:
                self.stop_reason = "target"
                return self.held[:cut]
            if self.held_from_words + count_words(self.held) >= self.hard_cap:
                self.stop_reason = "length"
                return self.held
            return ""
        self.tokens_since_check += tokens
        self.tokens_seen += tokens
        interval = min(WORD_CHECK_TOKENS, max(1, self.target // 10))
        if not (any(c in chunk for c in SENTENCE_ENDS) or self.tokens_since_check >= interval):
            return chunk
        self.tokens_since_check = 0
        words = self._count(answer)
        if words > self.words:
            self.tokens_at_last_word = self.tokens_seen
        self.words = words
        if self.tokens_seen - self.tokens_at_last_word >= NO_WORDS_TOKENS:
            self.stop_reason = "degenerate"
        elif self.words >= self.hard_cap:
            self.stop_reason = "length"
        elif self.words >= self.soft_limit:
            if answer.rstrip(" ").endswith(SENTENCE_ENDS):
                self.stop_reason = "target"
            else:
                self.held, self.held_from_words = "", self.words
        return chunk

    def flush(self) -> str:
        """Held text when the stream ended before a sentence did (it is shown after all)."""
        held, self.held = self.held or "", None
        return held if self.stop_reason is None else ""

    def is_short(self, answer: str) -> bool:
        """True when ``answer`` stops far short of the target (below SHORT_FRACTION of it)."""
        return self.target is not None and count_words(answer) < SHORT_FRACTION * self.target

    def stopped_ending(self, finish: Optional[str]) -> Optional[str]:
        """broke_down, looping or cut when length control, the loop guard or the token budget
        ended the text; else None."""
        if self.stop_reason == "degenerate":
            return BROKE_DOWN
        if self.stop_reason == LOOPING:
            return LOOPING
        if self.stop_reason is not None or finish == "length":
            return CUT
        return None

    def ending(self, answer: str, finish: Optional[str]) -> Optional[str]:
        """How the text ended: natural, concluded (on request), cut, short, broke down, looping; None
        when cancelled."""
        if finish == "cancelled":
            return None
        stopped = self.stopped_ending(finish)
        if stopped is not None:
            return stopped
        if self.is_short(answer):
            return SHORT
        return CONCLUDED if self.concluding else NATURAL
