"""Training: one loop for every defense, run directories that resume exactly.

    from cvgr.train import TrainConfig, train
    metrics = train(TrainConfig(dataset="fashion-mnist", arch="MNISTNetV1", complex=True,
                                beta=64, noise=0.05), "runs/c64")
"""

from cvgr.train.config import Recipe, TrainConfig
from cvgr.train.loop import TrainingDiverged, train, train_epoch, validate
from cvgr.train.rundir import RunDir

__all__ = ["Recipe", "RunDir", "TrainConfig",
           "TrainingDiverged", "train", "validate", "train_epoch"]
