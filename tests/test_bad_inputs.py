"""Bad inputs never crash, hang or lie: every one is refused with an error naming the problem,
or accepted with the correct result.

The one place that lists them: hierarchy files (text, YAML, dicts) that are deep, cyclic,
alias bombs, empty or malformed; tensors of any dtype, layout, shape or value into the
losses and metrics; level weights; logits up to the fp32 limit.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hl_lightning import Hierarchy, HierarchyError
from hl_lightning.cli import tree
from hl_lightning.hierarchy import Node
from hl_lightning.losses import (
    HierarchicalLoss,
    TreeMinLoss,
    build_loss,
    hierarchical_nll,
    soft_label_matrix,
)
from hl_lightning.metrics import (
    HierarchicalJaccardIndex,
    HierarchicalPixelAccuracy,
    MistakeSeverity,
)

TOY = {"sky": None, "vehicle": {"car": None, "truck": None}, "nature": ["tree", "grass"]}
LOSS_NAMES = ["hierarchical", "flat", "hxe", "soft_labels", "tree_min"]
METRICS = [HierarchicalJaccardIndex, HierarchicalPixelAccuracy, MistakeSeverity]
IGNORE = 255
DEPTH = 1100  # deeper than Python's default recursion limit (1000)


def toy() -> Hierarchy:
    """Return the five-leaf, two-level test tree."""
    return Hierarchy.from_dict(TOY)


def channels(loss: nn.Module, h: Hierarchy) -> int:
    """Return the channels the loss expects: N node logits for tree-min, else K."""
    return loss.num_nodes if isinstance(loss, TreeMinLoss) else h.num_leaves


def batch(c: int, shape: tuple[int, ...] = (2, 4, 5), seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Return random logits (B, c, H, W) and leaf targets (B, H, W) with one ignored pixel."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape[0], c, *shape[1:], generator=gen)
    target = torch.randint(0, 5, shape, generator=gen)
    if target.numel():
        target.view(-1)[0] = IGNORE
    return logits, target


def loss_and_grad(loss: nn.Module, logits: torch.Tensor, target: torch.Tensor) -> tuple:
    """Return the loss value and the gradient of its logits."""
    x = logits.detach().clone().requires_grad_()
    value = loss(x, target)
    value.backward()
    return value.detach(), x.grad


def comb_text(depth: int) -> str:
    """Return the indented text of a comb: at every depth a leaf and the group below."""
    lines = []
    for d in range(depth):
        lines += ["\t" * d + f"g{d}", "\t" * (d + 1) + f"l{d}"]
    return "\n".join([*lines, "\t" * depth + "last"]) + "\n"


def comb_dict(depth: int) -> dict[str, Any]:
    """Return the same comb as nested mappings (built without recursion)."""
    tree: dict[str, Any] = {"last": None, "end": None}
    for d in reversed(range(depth)):
        tree = {f"l{d}": None, f"g{d}": tree}
    return tree


# ------------------------------------------------------------------ hierarchy files: text
@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"tree\.txt: the hierarchy file is empty"),
        ("# only a comment\n\n   \n", r"tree\.txt: the hierarchy file is empty"),
        ("\tcat\n", r"tree\.txt:1: the first class name 'cat' must not be indented"),
        ("animal\n\tcat\n\t\t\tkitten\n", r"tree\.txt:3: 'kitten' is indented 2 levels deeper"),
        ("a\n \tb\n", r"tree\.txt:2: indentation mixes tabs and spaces"),
        ("a\n\tb\nc\n  d\n", r"tree\.txt:4: indented with spaces but line 2 uses tabs"),
        ("a\n  b\n  c\n   d\n", r"tree\.txt:4: indentation of 3 spaces is not a multiple of 2"),
        ("a\n\u3000b\n", r"tree\.txt:2: indentation may use only tabs or spaces"),
        ("a\n\tx\nb\n\tx\n", r"tree\.txt:4: duplicate leaf name 'x' \(lines 2 and 4\)"),
        ("x\na\n\tx\n\t\ty\n", r"tree\.txt:3: node is both a leaf and a parent 'x'"),
        ("g\n\ta\ng\n\tb\n", r"tree\.txt:3: duplicate group name 'g'"),
        ("only\n", r"tree\.txt:1: a hierarchy needs at least two leaves"),
    ],
)
def test_bad_text_files_are_named_with_file_and_line(tmp_path: Path, text: str, match: str):
    path = tmp_path / "tree.txt"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(HierarchyError, match=match):
        Hierarchy.from_file(path)


def test_non_utf8_and_missing_files_are_named(tmp_path: Path):
    path = tmp_path / "tree.txt"
    path.write_bytes(b"a\n\tb\n\xff\n")
    with pytest.raises(HierarchyError, match=r"tree\.txt:3: not UTF-8 text"):
        Hierarchy.from_file(path)
    with pytest.raises(HierarchyError, match="cannot read hierarchy file"):
        Hierarchy.from_file(tmp_path / "missing.txt")


# ------------------------------------------------------------------ hierarchy files: YAML
BILLION_LAUGHS = "".join(
    [
        "a: &a [x, y]\n",
        *(f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9)),
    ]
)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (BILLION_LAUGHS, r"tree\.yaml:2: YAML aliases \(&anchor / \*alias\) are not allowed"),
        ("a: &a\n  b: *a\n", r"tree\.yaml:2: YAML aliases .* are not allowed .*\*a"),
        ("a: &s [x, y]\nb: *s\n", r"tree\.yaml:2: YAML aliases"),
        ("a: [b\n", r"tree\.yaml:2: not valid YAML"),
        ("a:\n  b: 1\n", r"tree\.yaml:2: 'b' maps to '1'; a leaf maps to nothing"),
        ("a: []\nb:\nc:\n", r"tree\.yaml:1: 'a' has no children"),
        ("- [a, b]\n", r"tree\.yaml:1: a list item must be a class name or a mapping, not a list"),
        ("- a\n-\n- b\n", r"tree\.yaml:2: empty list item"),
        ("? [a]\n:\nb:\n", r"tree\.yaml:1: a class name must be a plain value"),
        ("a:\nb:\n---\nc:\n", r"tree\.yaml:3: a second YAML document"),
        ("just a name\n", r"tree\.yaml:1: expected a mapping or a list of class names"),
        ("# nothing\n", r"tree\.yaml: the hierarchy file is empty"),
        ("a:\n  x:\nb:\n  x:\n", r"tree\.yaml:4: duplicate leaf name 'x' \(lines 2 and 4\)"),
    ],
)
def test_bad_yaml_files_are_named_with_file_and_line(tmp_path: Path, text: str, match: str):
    path = tmp_path / "tree.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(HierarchyError, match=match):
        Hierarchy.from_file(path)
    assert time.perf_counter() - start < 5  # the alias bomb is refused before any expansion


# ------------------------------------------------------------------ hierarchies from dicts
def _cyclic_dict() -> dict[str, Any]:
    tree: dict[str, Any] = {"a": None, "b": {"c": None}}
    tree["b"]["d"] = tree
    return tree


def _cyclic_list() -> list[Any]:
    names: list[Any] = ["x"]
    names.append({"y": names})
    return names


def _shared() -> dict[str, Any]:
    sub = {"p": None, "q": None}
    return {"a": sub, "b": sub}


def _dict_bomb() -> dict[str, Any]:
    level: dict[str, Any] = {"x": None, "y": None}
    for i in range(40):  # 2 ** 40 leaves if expanded
        level = {f"l{i}": level, f"r{i}": level}
    return level


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (_cyclic_dict, r"<dict>: under b: 'd' contains one of its ancestors \(a cycle\)"),
        (_cyclic_list, r"<dict>: 'y' contains one of its ancestors \(a cycle\)"),
        (_shared, r"'b' has the same mapping or list of children as 'a'"),
        (_dict_bomb, r"has the same mapping or list of children as"),
        (lambda: {}, r"the hierarchy is empty"),
        (lambda: {"a": [], "b": None, "c": None}, r"<dict>: 'a' has an empty list of children"),
        (lambda: {"a": {"b": 5}}, r"<dict>: under a/b: expected a mapping or a list, got 5"),
        (lambda: ["a", 1.5], r"expected a class name or a mapping, got 1\.5"),
        (lambda: "abc", r"<dict>: expected a mapping or a list, got 'abc'"),
        (lambda: {"": None, "b": None}, r"empty class name"),
        (lambda: {"a": None}, r"a hierarchy needs at least two leaves"),
        (lambda: {"a": ["x", "y"], "b": ["x"]}, r"duplicate leaf name 'x'"),
    ],
)
def test_bad_dicts_are_named(make: Callable[[], Any], match: str):
    start = time.perf_counter()
    with pytest.raises(HierarchyError, match=match):
        Hierarchy.from_dict(make())
    assert time.perf_counter() - start < 5


# ------------------------------------------------------------------ deep trees are accepted
def _deep_yaml(depth: int) -> str:
    lines = []
    for d in range(depth):
        lines += [" " * d + f"g{d}:", " " * (d + 1) + f"l{d}:"]
    return "\n".join([*lines, " " * depth + "last:", " " * depth + "end:"]) + "\n"


@pytest.mark.parametrize("kind", ["text", "yaml", "dict"])
def test_a_tree_deeper_than_the_recursion_limit_is_read_and_used(tmp_path: Path, kind: str):
    if kind == "text":
        h = Hierarchy.from_text(comb_text(DEPTH) + "\t" * DEPTH + "end\n")
    elif kind == "yaml":
        path = tmp_path / "deep.yaml"
        path.write_text(_deep_yaml(DEPTH))
        h = Hierarchy.from_file(path)
    else:
        h = Hierarchy.from_dict(comb_dict(DEPTH))
    assert h.num_levels == DEPTH + 1 and h.num_leaves == DEPTH + 2
    assert h.leaves[-2:] == ("last", "end")
    assert h.level_index(DEPTH).tolist() == list(range(DEPTH + 2))
    again = Hierarchy.from_config(h.to_config())  # to_dict and from_dict, both ways
    assert again == h and hash(again) == hash(h)
    assert again != h.reorder(list(reversed(h.leaves)))
    third = Hierarchy.from_config(again.to_config())
    assert third.roots == again.roots and hash(third.roots) == hash(again.roots)
    assert sum(repr(root).count("Node(name=") for root in h.roots) == len(list(h.walk()))
    assert len(str(h).splitlines()) == 2 * DEPTH + 2


def test_a_deep_tree_trains_every_loss_and_prints_in_hl_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    h = Hierarchy.from_dict(comb_dict(DEPTH))
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, h.num_leaves, 2, 2, generator=gen)
    target = torch.randint(0, h.num_leaves, (1, 2, 2), generator=gen)
    levels = hierarchical_nll(logits, target, h)
    torch.testing.assert_close(levels[-1], F.cross_entropy(logits, target))  # leaf level: CE
    nodes = TreeMinLoss(h, ignore_index=None)  # 255 is a class of this tree
    node_logits = torch.randn(1, nodes.num_nodes, 2, 2, generator=gen)
    assert torch.isfinite(nodes(node_logits, target))
    path = tmp_path / "deep.txt"
    path.write_text(comb_text(DEPTH))
    assert tree.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"{DEPTH + 1} leaves (classes), depth {DEPTH + 1} (levels)"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (BILLION_LAUGHS, r"bad\.yaml:2: YAML aliases"),
        ("a: &a\n  b: *a\n", r"bad\.yaml:2: YAML aliases"),
        ("a:\n  b: 1\n", r"bad\.yaml:2: 'b' maps to '1'"),
    ],
)
def test_hl_tree_reports_bad_yaml_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, match: str
):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert tree.main([str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("hl-tree: error: ")
    assert "Traceback" not in captured.err
    assert re.search(match, captured.err)


# ------------------------------------------------------------------ losses: accepted inputs
@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8, torch.int8])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_integer_target_dtype_gives_the_int64_result(name: str, dtype: torch.dtype):
    h = toy()
    loss = build_loss(name, h, ignore_index=IGNORE if dtype != torch.int8 else -1)
    logits, target = batch(channels(loss, h))
    if dtype == torch.int8:  # 255 does not fit: ignore -1 instead
        target = target.masked_fill(target == IGNORE, -1)
    expected, expected_grad = loss_and_grad(loss, logits, target)
    value, grad = loss_and_grad(loss, logits, target.to(dtype))
    assert torch.equal(value, expected) and torch.equal(grad, expected_grad)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _transposed(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(2, 3).contiguous().transpose(2, 3)


def _sliced(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([x, x], dim=-1)[..., 0]


@pytest.mark.parametrize("layout", [_channels_last, _transposed, _sliced])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_any_memory_layout_gives_the_contiguous_result(name: str, layout: Callable):
    h = toy()
    loss = build_loss(name, h)
    logits, target = batch(channels(loss, h))
    expected, expected_grad = loss_and_grad(loss, logits, target)
    x = layout(logits).detach().requires_grad_()
    assert not x.is_contiguous()
    value = loss(x, target)
    value.backward()
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(x.grad, expected_grad)


@pytest.mark.parametrize("shape", [(0, 4, 5), (2, 0, 5), (2, 4, 0)])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_an_empty_batch_gives_zero_with_zero_gradient(name: str, shape: tuple[int, ...]):
    h = toy()
    loss = build_loss(name, h)
    logits = torch.randn(shape[0], channels(loss, h), *shape[1:], requires_grad=True)
    value = loss(logits, torch.zeros(shape, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0 and logits.grad is not None and not logits.grad.any()


# ------------------------------------------------------------------ losses: refused inputs
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bool])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_a_non_integer_target_is_a_type_error_naming_the_dtype(name: str, dtype: torch.dtype):
    h = toy()
    loss = build_loss(name, h)
    logits, target = batch(channels(loss, h))
    with pytest.raises(TypeError, match=rf"target must be an integer tensor .*{dtype}"):
        loss(logits, target.clamp_max(1).to(dtype))


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("integer_logits", r"logits must be a floating point tensor, got dtype torch\.int64"),
        ("channels", r"logits have 4 channels but"),
        ("target_shape", r"target has shape \(2, 4, 6\), expected \(2, 4, 5\)"),
        ("label_range", r"target has label ids \[-3, 9\] outside \[0, 5\)"),
        ("rank", r"logits must have shape \(B, K, \.\.\.\)"),
    ],
)
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_bad_tensors_into_a_loss_are_named(name: str, bad: str, match: str):
    h = toy()
    loss = build_loss(name, h)
    logits, target = batch(channels(loss, h))
    if bad == "integer_logits":
        logits = logits.long()
    elif bad == "channels":
        logits = logits[:, :4]
        if name == "tree_min":
            match = r"logits have 4 channels but the tree-min loss needs one per node"
    elif bad == "target_shape":
        target = torch.zeros(2, 4, 6, dtype=torch.long)
    elif bad == "label_range":
        target[0, 1, 1], target[1, 2, 2] = 9, -3
        if name == "tree_min":  # takes coarse labels: node ids 0..6
            match = r"target has label ids \[-3, 9\] outside \[0, 7\)"
    else:
        logits = logits.view(-1)
    error = TypeError if bad == "integer_logits" else ValueError
    with pytest.raises(error, match=match):
        loss(logits, target)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ([1.0, float("nan")], r"level_weights must be finite and >= 0, got \[1\.0, nan\]"),
        ([1.0, -1.0], r"level_weights must be finite and >= 0, got \[1\.0, -1\.0\]"),
        ([1.0, float("inf")], r"level_weights must be finite and >= 0, got \[1\.0, inf\]"),
        ([0.0, 0.0], r"level_weights are all 0, got \[0\.0, 0\.0\]"),
        ([1.0, 1.0, 1.0], r"3 level weights given for a hierarchy with 2 levels"),
    ],
)
@pytest.mark.parametrize("loss_class", [HierarchicalLoss, TreeMinLoss])
def test_bad_level_weights_are_named(loss_class: type, weights: list[float], match: str):
    with pytest.raises(ValueError, match=match):
        loss_class(toy(), level_weights=weights)


# ------------------------------------------------------------------ losses: extreme logits
def _reference_level_nll(logits: torch.Tensor, target: torch.Tensor, h: Hierarchy) -> torch.Tensor:
    """Return the per-level mean NLLs (D,) in float64, with explicit group masks."""
    z = logits.double()
    total = torch.logsumexp(z, dim=1)
    levels = []
    for d in range(h.num_levels):
        index = h.level_index(d)
        member = index.view(1, -1, 1, 1) == index[target].unsqueeze(1)
        group = torch.logsumexp(z.masked_fill(~member, float("-inf")), dim=1)
        levels.append((total - group).mean())
    return torch.stack(levels)


# logits of scale 1e37 (a normal draw) and up to 3e38 (uniform in [0, 3e38]): finite fp32
EXTREME = {
    "1e37": lambda gen: torch.randn(4, 5, 6, 6, generator=gen) * 1e37,
    "3e38": lambda gen: torch.rand(4, 5, 6, 6, generator=gen) * 3e38,
}


@pytest.mark.parametrize("scale", list(EXTREME))
def test_extreme_logits_give_the_exact_finite_level_losses(scale: str):
    h = toy()
    gen = torch.Generator().manual_seed(4)
    logits = EXTREME[scale](gen)
    target = torch.randint(0, 5, (4, 6, 6), generator=gen)
    assert torch.isfinite(logits).all()
    x = logits.clone().requires_grad_()
    levels = hierarchical_nll(x, target, h)
    levels.sum().backward()
    assert torch.isfinite(levels).all() and torch.isfinite(x.grad).all()
    torch.testing.assert_close(levels.double(), _reference_level_nll(logits, target, h))
    flat = build_loss("flat", h)(logits, target)
    torch.testing.assert_close(flat.double(), F.cross_entropy(logits.double(), target))


# level weights that sum to 1: the total is a mean of the level losses, within fp32 too
OPTIONS: dict[str, dict[str, Any]] = {
    "hierarchical": {"level_weights": [0.5, 0.5]},
    "tree_min": {"level_weights": [0.5, 0.5], "gamma": 2.0},
}


@pytest.mark.parametrize("scale", list(EXTREME))
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_extreme_logits_give_finite_losses_and_gradients(name: str, scale: str):
    h = toy()
    loss = build_loss(name, h, **OPTIONS.get(name, {}))
    gen = torch.Generator().manual_seed(5)
    logits = EXTREME[scale](gen)
    if name == "tree_min":  # 7 node logits
        logits = torch.cat([logits, logits[:, :2]], dim=1)
    target = torch.randint(0, 5, (4, 6, 6), generator=gen)
    value, grad = loss_and_grad(loss, logits, target)
    assert torch.isfinite(value) and value > 1e36
    assert torch.isfinite(grad).all()


def test_soft_labels_with_logits_spanning_more_than_fp32_sums_hold_stay_exact():
    h = toy()
    logits = torch.tensor([-3e38, 3e38, 0.0, 1e38, -1e38]).view(1, 5, 1, 1)
    soft = build_loss("soft_labels", h, beta=10.0)
    expected = -(soft_label_matrix(h, 10.0)[2] * torch.log_softmax(logits.double(), 1).view(-1))
    value = soft(logits, torch.tensor([[[2]]]))
    assert math.isfinite(value.item())
    assert value.item() == pytest.approx(expected.sum().item(), rel=1e-5)


# ------------------------------------------------------------------ metrics
@pytest.mark.parametrize(
    "bad",
    [[math.nan], [math.inf] * 2, [-math.inf] * 3, [math.nan, math.inf, -math.inf, math.nan]],
    ids=["nan", "inf", "-inf", "mixed"],
)
@pytest.mark.parametrize("metric_class", METRICS)
def test_non_finite_logits_into_a_metric_are_refused_with_the_count(
    metric_class: type, bad: list[float]
):
    metric = metric_class(toy())
    logits, target = batch(5)
    logits.view(-1)[: len(bad)] = torch.tensor(bad)
    match = rf"{metric_class.__name__}\.update: the logits have {len(bad)} non-finite values"
    with pytest.raises(ValueError, match=match):
        metric.update(logits, target)


@pytest.mark.parametrize("shape", [(0, 4, 5), (2, 0, 5), (2, 4, 0)])
@pytest.mark.parametrize("metric_class", METRICS)
def test_an_empty_batch_into_a_metric_counts_nothing(metric_class: type, shape: tuple[int, ...]):
    h = toy()
    logits, target = batch(5)
    expected = metric_class(h)
    expected.update(logits, target)
    metric = metric_class(h)
    metric.update(torch.randn(shape[0], 5, *shape[1:]), torch.zeros(shape, dtype=torch.long))
    metric.update(logits, target)
    assert str(metric.compute()) == str(expected.compute())


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
@pytest.mark.parametrize("metric_class", METRICS)
def test_integer_targets_and_channels_last_logits_into_a_metric(
    metric_class: type, dtype: torch.dtype
):
    h = toy()
    logits, target = batch(5)
    expected = metric_class(h)
    expected.update(logits, target)
    metric = metric_class(h)
    metric.update(_channels_last(logits), target.to(dtype))
    assert str(metric.compute()) == str(expected.compute())


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        ("float_target", TypeError, r"target must be an integer tensor .*torch\.float32"),
        ("channels", ValueError, r"logits have 3 channels but the hierarchy has 5 leaves"),
        (  # the metrics take every node id: 5 and 6 are coarse labels (vehicle, nature)
            "label_range",
            ValueError,
            r"label ids \[7\] outside \[0, 7\) that are not ignore_index=255: "
            r"valid are leaf ids 0\.\.4, coarse ids 5\.\.6",
        ),
    ],
)
@pytest.mark.parametrize("metric_class", METRICS)
def test_bad_tensors_into_a_metric_are_named(metric_class: type, bad: str, error: type, match: str):
    metric = metric_class(toy())
    logits, target = batch(5)
    if bad == "float_target":
        target = target.float()
    elif bad == "channels":
        logits = logits[:, :3]
    else:
        target[1, 1, 1] = 7
    with pytest.raises(error, match=match):
        metric.update(logits, target)


def test_node_equality_and_repr_match_the_plain_dataclass():
    a = Node("vehicle", (Node("car", (), 2), Node("truck", (), 3)), 1)
    b = Node("vehicle", (Node("car", (), 2), Node("truck", (), 3)), 1)
    assert a == b and hash(a) == hash(b) and a != Node("vehicle", (Node("car", (), 2),), 1)
    assert repr(Node("car")) == "Node(name='car', children=(), line=None)"
    assert repr(a) == (
        "Node(name='vehicle', children=(Node(name='car', children=(), line=2), "
        "Node(name='truck', children=(), line=3)), line=1)"
    )
