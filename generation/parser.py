"""The incremental ``<think>``/``<answer>`` parser: text chunks in, typed events out.

A pure state machine, no I/O. It copes with what real models and servers produce:

- a tag split across chunks (``<thi`` + ``nk>``): a trailing fragment that could still become a
  tag is held back until the next chunk decides it;
- no tags at all (small chat models write straight away): everything is the answer;
- ``<think>`` never closed: the text stays the plan (the service then forces the answer);
- ``</answer>`` missing (servers drop the stop string): the answer runs to the end;
- text after ``</answer>``: dropped;
- stray tags inside the answer (``<think>``, ``</think>``, a second ``<answer>``): dropped.

When the prompt pre-fills ``<think>`` (the chat form of the protocol), build the parser with
``prefilled=True``: the model's first words are then the plan.
"""

from __future__ import annotations

from typing import Optional

from generation.events import Answer, Done, Event, Think

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

START, THINK, BETWEEN, ANSWER, AFTER = "start", "think", "between", "answer", "after"

_OPENING = {THINK: f"{THINK_CLOSE}\n{ANSWER_OPEN}\n", START: f"{THINK_OPEN}\n{THINK_CLOSE}\n{ANSWER_OPEN}\n",
            BETWEEN: f"{ANSWER_OPEN}\n"}


def answer_opening(state: str) -> str:
    """The text that closes the plan and opens the answer from parser ``state`` (what the service
    appends to force the answer; "" once the answer is open)."""
    return _OPENING.get(state, "")


def tagged(think: str, answer: str) -> str:
    """``think`` and ``answer`` as one tagged completion (the protocol's full form)."""
    return f"{THINK_OPEN}{think}{THINK_CLOSE}\n{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"


class StreamParser:
    """Feed chunks with :meth:`feed`; finish with :meth:`close`. Events come back in order.

    Adjacent events of one kind are merged per call, so a chunk gives at most a few events.
    ``think`` and ``answer`` hold everything emitted so far.
    """

    def __init__(self, *, prefilled: bool = False) -> None:
        self.state = THINK if prefilled else START
        self._buffer = ""
        self.think = ""
        self.answer = ""
        self.saw_answer_tag = False
        self.closed_answer = False

    @property
    def in_think(self) -> bool:
        """True while the model is (still) planning."""
        return self.state == THINK

    def force_answer(self) -> None:
        """Close the plan and start the answer (the think budget ran out, or the plan never closed)."""
        self._buffer = ""
        self.state = ANSWER
        self.saw_answer_tag = True

    def resume(self, think: str, answer: str) -> None:
        """Start from a stored text: the plan ``think`` and, when ``answer`` or no plan is given,
        the answer open (a continuation writes on from there; nothing already written is emitted)."""
        self._buffer, self.think, self.answer = "", think, answer
        if answer or not think:
            self.state, self.saw_answer_tag = ANSWER, True
        else:
            self.state = THINK

    def reopen_answer(self) -> None:
        """Undo a closing ``</answer>``: the text is continued (the tag is not sent back)."""
        if self.state == AFTER:
            self._buffer, self.state, self.closed_answer = "", ANSWER, False

    def feed(self, chunk: str) -> list[Event]:
        """Parse one chunk; returns the think/answer events it completes."""
        self._buffer += chunk
        out: list[Event] = []
        while self._buffer:
            if not self._step(out):
                break
        return _merge(out)

    def close(
        self,
        finish_reason: Optional[str] = None,
        *,
        prompt_tokens: Optional[int] = None,
        completion_tokens: Optional[int] = None,
    ) -> list[Event]:
        """Flush what was held back (a fragment that never became a tag is text) and emit Done."""
        out: list[Event] = []
        rest, self._buffer = self._buffer, ""
        if rest:
            if self.state == START:
                self.state = ANSWER
                rest = rest.lstrip()
            elif self.state == BETWEEN:
                rest = rest.lstrip()
                self.state = ANSWER if rest else BETWEEN
            self._emit(rest, out)
        out = _merge(out)
        out.append(Done(finish_reason=finish_reason, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens))
        return out

    def _emit(self, text: str, out: list[Event]) -> None:
        if not text:
            return
        if self.state == THINK:
            self.think += text
            out.append(Think(text))
        elif self.state == ANSWER:
            self.answer += text
            out.append(Answer(text))

    def _step(self, out: list[Event]) -> bool:
        """Consume part of the buffer. False when the rest must wait for more text."""
        buf = self._buffer
        if self.state == AFTER:
            self._buffer = ""
            return False
        if self.state in (START, BETWEEN):
            stripped = buf.lstrip()
            if not stripped:
                self._buffer = ""
                return False
            for tag, target in ((THINK_OPEN, THINK), (ANSWER_OPEN, ANSWER)):
                if stripped.startswith(tag):
                    if self.state == BETWEEN and tag == THINK_OPEN:
                        target = ANSWER  # a second plan after the first: treat what follows as the answer
                    self._buffer = stripped[len(tag):]
                    self.state = target
                    self.saw_answer_tag = self.saw_answer_tag or target == ANSWER
                    if target == ANSWER:
                        self._buffer = self._buffer.lstrip("\n")
                    return True
            if any(tag.startswith(stripped) for tag in (THINK_OPEN, ANSWER_OPEN)):
                self._buffer = stripped
                return False
            self.state = ANSWER  # untagged text: all of it is the answer
            self._buffer = stripped
            return True
        # THINK or ANSWER: find the next tag.
        index = buf.find("<")
        while index != -1:
            tag = next((t for t in TAGS if buf.startswith(t, index)), None)
            if tag is not None:
                break
            fragment = buf[index:]
            if any(t.startswith(fragment) for t in TAGS):
                self._emit(buf[:index], out)
                self._buffer = fragment
                return False
            index = buf.find("<", index + 1)
        if index == -1:
            self._emit(buf, out)
            self._buffer = ""
            return False
        self._emit(buf[:index], out)
        rest = buf[index + len(tag):]
        if self.state == THINK:
            if tag == THINK_CLOSE:
                self.state = BETWEEN
            elif tag == ANSWER_OPEN:  # the plan was never closed but the answer begins
                self.state, self.saw_answer_tag = ANSWER, True
                rest = rest.lstrip("\n")
            # a stray <think> or </answer> inside the plan is dropped
        else:
            if tag == ANSWER_CLOSE:
                self.state, self.closed_answer = AFTER, True
                rest = ""
            # stray <think>, </think> or a second <answer> inside the answer are dropped
        self._buffer = rest
        return True


def _merge(events: list[Event]) -> list[Event]:
    merged: list[Event] = []
    for event in events:
        if merged and type(merged[-1]) is type(event) and isinstance(event, (Think, Answer)):
            merged[-1] = type(event)(merged[-1].text + event.text)
        else:
            merged.append(event)
    return merged


def parse_text(text: str, *, prefilled: bool = False) -> tuple[str, str]:
    """Split a whole completion into ``(think, answer)`` with the same rules as the stream."""
    parser = StreamParser(prefilled=prefilled)
    parser.feed(text)
    parser.close()
    return parser.think.strip(), parser.answer.strip()
