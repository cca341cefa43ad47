"""Reports of runs: one self-contained ``report.html`` per run directory (``multitask report``).

    from multitask.report import write_report
    report = write_report("runs/a")  # runs/a/report.html
"""

from multitask.report._report import REPORT_FILE, Report, write_report

__all__ = ["REPORT_FILE", "Report", "write_report"]
