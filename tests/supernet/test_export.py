"""`train.py export`: a retrained network (or, --untrained, a genotype's) exported for deployment, its outputs equal
to the PyTorch network's, and bad requests one line with nothing written (supernet/export.py)."""
import io
import json

import pytest
import torch

from run_kit import InputError
from supernet.export import DeployedNetwork, export_source
from tests.helpers import run_cli

CELL = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "retrain"
    code, _, stderr = run_cli("retrain", "--genotype", CELL, "--dataset", "digits", "--epochs", "1", "--layers", "1",
                              "--init-channels", "4", "--no-progress", "--out", str(out))
    assert code == 0, stderr
    return out


def test_the_exported_program_computes_what_the_retrained_network_does(tmp_path, retrained):
    code, stdout, stderr = run_cli("export", str(retrained), "--format", "pt2", "--out", str(tmp_path / "net.pt2"))
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["trained"] and report["input"] == [1, 8, 8] and report["max_abs_difference"] <= 1e-4
    program = torch.export.load(io.BytesIO((tmp_path / "net.pt2").read_bytes())).module()
    source = export_source(str(retrained), untrained=False)
    assert isinstance(source.network, DeployedNetwork) and source.trained
    pixels = torch.rand(7, 1, 8, 8, generator=torch.Generator().manual_seed(3))  # another batch size than the check's
    with torch.no_grad():
        assert torch.allclose(program(pixels), source.network(pixels), atol=1e-5)
    # the retrained weights and the training's normalisation are what was exported, not a fresh network
    state = torch.load(retrained / "checkpoint.pt", weights_only=True)["model"]
    name = next(k for k in state if k.endswith("weight") and state[k].dim() == 4)
    assert torch.equal(source.network.network.state_dict()[name], state[name])
    result = json.loads((retrained / "result.json").read_text())["network"]
    assert torch.allclose(source.network.mean.flatten(), torch.tensor(result["pixel_mean"]))
    assert (source.network.std.flatten() > 0).all()


def test_onnx_export_matches_where_the_extra_is_installed(tmp_path, retrained):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    code, stdout, stderr = run_cli("export", str(retrained), "--format", "onnx", "--out", str(tmp_path / "net.onnx"))
    assert code == 0, stderr
    assert json.loads(stdout)["format"] == "onnx"
    session = onnxruntime.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    pixels = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = export_source(str(retrained), untrained=False).network(pixels)
    assert torch.allclose(torch.from_numpy(session.run(None, {"pixels": pixels.numpy()})[0]), expected, atol=1e-4)


def test_a_genotype_exports_with_random_weights_only_when_asked(tmp_path):
    out = tmp_path / "cell.pt2"
    code, _, stderr = run_cli("export", CELL, "--out", str(out))
    assert code == 2 and "--untrained" in stderr and not out.exists()
    code, stdout, stderr = run_cli("export", CELL, "--untrained", "--layers", "1", "--init-channels", "4",
                                   "--image-size", "16", "--num-classes", "3", "--out", str(out))
    assert code == 0, stderr
    report = json.loads(stdout)
    assert not report["trained"] and report["input"] == [3, 16, 16] and report["num_classes"] == 3
    program = torch.export.load(str(out)).module()
    assert program(torch.rand(2, 3, 16, 16)).shape == (2, 3)


def test_bad_exports_are_one_line_and_write_nothing(tmp_path, retrained):
    search = tmp_path / "search"
    code, _, _ = run_cli("search", "--meta", "pretrained", "--dataset", "digits", "--out", str(search))
    assert code == 0
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for name in ("checkpoint.pt", "config.yaml", "genotype.json", "result.json"):
        if (retrained / name).exists():
            (tampered / name).write_bytes((retrained / name).read_bytes())
    result = json.loads((tampered / "result.json").read_text())
    result["network"]["image_size"] = 100_000
    (tampered / "result.json").write_text(json.dumps(result))
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "net.pt2"
    for args, message in (
            ((str(search), "--out", str(out)), "holds no trained weights"),
            ((str(tmp_path / "absent"), "--out", str(out)), "absent"),
            ((str(tampered), "--out", str(out)), "--image-size must be between 1 and 4096"),
            ((str(retrained), "--out", str(tmp_path / "missing" / "net.pt2")), "does not exist"),
            ((str(retrained), "--out", str(tmp_path / "a_file" / "net.pt2")), "does not exist"),
            ((str(retrained), "--out", str(tmp_path)), "is a directory"),
            ((str(retrained), "--image-size", "16", "--out", str(out)), "only appl(ies) with --untrained"),
            ((CELL, "--untrained", "--image-size", "100000", "--out", str(out)), "--image-size must be between"),
            ((CELL, "--untrained", "--init-channels", "100000", "--out", str(out)), "--init-channels must be at most"),
            ((CELL, "--untrained", "--format", "tflite", "--out", str(out)), "invalid choice")):
        code, stdout, stderr = run_cli("export", *args)
        assert code == 2 and message in stderr, (args, stderr)
        assert not out.exists() and stdout == ""
    with pytest.raises(InputError, match="holds no trained weights"):
        export_source(str(search), untrained=False)
