"""The few-shot view: one table per model and probe variant, a row per label budget."""

from __future__ import annotations

import dataclasses

from result_records import as_segmentation, make_record

from ultrabench_eval.report.fewshot_table import render_fewshot


def _variant(record, options: dict, suffix: str):
    """The same record as fitted with probe options that change its numbers."""
    budget = record.protocol_id[len(record.probe) :]
    protocol = dataclasses.replace(
        record.protocol, id=f"{record.probe}{suffix}{budget}", probe_options=options
    )
    return dataclasses.replace(record, protocol=protocol)


def test_rows_are_fractions_smallest_first_then_shots():
    records = [
        make_record("m", "t", 70.0, fraction=1.0),
        make_record("m", "t", 40.0, fraction=0.1),
        make_record("m", "t", 30.0, shots=5),
    ]
    text = render_fewshot(records)
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert rows == ["labels", "10 %", "100 %", "5-shot"]
    assert text.count("### ") == 1


def test_a_probe_variant_gets_its_own_table():
    default = [make_record("m", "t", 70.0), make_record("m", "t", 40.0, fraction=0.1)]
    variant = [_variant(r, {"max_iter": 5}, "+max_iter=5") for r in default]
    variant = [
        dataclasses.replace(v, scores=dataclasses.replace(v.scores, mean=11.0)) for v in variant
    ]
    text = render_fewshot(default + variant)
    assert text.count("### ") == 2
    assert "### linear+max_iter=5, m:" in text and "### linear, m:" in text
    own = text.split("### linear+max_iter=5, m:")[1]
    assert "11.0" in own and "70.0" not in own


def test_a_single_fit_row_reads_without_a_spread():
    full = make_record("m", "t", 70.0)
    one_fit = dataclasses.replace(
        full, scores=dataclasses.replace(full.scores, per_seed=[70.0], std=0.0, fits=1)
    )
    text = render_fewshot([one_fit, make_record("m", "t", 40.0, std=2.0, fraction=0.1)])
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in text.splitlines()
        if line.startswith("| ")
    }
    assert rows["100 %"] == "70.0 (1 fit)" and rows["10 %"] == "40.0 ± 2.0"
    assert "± 0.0" not in text and "_(1 fit): one probe fit" in text


def test_headings_name_dice_for_segmentation_and_macro_f1_for_classification():
    records = [
        make_record("m", "cls", 70.0),
        make_record("m", "cls", 40.0, fraction=0.1),
        as_segmentation(make_record("m", "seg", 55.0, probe="dense")),
        as_segmentation(make_record("m", "seg", 35.0, probe="dense", fraction=0.1)),
    ]
    text = render_fewshot(records)
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    assert len(headings) == 2
    assert headings[0].startswith("### linear, m: test macro-F1 (x100) by training labels")
    assert headings[1].startswith("### dense, m: test Dice (x100, mean over the foreground")
    assert "Dice" not in headings[0] and "macro-F1" not in headings[1]
    dense = text.split("### dense")[1]
    assert "55.0" in dense and "35.0" in dense and "70.0" not in dense
