"""Protocols: the bench (clean features, label budgets), robustness and cluster sweeps, written as
result records.
"""
