"""Corruption suites: named lists of corruptions with their severities.

- `us-jepa-2026`: the US-JEPA paper's suite (arXiv 2602.19322, Sec. 5.4, App. F.2): Gaussian
  blur, contrast depletion and correlated speckle at severities 1-3, on test images only.
- `ultrasound-5`: the extended suite, every ultrasound corruption at severities 1-5.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import CORRUPTIONS


@dataclass(frozen=True)
class Preset:
    name: str
    corruptions: tuple[str, ...]
    severities: tuple[int, ...]
    description: str


PRESETS = {
    preset.name: preset
    for preset in (
        Preset(
            "us-jepa-2026",
            ("us-jepa-blur", "us-jepa-contrast", "us-jepa-speckle"),
            (1, 2, 3),
            "the US-JEPA paper's suite: Gaussian blur, contrast depletion, correlated speckle",
        ),
        Preset(
            "ultrasound-5",
            (
                "speckle",
                "shadow",
                "gaussian-shadow",
                "attenuation",
                "haze",
                "reverberation",
                "gain",
                "gaussian-noise",
                "blur",
                "contrast",
                "jpeg",
            ),
            (1, 2, 3, 4, 5),
            "the extended suite: ultrasound artefacts and image degradations, 5 severities",
        ),
    )
}


def get_preset(name: str) -> Preset:
    if name in PRESETS:
        return PRESETS[name]
    close = difflib.get_close_matches(name, list(PRESETS), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UserError(
        f"unknown corruption preset '{name}': {hint}known: {', '.join(PRESETS)} "
        "(run `ubench corruptions`)"
    )


def parse_severities(text: str) -> tuple[int, ...]:
    """`1-5`, `1,3,5` or `2`: severities, ascending, without repeats."""
    values: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        low, sep, high = part.partition("-")
        try:
            if sep:
                first, last = int(low), int(high)
                if first > last:
                    raise ValueError
                values.update(range(first, last + 1))
            else:
                values.add(int(part))
        except ValueError:
            raise UserError(
                f"--severities '{text}' must be a range or a list of integers, e.g. 1-5 or 1,3,5"
            ) from None
    if not values or min(values) < 1:
        raise UserError(f"--severities '{text}' must name severities of 1 or more")
    return tuple(sorted(values))


def suite(
    corruptions: list[str] | None,
    preset: str | None,
    severities: tuple[int, ...] | None,
) -> list[tuple[str, int]]:
    """(corruption spec, severity) pairs to run: a preset's corruptions or the named ones (a
    spec may compose corruptions, `speckle+shadow`), at the given severities (by default the
    preset's, or every severity each corruption has). Every name and severity is checked."""
    if bool(corruptions) == bool(preset):
        raise UserError("pass either --corruptions NAME[,NAME2] or --preset NAME (not both)")
    if preset:
        chosen = get_preset(preset)
        names, default = list(chosen.corruptions), chosen.severities
    else:
        names, default = list(corruptions or []), None
    out = []
    for spec in names:
        parts = [CORRUPTIONS.get(part) for part in spec.split("+")]
        most = min(part.max_severity for part in parts)
        wanted = severities or default or tuple(range(1, most + 1))
        too_high = [s for s in wanted if s > most]
        if too_high:
            raise UserError(
                f"corruption '{spec}' has severities 1..{most}, not {too_high[0]} "
                "(see `ubench corruptions`; pass --severities)"
            )
        out += [(spec, s) for s in wanted if (spec, s) not in out]
    return out
