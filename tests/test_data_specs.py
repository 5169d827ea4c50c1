"""A dataset is one spec + one reader: a tiny fake dataset registered here trains, augments,
normalises and plans from its spec alone."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

import cvgr
from cvgr.data import DATASETS, Loader, augment, get_spec, load, locate
from cvgr.data.augment import flip_crop
from cvgr.data.readers import Reader
from cvgr.data.specs import DatasetSettings, DatasetSpec, Recipe, register
from cvgr.errors import UserError
from cvgr.experiments import build_plan
from cvgr.train import TrainConfig, train

NAME = "toy-npy"


class NpyReader(Reader):
    """x_SPLIT.npy (uint8 (N, 1, 28, 28)) and y_SPLIT.npy (int64 (N,)), never pickled."""

    def files(self, split: str) -> tuple[str, ...]:
        return (f"x_{split}.npy", f"y_{split}.npy")

    def read(self, paths: Sequence[Path], name: str) -> tuple[np.ndarray, np.ndarray]:
        return (np.load(paths[0], allow_pickle=False),
                np.load(paths[1], allow_pickle=False).astype(np.int64))


SPEC = DatasetSpec(
    NAME, (1, 28, 28), NpyReader(), train_size=48, test_size=16,
    recipe=Recipe(lr=0.02, batch_size=16, epochs=1, milestone_fractions=()),
    settings=DatasetSettings("MNISTNetV0", "MNISTNetV1", 2.0, 0.0, 0.1, 0.1, 0.2, 0.1, 0.1,
                             "made up for a test"),
    description="48/16 random images", augment_pad=2, normalize_real=True)


@pytest.fixture
def toy(tmp_path):
    register(SPEC)
    rng = np.random.default_rng(0)
    d = tmp_path / NAME
    d.mkdir()
    for split, n in (("train", 48), ("test", 16)):
        np.save(d / f"x_{split}.npy", rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8))
        np.save(d / f"y_{split}.npy", rng.integers(0, 10, n).astype(np.int64))
    try:
        yield tmp_path
    finally:
        DATASETS.pop(NAME)


def test_registered_dataset_is_located_loaded_and_trained(toy, tmp_path):
    assert locate(NAME, toy) == toy / NAME
    x, y = load(NAME, "train", toy)
    assert x.shape == (48, 1, 28, 28) and x.dtype == torch.uint8 and y.shape == (48,)
    out = tmp_path / "run"
    final = train(TrainConfig(dataset=NAME, arch="MNISTNetV0"), out, progress=False,
                  quiet=True, device="cpu", data_root=toy)
    assert final["epoch"] == 1 and np.isfinite(final["ce"]) and 0 <= final["val_acc"] <= 1
    stored = json.loads((out / "config.json").read_text())["config"]
    assert (stored["lr"], stored["batch_size"], stored["epochs"], stored["milestones"]) == (
        0.02, 16, 1, [])  # the spec's recipe, nothing else
    # normalize_real: the real net standardises by the train images' own channel stats
    model = cvgr.load(out)
    mean, std = model.record["normalize"]
    xf = x.double().numpy() / 255.0
    assert mean == pytest.approx([xf.mean()], rel=1e-6)
    assert std == pytest.approx([xf.std()], rel=1e-6)


def test_augment_pad_comes_from_the_spec(toy):
    x = Loader(NAME, "train", 8, train=False, data_root=toy).images[:8].float() / 255
    got = augment(NAME, x, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)  # the same draws, by hand, with the spec's pad 2
    flip = torch.rand(8, generator=gen) < 0.5
    off = torch.randint(0, 5, (2, 8), generator=gen)
    torch.testing.assert_close(got, flip_crop(x, 2, flip, off[0], off[1]))
    assert get_spec("mnist").augment_pad is None
    assert augment("mnist", x, torch.Generator().manual_seed(5)) is x


def test_plan_reads_sizes_recipe_and_settings_from_the_spec(toy):
    plan = build_plan(NAME, "paper")
    assert (plan["train_images"], plan["n_images"], plan["epochs"]) == (48, 16, 1)
    assert plan["archs"] == {"real": "MNISTNetV0", "complex": "MNISTNetV1"}
    assert plan["claim_eps"] == 0.1 and plan["eps"] == [0.0, 0.1, 0.2]
    gr = next(j for j in plan["jobs"] if j["id"] == "train-complex-gr")
    assert gr["config"]["beta"] == 2.0


def test_register_refuses_a_second_spec_of_one_name(toy):
    with pytest.raises(UserError, match="already registered") as e:
        register(SPEC)
    assert e.value.param == "dataset"


def test_no_module_branches_on_a_dataset_name():
    """The places that used to say `if dataset == "cifar10"` read the spec instead."""
    src = Path(cvgr.__file__).parent
    for rel in ("data/augment.py", "data/loader.py", "train/loop.py", "train/config.py",
                "experiments/plan.py"):
        text = (src / rel).read_text()
        for name in DATASETS:
            assert not re.search(rf"[\"']{re.escape(name)}[\"']", text), (rel, name)
