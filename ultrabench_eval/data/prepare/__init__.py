"""Preparers: one command per dataset from its raw download to an UltraBench-format folder.

`ubench prepare NAME RAW_DIR OUT_DIR` looks up the task card, finds the preparer the card names
(`registry.PREPARERS`), locates the raw tree inside RAW_DIR and checks its layout, writes the
folder aside and renames it into `OUT_DIR/<dataset>` once it reads back as a valid task. Seven
tasks go through the installed `ultrabench` package's processors (`ultrabench.py`); BUS-BRA and
TN5000, which ultrabench does not process, have their own (`busbra.py`, `tn5000.py`).
"""
