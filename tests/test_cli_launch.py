"""Tests for hl_lightning/cli/_launch.py: what every console script shares at launch."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from hl_lightning.cli import compare, predict, tree

MAINS: dict[str, Callable[[Sequence[str]], int]] = {
    "hl-tree": tree.main,
    "hl-compare": compare.main,
    "hl-predict": predict.main,
}


@pytest.mark.parametrize("prog", list(MAINS))
def test_an_unknown_flag_is_one_line_and_status_1(
    prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        MAINS[prog](
            ["a", "--no-such-flag"] if prog != "hl-predict" else ["a", "b", "c", "--no-such-flag"]
        )
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err == f"{prog}: error: unrecognized arguments: --no-such-flag (see {prog} --help)\n"
