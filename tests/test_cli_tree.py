"""Tests for hl_lightning/cli/tree.py: hl-tree prints, checks and draws hierarchies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from hl_lightning.cli import tree
from hl_lightning.data import synthetic_hierarchy

BAD_TREE = "animal\n\tcat\n\t\t\tkitten\n"  # line 3 jumps two levels deeper


def test_seed_file_prints_tree_and_level_table(
    paper_trees: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = paper_trees / "faces_tree.txt"
    assert tree.main([str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(path)
    assert "|-- background  [0]" in out
    assert "`-- foreground" in out
    assert any(line.endswith("`-- right_eyebrow  [10]") for line in out)
    table = out[out.index("") + 1 :]
    assert table[0].split() == ["level", "name", "groups", "leaves"]
    assert [row.split() for row in table[1:5]] == [
        ["0", "level0", "2", "1"],
        ["1", "level1", "3", "1"],
        ["2", "level2", "6", "0"],
        ["3", "level3", "11", "9"],
    ]
    assert table[5] == "11 leaves (classes), depth 4 (levels)"


def test_builtin_name_prints_named_levels(capsys: pytest.CaptureFixture[str]) -> None:
    assert tree.main(["synthetic"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("synthetic\n|-- background  [0]\n|-- stuff\n|   |-- sky  [1]\n")
    assert out.count("  [") == 13
    assert "0      kind          3       1" in out
    assert "13 leaves (classes), depth 3 (levels)" in out


def test_bad_file_exits_non_zero_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(BAD_TREE)
    assert tree.main([str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"hl-tree: error: {path}:3: 'kitten' is indented")
    assert tree.main(["no_such_tree.txt"]) == 1
    assert "no hierarchy 'no_such_tree.txt'" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_bad_yaml_gives_no_traceback(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("hl-tree")
    if not script.exists():
        pytest.skip(f"the hl-tree console script is not installed next to {sys.executable}")
    path = tmp_path / "bad.yaml"
    path.write_text("a:\n  b: 1\n")
    result = subprocess.run(
        [str(script), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"hl-tree: error: {path}:2: 'b' maps to '1'")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("source", ["synthetic", "mapillary_tree.txt"])
def test_png_draws_the_tree(
    source: str, tmp_path: Path, paper_trees: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = source if source == "synthetic" else str(paper_trees / source)
    png = tmp_path / "tree.png"
    assert tree.main([name, "--png", str(png)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"drawn: {png}")
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width >= 600 and height >= 300
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50  # not blank


@pytest.mark.parametrize("name", ["classes", "tree.txt"])
def test_png_over_the_tree_file_is_refused_naming_both(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    path.write_text("sky\nvehicle\n\tcar\n\ttruck\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(path)
    for png in (path, tmp_path / "sub" / ".." / name, tmp_path / "link"):
        assert tree.main([str(path), "--png", str(png)]) == 1
        err = capsys.readouterr().err
        assert err == f"hl-tree: error: --png {png} would overwrite the input tree file {path}\n"
    assert path.read_text() == "sky\nvehicle\n\tcar\n\ttruck\n"


def test_png_is_a_png_whatever_the_file_is_named(tmp_path: Path) -> None:
    assert tree.main(["synthetic", "--png", str(tmp_path / "tree.drawing")]) == 0
    with Image.open(tmp_path / "tree.drawing") as image:
        assert image.format == "PNG"


def test_png_is_replaced_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "tree.png"
    png.write_bytes(b"an older drawing")
    inode = png.stat().st_ino
    assert tree.main(["synthetic", "--png", str(png)]) == 0
    assert png.stat().st_ino != inode  # renamed over the old file, never written in place
    with Image.open(png) as image:
        assert image.format == "PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["tree.png"]


def test_png_into_a_missing_folder_gives_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "none" / "tree.png"
    assert tree.main(["synthetic", "--png", str(png)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hl-tree: error: ") and str(png.parent) in err
    assert err.count("\n") == 1


def test_png_without_matplotlib_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in [m for m in sys.modules if m.startswith("matplotlib")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    with pytest.raises(SystemExit, match=r'pip install "hl_lightning\[plots\]"'):
        tree.main(["synthetic", "--png", str(tmp_path / "tree.png")])
    assert not (tmp_path / "tree.png").exists()


def test_render_tree_marks_every_leaf_with_its_label_id() -> None:
    h = synthetic_hierarchy()
    lines = tree.render_tree(h).splitlines()
    ids = [int(line.rsplit("[", 1)[1].rstrip("]")) for line in lines if line.endswith("]")]
    assert ids == list(range(h.num_leaves))


@pytest.mark.parametrize(
    ("name", "rows", "leaves"),
    [
        (
            "coco_stuff",
            [
                ["0", "kind", "2", "0"],
                ["1", "setting", "4", "0"],
                ["2", "supercategory", "27", "0"],
                ["3", "class", "171", "171"],
            ],
            171,
        ),
        (
            "pascal_person_part",
            [["0", "figure", "2", "1"], ["1", "body", "3", "0"], ["2", "part", "7", "6"]],
            7,
        ),
        (
            "lip",
            [["0", "figure", "2", "1"], ["1", "body", "3", "0"], ["2", "part", "20", "19"]],
            20,
        ),
    ],
)
def test_new_builtin_trees_print_with_their_level_tables(
    name: str, rows: list[list[str]], leaves: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tree.main([name]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == name
    assert sum(line.endswith("]") for line in out) == leaves
    table = out[out.index("") + 1 :]
    assert table[0].split() == ["level", "name", "groups", "leaves"]
    assert [row.split() for row in table[1:-1]] == rows
    assert table[-1] == f"{leaves} leaves (classes), depth {len(rows)} (levels)"
