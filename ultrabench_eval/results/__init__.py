"""Results: the typed result record, its files, statistics, the regression check and published
tables.
"""
