"""TrainConfig: recipes, validation, identity and the command line that rebuilds it."""

from __future__ import annotations

import pytest

from cvgr.cli import build_parser
from cvgr.errors import UserError
from cvgr.train import TrainConfig


def cfg(**kw) -> TrainConfig:
    base = {"dataset": "fashion-mnist", "arch": "MNISTNetV1", "complex": True}
    return TrainConfig(**{**base, **kw})


def test_recipe_defaults_small_datasets():
    c = cfg().resolved()
    assert (c.lr, c.momentum, c.weight_decay, c.batch_size, c.epochs) == (
        0.005, 0.875, 1e-4, 64, 30)
    assert c.milestones == (20,)
    assert c.arch == "mnist-cnn-groupsum"
    assert c.lr_at(19) == pytest.approx(0.005) and c.lr_at(20) == pytest.approx(0.001)


def test_recipe_defaults_cifar_and_scaling():
    c = TrainConfig(dataset="cifar10", arch="CIFARNet1").resolved()
    assert (c.lr, c.batch_size, c.epochs, c.milestones) == (0.01, 128, 80, (40, 60, 72))
    assert c.lr_at(79) == pytest.approx(0.01 * 0.2**3)
    assert cfg(epochs=3).resolved().milestones == (2,)


def test_overrides_kept():
    c = cfg(lr=0.1, momentum=0.5, weight_decay=0.0, batch_size=32, epochs=5,
            milestones=(1, 3), lr_gamma=0.5).resolved()
    assert (c.lr, c.momentum, c.weight_decay, c.batch_size, c.epochs) == (0.1, 0.5, 0.0, 32, 5)
    assert c.milestones == (1, 3) and c.lr_at(3) == pytest.approx(0.025)


@pytest.mark.parametrize("kw, words, param", [
    ({"dataset": "imagenet"}, "unknown dataset", "dataset"),
    ({"arch": "ResNet50"}, "unknown architecture", "arch"),
    ({"beta": -1.0}, "beta must be", "beta"),
    ({"adv_eps": 1.5}, "adv_eps must be", "adv_eps"),
    ({"adv_eps": -0.1}, "adv_eps must be", "adv_eps"),
    ({"noise": float("nan")}, "noise must be", "noise"),
    ({"q": 3}, "q must be 1 or 2", "q"),
    ({"gr_mode": "approx", "beta": 1.0}, "unknown gr_mode", "gr_mode"),
    ({"adv_kind": "cw", "adv_eps": 0.1}, "unknown adv_kind", "adv_kind"),
    ({"epochs": 0}, "epochs must be", "epochs"),
    ({"lr": 0.0}, "lr must be", "lr"),
    ({"momentum": 1.0}, "momentum must be", "momentum"),
    ({"epochs": 3, "milestones": (5,)}, "milestone", "milestones"),
    ({"dataset": "cifar10"}, "takes (1, 28, 28)", "arch"),
])
def test_bad_settings_are_user_errors(kw, words, param):
    """The core names the parameter (never a command-line flag) and sets UserError.param."""
    with pytest.raises(UserError, match=None) as e:
        cfg(**kw).resolved()
    msg = str(e.value)
    assert words in msg and "\n" not in msg and "--" not in msg
    assert e.value.param == param


def test_identity_is_canonical():
    # GR-only settings do not split identical runs when GR is off; aliases resolve.
    assert cfg(q=2, gr_mode="fd").resolved() == cfg().resolved()
    assert cfg(arch="mnist-cnn-groupsum").resolved() == cfg().resolved()
    assert cfg(beta=1.0).resolved() != cfg().resolved()
    assert cfg(adv_eps=0.1, adv_kind="fgsm", adv_steps=8).resolved().adv_steps == 1


def test_defense_names():
    assert cfg().resolved().defense == "none"
    assert cfg(beta=64, noise=0.05).resolved().defense == "gr+noise"
    assert cfg(beta=64, gr_mode="fd").resolved().defense == "gr-fd"
    assert cfg(adv_eps=0.1, adv_steps=8).resolved().defense == "pgd8"
    assert cfg(adv_eps=0.1, adv_kind="fgsm").resolved().defense == "fgsm"
    d = cfg(beta=64, noise=0.05).resolved().defense_settings()
    assert d["beta"] == 64 and d["noise"] == 0.05 and d["q"] == 1 and "adv_eps" not in d


def test_dict_round_trip_and_argv_rebuilds_the_same_config():
    c = cfg(beta=64, noise=0.05, q=2, gr_mode="fd", fd_h=0.05, seed=3, limit_train=256,
            milestones=(), epochs=4).resolved()
    assert TrainConfig.from_dict(c.to_dict()) == c
    args = build_parser().parse_args(["train", *c.argv(), "--out", "x"])
    from cvgr.cli.train import config_from_args

    assert config_from_args(args).resolved() == c
    with pytest.raises(UserError, match="unknown training setting"):
        TrainConfig.from_dict({**c.to_dict(), "gamma": 1})
