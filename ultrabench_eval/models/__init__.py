"""Models: the adapter contract, checkpoint layouts, weights reading, the adapter factory and
contract checks.
"""
