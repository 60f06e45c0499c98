"""``LocalBackend``: the embedded transformers model, run in-process on one worker thread.

One instance per model folder per process (see ``backend_for``). Requests are served one at a
time, first come first served: a caller that has to wait receives ``Queued(position)`` events
(1 means next) whenever its place changes. Generation runs on the worker thread; its text is
handed to the caller's event loop as it is produced. Cancelling (the cancel event, or closing
the stream) stops generation at the next token; a request cancelled while queued leaves the
queue at once (its caller gets ``Finish("cancelled")`` without waiting for the running one).

Every generated token is reported as it is produced, even while its text is held back (the
streamer waits for a word or character to be complete; a model looping on "！！！" or digits
shows nothing for hundreds of tokens): such tokens come as ``Delta("", n)``, so the caller's
think budget and stall limit see progress that has no visible text yet.

At interpreter exit the worker is stopped and joined (``atexit``): a daemon thread still inside
torch when the interpreter tears down aborts the process ("terminate called without an active
exception", exit 134) after the CLI has printed its result.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import AsyncIterator, Optional

from generation.backends.base import BackendError, BackendRequest, Delta, Finish, StopFilter, StreamItem
from generation.events import Queued

_END = object()
SHUTDOWN_JOIN_S = 60.0
"""How long interpreter exit waits for the worker to finish its current token (a long prefill
cannot be interrupted)."""


GENERATION_THREADS = 1
"""Torch threads of the generating worker (set on that thread only: OpenMP's setting is per thread).
A 135M model's per-token ops are too small to split: with 2 threads on 2 cores the threads spend
most of their CPU waiting for each other, and on a busy machine they stall outright. Measured
(docs/benchmarks.md, "The default's speed"): 60 tokens at load ~5 took 3.3 CPU-s on 1 thread against
13–21 CPU-s on 2, and ran 9–12 tokens/s against 1.7–3.5."""


_LOADING = threading.Lock()
"""One model loads at a time in a process: two folders loading at once race inside transformers
(an ImportError of its lazy modules, or a model whose tied weights come out untied)."""


@dataclass(eq=False)
class _Job:
    request: BackendRequest
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue
    stop: threading.Event = field(default_factory=threading.Event)
    position: int = 0

    def send(self, item) -> None:
        """Hand ``item`` to the caller's loop; a caller whose loop is gone is treated as cancelled."""
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)
        except RuntimeError:
            self.stop.set()


