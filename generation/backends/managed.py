"""The bundled model served by a vLLM child process that ``lwz serve --bundled-via vllm`` owns.

Why: vLLM's CPU build writes the bundled model about twice as fast as the in-process transformers
backend on the same cores (docs/benchmarks.md, "The default's speed"), but it needs minutes to
warm up. So ``lwz serve`` starts the child and serves the page at once; the bundled model's
requests run in-process until the child lists its model, and on the child from then on.

The contract:
- :func:`start_child` starts ``python -m vllm.entrypoints.openai.api_server`` on a free port, in its
  own session (its process group holds vLLM's engine workers too), with a parent-death signal
  (Linux ``prctl(PR_SET_PDEATHSIG, SIGTERM)``): a ``lwz serve`` killed outright never leaves it
  orphaned. A watcher thread marks it ready once ``/v1/models`` lists the model, and not ready
  again if the child dies (requests then go back in-process).
- :func:`bundled_base_url` is the one question ``backend_for`` asks: the child's ``/v1`` URL while
  it is ready, else None. A generation keeps the backend it was planned on (``prepare`` picks it
  once), so a switch never lands in the middle of a text.
- :meth:`ManagedChild.stop` (SIGTERM to the group, SIGKILL after a grace period) is called when
  ``lwz serve`` exits; it is also registered with ``atexit``.

The launch arguments are the ones the test suite's server uses (``tests/vllm_server.py``):
the bundled model past its trained 8,192 tokens, every prompt prefilled in one step.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

MAX_MODEL_LEN = 24576
"""The context served (the test suite's server too): LongWriter-Zero's scale (its card asks for
``max_tokens=15500``), past the bundled model's trained 8,192 tokens, which
``VLLM_ALLOW_LONG_MAX_MODEL_LEN=1`` permits."""
LONG_CONTEXT_ARGS = ["--max-num-batched-tokens", str(MAX_MODEL_LEN), "--no-enable-chunked-prefill",
                     "--hf-overrides", json.dumps({"max_position_embeddings": MAX_MODEL_LEN})]
"""What the CPU build needs to really serve past 8,192 tokens (both crashes were seen on this machine):
- every prompt prefilled in one step: the engine dies (``CPU Generator does not use offset``) when a
  seeded request's prompt is prefilled in chunks, which any prompt past the default batch size is;
- the model's position table as long as the context: with only ``VLLM_ALLOW_LONG_MAX_MODEL_LEN`` the
  server starts and takes the request, then a compiled kernel indexes past position 8,191 and the
  engine dies (``index out of bounds``)."""
KV_CACHE_GIB = 2
STOP_GRACE_S = 20.0
"""How long a stopping child may take after SIGTERM before its group is killed."""
POLL_S = 1.0
EXPECTED_WARMUP_S = 180
"""What the console promises a user: the warm-up measured on a 2-core machine (2.5–3 min)."""

log = logging.getLogger("lwz.vllm_child")
_ACTIVE: Optional["ManagedChild"] = None
_PR_SET_PDEATHSIG = 1


def vllm_command(python: str, model_dir: Path, *, port: int, served_name: str) -> list[str]:
    """The child's command line (one place for it)."""
    return [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port),
            "--max-model-len", str(MAX_MODEL_LEN), "--dtype", "bfloat16", *LONG_CONTEXT_ARGS]


def vllm_environment() -> dict[str, str]:
    return {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(KV_CACHE_GIB), "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent(parent_pid: int):
    """A ``preexec_fn``: ask the kernel to SIGTERM the child when its parent dies (Linux only)."""

    def setup() -> None:
        if sys.platform.startswith("linux"):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return setup


class ManagedChild:
    """One running vLLM child. ``ready`` is set while it serves its model."""

    def __init__(self, process: subprocess.Popen, *, base_url: str, served_name: str, log_path: Path) -> None:
        self.process = process
        self.base_url = base_url
        self.served_name = served_name
        self.log_path = log_path
        self.started = time.monotonic()
        self.ready = threading.Event()
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="lwz-vllm-child", daemon=True)
        self._watcher.start()

    def _answers(self) -> bool:
        import httpx

        try:
            response = httpx.get(f"{self.base_url}/models", timeout=3)
            return response.status_code == 200 and any(m.get("id") == self.served_name
                                                       for m in response.json().get("data", []))
        except (httpx.HTTPError, ValueError):
            return False

    def _watch(self) -> None:
        while not self._stopping.wait(POLL_S):
            if self.process.poll() is not None:
                self.ready.clear()
                if not self._stopping.is_set():
                    log.warning("the vLLM server for the bundled model exited with code %s; the bundled model "
                                "runs in-process (log: %s)", self.process.returncode, self.log_path)
                return
            if not self.ready.is_set() and self._answers():
                self.ready.set()
                log.info("the bundled model now runs on vLLM at %s (ready after %.0f s)", self.base_url,
                         time.monotonic() - self.started)

    def stop(self) -> None:
        """SIGTERM the child's group, SIGKILL it after ``STOP_GRACE_S``; safe to call twice."""
        self._stopping.set()
        self.ready.clear()
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        self._signal(signal.SIGKILL)  # whatever the server left in its group (engine workers)
        if self.process.poll() is None:
            self.process.wait(timeout=STOP_GRACE_S)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def start_child(python: str, *, log_dir: Path) -> ManagedChild:
    """Start the vLLM child for the bundled model and make it the one :func:`bundled_base_url`
    reports once ready. Raises UserError when ``python`` is not a vLLM environment's interpreter.
    Call it from a thread that lives as long as the server (``lwz serve``'s main thread): Linux sends
    the parent-death signal when the *thread* that started the child ends."""
    global _ACTIVE
    from core.errors import UserError
    from generation.bundled import BUNDLED_NAME, ensure_bundled_model

    if not Path(python).is_file():
        raise UserError(f"--bundled-via vllm needs the vLLM environment, but {python} is missing: run `make vllm-env`")
    model_dir = ensure_bundled_model()
    port = _free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"vllm-bundled-{port}.log"
    with log_path.open("w") as out:
        process = subprocess.Popen(vllm_command(python, model_dir, port=port, served_name=BUNDLED_NAME),
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   env=vllm_environment(), start_new_session=True,
                                   preexec_fn=_die_with_parent(os.getpid()))
    child = ManagedChild(process, base_url=f"http://127.0.0.1:{port}/v1", served_name=BUNDLED_NAME, log_path=log_path)
    atexit.register(child.stop)
    _ACTIVE = child
    return child


def bundled_base_url() -> Optional[str]:
    """The vLLM child's ``/v1`` URL while it serves the bundled model, else None (run in-process)."""
    child = _ACTIVE
    return child.base_url if child is not None and child.ready.is_set() else None
