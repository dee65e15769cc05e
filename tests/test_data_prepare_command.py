"""`ubench prepare NAME RAW_DIR OUT_DIR` on the command line."""

import pytest
from raw_trees import write_busbra

from ultrabench_eval.cli.parser import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_prepare_prints_the_folder_sizes_and_the_next_step(tmp_path, capsys):
    write_busbra(tmp_path / "raw")
    code, out, _ = _run(capsys, "prepare", "busbra", str(tmp_path / "raw"), str(tmp_path / "d"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"prepared busbra with ubench:busbra into {tmp_path / 'd' / 'busbra_v1'}"
    assert lines[1] == (
        "  train/validation/test: 14/2/4 (card: 765/86/213, different: see the card description)"
    )
    assert lines[2] == f"next: ubench tasks check busbra {tmp_path / 'd'}"


def test_user_mistakes_are_one_line_with_exit_code_2(tmp_path, capsys):
    cases = [
        (("prepare", "nope", str(tmp_path), str(tmp_path)), "unknown task 'nope'"),
        (("prepare", "synth-lesion", str(tmp_path), str(tmp_path)), "has no preparer"),
        (("prepare", "tn5000", str(tmp_path / "gone"), str(tmp_path)), "does not exist"),
    ]
    for argv, message in cases:
        code, _, err = _run(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert err.startswith("ubench prepare: error:") and message in err.lower()
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", "busbra"])
    assert exit_.value.code == 2
    assert "the following arguments are required: raw_dir, out_dir" in capsys.readouterr().err
