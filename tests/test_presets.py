"""Every shipped preset of every stage loads, and names with dots are names, not files."""

import pytest

from crystalreasoner.campaign import CampaignConfig
from crystalreasoner.config import list_presets, load_config
from crystalreasoner.errors import ConfigError
from crystalreasoner.evaluation.mlip import MLIPConfig
from crystalreasoner.evaluation.stage import EvaluateConfig
from crystalreasoner.rl.grpo import RLConfig
from crystalreasoner.traces.builder import TraceConfig
from crystalreasoner.training.sft import SFTConfig
from crystalreasoner.validation.stage import ValidationConfig

STAGES = [TraceConfig, SFTConfig, RLConfig, EvaluateConfig, MLIPConfig, CampaignConfig, ValidationConfig]


@pytest.mark.parametrize("cls", STAGES, ids=lambda cls: cls.preset_folder)
def test_every_preset_loads(cls):
    names = list_presets(cls.preset_folder)
    assert names
    for name in names:
        assert isinstance(load_config(cls, name), cls), name


def test_sft_presets_name_trace_presets_that_load():
    for name in list_presets("sft"):
        load_config(TraceConfig, load_config(SFTConfig, name).traces_preset)


def test_a_preset_name_with_a_dot_is_a_preset_and_a_yaml_path_is_a_file(tmp_path):
    assert load_config(SFTConfig, "qwen2.5-3b-paper").max_length == 4096
    path = tmp_path / "mine.yaml"
    path.write_text("max_minutes: 7\n")
    assert load_config(SFTConfig, path).max_minutes == 7
    with pytest.raises(ConfigError, match="known presets"):
        load_config(SFTConfig, "qwen9.9-paper")
