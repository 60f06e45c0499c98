"""`pip install .` (not editable) gives a working app: every file read at run time ships in the wheel.

The wheel is built from this tree and installed, without its dependencies, into a scratch
virtual environment whose only other path is the project venv's site-packages (added as a
plain path, so the editable install's finder there is never loaded). ``lwz`` then runs from a
folder outside the source tree: it must import the installed copy, upgrade a database with
the shipped migrations, and serve the app's page.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.helpers import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The scratch venv's ``bin`` folder, with the project's wheel installed."""
    root = tmp_path_factory.mktemp("wheel")
    wheels = root / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO_ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    assert "SetuptoolsDeprecationWarning" not in build.stderr, build.stderr
    target = root / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    python = target / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", *map(str, wheels.glob("*.whl"))],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    return target / "bin"


def test_the_installed_copy_is_imported_not_the_source_tree(installed, tmp_path):
    code = "import webapp, storage, arena; print(webapp.__file__); print(storage.__file__)"
    done = subprocess.run([str(installed / "python"), "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for line in done.stdout.splitlines():
        assert str(installed.parent) in line and str(REPO_ROOT) not in line


def test_lwz_serve_from_the_wheel(installed, tmp_path):
    env = {**{k: v for k, v in os.environ.items() if k != "LWZ_DATABASE_URL"}, "HF_HUB_OFFLINE": "1"}
    db = f"sqlite:///{tmp_path / 'wheel.db'}"
    upgrade = subprocess.run([str(installed / "lwz"), "--db", db, "db", "upgrade"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
    assert upgrade.returncode == 0, upgrade.stderr
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen([str(installed / "lwz"), "--db", db, "serve", "--port", str(port)], cwd=tmp_path,
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        page = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.HTTPError:
                time.sleep(1)
        assert server.poll() is None, (tmp_path / "serve.log").read_text()
        assert page is not None and page.status_code == 200, (tmp_path / "serve.log").read_text()
        assert "LongWriter Studio" in page.text
        script = httpx.get(f"http://127.0.0.1:{port}/lwz-static/reading.js", timeout=5)
        assert script.status_code == 200 and "window.lwzReading" in script.text
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
