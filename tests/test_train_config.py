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
    ({"adv_eps": 0.1, "adv_steps": 0}, "adv_steps must be", "adv_steps"),
    ({"trades": -1.0, "adv_eps": 0.1}, "trades must be", "trades"),
    ({"trades": float("inf"), "adv_eps": 0.1}, "trades must be", "trades"),
    ({"trades": 6.0}, "trades needs adv_eps > 0", "trades"),
    ({"trades": 6.0, "adv_eps": 0.1, "beta": 1.0}, "not a defined combination", "trades"),
    ({"trades": 6.0, "adv_eps": 0.1, "adv_kind": "fgsm"}, "does not apply", "adv_kind"),
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


def test_adv_steps_default_is_4_for_pgd_and_10_for_trades():
    """An unset adv_steps resolves to the paper's PGD-4, or TRADES' published 10; the
    explicit values are the same runs (the zoo's configs resolve as before)."""
    assert cfg(adv_eps=0.1).resolved().adv_steps == 4
    assert cfg(adv_eps=0.1).resolved() == cfg(adv_eps=0.1, adv_steps=4).resolved()
    t = cfg(adv_eps=0.1, trades=6.0).resolved()
    assert t.adv_steps == 10 and t == cfg(adv_eps=0.1, trades=6.0, adv_steps=10).resolved()
    assert cfg(adv_eps=0.1, trades=6.0, adv_steps=3).resolved().adv_steps == 3
    assert cfg().resolved().adv_steps == 4 and cfg().resolved() == cfg(adv_steps=9).resolved()


def test_trades_is_left_out_of_the_record_while_off():
    """Runs without TRADES keep the config dict and command line they had before the field
    existed, so shipped records and old run directories still match."""
    plain = cfg(adv_eps=0.1).resolved()
    assert "trades" not in plain.to_dict() and "--trades" not in plain.argv()
    assert TrainConfig.from_dict(plain.to_dict()) == plain
    t = cfg(adv_eps=0.1, trades=6.0).resolved()
    assert t.to_dict()["trades"] == 6.0 and "--trades" in t.argv()
    pgd10 = cfg(adv_eps=0.1, adv_steps=10).resolved()
    assert t != pgd10
    assert t.differences(pgd10) == ["trades 0.0 there, 6.0 asked"]
    assert pgd10.differences(t) == ["trades 6.0 there, 0.0 asked"]


def test_defense_names():
    assert cfg().resolved().defense == "none"
    assert cfg(beta=64, noise=0.05).resolved().defense == "gr+noise"
    assert cfg(beta=64, gr_mode="fd").resolved().defense == "gr-fd"
    assert cfg(adv_eps=0.1, adv_steps=8).resolved().defense == "pgd8"
    assert cfg(adv_eps=0.1, adv_kind="fgsm").resolved().defense == "fgsm"
    assert cfg(adv_eps=0.1, adv_steps=10).resolved().defense == "pgd10"
    assert cfg(adv_eps=0.1, beta=64).resolved().defense == "pgd4+gr"
    assert cfg(adv_eps=0.1, trades=6.0).resolved().defense == "trades10"
    assert cfg(adv_eps=0.1, trades=6.0, noise=0.05).resolved().defense == "trades10+noise"
    assert cfg(adv_eps=0.1, trades=6.0).resolved().defense_settings() == {
        "name": "trades10", "adv_eps": 0.1, "adv_steps": 10, "adv_kind": "pgd", "trades": 6.0}
    d = cfg(beta=64, noise=0.05).resolved().defense_settings()
    assert d["beta"] == 64 and d["noise"] == 0.05 and d["q"] == 1 and "adv_eps" not in d


def test_dict_round_trip_and_argv_rebuilds_the_same_config():
    c = cfg(beta=64, noise=0.05, q=2, gr_mode="fd", fd_h=0.05, seed=3, train_images=256,
            milestones=(), epochs=4).resolved()
    assert TrainConfig.from_dict(c.to_dict()) == c
    args = build_parser().parse_args(["train", *c.argv(), "--out", "x"])
    from cvgr.cli.train import config_from_args

    assert config_from_args(args).resolved() == c
    t = cfg(adv_eps=0.1, trades=6.0, adv_steps=5, complex=False, arch="MNISTNetV0").resolved()
    assert TrainConfig.from_dict(t.to_dict()) == t
    assert config_from_args(build_parser().parse_args(["train", *t.argv(), "--out", "x"])
                            ).resolved() == t
    with pytest.raises(UserError, match="unknown training setting"):
        TrainConfig.from_dict({**c.to_dict(), "gamma": 1})


def test_records_with_the_earlier_field_names_read_as_today():
    """Records written before `limit_train`/`limit_test` became `train_images`/`test_images`
    (the shipped zoo's weights carry them) read as the same config; the new names are what
    is written."""
    c = cfg(train_images=64, test_images=32).resolved()
    old = {("limit_" + k.split("_")[0] if k in ("train_images", "test_images") else k): v
           for k, v in c.to_dict().items()}
    assert "limit_train" in old and "train_images" not in old
    assert TrainConfig.from_dict(old) == c
    assert {"train_images", "test_images"} <= set(c.to_dict())
    assert "--train-images" in c.argv() and "--limit-train" not in c.argv()
