"""`reid demo`: every stage of the pipeline on synthetic data, in one work directory.

    from reidcli.demo import DemoOptions, run_demo
    result = run_demo(DemoOptions(workdir=Path("reid-demo"), quick=True))
"""

from reidcli.demo.plan import FULL, QUICK, DemoPlan
from reidcli.demo.runner import DemoOptions, DemoResult, run_demo

__all__ = ["FULL", "QUICK", "DemoOptions", "DemoPlan", "DemoResult", "run_demo"]
