"""`RunOptions` where the experiments have always imported it from (it lives in
`cvgr.options`, below train, so training takes the same object)."""

from cvgr.options import RunOptions

__all__ = ["RunOptions"]
