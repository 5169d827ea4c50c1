"""cvgr: gradient-regularized complex-valued neural networks, and an honest robustness bench."""

from cvgr.benchmarking import BenchmarkResult, benchmark
from cvgr.loading import load
from cvgr.version import __version__

__all__ = ["BenchmarkResult", "__version__", "benchmark", "load"]
