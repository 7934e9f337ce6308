"""Tests for hl_lightning/cli/tree.py: hl-tree prints, checks and draws hierarchies."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.text import Annotation, Text
from PIL import Image

from hl_lightning import Hierarchy
from hl_lightning.cli import tree
from hl_lightning.data import synthetic_hierarchy
from hl_lightning.hierarchies import load_hierarchy

BAD_TREE = "animal\n\tcat\n\t\t\tkitten\n"  # line 3 jumps two levels deeper


def test_seed_file_prints_tree_and_level_table(
    paper_trees: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = paper_trees / "faces_tree.txt"
    assert tree.main([str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(path)
    assert "|-- background  [0]" in out
    assert "`-- foreground  [11]" in out
    assert any(line.endswith("`-- right_eyebrow  [10]") for line in out)
    assert any(line.endswith("`-- eyebrows  [16]") for line in out)
    assert "node ids: leaves (classes) 0-10, internal nodes (coarse labels) 11-16" in out
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
    assert out.startswith("synthetic\n|-- background  [0]\n|-- stuff  [13]\n|   |-- sky  [1]\n")
    assert out.count("  [") == 19  # 13 leaves, 6 internal nodes
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


def test_render_tree_marks_every_node_with_its_node_id() -> None:
    h = synthetic_hierarchy().reorder(list(reversed(synthetic_hierarchy().leaves)))
    lines = tree.render_tree(h).splitlines()[1:]
    assert len(lines) == h.num_nodes
    for line, (node, _) in zip(lines, h.walk(), strict=True):
        name, node_id = line.split("-- ", 1)[1].rsplit("  [", 1)
        assert name == node.name
        assert int(node_id.rstrip("]")) == h.label_id(node.name)
        assert h.node_names[int(node_id.rstrip("]"))] == node.name
    leaf_lines = [line for line, (node, _) in zip(lines, h.walk(), strict=True) if node.is_leaf]
    assert sorted(int(line.rsplit("[", 1)[1].rstrip("]")) for line in leaf_lines) == list(
        range(h.num_leaves)
    )


def test_flat_tree_has_no_coarse_ids(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "flat.txt"
    path.write_text("a\nb\n")
    assert tree.main([str(path)]) == 0
    assert "node ids: leaves (classes) 0-1\n" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "rows", "leaves", "nodes"),
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
            171 + 2 + 4 + 27,
        ),
        (
            "pascal_person_part",
            [["0", "figure", "2", "1"], ["1", "body", "3", "0"], ["2", "part", "7", "6"]],
            7,
            7 + 1 + 2,
        ),
        (
            "lip",
            [["0", "figure", "2", "1"], ["1", "body", "3", "0"], ["2", "part", "20", "19"]],
            20,
            20 + 1 + 2,
        ),
        ("voc", [["0", "category", "5", "2"], ["1", "class", "21", "19"]], 21, 21 + 3),
    ],
)
def test_new_builtin_trees_print_with_their_level_tables(
    name: str, rows: list[list[str]], leaves: int, nodes: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tree.main([name]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == name
    assert sum(line.endswith("]") for line in out) == nodes  # an id on every node
    table = out[out.index("") + 1 :]
    assert table[0].split() == ["level", "name", "groups", "leaves"]
    assert [row.split() for row in table[1:-1]] == rows
    assert table[-1] == f"{leaves} leaves (classes), depth {len(rows)} (levels)"


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("tree.json", b'{"labels": 5}', r"tree\.json: expected"),
        ("tree.json", b'{"a": ["b", "c"]', r"tree\.json:1: not valid JSON"),
        ("tree.txt", b'{"a": ["b", "c"]}', r"tree\.txt:1: this is JSON"),
        ("tree.txt", b"\x89PNG\r\n\x1a\n\x00\x00", r"tree\.txt:1: not UTF-8 text"),
        ("tree.yaml", b"a:\n\tb:\n", r"tree\.yaml:2: not valid YAML"),
        ("tree.txt", "a\n\u200bb\n".encode(), r"tree\.txt:2: the invisible character U\+200B"),
    ],
)
def test_unreadable_tree_files_exit_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, match: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert tree.main([str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"hl-tree: error: {path}")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert re.search(match, captured.err), captured.err


def test_json_tree_file_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tree.json"
    path.write_text('{"vehicle": ["car", "truck"], "sky": null}')
    assert tree.main([str(path)]) == 0
    assert "|   |-- car" in capsys.readouterr().out


LONG_NAMES = {
    "a_very_long_category_name_that_goes_on_and_on": {
        "subcategory_with_an_extremely_long_descriptive_name": [
            "leaf_class_with_a_very_long_name_number_one",
            "short",
            "leaf_class_with_a_very_long_name_number_three",
        ],
        "tiny": ["x", "y"],
    },
    "other_top_level_group_with_long_name": [
        "z",
        "another_really_long_leaf_class_name_at_the_right_edge",
    ],
}


@pytest.mark.parametrize("name", ["long_names", "mapillary_paper", "synthetic"])
def test_tree_png_labels_lie_inside_the_figure_and_apart(name: str) -> None:
    h = Hierarchy.from_dict(LONG_NAMES) if name == "long_names" else load_hierarchy(name)
    figure = tree.tree_figure(h, title=name)
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)
    box = figure.bbox
    texts = [t for t in figure.findobj(Text) if t.get_visible() and t.get_text()]
    shown = {t.get_text() for t in texts}
    assert {node.name for node, _ in h.walk()} <= shown  # every node is named
    for text in texts:
        extent = text.get_window_extent(renderer)
        inside = box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0
        assert inside and extent.y1 <= box.y1, (text.get_text(), extent, box)
    inner = [t for t in texts if isinstance(t, Annotation)]  # the inner nodes' labels
    assert len(inner) == sum(not node.is_leaf for node, _ in h.walk())
    extents = [t.get_window_extent(renderer) for t in inner]
    for i, first in enumerate(extents):
        for second in extents[i + 1 :]:
            assert not first.overlaps(second), (first, second)
    leaves = [t for t in texts if t.get_text() in h.leaves]
    leaf_extents = [t.get_window_extent(renderer) for t in leaves]
    assert len(leaf_extents) == h.num_leaves
    assert all(not a.overlaps(b) for a, b in itertools.combinations(leaf_extents, 2))


def test_png_file_is_the_figure_at_100_dpi(tmp_path: Path) -> None:
    h = Hierarchy.from_dict(LONG_NAMES)
    tree.draw_tree(h, tmp_path / "tree.png")
    width, height = tree.tree_figure(h).get_size_inches() * 100
    with Image.open(tmp_path / "tree.png") as image:
        assert abs(image.width - width) <= 1 and abs(image.height - height) <= 1  # not cropped
