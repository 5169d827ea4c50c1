"""AutoAttack: the authors' standard version, ART's independent subset, or a custom list.

Versions (each an ordered list of attacks; every attack runs only on the images that all
earlier attacks left classified correctly, so the robust accuracy is the per-image worst case):

- ``standard``: AutoAttack exactly as its authors define it, run by their own implementation
  (the ``pyautoattack`` package, optional extra ``cvgr[autoattack]``): APGD-CE (100 iterations,
  1 restart), APGD-T (9 target classes), FAB-T (9 target classes), Square (5000 queries).
- ``art``: the Adversarial Robustness Toolbox's APGD-CE, APGD-DLR (100 iterations, 1 restart)
  and Square (1000 queries), a second opinion from an independent code base (``cvgr[attack]``).
- ``custom``: any list of attacks from both libraries with their settings, e.g.
  ``["apgd-ce", {"attack": "square", "queries": 100}]``.

The standard version is one call of the authors' public API, `AutoAttack(model, norm=..., eps=...,
version="standard", seed=..., device=...).run_standard_evaluation(x, y, batch_size=...)`, and
its per-attack accuracies are what that call reports on its `auto-attack` logger. A custom list
goes through `version="custom"` and `attacks=`. Every example a library says fooled the model
is checked (projected onto the eps-ball and [0, 1] if it left them, the model asked again), so
a library bug cannot inflate an attack. The result records the version,
each attack's settings as run, the library versions, the seed, the robust accuracy after each
attack and which images survived.

Modules: `versions` (the versions and attack lists, parsed), `authors` (the authors'
implementation), `art_attacks` (ART's), `common` (the state of one evaluation, shared by both),
`evaluation` (:func:`autoattack` itself).
"""

from cvgr.evaluate.autoattack.authors import require_autoattack
from cvgr.evaluate.autoattack.evaluation import autoattack
from cvgr.evaluate.autoattack.versions import (
    AUTOATTACK_COMPONENTS,
    MAX_SETTING,
    VERSIONS,
    parse_attacks,
    version_attacks,
)

__all__ = ["AUTOATTACK_COMPONENTS", "MAX_SETTING", "VERSIONS", "autoattack", "parse_attacks",
           "require_autoattack", "version_attacks"]
