"""The loop guard: a live check, while a text streams, that it has not started repeating itself.

Seen from the bundled model asked for 3,000 words: "In conclusion…" near 500 words, chatbot
chatter, then more than 100 lines of "It's grownll." while the page kept saying "Writing…". The
no-word rule of ``generation.control`` (``degenerate``) never fired, since every line has words.
Two signals, either one stops the text:

- **recent words**: the share of distinct 4-word sequences among the last WINDOW_WORDS words
  (distinct-4, as ``evaluation.metrics`` reports it for whole texts) falls below MIN_DISTINCT4. Prose,
  even a weak model's, stays near 1.0 in such a window; a loop of a few sentences falls to a
  tenth. Catches loops of any unit up to about half the window.
- **whole repeated units**: of the last UNIT_WINDOW lines or sentences (of at least UNIT_MIN_WORDS
  words), REPEATED_UNITS_SHARE or more are copies of one of the UNIT_HISTORY before them. Catches
  a repeated line within a few dozen words, and a repeated paragraph longer than the word window.

The thresholds, measured with this guard fed word by word: on real prose (``docs/benchmarks.md``,
11,000 words with tables of figures and commands, kept as ``tests/data/varied_long_text.md``) the
lowest distinct-4 of a window was 0.78 and the highest share of copied units 0.08; other real
texts (the GFDL and Apache licences, ``docs/training.md``) stayed above 0.90 and at or below
0.125; Vim's reference manual (tables of commands) went down to 0.68 and up to 0.54, still let
through. The looping texts the bundled model wrote are below 0.1 over their loops
(``benchmarks/results/long_browser_direct.json``: 0.03 over the whole 9,259 words), and a line
repeated fills the unit window with copies.

Tokens are English words, numbers and CJK characters (a Chinese text is checked in characters);
positions are reported in the project's words (``generation.counting``). The guard is pure and fed chunk by chunk (a word or a
sentence may be split across chunks); its cost per chunk does not grow with the text.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Optional

from generation.counting import count_words

WINDOW_WORDS = 300
"""The recent words whose distinct-4 is checked."""
MIN_WINDOW_WORDS = 150
"""The word window is judged once it holds this many words (fewer say little)."""
MIN_DISTINCT4 = 0.5
"""Below this distinct-4 over the recent words, the text is looping."""
UNIT_WINDOW = 24
"""The recent lines or sentences checked for copies."""
UNIT_HISTORY = 200
"""How many earlier lines or sentences a unit is compared with."""
UNIT_MIN_WORDS = 2
"""Shorter units ("Yes.", "* * *") are left out: they repeat in any prose."""
REPEATED_UNITS_SHARE = 0.75
"""At this share of copies among the recent units, the text is looping."""
N = 4
MAX_UNIT_CHARS = 2000
"""A line or sentence is compared on its last this many characters (a text with no sentence end
for pages is still checked by its words)."""

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[a-zA-Z0-9]+")
"""A token: a CJK character, or a run of English letters and digits. Other scripts' letters are
left out, as ``generation.counting`` leaves them out of words: a text that writes nothing but one
foreign letter has broken down (``degenerate`` in ``generation.control``), it is not looping."""
_PARTIAL = re.compile(r"[a-zA-Z0-9]+\Z")
"""Letters or digits at the end of a chunk: maybe the start of a token the next chunk ends."""
_UNIT_END = re.compile(r"[.!?](?=\s)|[。！？\n]")
"""Where a line or sentence ends: a newline, a CJK sentence end, or ``.!?`` before a space (so
"3.5" and "e.g.x" do not split). A ``.!?`` that ends the buffer waits for the next chunk."""


LOOP_START_SHARE = 0.8
"""The loop is taken to start where the copies, counted back from the end, still make this share."""


def loop_start(marks: list[tuple[int, bool]]) -> int:
    """The position (a word count) where a run of copies began: the earliest mark from which, to
    the end, at least LOOP_START_SHARE of the marks ``(position, is_copy)`` are copies."""
    copies = total = 0
    start = marks[-1][0]
    for position, copy in reversed(marks):
        total += 1
        copies += copy
        if copy and copies >= LOOP_START_SHARE * total:
            start = position
    return start


@dataclass
class LoopGuard:
    """Feed it every new piece of a text (``feed``); ``looping_at`` becomes the word count at
    about which the text started repeating itself, once it does (it stays set)."""

    looping_at: Optional[int] = None
    words: int = 0
    """Words taken in so far, as ``generation.counting`` counts them (a word split across chunks
    is counted once it ends). Numbers are tokens of the 4-word sequences (a table of figures is
    not a loop) but not words; positions are given in words, to the chunk."""
    _window: deque = field(default_factory=deque, repr=False)
    """``(gram, word_index, repeated)`` of the last WINDOW_WORDS words; gram is the 4-word
    sequence ending at that word (None for the first three words of the text)."""
    _grams: Counter = field(default_factory=Counter, repr=False)
    _gram_total: int = 0
    _last: deque = field(default_factory=lambda: deque(maxlen=N), repr=False)
    _word_tail: str = ""
    _unit_text: str = ""
    _units: deque = field(default_factory=deque, repr=False)
    """``(unit, repeated, start_word)`` of the last UNIT_HISTORY units."""
    _unit_counts: Counter = field(default_factory=Counter, repr=False)

    def feed(self, chunk: str) -> bool:
        """Take the next piece of the text; True once the text is looping."""
        if self.looping_at is not None:
            return True
        self._take_words(chunk)
        self._take_units(chunk)
        self.looping_at = self._words_loop()
        if self.looping_at is None:
            self.looping_at = self._units_loop()
        return self.looping_at is not None

    def distinct4(self) -> Optional[float]:
        """Distinct-4 over the recent words, or None while the window is under MIN_WINDOW_WORDS."""
        if len(self._window) < MIN_WINDOW_WORDS or not self._gram_total:
            return None
        return len(self._grams) / self._gram_total

    def repeated_units_share(self) -> Optional[float]:
        """The share of copies among the last UNIT_WINDOW units, or None while there are fewer."""
        if len(self._units) < UNIT_WINDOW:
            return None
        return sum(1 for i in range(len(self._units) - UNIT_WINDOW, len(self._units)) if self._units[i][1]) / UNIT_WINDOW

    def _take_words(self, chunk: str) -> None:
        text = self._word_tail + chunk
        partial = _PARTIAL.search(text)
        cut = partial.start() if partial else len(text)
        self._word_tail = text[cut:]
        for match in _TOKEN.finditer(text, 0, cut):
            self._add_token(match.group(0).lower())
        self.words += count_words(text[:cut])

    def _add_token(self, token: str) -> None:
        self._last.append(token)
        gram = tuple(self._last) if len(self._last) == N else None
        repeated = gram is not None and self._grams[gram] > 0
        if gram is not None:
            self._grams[gram] += 1
            self._gram_total += 1
        self._window.append((gram, self.words, repeated))
        if len(self._window) > WINDOW_WORDS:
            old, _, _ = self._window.popleft()
            if old is not None:
                self._gram_total -= 1
                self._grams[old] -= 1
                if not self._grams[old]:
                    del self._grams[old]

    def _take_units(self, chunk: str) -> None:
        self._unit_text += chunk
        start = 0
        for end in _UNIT_END.finditer(self._unit_text):
            self._close_unit(self._unit_text[start:end.start()])
            start = end.end()
        self._unit_text = self._unit_text[start:][-MAX_UNIT_CHARS:]

    def _close_unit(self, text: str) -> None:
        words = [w.lower() for w in _TOKEN.findall(text)]
        if len(words) < UNIT_MIN_WORDS:
            return
        unit = " ".join(words)
        start = max(0, self.words - len(words))  # about: words of the chunk past this unit may be in already
        self._units.append((unit, self._unit_counts[unit] > 0, start))
        self._unit_counts[unit] += 1
        if len(self._units) > UNIT_HISTORY:
            old, _, _ = self._units.popleft()
            self._unit_counts[old] -= 1
            if not self._unit_counts[old]:
                del self._unit_counts[old]

    def _words_loop(self) -> Optional[int]:
        share = self.distinct4()
        if share is None or share >= MIN_DISTINCT4:
            return None
        return loop_start([(index, repeated) for gram, index, repeated in self._window if gram is not None])

    def _units_loop(self) -> Optional[int]:
        share = self.repeated_units_share()
        if share is None or share < REPEATED_UNITS_SHARE:
            return None
        return loop_start([(start, repeated) for _, repeated, start in self._units])


def loop_position(text: str) -> Optional[int]:
    """Where ``text`` started repeating itself, in words: the guard replayed over it word by word
    (as it was fed while the text streamed), or None when it does not loop. For the page of a
    text the guard stopped, which keeps the text, not the guard."""
    guard = LoopGuard()
    for piece in re.findall(r"\S+\s*|\s+", text):
        if guard.feed(piece):
            return guard.looping_at
    return guard.looping_at if guard.feed("\n") else None
