"""The model zoo: the paper's models trained at the paper's budget, shipped with the package.

Each entry is a `cvgr train` configuration (the dataset recipe: 30 epochs, lr 0.005 x0.2 at
epoch 20, batch 64, every training image, seed 0 unless said). Its weights live in
``weights/<dataset>/<name>.safetensors`` (the training record, per-epoch seconds and device
inside) and its measured numbers in ``weights/<dataset>/<name>.eval.json`` beside them.

    cvgr.load("zoo:fashion-mnist/complex-gr")      # a shipped model
    zoo.train(["fashion-mnist/real-gr"], "runs/zoo")  # resumable run dirs, one after another
    zoo.publish("runs/zoo/fashion-mnist/real-gr")    # copy a finished run into the zoo
    zoo.evaluate(n_images=500)                      # clean, PGD(8), standard AutoAttack

The zoo directory is the package's own unless `zoo_dir` (or the CVGR_ZOO_DIR variable) says
otherwise.
"""

from cvgr.zoo.catalogue import (
    CATALOGUE,
    ENV,
    PACKAGE_ROOT,
    ZooEntry,
    entries,
    entry,
    eval_file,
    is_zoo_name,
    locate,
    resolve,
    verified,
    weights_digest,
    weights_file,
    zoo_directory,
)
from cvgr.zoo.evaluation import evaluate, evaluate_further
from cvgr.zoo.table import aa_cell, cell, markdown_table, rows, table
from cvgr.zoo.training import publish, publishable_runs, run_entry, train

__all__ = ["CATALOGUE", "ENV", "PACKAGE_ROOT", "ZooEntry", "aa_cell", "cell", "entries", "entry",
           "eval_file", "evaluate", "evaluate_further", "is_zoo_name", "locate", "markdown_table",
           "publish", "publishable_runs", "resolve", "zoo_directory", "rows", "run_entry", "table",
           "train", "verified", "weights_digest", "weights_file"]