class LocalBackend:
    """The model in ``folder`` (a Hugging Face folder), loaded on first use."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.description = f"local model {folder}"
        self._model = None
        self._tokenizer = None
        self._load_lock = threading.Lock()
        self._cond = threading.Condition()
        self._pending: deque[_Job] = deque()
        self._running: Optional[_Job] = None
        self._worker: Optional[threading.Thread] = None
        self._closing = False
        atexit.register(self.shutdown)

    # -- model -------------------------------------------------------------------------------
    def _load(self):
        with self._load_lock, _LOADING:
            if self._model is None:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer

                try:
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()
                    self._tokenizer = AutoTokenizer.from_pretrained(self.folder)
                    model = AutoModelForCausalLM.from_pretrained(self.folder, dtype=torch.float32)
                except (OSError, ValueError) as exc:
                    raise BackendError(f"cannot load the local model from {self.folder}: {str(exc).splitlines()[0]}") from None
                model.eval()
                self._model = model
        return self._model, self._tokenizer

    def _prompt_text(self, request: BackendRequest) -> str:
        _, tokenizer = self._load()
        if not request.use_chat or tokenizer.chat_template is None:
            return request.prompt + request.assistant
        messages = [{"role": "system", "content": request.system}, {"role": "user", "content": request.user}]
        head = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return head + request.assistant

    async def count_tokens(self, text: str) -> int:
        _, tokenizer = await asyncio.to_thread(self._load)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    async def prompt_tokens(self, request: BackendRequest) -> int:
        text = await asyncio.to_thread(self._prompt_text, request)
        return await self.count_tokens(text)

    async def prompt_tokens_at_most(self, request: BackendRequest) -> int:
        return await self.prompt_tokens(request)  # the tokenizer is in this process: the count is cheap

    async def context_length(self) -> int:
        model, _ = await asyncio.to_thread(self._load)
        return int(getattr(model.config, "max_position_embeddings", 2048))

    # -- queue -------------------------------------------------------------------------------
    def queue_length(self) -> int:
        """Requests waiting plus the one running."""
        with self._cond:
            return len(self._pending) + (self._running is not None)

    def _submit(self, job: _Job) -> int:
        with self._cond:
            if self._closing:
                raise BackendError("the local model is shutting down")
            self._pending.append(job)
            position = job.position = len(self._pending) - 1 + (self._running is not None)  # requests ahead
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name=f"lwz-local-{id(self):x}", daemon=True)
                self._worker.start()
            self._cond.notify_all()
        return position

    def _renumber(self) -> None:
        """Tell every waiting caller whose place changed its new place (call with the lock held)."""
        ahead = self._running is not None
        for index, waiting in enumerate(self._pending, start=ahead):
            if waiting.position != index:
                waiting.position = index
                waiting.send(Queued(index))

    def _withdraw(self, job: _Job) -> None:
        """Take a cancelled ``job`` out of the queue now, if it is still waiting: its caller gets
        ``Finish("cancelled")`` at once and those behind it move up."""
        with self._cond:
            if job not in self._pending:
                return  # running (it stops at its next token) or already done
            self._pending.remove(job)
            self._renumber()
        job.send(Finish("cancelled"))
        job.send(_END)

    def shutdown(self) -> None:
        """Stop every request and wait for the worker to end (run at interpreter exit)."""
        with self._cond:
            self._closing = True
            for job in (*self._pending, *([self._running] if self._running else [])):
                job.stop.set()
            worker = self._worker
            self._cond.notify_all()
        if worker is not None and worker is not threading.current_thread():
            worker.join(SHUTDOWN_JOIN_S)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    if self._closing or not self._cond.wait(timeout=60):
                        self._worker = None
                        return
                job = self._pending.popleft()
                self._running = job
                self._renumber()
            try:
                if not job.stop.is_set():
                    self._generate(job)
                else:
                    job.send(Finish("cancelled"))
            except BaseException as exc:  # a failure must reach the caller, not kill the worker
                job.send(BackendError(f"the local model failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"))
            finally:
                job.send(_END)
                with self._cond:
                    self._running = None

    def _generate(self, job: _Job) -> None:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

        model, tokenizer = self._load()
        torch.set_num_threads(GENERATION_THREADS)
        request = job.request
        inputs = tokenizer(self._prompt_text(request), return_tensors="pt", add_special_tokens=False)
        prompt_len = inputs["input_ids"].shape[1]
        counter = {"pending": 0}
        stops = StopFilter(request.stop)

        class _Streamer(TextStreamer):
            def put(self, value):
                if not self.next_tokens_are_prompt:
                    counter["pending"] += int(value.numel())
                super().put(value)
                if counter["pending"]:  # generated, but its text is held back: report the tokens now
                    job.send(Delta("", counter["pending"]))
                    counter["pending"] = 0

            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                text = stops.push(text) + (stops.flush() if stream_end else "")
                if text:
                    job.send(Delta(text, counter["pending"]))
                    counter["pending"] = 0

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), job.stop.is_set(), dtype=torch.bool)

        if request.seed is not None:
            torch.manual_seed(request.seed)
        kwargs = dict(
            max_new_tokens=request.max_tokens, min_new_tokens=request.min_tokens or None,
            do_sample=request.temperature > 0, streamer=_Streamer(tokenizer, skip_prompt=True, skip_special_tokens=True),
            stopping_criteria=StoppingCriteriaList([_Stop()]), pad_token_id=tokenizer.eos_token_id,
        )
        if request.temperature > 0:
            kwargs.update(temperature=request.temperature, top_p=request.top_p)
        if request.repetition_penalty is not None:
            kwargs.update(repetition_penalty=request.repetition_penalty)
        if request.stop:
            kwargs.update(stop_strings=list(request.stop), tokenizer=tokenizer)
        if request.bad_words:  # each banned string as the model would write it, alone and after a space
            kwargs.update(bad_words_ids=[tokenizer(form, add_special_tokens=False).input_ids
                                         for word in request.bad_words for form in (word, " " + word)])
        with torch.inference_mode():
            output = model.generate(**inputs, **kwargs)
        new_tokens = int(output.shape[1] - prompt_len)
        if job.stop.is_set():
            reason = "cancelled"
        elif new_tokens >= request.max_tokens and int(output[0, -1]) != tokenizer.eos_token_id:
            reason = "length"
        else:
            reason = "stop"
        job.send(Finish(reason, prompt_len, new_tokens))

    async def stream(self, request: BackendRequest, *, cancel: Optional[asyncio.Event] = None) -> AsyncIterator[StreamItem]:
        await asyncio.to_thread(self._load)
        job = _Job(request=request, loop=asyncio.get_running_loop(), out=asyncio.Queue())
        position = self._submit(job)
        if position:
            yield Queued(position)
        watcher = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
        if watcher is not None:
            watcher.add_done_callback(lambda _: (job.stop.set(), self._withdraw(job)))
        finished = False
        try:
            while True:
                item = await job.out.get()
                if item is _END:
                    break
                if isinstance(item, BackendError):
                    raise item
                if isinstance(item, Finish):
                    finished = True
                yield item
            if not finished:
                yield Finish("cancelled")
        finally:
            job.stop.set()
            self._withdraw(job)
            if watcher is not None:
                watcher.cancel()
