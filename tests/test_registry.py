"""The open model registry: register_model / list_models / create_model, plugins through
`cvgr --import`, checkpoints of user architectures, and MAC counts against FlopCounterMode."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cvgr
from cvgr import models
from cvgr.checkpoint import CheckpointError, save_model
from cvgr.cli import main
from cvgr.models import (
    count_macs,
    create_model,
    list_models,
    register_model,
    registry,
    resolve,
)
from cvgr.nn import ComplexConv2d, ComplexLinear, PhaseScale

FMNIST = Path("/usr/share/datasets/fashion-mnist")

PLUGIN = textwrap.dedent('''
    """A user's own architecture, registered with cvgr."""
    from torch import nn

    from cvgr.models import register_model
    from cvgr.nn import ComplexConv2d, ComplexLinear, PhaseScale


    @register_model(input_shape=(1, 28, 28), aliases=["TinyNet"])
    def tiny_net(complex=False, num_classes=10, in_chans=1):
        """conv4 (5x5, stride 3), fc10"""
        if complex:
            return nn.Sequential(PhaseScale(), ComplexConv2d(in_chans, 4, 5, stride=3),
                                 nn.Flatten(), ComplexLinear(4 * 8 * 8, num_classes))
        return nn.Sequential(nn.Conv2d(in_chans, 4, 5, stride=3), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 8 * 8, num_classes))
