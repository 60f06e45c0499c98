"""``OpenAIBackend``: a vLLM or SGLang server through the ``openai`` async client.

Both server paths are supported: ``/v1/completions`` with the raw template (the released
LongWriter-Zero model's protocol) and ``/v1/chat/completions`` with a system message and a
pre-filled assistant turn (``continue_final_message``, a vLLM extension). Cancelling closes the
HTTP stream, which makes the server abort the request. Every failure becomes a one-line
:class:`BackendError` naming the server URL.

Stop strings are applied here, not by the server: a server holds back the last characters of
its output until they cannot begin a stop string (vLLM holds ``len(longest stop) - 1``
characters, 12 for ``<|endoftext|>``), which delays the first text by a few tokens. Here text is
held only while it really is the start of a stop string; on a match the stream is closed, which
aborts the server request, and the finish reason is ``stop`` as a server would report it.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from typing import AsyncIterator, Optional

import httpx

from generation.backends._race import CANCELLED, first_or_cancel, next_or_cancel
from generation.backends.base import BackendError, BackendRequest, Delta, Finish, StopFilter, StreamItem

CONNECT_TIMEOUT_S = 4.0
READ_TIMEOUT_S = 300.0
MODEL_CARD_TTL_S = 30.0
"""How long a served model's card (its context length) is trusted before the server is asked again.
A failed stream forgets it at once."""
BOUND_SLACK_TOKENS = 8
"""Added to the byte bound of a chat prompt: tokens at the seams between the template and the request
may split differently than in the template measured alone."""

_CARDS: dict[tuple[str, str], tuple[float, dict]] = {}
_TEMPLATE_TOKENS: dict[tuple, int] = {}


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every client of this process. Building it (loading the CA bundle)
    costs tens of milliseconds, which each new client would otherwise pay before a request."""
    return ssl.create_default_context()


def _http_client(timeout: httpx.Timeout) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=timeout, verify=_tls_context())


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


