"""A real vLLM server for the tests: the CPU build in ``.venv-vllm`` serving the converted
bundled model under the name ``smollm2-135m``.

``vllm_server`` (session scope) starts one server for the whole test session, waits until it
answers, yields a :class:`VLLMServer` (``base_url`` ending in ``/v1``, ``model``), and stops it
at the end. With ``LWZ_TEST_VLLM_URL`` set (e.g. ``http://127.0.0.1:8100/v1``) it uses that
server instead and stops nothing. :func:`start_vllm_server` starts a private one, for the one
test that kills its server mid-stream; so CI starts at most two servers.

Registered in ``tests/conftest.py`` through ``pytest_plugins``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from generation.backends.managed import LONG_CONTEXT_ARGS, MAX_MODEL_LEN  # also what `lwz serve --bundled-via vllm` serves
from tests.helpers import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
SERVED_NAME = "smollm2-135m"
READY_TIMEOUT_S = float(os.environ.get("LWZ_TEST_VLLM_READY_S", "420"))
"""How long a starting server may take to answer (a loaded 2-core machine needs the most)."""


@dataclass
class VLLMServer:
    """A running server. ``process`` is None for a server this session did not start."""

    base_url: str
    model: str = SERVED_NAME
    process: Optional[subprocess.Popen] = None
    log_path: Optional[Path] = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def root_url(self) -> str:
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the server and its workers at once (a crash, as far as clients can tell)."""
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)
        self._stopped = True

    def stop(self) -> None:
        """Stop a server this session started: SIGTERM, then SIGKILL after 30 s."""
        if self.process is None or self._stopped:
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        self._stopped = True

    def _signal(self, sig: int) -> None:
        if self.process is None:
            raise RuntimeError("this server was not started by the tests; it cannot be stopped here")
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass


def _answers(base_url: str) -> bool:
    import httpx

    try:
        response = httpx.get(f"{base_url}/models", timeout=3)
        return response.status_code == 200 and any(m.get("id") for m in response.json().get("data", []))
    except (httpx.HTTPError, ValueError):
        return False


def start_vllm_server(*, timeout_s: float = READY_TIMEOUT_S, kv_cache_gib: int = 2, quick_start: bool = False,
                      model_dir: Optional[Path] = None, served_name: str = SERVED_NAME) -> VLLMServer:
    """Start a private server on a free port and wait until it lists its model.

    ``quick_start`` skips vLLM's compilation warm-up (``--optimization-level 0``): it starts
    sooner and generates slower, which suits a server that a test is about to kill.
    ``model_dir`` serves another model folder (a trained checkpoint) under ``served_name``;
    by default the converted bundled model under its own name.

    Fails the test (with the log tail) if the vLLM environment is missing, the server exits, or
    it is not ready within ``timeout_s``."""
    from generation.bundled import ensure_bundled_model

    if not VLLM_PYTHON.is_file():
        pytest.fail(f"{VLLM_PYTHON} is missing: run `make vllm-env` to install the vLLM CPU build")
    model_dir = Path(model_dir) if model_dir is not None else ensure_bundled_model()
    port = free_port()
    log_path = Path(tempfile.mkdtemp(prefix="lwz-vllm-")) / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}
    command = [
        str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
        "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", str(MAX_MODEL_LEN), "--dtype", "bfloat16", *LONG_CONTEXT_ARGS,
        *(["--optimization-level", "0"] if quick_start else []),
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = VLLMServer(base_url=f"http://127.0.0.1:{port}/v1", model=served_name, process=process, log_path=log_path)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the vLLM server exited with code {process.returncode}:\n{server.log_tail()}")
            if _answers(server.base_url):
                return server
            time.sleep(2)
    except BaseException:  # interrupted while it starts (Ctrl-C, SIGTERM): no server is left behind
        server.stop()
        raise
    server.stop()
    pytest.fail(f"the vLLM server was not ready within {timeout_s:.0f} s:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def vllm_server():
    """The session's vLLM server (``LWZ_TEST_VLLM_URL`` to reuse a running one)."""
    url = os.environ.get("LWZ_TEST_VLLM_URL")
    if url:
        server = VLLMServer(base_url=url.rstrip("/"), model=os.environ.get("LWZ_TEST_VLLM_MODEL", SERVED_NAME))
        if not _answers(server.base_url):
            pytest.fail(f"LWZ_TEST_VLLM_URL={url} does not answer /models")
        yield server
        return
    server = start_vllm_server()
    try:
        yield server
    finally:
        server.stop()
