"""Shared helpers for the generation tests: register models, read rows, read server metrics."""

from __future__ import annotations

import asyncio
import re

import httpx

from storage.catalog import add_model
from storage.engine import session_scope
from storage.generations import get_generation


def register(engine, name: str, *, base_url: str, model: str, template: str = "think", api: str = "chat"):
    with session_scope(engine) as session:
        return add_model(session, name=name, backend="openai", base_url=base_url, model_id=model,
                         template=template, sampling={"api": api})


def row(engine, generation_id: int):
    with session_scope(engine) as session:
        return get_generation(session, generation_id=generation_id)


def metric(root_url: str, name: str) -> float:
    """Sum of a Prometheus metric over its label sets, from the server's /metrics."""
    text = httpx.get(f"{root_url}/metrics", timeout=5).text
    values = [float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)]
    return sum(values)


async def collect(agen):
    return [event async for event in agen]


def run(coro):
    return asyncio.run(coro)