class OpenAIBackend:
    """One model on one OpenAI-compatible server. ``api`` is "chat" or "completions"."""

    def __init__(self, *, base_url: str, model: str, api: str = "chat", api_key: str = "EMPTY") -> None:
        if api not in ("chat", "completions"):
            raise ValueError(f"api must be 'chat' or 'completions', got {api!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api = api
        self.api_key = api_key
        self.description = f"{self.model} at {self.base_url}"

    @property
    def root_url(self) -> str:
        """The server root (``/tokenize`` lives there, not under ``/v1``)."""
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)

    def _client(self):
        from openai import AsyncOpenAI

        return AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self._timeout(), max_retries=0,
                           http_client=_http_client(self._timeout()))

    async def served_models(self) -> dict[str, dict]:
        """``{id: model card}`` as the server lists them. Raises BackendError when unreachable."""
        try:
            async with _http_client(self._timeout()) as http:
                response = await http.get(f"{self.base_url}/models")
                response.raise_for_status()
                return {card["id"]: card for card in response.json().get("data", [])}
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise BackendError(f"cannot reach the model server at {self.base_url}: {_one_line(exc)}") from None

    async def _check_model(self, *, cached: bool = False) -> dict:
        """The model's card; with ``cached``, one fetched less than MODEL_CARD_TTL_S ago will do."""
        key = (self.base_url, self.model)
        if cached and key in _CARDS and time.monotonic() - _CARDS[key][0] < MODEL_CARD_TTL_S:
            return _CARDS[key][1]
        cards = await self.served_models()
        if self.model not in cards:
            _CARDS.pop(key, None)
            served = ", ".join(sorted(cards)) or "(none)"
            raise BackendError(f"model {self.model!r} is not served at {self.base_url}; it serves: {served}")
        _CARDS[key] = (time.monotonic(), cards[self.model])
        return cards[self.model]

    def _forget_model(self) -> None:
        _CARDS.pop((self.base_url, self.model), None)

    async def context_length(self) -> int:
        """From the server's model card, asked again at most every MODEL_CARD_TTL_S seconds."""
        card = await self._check_model(cached=True)
        length = card.get("max_model_len")
        if not isinstance(length, int):
            raise BackendError(f"the server at {self.base_url} does not report max_model_len for {self.model!r}")
        return length

    async def _tokenize(self, body: dict) -> int:
        try:
            async with _http_client(self._timeout()) as http:
                response = await http.post(f"{self.root_url}/tokenize", json={"model": self.model, **body})
                response.raise_for_status()
                return int(response.json()["count"])
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise BackendError(f"cannot tokenize with the model server at {self.root_url}: {_one_line(exc)}") from None

    async def count_tokens(self, text: str) -> int:
        return await self._tokenize({"prompt": text, "add_special_tokens": False})

    async def prompt_tokens(self, request: BackendRequest) -> int:
        if not request.use_chat or self.api == "completions":
            return await self._tokenize({"prompt": request.prompt + request.assistant})
        messages, extra = _chat_messages(request)
        return await self._tokenize({"messages": messages, **extra})

    async def prompt_tokens_at_most(self, request: BackendRequest) -> int:
        """An upper bound on :meth:`prompt_tokens` without asking the server for this prompt.

        A byte-level tokenizer never makes more tokens than the text has UTF-8 bytes (SentencePiece
        with byte fallback adds at most a prefix token), so a raw prompt is bounded by its bytes.
        A chat prompt is the chat template around the request: the template with a one-character
        request is tokenized once per system prompt and pre-fill (then cached), and the request's
        bytes plus a little slack are added.
        """
        if not request.use_chat or self.api == "completions":
            return len((request.prompt + request.assistant).encode("utf-8")) + BOUND_SLACK_TOKENS
        key = (self.base_url, self.model, request.system, request.assistant)
        if key not in _TEMPLATE_TOKENS:
            probe = BackendRequest(prompt="", system=request.system, user="x", assistant=request.assistant,
                                   use_chat=True, max_tokens=1)
            _TEMPLATE_TOKENS[key] = await self.prompt_tokens(probe)
        return _TEMPLATE_TOKENS[key] + len(request.user.encode("utf-8")) + BOUND_SLACK_TOKENS

    async def stream(self, request: BackendRequest, *, cancel: Optional[asyncio.Event] = None) -> AsyncIterator[StreamItem]:
        import openai

        client = self._client()
        response = None
        use_chat = self.api == "chat"
        extra_body: dict = {}
        if request.min_tokens:
            extra_body["min_tokens"] = request.min_tokens
        if request.bad_words:
            extra_body["bad_words"] = list(request.bad_words)
        if request.repetition_penalty is not None:
            extra_body["repetition_penalty"] = request.repetition_penalty
        common = dict(
            model=self.model, max_tokens=request.max_tokens, temperature=request.temperature,
            top_p=request.top_p, seed=request.seed, stream=True,
            stream_options={"include_usage": True, "continuous_usage_stats": True},
        )
        try:
            try:
                if use_chat:
                    messages, extra = _chat_messages(request)
                    call = client.chat.completions.create(messages=messages, extra_body={**extra_body, **extra}, **common)
                else:
                    call = client.completions.create(prompt=request.prompt + request.assistant, extra_body=extra_body, **common)
                response = await first_or_cancel(call, cancel)
            except openai.NotFoundError:
                self._forget_model()
                await self._check_model()  # raises with the list of served models
                raise BackendError(f"the server at {self.base_url} answered 404 for model {self.model!r}") from None
            except openai.APIConnectionError as exc:
                self._forget_model()
                raise BackendError(f"cannot reach the model server at {self.base_url}: {_one_line(exc.__cause__ or exc)}") from None
            except openai.APIStatusError as exc:
                raise BackendError(f"the model server at {self.base_url} refused the request ({exc.status_code}): {_server_message(exc)}") from None
            if response is CANCELLED:
                yield Finish("cancelled")
                return
            finish, prompt_tokens, done_tokens = None, None, 0
            stops = StopFilter(request.stop)
            carried: Optional[int] = None
            iterator = response.__aiter__()
            while True:
                try:
                    chunk = await next_or_cancel(iterator, cancel)
                except StopAsyncIteration:
                    break
                except (openai.APIError, httpx.HTTPError) as exc:
                    self._forget_model()
                    raise BackendError(f"the model server at {self.base_url} stopped mid-stream: {_one_line(exc.__cause__ or exc)}") from None
                if chunk is CANCELLED:
                    await response.close()
                    yield Finish("cancelled", prompt_tokens, done_tokens or None)
                    return
                usage = getattr(chunk, "usage", None)
                if usage is not None:
                    prompt_tokens = usage.prompt_tokens
                    carried = (carried or 0) + (usage.completion_tokens or 0) - done_tokens
                    done_tokens = usage.completion_tokens or 0
                for choice in chunk.choices or []:
                    text = stops.push((choice.delta.content or "") if use_chat else (choice.text or ""))
                    if text:
                        yield Delta(text, carried, prompt_tokens)  # tokens of text-less chunks ride on the next text
                        carried = None
                    if choice.finish_reason:
                        finish = choice.finish_reason
                if stops.stopped:
                    finish = "stop"
                    break
            if finish is None:
                raise BackendError(f"the model server at {self.base_url} closed the stream without finishing")
            tail = stops.flush()
            if tail:
                yield Delta(tail, carried, prompt_tokens)
            yield Finish(finish, prompt_tokens, done_tokens or None)
        finally:
            if response is not None and response is not CANCELLED:
                await response.close()
            await client.close()


def _chat_messages(request: BackendRequest) -> tuple[list[dict], dict]:
    messages = [{"role": "system", "content": request.system}, {"role": "user", "content": request.user}]
    if request.assistant:
        messages.append({"role": "assistant", "content": request.assistant})
        return messages, {"add_generation_prompt": False, "continue_final_message": True}
    return messages, {"add_generation_prompt": True}


def _server_message(exc) -> str:
    body = getattr(exc, "body", None)
    message = None
    if isinstance(body, dict):
        message = body.get("message")
        if message is None and isinstance(body.get("error"), dict):
            message = body["error"].get("message")
    return str(message).splitlines()[0][:300] if message else _one_line(exc)
