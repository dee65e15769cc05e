"""Results: the typed result record and its files (`record`), where records are made (`build`),
statistics (`stats`), robustness scores (`robustness`), the regression check and published
tables.
"""
