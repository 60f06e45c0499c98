"""A green run must mean what it says: a missing service fails the test, with the reason, whether or not
``CI`` is set; only ``LWZ_TEST_WITHOUT_SERVICES=1`` turns the failure into a skip.

Each case runs pytest in a fresh process on one PostgreSQL test, with the server's URL pointing
at a port where nothing listens.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, WITHOUT_SERVICES
from tests.helpers import free_port

ONE_PG_TEST = "tests/storage/test_engine.py::test_upgrade_from_empty_twice[postgresql]"


def run_pytest(*, ci: bool, without: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "LWZ_TEST_PG_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/test"}
    env.pop("CI", None)
    env.pop(WITHOUT_SERVICES, None)
    if ci:
        env["CI"] = "true"
    if without:
        env[WITHOUT_SERVICES] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_PG_TEST],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("ci", [False, True], ids=["developer", "ci"])
def test_missing_postgres_fails_with_or_without_ci(ci):
    done = run_pytest(ci=ci)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in done.stdout or "1 error" in done.stdout
    assert "a required service is missing" in done.stdout and "does not answer" in done.stdout
    assert WITHOUT_SERVICES in done.stdout  # the failure says how to go without it on purpose


def test_missing_postgres_skips_only_when_asked():
    done = run_pytest(ci=False, without=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout and "does not answer" in done.stdout


def test_the_postgres_marker_selects_postgres_tests():
    done = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", "-m", "postgres",
                           "tests/storage/test_engine.py"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    selected = [line for line in done.stdout.splitlines() if "::" in line]
    assert any("[postgresql]" in line for line in selected), done.stdout
    assert "test_postgres_scheme_alias_uses_psycopg" in done.stdout  # takes pg_url directly
    assert not any("[sqlite]" in line for line in selected), done.stdout
