"""`worker bench`: throughput of the engine against the machine's limits and a baseline.

machine.py measures the limits (matmul peak, copy bandwidth), workloads.py defines what runs,
engine_run.py / baseline.py / attention.py measure, report.py renders the table and verdicts.
"""
