"""The meta-train config in sections (meta/config.py), meta-checkpoint formats, and the task graph's attributes
computed as they are declared (meta/task_graph.py)."""
import json
import math

import pytest
import torch
import yaml

from meta.config import MetaConfig
from meta.task_graph import ATTRIBUTES, TaskGraphBuilder
from run_kit import InputError
from tests.helpers import run_cli

TINY = ["--space", "nb201", "--layers", "1", "--init-channels", "4", "--meta-batch", "2", "--inner-steps", "1",
        "--log-every", "1", "--no-progress"]


def test_every_option_has_one_place_and_its_flag_name():
    paths = MetaConfig.option_paths()
    assert paths["ways"] == ("task", "ways") and paths["teacher_epochs"] == ("teacher", "teacher_epochs")
    assert paths["inner_steps"] == ("adapt", "inner_steps") and paths["seed"] == ("seed",)
    assert paths["budget_aware"] == ("model", "budget_aware")
    assert paths["teacher_budgets"] == ("teacher", "teacher_budgets")
    assert len(paths) == 60 and list(MetaConfig.sections()) == ["task", "model", "meta", "adapt", "imitate",
                                                                   "teacher"]
    config = MetaConfig.from_options({"ways": 4, "teacher_epochs": 3, "space": "nb201"})
    assert (config.task.ways, config.teacher.teacher_epochs, config.space) == (4, 3, "nb201")
    again = config.with_options(ways=5)
    assert (again.task.ways, again.teacher.teacher_epochs, config.task.ways) == (5, 3, 4)


def test_a_sectioned_config_file_is_read_and_flags_win_inside_sections(tmp_path):
    config = tmp_path / "meta.yaml"
    config.write_text(yaml.safe_dump({"space": "nb201", "model": {"layers": 1, "init-channels": 4},
                                      "meta": {"meta_steps": 2, "meta_batch": 2}, "adapt": {"inner_steps": 1}}))
    out = tmp_path / "run"
    code, _, stderr = run_cli("meta-train", "--config", str(config), "--meta-steps", "1", "--no-progress",
                              "--out", str(out))
    assert code == 0, stderr
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["meta"]["meta_steps"] == 1 and saved["meta"]["meta_batch"] == 2  # the flag replaced one key only
    assert saved["model"] == {**saved["model"], "layers": 1, "init_channels": 4}
    assert MetaConfig.from_dict(saved) == MetaConfig.from_options({
        "space": "nb201", "layers": 1, "init_channels": 4, "meta_steps": 1, "meta_batch": 2, "inner_steps": 1})


@pytest.mark.parametrize("content, message", [
    ({"space": "nb201", "ways": 3}, "meta-train config key 'ways' belongs in the 'task' section"),
    ({"task": {"layers": 1}}, "meta-train task config key 'layers' belongs in the 'model' section"),
    ({"task": {"wayz": 3}}, "unknown meta-train task config keys: wayz"),
    ({"task": [1, 2]}, "a meta-train task config must be a mapping"),
    ({"model": {"layers": "one"}}, "--layers must be a whole number"),
])
def test_a_key_in_the_wrong_place_is_one_line_naming_the_right_one(tmp_path, content, message):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(content))
    code, _, stderr = run_cli("meta-train", "--config", str(config), "--out", str(tmp_path / "run"))
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and message in stderr, stderr
    assert not (tmp_path / "run").exists()


def test_an_option_that_left_the_tool_loads_at_what_the_tool_now_does_and_is_one_line_otherwise(tmp_path):
    """Issue 38: the reinforce mode and weight targets were removed. A run's config.yaml of before still loads where
    it set them to what the tool now always does; any other value names the option and the last commit with it."""
    old = {"adapt": {"mode": "relaxed", "samples": 8, "entropy_weight": 0.1, "baseline_momentum": 0.5},
           "imitate": {"imitate_target": "cell"}}
    assert MetaConfig.from_dict(old) == MetaConfig()
    for section, key, value in (("adapt", "mode", "reinforce"), ("imitate", "imitate_target", "weights")):
        with pytest.raises(InputError, match=f"key '{key}': '{value}' was removed .*commit fa4a27d is the last"):
            MetaConfig.from_dict({section: {key: value}})
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"adapt": {"mode": "reinforce"}}))
    code, _, stderr = run_cli("meta-train", "--config", str(path), "--out", str(tmp_path / "run"))
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and "fa4a27d" in stderr
    assert not (tmp_path / "run").exists()
    code, _, stderr = run_cli("meta-train", "--mode", "reinforce", "--out", str(tmp_path / "run"))
    assert code == 2 and "unrecognized arguments: --mode" in stderr


def test_a_meta_checkpoint_of_an_older_format_is_refused_with_one_line(tmp_path):
    run = tmp_path / "meta"
    code, _, stderr = run_cli("meta-train", *TINY, "--meta-steps", "1", "--out", str(run))
    assert code == 0, stderr
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["format"] == 2
    del state["format"]  # as every checkpoint before 2026-12-04 was
    torch.save(state, run / "checkpoint.pt")
    code, _, stderr = run_cli("search", "--meta", str(run), "--out", str(tmp_path / "zero"))
    assert code == 2 and stderr.strip().splitlines() == [stderr.strip()]
    assert "has meta-checkpoint format 1; this TaskDARTS reads format 2" in stderr and not (tmp_path / "zero").exists()
    code, _, stderr = run_cli("meta-train", "--out", str(run), "--resume", "--no-progress")
    assert code == 2 and "this run's checkpoint has meta-checkpoint format 1" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_the_task_attributes_are_computed_as_declared():
    """Attribute nodes of a hand-made task: 2 classes of 4 images, 8 px, 1 channel, pixels 0 or 255."""
    images = torch.zeros(8, 1, 8, 8, dtype=torch.uint8)
    images[::2] = 255  # half the images white: pixel mean 0.5
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    graph = TaskGraphBuilder(features=4, knn=1)(images, labels, 2)
    attributes = graph.x[2:, 4 + 2: 4 + 2 + len(ATTRIBUTES)]
    assert torch.equal(attributes, torch.eye(len(ATTRIBUTES)))  # one node per attribute, one-hot by position
    values = graph.x[2:, 4 + 2 + len(ATTRIBUTES)]
    std = float(images.float().div(255).flatten(1).std())
    expected = [math.log(2) / math.log(100), math.log(4) / math.log(1000), 8 / 64, 1 / 3, 0.5, std]
    assert [a.name for a in ATTRIBUTES] == ["num_classes", "images_per_class", "image_size", "channels",
                                            "pixel_mean", "pixel_std"]
    assert values.tolist() == pytest.approx(expected, abs=1e-6)


def test_meta_config_validates_every_section():
    with pytest.raises(InputError, match="--inner-batch must be at least 1"):
        MetaConfig.from_options({"inner_batch": 0}).validate()
    with pytest.raises(InputError, match="--teacher-images must be at least 1"):
        MetaConfig.from_options({"teacher_images": 0}).validate()
    with pytest.raises(InputError, match="--objective must be one of adapt, imitate"):
        MetaConfig.from_options({"objective": "guess"}).validate()
    assert json.loads(json.dumps(MetaConfig().as_dict()))["task"]["tasks"] == ["digits"]
