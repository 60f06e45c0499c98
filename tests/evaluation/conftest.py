"""Fixtures of the evaluation tests."""

from __future__ import annotations

import pytest

from tests.helpers import ScriptedOpenAIServer


@pytest.fixture
def scripted_judge(request):
    """A judge served by :class:`tests.helpers.ScriptedOpenAIServer`, replying with the script the test
    passes as the fixture's parameter (``@pytest.mark.parametrize("scripted_judge", [script], indirect=True)``)."""
    with ScriptedOpenAIServer(request.param, model="judge") as server:
        yield server
