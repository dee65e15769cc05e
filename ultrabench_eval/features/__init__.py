"""Features: extraction through an adapter into the feature cache, multi-process runs, cache
administration.
"""
