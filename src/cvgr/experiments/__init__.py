"""The paper's experiments as independent JSON jobs, a resumable runner, and the report.

    from cvgr.experiments import reproduce
    reproduce("fashion-mnist", "quick", "out/quick", workers=2)
"""

from cvgr.experiments.plan import BUDGETS, build_plan, check_plan
from cvgr.experiments.report import collect, verdicts, write_report
from cvgr.experiments.reproduce import report_only, reproduce
from cvgr.experiments.runner import execute, is_done, run_jobs

__all__ = ["BUDGETS", "build_plan", "check_plan", "collect", "execute",
           "is_done", "report_only", "reproduce", "run_jobs", "verdicts", "write_report"]
