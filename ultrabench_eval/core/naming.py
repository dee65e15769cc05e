"""Names as file names: model, task and protocol names become folder and file names in the
feature cache and the results folder."""

from __future__ import annotations

import re


def safe_name(name: str) -> str:
    """A model or task name as a file name (`timm:vit_small` -> `timm_vit_small`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)
