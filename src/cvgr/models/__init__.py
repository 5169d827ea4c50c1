"""An open registry of architectures, each buildable as a real or a complex network.

Every model takes images in [0, 1] shaped (N, C, H, W) and returns logits (N, classes), so any
attack library can attack it unchanged. Names are descriptive; the reference code's class
names are aliases (``create_model("MNISTNetV1", complex=True)`` works).

The registry follows timm's conventions (`cvgr.models.registry`): :func:`register_model` adds
an architecture (yours too), :func:`list_models` lists names matching a pattern,
:func:`create_model` builds one. The built-in architectures (`cvgr.models.architectures`) are
registered where they are built, and importing ``cvgr.models`` registers them. Installed
packages can register models through the ``cvgr.models`` entry-point group, and the command
line imports a module or file of yours with ``cvgr --import MODULE``.
"""

from cvgr.models.architectures import (
    cifar_cnn,
    cifar_cnn_shaped,
    cifar_cnn_wide,
    mnist_cnn,
    mnist_cnn_groupsum,
    mnist_cnn_hybrid,
    mnist_mlp,
)
from cvgr.models.counting import count_macs, count_parameters
from cvgr.models.net import Net, Normalize
from cvgr.models.registry import (
    ARCHITECTURES,
    ENTRY_POINT_GROUP,
    ArchSpec,
    create_model,
    import_models,
    list_models,
    register_model,
    resolve,
)

__all__ = [
    "ARCHITECTURES",
    "ENTRY_POINT_GROUP",
    "ArchSpec",
    "Net",
    "Normalize",
    "cifar_cnn",
    "cifar_cnn_shaped",
    "cifar_cnn_wide",
    "count_macs",
    "count_parameters",
    "create_model",
    "import_models",
    "list_models",
    "mnist_cnn",
    "mnist_cnn_groupsum",
    "mnist_cnn_hybrid",
    "mnist_mlp",
    "register_model",
    "resolve",
]
