"""Shared basics every stage may use: user errors, atomic writes, folder defaults, the registries,
devices.
"""
