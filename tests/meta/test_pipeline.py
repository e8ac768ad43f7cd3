"""meta/pipeline.py: teachers -> imitation meta-training, cached by a hash of the config; a run made with another
config is never reused and never deleted."""
import json

import pytest
import torch
import yaml

from meta.config import MetaConfig
from meta.meta_train import run_meta_train
from meta.pipeline import KEY_FILE, ImitationStudy, MetaPipeline, config_key, read_meta_config, teacher_options
from run_kit import InputError
from run_kit.run_dir import RunDir

TINY = {"space": "nb201", "layers": 1, "init_channels": 4, "tasks": ["digits"], "ways": 3, "meta_steps": 4,
        "log_every": 2, "teachers_per_dataset": 1, "teacher_epochs": 1, "teacher_images": 60,
        "imitate_weight_steps": 0, "device": "cpu"}


def _config(**options) -> MetaConfig:
    return MetaConfig.from_options({**TINY, **options})


def test_a_key_is_the_canonical_hash_of_the_options():
    assert config_key({"a": 1, "b": [1, 2]}) == config_key({"b": [1, 2], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2}) and len(config_key({})) == 12


def test_the_teachers_key_changes_with_what_the_teachers_read_and_nothing_else():
    base = teacher_options(_config())
    for learning in ({"meta_steps": 9}, {"use_encoder": False}, {"dataset_loss": 2.0}, {"inner_steps": 3},
                     {"teachers": "elsewhere"}):
        assert teacher_options(_config(**learning)) == base, learning
    for teaching in ({"teacher_images": 90}, {"seed": 1}, {"init_channels": 8}, {"ways": 4}, {"split_seed": 1}):
        assert teacher_options(_config(**teaching)) != base, teaching


def test_the_cache_makes_reuses_and_never_overwrites(tmp_path):
    """A finished meta-run is reused untouched; one of another config lands beside it (sharing the bank when only
    the learning differs) and leaves it untouched; an interrupted one is continued; a cache moved elsewhere keeps its
    keys."""
    pipeline = MetaPipeline(tmp_path / "cache")
    config = _config()
    run = pipeline.meta_run(config)
    bank = pipeline.teachers_path(config)
    assert run.parent == bank.parent == tmp_path / "cache" and (bank / "teachers.json").is_file()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4 and state["config"]["imitate"]["teachers"] == str(bank)
    assert json.loads((run / KEY_FILE).read_text())["imitate"]["teachers"] == bank.name
    made = {path: path.stat().st_mtime_ns for path in (run / "checkpoint.pt", bank / "teachers.json")}

    assert pipeline.meta_run(config) == run  # reused
    ablation = pipeline.meta_run(_config(use_encoder=False))
    assert ablation != run and pipeline.teachers_path(_config(use_encoder=False)) == bank
    other_seed = pipeline.meta_run(_config(seed=1))
    assert other_seed not in (run, ablation) and pipeline.teachers_path(_config(seed=1)) != bank
    assert {path: path.stat().st_mtime_ns for path in made} == made  # nothing made before was rewritten
    assert len(list((tmp_path / "cache").iterdir())) == 5  # 2 banks, 3 meta-runs

    longer = _config(meta_steps=6)
    interrupted = pipeline.meta_path(longer)
    run_meta_train(pipeline._imitating(longer), RunDir(interrupted), stop_after_step=2, progress=False)
    assert pipeline.meta_run(longer) == interrupted
    assert torch.load(interrupted / "checkpoint.pt", weights_only=True)["step"] == 6
    assert "resumed" in (interrupted / "log.txt").read_text()
    assert MetaPipeline(tmp_path / "moved").meta_path(config).name == run.name


def test_a_study_reads_its_config_file_with_its_options(tmp_path):
    path = tmp_path / "meta.yaml"
    path.write_text(yaml.safe_dump(MetaConfig.nest({**TINY, "meta_steps": 2})))
    study = ImitationStudy(path, {"plain": {"use_encoder": True}, "blind": {"use_encoder": False}},
                           {"imitate_weight_steps": 0})
    blind = study.config("blind", 3)
    assert blind.seed == 3 and not blind.model.use_encoder and blind.meta.meta_steps == 2
    assert read_meta_config(path, seed=3, use_encoder=False) == blind
    with pytest.raises(InputError, match="unknown design 'other'"):
        study.config("other", 0)
    with pytest.raises(InputError, match="does not exist"):
        read_meta_config(tmp_path / "none.yaml")
