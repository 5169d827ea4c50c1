"""cvgr: gradient-regularized complex-valued neural networks, and an honest robustness bench."""

__version__ = "0.1.0"

from cvgr.benchmarking import BenchmarkResult, benchmark  # noqa: E402
from cvgr.checkpoint import load  # noqa: E402

__all__ = ["BenchmarkResult", "__version__", "benchmark", "load"]