''')


@pytest.fixture
def clean_registry():
    """Whatever a test registers is removed afterwards."""
    before = dict(models.ARCHITECTURES)
    mods = set(sys.modules)
    yield
    models.ARCHITECTURES.clear()
    models.ARCHITECTURES.update(before)
    for m in set(sys.modules) - mods:
        if m.startswith("cvgr_user_"):
            del sys.modules[m]


def _mlp(complex=False, num_classes=10, in_chans=1):
    fc = ComplexLinear if complex else nn.Linear
    return nn.Sequential(PhaseScale(), nn.Flatten(), fc(in_chans * 16, num_classes))


def test_registration_is_seen_by_name_alias_and_pattern(clean_registry):
    assert "my-mlp" not in list_models()
    register_model(_mlp, name="my-mlp", aliases=["MyMLP"], input_shape=(1, 4, 4))
    assert resolve("MYMLP").name == "my-mlp"  # alias registered after import, case-insensitive
    assert list_models("my-*") == ["my-mlp"] and list_models("mymlp") == ["my-mlp"]
    assert "mnist-cnn" in list_models("mnist*") and "my-mlp" not in list_models("mnist*")
    m = create_model("mymlp", complex=True, num_classes=3, in_chans=2)
    assert m.arch == "my-mlp" and m.complex and m.input_shape == (2, 4, 4)
    assert m(torch.rand(5, 2, 4, 4)).shape == (5, 3)
    with pytest.raises(ValueError, match="already taken"):
        register_model(lambda **kw: _mlp(**kw), name="mnistnetv0")


@pytest.mark.parametrize("name", ["MNISTNetV0", "MNISTNetV1", "MNISTMLP", "CIFARNet1"])
def test_create_model_num_classes_and_in_chans(name):
    for cplx in (False, True):
        m = create_model(name, complex=cplx, num_classes=7, in_chans=2)
        x = torch.rand(2, 2, *m.input_shape[1:])
        assert m.input_shape[0] == 2 and m.eval()(x).shape == (2, 7)


def _flop_counter_macs(model, shape):
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    return counter.get_total_flops() // 2  # a MAC is a multiply and an add


@pytest.mark.parametrize("name", models.list_models())
@pytest.mark.parametrize("complex", [False, True])
def test_count_macs_agrees_with_flop_counter(name, complex):
    m = create_model(name, complex=complex)
    assert count_macs(m) == _flop_counter_macs(m, m.input_shape)


def test_count_macs_of_grouped_strided_dilated_layers():
    m = nn.Sequential(ComplexConv2d(4, 8, 3, stride=2, dilation=2, groups=2, padding=1),
                      ComplexConv2d(8, 6, (2, 3), padding="same", groups=2), nn.Flatten(),
                      ComplexLinear(6 * 5 * 5, 3), nn.Linear(3, 2))
    assert count_macs(m, (4, 11, 11)) == _flop_counter_macs(m, (4, 11, 11))


def test_load_of_an_unregistered_architecture_is_one_line(tmp_path, clean_registry):
    register_model(_mlp, name="gone-mlp", input_shape=(1, 4, 4))
    save_model(create_model("gone-mlp"), tmp_path / "model.safetensors",
               {"arch": "gone-mlp", "complex": False})
    models.ARCHITECTURES.pop("gone-mlp")
    with pytest.raises(CheckpointError) as e:
        cvgr.load(tmp_path)
    msg = str(e.value)
    assert "'gone-mlp'" in msg and "does not know" in msg and "--import" in msg
    assert "test_registry._mlp" in msg and "\n" not in msg


def test_bad_import_is_one_line(capsys):
    assert main(["--import", "no_such_module_xyz", "models"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--import no_such_module_xyz: cannot import it" in err and len(err.splitlines()) == 1


@pytest.mark.skipif(not (FMNIST / "train-images-idx3-ubyte.gz").exists(),
                    reason="Fashion-MNIST files not installed")
def test_user_architecture_trained_attacked_and_loaded_through_the_cli(tmp_path, capsys,
                                                                        clean_registry):
    """What docs/layers.md shows: register in a file, train, attack and load with the CLI."""
    plugin = tmp_path / "my_nets.py"
    plugin.write_text(PLUGIN)
    run = tmp_path / "runs" / "tiny"
    rc = main(["--import", str(plugin), "train", "--dataset", "fashion-mnist", "--arch",
               "TinyNet", "--complex", "--beta", "1", "--epochs", "1", "--out", str(run),
               "--train-images", "256", "--test-images", "64", "--quiet", "--device",
               "cpu", "--data-root", str(FMNIST), "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert json.loads(out.out.strip().splitlines()[-1])["gr"] > 0
    rc = main(["--import", str(plugin), "attack", str(run), "--attack", "fgsm", "--eps",
               "0:0.2:0.1", "--n-images", "64", "--no-checks", "--quiet", "--out",
               str(tmp_path / "curve.json")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    curve = json.loads((tmp_path / "curve.json").read_text())["curve"]
    assert curve["eps"] == [0.0, 0.1, 0.2] and curve["n_images"] == 64
    model = cvgr.load(run)
    assert model.record["arch"] == "tiny_net" and model.record["complex"]
    assert isinstance(model[1], ComplexConv2d)
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    # the `models` table lists it too
    assert main(["models"]) == 0 and "tiny_net" in capsys.readouterr().out
    # without the plugin the same run is refused in one line naming the fix
    models.ARCHITECTURES.pop("tiny_net")
    assert main(["attack", str(run), "--attack", "fgsm", "--eps", "0.1", "--n-images", "8",
                 "--no-checks", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not know" in err and "my_nets.tiny_net" in err and len(err.splitlines()) == 1


def test_entry_point_plugins_are_loaded(monkeypatch, tmp_path, clean_registry):
    plugin = tmp_path / "ep_nets.py"
    plugin.write_text(PLUGIN.replace("tiny_net", "ep_net").replace("TinyNet", "EpNet"))
    monkeypatch.syspath_prepend(str(tmp_path))

    class EP:
        name, value = "ep", "ep_nets"

        def load(self):
            import importlib

            return importlib.import_module("ep_nets")

    def fake_entry_points(group):
        return [EP()] if group == models.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry.importlib.metadata, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_ENTRY_POINTS_LOADED", False)
    assert resolve("epnet").name == "ep_net"
    monkeypatch.delitem(sys.modules, "ep_nets")


def test_builtins_are_registered_where_they_are_built():
    """timm's shape: each built-in builder is a module function carrying @register_model."""
    import cvgr.models as m

    for name, fn in [("MNISTNetV0", m.mnist_cnn), ("MNISTNetV1", m.mnist_cnn_groupsum),
                     ("MNISTNetV2", m.mnist_cnn_hybrid), ("MNISTMLP", m.mnist_mlp),
                     ("CIFARNet1", m.cifar_cnn), ("CIFARNet1_PP", m.cifar_cnn_shaped),
                     ("CIFARNet2", m.cifar_cnn_wide)]:
        assert m.resolve(name).make is fn
    assert "build" not in m.__all__
