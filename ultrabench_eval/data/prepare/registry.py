"""Every preparer, by the id task cards name in their `preparer` field, and the look-up from a
task name to its preparer. Tasks that share a folder share its preparer (`aul` and
`aul-mass-seg`, `camus` and `camus-seg`, `mmotu` and `mmotu-seg`)."""

from __future__ import annotations

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare import (
    aul,
    busbra,
    butterfly,
    camus,
    fatty_liver,
    gbcu,
    mmotu,
    open_kidney,
    pocus,
    psfhs,
    stanford_thyroid,
    tn5000,
)
from ultrabench_eval.data.prepare.base import Preparer
from ultrabench_eval.data.task_card import TaskCard

PREPARERS: dict[str, Preparer] = {
    p.id: p
    for p in (
        aul.PREPARER,
        aul.LIVER_PREPARER,
        busbra.PREPARER,
        butterfly.PREPARER,
        camus.PREPARER,
        fatty_liver.PREPARER,
        gbcu.PREPARER,
        mmotu.PREPARER,
        open_kidney.PREPARER,
        pocus.PREPARER,
        psfhs.PREPARER,
        stanford_thyroid.PREPARER,
        tn5000.PREPARER,
    )
}


def preparer_for(card: TaskCard) -> Preparer:
    """The preparer the card names; a UserError when it names none or an unknown one."""
    if not card.preparer:
        how = "run `ubench synth`" if card.generator == "synth" else "prepare its folder by hand"
        raise UserError(f"task '{card.name}' has no preparer ({how})")
    preparer = PREPARERS.get(card.preparer)
    if preparer is None:
        raise UserError(
            f"task card {card.path or card.name} names preparer '{card.preparer}', which does "
            f"not exist (known: {', '.join(sorted(PREPARERS))})"
        )
    if preparer.dataset != card.dataset:
        raise UserError(
            f"task card {card.path or card.name} expects folder {card.dataset}, but preparer "
            f"'{preparer.id}' writes {preparer.dataset}; fix the card's `dataset`"
        )
    return preparer


def preparer_for_task(name: str) -> Preparer:
    from ultrabench_eval.core.registry import TASKS

    return preparer_for(TASKS.get(name))
