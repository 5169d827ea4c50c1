"""Model registry: reference parameter counts, MACs, aliases, input checks, checkpoints."""

import json

import pytest
import torch

import cvgr
from cvgr.checkpoint import CheckpointError, read_record, save_model
from cvgr.cli import main
from cvgr.models import ARCHITECTURES, count_macs, count_parameters, create_model, resolve
from cvgr.nn import ComplexConv2d, ComplexLinear


@pytest.mark.parametrize(
    "name, complex, params",
    [
        ("MNISTNetV0", False, 421_642),
        ("MNISTNetV1", True, 208_532),
        ("MNISTNetV1", False, 104_266),
        ("MNISTMLP", False, 269_322),
    ],
)
def test_reference_parameter_counts(name, complex, params):
    assert count_parameters(create_model(name, complex=complex)) == params


def test_macs_match_hand_count():
    # MNISTNetV0 real: conv1 28*28*32*9 + conv2 14*14*64*32*9 + fc 3136*128 + fc 128*10
    v0 = 28 * 28 * 32 * 9 + 14 * 14 * 64 * 32 * 9 + 3136 * 128 + 128 * 10
    assert count_macs(create_model("MNISTNetV0")) == v0
    # MNISTNetV1 complex: 4 real MACs per complex MAC
    v1 = 4 * (28 * 28 * 16 * 9 + 14 * 14 * 32 * 8 * 9 + 784 * 128 + 128 * 10)
    assert count_macs(create_model("MNISTNetV1", complex=True)) == v1
    assert v1 < v0  # the paper's comparison: the complex net is not bigger in compute


@pytest.mark.parametrize("name", list(ARCHITECTURES))
@pytest.mark.parametrize("complex", [False, True])
def test_every_model_maps_images_to_logits(name, complex):
    torch.manual_seed(0)
    model = create_model(name, complex=complex)
    x = torch.rand(3, *model.input_shape)
    out = model(x)
    assert out.shape == (3, 10) and torch.isfinite(out).all()
    has_complex = any(isinstance(m, ComplexConv2d | ComplexLinear) for m in model.modules())
    assert has_complex == complex
    if complex and name != "mnist-cnn-hybrid":
        assert (out >= 0).all()  # logits are magnitudes
    # no ReLU in a complex net except the hybrid's real head
    relus = sum(isinstance(m, torch.nn.ReLU) for m in model.modules())
    assert relus == (1 if name == "mnist-cnn-hybrid" else 0) if complex else relus > 0


def test_aliases_and_unknown_names():
    assert resolve("mnistnetv1").name == "mnist-cnn-groupsum"
    assert resolve("CIFARNet1_PP").name == "cifar-cnn-shaped"
    assert create_model("MNISTNetV0").arch == "mnist-cnn"
    with pytest.raises(ValueError, match="unknown architecture 'resnet'.*MNISTNetV0"):
        create_model("resnet")


def test_record_of_one_function_strict_or_missing_ok(tmp_path):
    """One `record_of` (cvgr.checkpoint): a loaded model's record; a model built in Python has
    none, a UserError unless missing_ok (then {}, as the evaluation inputs want)."""
    import cvgr.evaluate.runs
    from cvgr.checkpoint import record_of
    from cvgr.errors import UserError

    assert cvgr.evaluate.runs.record_of is record_of  # the old import path still works
    model = create_model("MNISTMLP")
    with pytest.raises(UserError, match="has no record"):
        record_of(model)
    assert record_of(model, missing_ok=True) == {}
    save_model(model, tmp_path / "model.safetensors", {"arch": "MNISTMLP", "complex": False,
                                                       "dataset": "fashion-mnist"})
    assert record_of(cvgr.load(tmp_path))["dataset"] == "fashion-mnist"


def test_wrong_input_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expects images shaped \(N, 1, 28, 28\)"):
        create_model("MNISTNetV0")(torch.rand(2, 3, 32, 32))


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    model = create_model("MNISTNetV1", complex=True)
    record = {"arch": "MNISTNetV1", "complex": True, "dataset": "fashion-mnist", "seed": 1}
    save_model(model, tmp_path / "model.safetensors", record)
    loaded = cvgr.load(tmp_path)
    assert not loaded.training and loaded.record["dataset"] == "fashion-mnist"
    assert "torch" in read_record(tmp_path)["versions"]
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    with pytest.raises(CheckpointError, match="expected the other kind"):
        cvgr.load(tmp_path, complex=False)
    with pytest.raises(CheckpointError, match="checkpoint is MNISTNetV1, expected MNISTNetV0"):
        cvgr.load(tmp_path, arch="MNISTNetV0")


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    save_model(create_model("MNISTNetV0"), tmp_path / "model.safetensors",
               {"arch": "MNISTMLP", "complex": False})  # record lies about the weights
    with pytest.raises(CheckpointError, match="do not fit"):
        cvgr.load(tmp_path)


def test_corrupt_or_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no model here"):
        cvgr.load(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        cvgr.load(tmp_path)


def test_models_command_prints_every_architecture(capsys, monkeypatch):
    from cvgr.cli import models as models_cli

    rows = models_cli.table()
    monkeypatch.setattr(models_cli, "table", lambda: rows)  # build every model once
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for spec in ARCHITECTURES.values():
        assert spec.name in out and spec.reference_name in out
    assert "208,532" in out and "421,642" in out
    assert main(["models", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # stdout holds one JSON document, nothing else
    assert doc == rows and len(doc) == 2 * len(ARCHITECTURES)
    by = {(r["reference"], r["kind"]): r for r in doc}
    assert by[("MNISTNetV1", "complex")]["params"] == 208532
    assert by[("MNISTNetV0", "real")]["params"] == 421642


def test_record_is_plain_json(tmp_path):
    save_model(create_model("MNISTMLP"), tmp_path / "m.safetensors",
               {"arch": "MNISTMLP", "complex": False, "metrics": {"acc": 0.5}})
    header_len = int.from_bytes((tmp_path / "m.safetensors").read_bytes()[:8], "little")
    header = json.loads((tmp_path / "m.safetensors").read_bytes()[8:8 + header_len])
    assert json.loads(header["__metadata__"]["cvgr"])["metrics"] == {"acc": 0.5}


def test_atomic_write_gives_ordinary_permissions_and_leaves_no_temp(tmp_path):
    import os
    import stat

    from cvgr.io import atomic_write, write_json

    path = write_json(tmp_path / "r.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask

    def broken(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "r.json", broken)
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
