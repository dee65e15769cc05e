"""Data: task cards, UltraBench-format datasets, scan masks, the image store, the loader, task
checks, preparers and the generated suite.
"""
