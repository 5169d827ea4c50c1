"""Datasets: native-format readers, where files are found or fetched, batched augmentation.

Data flows one way: files -> uint8 tensors in memory (`load`) -> float batches in [0, 1] of
the shape a model sees (`prepare`, `augment`, `Loader`). Nothing here knows about models.
"""

from cvgr.data.augment import add_gaussian_noise, augment, prepare
from cvgr.data.loader import Loader, channel_stats, first_test_images, load
from cvgr.data.locations import cache_root, destination, find, locate, search_dirs
from cvgr.data.sources import fetch
from cvgr.data.specs import DATASETS, DatasetSpec, get_spec

__all__ = ["DATASETS", "DatasetSpec", "get_spec", "load", "prepare", "augment",
           "add_gaussian_noise", "channel_stats", "Loader", "first_test_images", "locate", "find",
           "fetch", "search_dirs", "cache_root", "destination"]
