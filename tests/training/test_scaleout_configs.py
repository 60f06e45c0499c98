"""The multi-GPU configs that ship in training/configs load with accelerate and TRL."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


@pytest.mark.parametrize("name", ["accelerate_zero3.yaml", "accelerate_zero3_offload.yaml"])
def test_accelerate_deepspeed_zero3_configs_load(name):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    config = load_config_from_file(str(CONFIGS / name))
    assert config.distributed_type == DistributedType.DEEPSPEED
    assert config.deepspeed_config["zero_stage"] == 3 and config.deepspeed_config["zero3_init_flag"] is True
    assert config.mixed_precision == "bf16" and config.num_processes >= 2 and not config.use_cpu


@pytest.mark.parametrize("name, kind", [("dpo_gpu.yaml", "dpo"), ("grpo_gpu.yaml", "grpo"),
                                        ("pretrain_gpu.yaml", "pretrain")])
def test_trl_gpu_configs_name_real_fields(name, kind, tmp_path):
    import trl

    from training.kinds import PAPER_ROLLOUT, kind_of
    from training.options import TrainOptions
    from training.trainers import config_values

    values = yaml.safe_load((CONFIGS / name).read_text())
    fields = set(getattr(trl, kind_of(kind).config).__dataclass_fields__)
    assert set(values) <= fields, set(values) - fields
    text = tmp_path / "a.txt"
    text.write_text("some text")
    source = {"texts": (str(text),)} if kind == "pretrain" else {"from_db": True}
    options = TrainOptions(kind=kind, base="m", out=str(tmp_path / "o"), config=values, **source)
    options.check()
    _, built = config_values(options, gpu=True, context=32768)  # every check of the kind passes on these values
    if kind == "grpo":
        assert {key: values[key] for key in PAPER_ROLLOUT} == PAPER_ROLLOUT
        assert built["generation_batch_size"] % values["num_generations"] == 0


def test_docs_show_the_commands():
    docs = (CONFIGS.parents[1] / "docs" / "training.md").read_text()
    assert "accelerate launch --config_file training/configs/accelerate_zero3.yaml" in docs
    assert "trl vllm-serve" in docs and "vllm serve" in docs
