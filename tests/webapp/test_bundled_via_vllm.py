"""``lwz serve --bundled-via vllm`` (what ``make run`` starts when the vLLM environment exists): the
page answers at once, the bundled model writes in-process while the vLLM child warms up, then on the
child, and the child is gone when ``lwz serve`` exits.

One real vLLM child (the CPU build in ``.venv-vllm``); a few minutes, most of it the child's warm-up.
Which path served a text is read from the child's own counter of finished requests (``/metrics``).
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import httpx
import pytest

from storage.engine import session_scope
from storage.generations import get_generation
from tests.helpers import group_gone, kill_group
from tests.live_app import fn_index_of, gradio_config, http_session, raw_call, start_live_app
from tests.vllm_server import READY_TIMEOUT_S, VLLM_PYTHON

pytestmark = pytest.mark.slow

READY_LINE = re.compile(r"now runs on vLLM at (\S+)")


def generated_on_child(root_url: str) -> float:
    """Tokens the child has generated (Prometheus text). Tokens, not finished requests: a text stopped
    at its target closes its stream, which vLLM counts as aborted, not as a success."""
    text = httpx.get(f"{root_url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:generation_tokens_total"))


def write(app, client, fn_index) -> int:
    """One short Write-tab request; the id of its row, which must hold generated tokens and no error."""
    messages = raw_call(client, fn_index, ["Write a short poem about rain.", 20, "smollm2-135m", 0.6, 0.95, "1", None, "auto"],
                        timeout=300)
    assert messages[-1]["msg"] == "process_completed" and messages[-1]["success"], messages[-1]
    from storage.generations import list_generations

    with session_scope(app.engine) as session:
        row = max(list_generations(session), key=lambda g: g.id)
        assert row.error is None and row.completion_tokens, (row.status, row.error)
        return row.id


def wait_for_line(app, pattern: re.Pattern, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pattern.search(app.log())
        if found:
            return found
        assert app.alive(), app.log()[-4000:]
        time.sleep(1)
    pytest.fail(f"lwz serve never logged {pattern.pattern!r}:\n{app.log()[-4000:]}")


def test_serve_writes_in_process_while_the_child_warms_then_on_the_child_and_leaves_none(tmp_path):
    if not VLLM_PYTHON.is_file():
        pytest.fail(f"{VLLM_PYTHON} is missing: run `make vllm-env` to install the vLLM CPU build")
    child_pid = None
    with start_live_app(tmp_path, extra_args=["--bundled-via", "vllm", "--vllm-python", str(VLLM_PYTHON)]) as app:
        try:
            found = re.search(r"warming up at (\S+)/v1", app.log())
            assert found, app.log()
            child_root = found.group(1)
            child_pid = int(subprocess.run(["pgrep", "-P", str(app.process.pid), "-f", "vllm.entrypoints"],
                                           capture_output=True, text=True).stdout.split()[0])
            client = http_session(app)
            fn_index = fn_index_of(gradio_config(client), "write")

            first = write(app, client, fn_index)  # the page is usable: the child has not warmed up yet
            assert READY_LINE.search(app.log()) is None, "the child was ready before the first text; nothing tested"

            wait_for_line(app, READY_LINE, READY_TIMEOUT_S)
            assert generated_on_child(child_root) == 0  # the first text was written in-process
            second = write(app, client, fn_index)
            assert generated_on_child(child_root) > 0  # the second on the child
            with session_scope(app.engine) as session:
                assert get_generation(session, generation_id=first).model_id == get_generation(session, generation_id=second).model_id

            app.process.send_signal(signal.SIGTERM)  # lwz serve alone, not its group: it must stop the child
            app.process.wait(timeout=120)
            assert group_gone(child_pid, 60), "the vLLM child outlived lwz serve"
        finally:
            kill_group(child_pid)


def test_a_killed_serve_takes_its_warming_child_with_it(tmp_path):
    """SIGKILL gives ``lwz serve`` no chance to stop anything: the kernel's parent-death signal does."""
    if not VLLM_PYTHON.is_file():
        pytest.fail(f"{VLLM_PYTHON} is missing: run `make vllm-env` to install the vLLM CPU build")
    child_pid = None
    with start_live_app(tmp_path, extra_args=["--bundled-via", "vllm", "--vllm-python", str(VLLM_PYTHON)]) as app:
        try:
            child_pid = int(subprocess.run(["pgrep", "-P", str(app.process.pid), "-f", "vllm.entrypoints"],
                                           capture_output=True, text=True).stdout.split()[0])
            app.process.send_signal(signal.SIGKILL)
            app.process.wait(timeout=30)
            assert group_gone(child_pid, 120), "the vLLM child outlived a killed lwz serve"
        finally:
            kill_group(child_pid)
