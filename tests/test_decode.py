"""Tests for the hl_lightning/decode/ package: level log-probabilities, the three decoders and
the one pass that the metrics read."""

from __future__ import annotations

import pytest
import torch

from hl_lightning import Hierarchy
from hl_lightning.decode import (
    METHODS,
    check_method,
    decode_levels,
    leaf_argmax,
    level_log_probs,
    level_outputs,
    level_parents,
)
from hl_lightning.decode import blocks as blocks_module
from hl_lightning.decode._ops import _argmax
from hl_lightning.decode.levels import _level_block
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.tables import LevelTables

RANDOM_TREES = [(2, 1), (3, 2), (11, 4), (30, 3), (40, 5), (66, 3)]


@pytest.fixture(params=RANDOM_TREES, ids=lambda p: f"K{p[0]}-D{p[1]}")
def tree(request: pytest.FixtureRequest) -> Hierarchy:
    num_leaves, num_levels = request.param
    return random_hierarchy(num_leaves, num_levels, seed=num_leaves, shuffle_leaves=True)


def reference_level_probs(logits: torch.Tensor, hierarchy: Hierarchy) -> list[torch.Tensor]:
    """Return per level the float64 log P(group) (B, G_d, *S), one logsumexp per group."""
    z = logits.double()
    total = torch.logsumexp(z, 1)
    levels = []
    for d in range(hierarchy.num_levels):
        index = hierarchy.level_index(d)
        groups = range(hierarchy.num_groups(d))
        levels.append(
            torch.stack([torch.logsumexp(z[:, index == g], 1) - total for g in groups], 1)
        )
    return levels


def test_random_hierarchy_has_requested_shape() -> None:
    h = random_hierarchy(40, 5, seed=1, shuffle_leaves=True)
    assert (h.num_leaves, h.num_levels) == (40, 5)
    assert h.level_index(-1).tolist() != list(range(40))  # leaves are shuffled


def test_level_parents_map_each_group_to_its_parent(tree: Hierarchy) -> None:
    parents = level_parents(tree)
    assert len(parents) == tree.num_levels - 1
    for d, parent in enumerate(parents):
        assert parent.shape == (tree.num_groups(d + 1),)
        assert torch.equal(parent[tree.level_index(d + 1)], tree.level_index(d))


@pytest.mark.parametrize("scale", [1.0, 10.0, 1e2, 1e3, 1e4])
def test_level_log_probs_match_float64_reference(tree: Hierarchy, scale: float) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = scale * torch.randn(2, tree.num_leaves, 3, 4, generator=gen)
    got = level_log_probs(logits, tree)
    want = reference_level_probs(logits, tree)
    assert len(got) == tree.num_levels
    for d, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.dtype == torch.float32
        assert g.shape == (2, tree.num_groups(d), 3, 4)
        assert torch.isfinite(g).all()
        # relative 1e-5; log P near 0 (P near 1) is limited by fp32 to about 1e-6 absolute
        torch.testing.assert_close(g.double(), w, rtol=1e-5, atol=1e-6)


def test_level_log_probs_on_seed_trees(seed_tree: Hierarchy) -> None:
    logits = 50 * torch.randn(2, seed_tree.num_leaves, 5, 5)
    got = level_log_probs(logits, seed_tree)
    for g, w in zip(got, reference_level_probs(logits, seed_tree), strict=True):
        torch.testing.assert_close(g.double(), w, rtol=1e-5, atol=1e-6)


def test_level_log_probs_stay_finite_for_extreme_logits() -> None:
    h = random_hierarchy(20, 4, seed=3, shuffle_leaves=True)
    logits = torch.full((1, 20, 2), -1e4)
    logits[0, 0, 0] = 1e4  # one leaf owns all the mass, the rest underflow in probability
    logits[0, :, 1] = torch.linspace(-1e4, 1e4, 20)
    for g, w in zip(level_log_probs(logits, h), reference_level_probs(logits, h), strict=True):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g.double(), w, rtol=1e-5, atol=1e-6)


def test_level_log_probs_are_fp32_under_bf16_autocast() -> None:
    h = random_hierarchy(30, 3, seed=4, shuffle_leaves=True)
    logits = 100 * torch.randn(2, 30, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        from_fp32 = level_log_probs(logits, h)
        from_bf16 = level_log_probs(logits.bfloat16(), h)
    for a, b, w, w16 in zip(
        from_fp32,
        from_bf16,
        reference_level_probs(logits, h),
        reference_level_probs(logits.bfloat16().float(), h),
        strict=True,
    ):
        assert a.dtype == b.dtype == torch.float32
        torch.testing.assert_close(a.double(), w, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(b.double(), w16, rtol=1e-5, atol=1e-6)


def test_level_log_probs_of_flat_hierarchy_are_log_softmax() -> None:
    h = Hierarchy.flat([f"c{i}" for i in range(7)])
    logits = 5 * torch.randn(3, 7, 2, 2)
    (only,) = level_log_probs(logits, h)
    torch.testing.assert_close(only, torch.log_softmax(logits, 1))


def test_level_log_probs_gradient_is_exact() -> None:
    h = random_hierarchy(9, 3, seed=5, shuffle_leaves=True)
    logits = torch.randn(2, 9, 3, dtype=torch.float64, requires_grad=True)

    def total(x: torch.Tensor) -> torch.Tensor:
        return sum(level.sum() for level in level_log_probs(x, h))

    assert torch.autograd.gradcheck(total, (logits,))
    big = (1e4 * torch.randn(2, 9, 3)).requires_grad_()
    total(big).backward()
    assert torch.isfinite(big.grad).all()


def probabilities_by_level(logits: torch.Tensor, hierarchy: Hierarchy) -> list[torch.Tensor]:
    """Return per level the float64 group probabilities (B, G_d, *S), summed softmax."""
    p = torch.softmax(logits.double(), 1)
    levels = []
    for d in range(hierarchy.num_levels):
        index = hierarchy.level_index(d).view(1, -1, *([1] * (logits.ndim - 2)))
        shape = (logits.shape[0], hierarchy.num_groups(d), *logits.shape[2:])
        levels.append(p.new_zeros(shape).scatter_add_(1, index.expand_as(p), p))
    return levels


def test_marginal_is_argmax_of_float64_group_probabilities(tree: Hierarchy) -> None:
    logits = 3 * torch.randn(2, tree.num_leaves, 6, 5)
    got = decode_levels(logits, tree, "marginal")
    for d, (pred, probs) in enumerate(zip(got, probabilities_by_level(logits, tree), strict=True)):
        assert pred.dtype == torch.long and pred.shape == (2, 6, 5)
        assert torch.equal(pred, probs.argmax(1)), f"level {d}"


def test_marginal_on_seed_trees(seed_tree: Hierarchy) -> None:
    logits = 2 * torch.randn(2, seed_tree.num_leaves, 8, 8)
    got = decode_levels(logits, seed_tree)
    for pred, probs in zip(got, probabilities_by_level(logits, seed_tree), strict=True):
        assert torch.equal(pred, probs.argmax(1))


def test_leaf_decoding_is_argmax_leaf_mapped_up(tree: Hierarchy) -> None:
    logits = torch.randn(2, tree.num_leaves, 4, 4)
    leaf = logits.argmax(1)
    got = decode_levels(logits, tree, "leaf")
    assert [p.tolist() for p in got] == [
        tree.level_index(d)[leaf].tolist() for d in range(tree.num_levels)
    ]
    assert torch.equal(got[-1], decode_levels(logits, tree, "marginal")[-1])


def test_top_down_path_is_consistent(tree: Hierarchy) -> None:
    parents = level_parents(tree)
    for seed in range(3):
        logits = 4 * torch.randn(
            3, tree.num_leaves, 7, 7, generator=torch.Generator().manual_seed(seed)
        )
        preds = decode_levels(logits, tree, "top_down")
        for d, parent in enumerate(parents):
            assert torch.equal(parent[preds[d + 1]], preds[d])


def test_top_down_matches_greedy_descent_per_pixel(tree: Hierarchy) -> None:
    logits = 4 * torch.randn(2, tree.num_leaves, 3, 3)
    probs = [
        p.permute(0, 2, 3, 1).reshape(-1, p.shape[1]) for p in probabilities_by_level(logits, tree)
    ]
    parents = level_parents(tree)
    want = []
    for pixel in range(probs[0].shape[0]):  # a slow, obvious reference
        path = [int(probs[0][pixel].argmax())]
        for d, parent in enumerate(parents):
            masked = torch.where(parent == path[-1], probs[d + 1][pixel], -1.0)
            path.append(int(masked.argmax()))
        want.append(path)
    got = torch.stack([p.flatten() for p in decode_levels(logits, tree, "top_down")], 1)
    assert got.tolist() == want


def test_decoders_agree_on_a_one_hot_leaf(tree: Hierarchy) -> None:
    leaf = torch.randint(0, tree.num_leaves, (2, 5, 5))
    logits = 20 * torch.nn.functional.one_hot(leaf, tree.num_leaves).permute(0, 3, 1, 2).float()
    want = [tree.labels_at_level(leaf, d) for d in range(tree.num_levels)]
    for method in METHODS:
        got = decode_levels(logits, tree, method)
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_decode_keeps_ties_like_argmax_and_accepts_any_spatial_rank() -> None:
    h = random_hierarchy(12, 3, seed=6, shuffle_leaves=True)
    flat_logits = torch.zeros(4, 12)  # every leaf ties
    assert [p.tolist() for p in decode_levels(flat_logits, h, "leaf")] == [
        [h.level_index(d)[0].item()] * 4 for d in range(3)
    ]
    volume = torch.randn(2, 12, 3, 4, 5)
    for method in METHODS:
        assert all(p.shape == (2, 3, 4, 5) for p in decode_levels(volume, h, method))


def test_decode_under_bf16_autocast_matches_fp32() -> None:
    h = random_hierarchy(30, 3, seed=7, shuffle_leaves=True)
    logits = torch.randn(2, 30, 6, 6).bfloat16()
    for method in METHODS:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = decode_levels(logits, h, method)
        want = decode_levels(logits.float(), h, method)
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("block", [100, 700, 5000])
def test_decoding_in_cpu_blocks_equals_one_pass(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    h = random_hierarchy(30, 4, seed=8, shuffle_leaves=True)
    logits = torch.randn(3, 30, 7, 9).contiguous(memory_format=torch.channels_last)
    whole = {m: decode_levels(logits, h, m) for m in METHODS}
    leaf = leaf_argmax(logits)
    monkeypatch.setattr(blocks_module, "_BLOCK", block)  # cut samples, then pixels, in blocks
    assert torch.equal(leaf_argmax(logits), leaf)
    for method in METHODS:
        got = decode_levels(logits, h, method)
        assert all(torch.equal(a, b) for a, b in zip(got, whole[method], strict=True))


@pytest.mark.parametrize("block", [100, 10**6])
@pytest.mark.parametrize("method", [None, *METHODS])
def test_level_outputs_equal_decode_argmax_and_level_probabilities(
    monkeypatch: pytest.MonkeyPatch, tree: Hierarchy, method: str | None, block: int
) -> None:
    logits = torch.randint(-3, 4, (3, tree.num_leaves, 5, 7)).float()  # many ties
    tables = LevelTables.of(tree, torch.device("cpu"))
    probs = [p.exp() for p in level_log_probs(logits, tree)]
    monkeypatch.setattr(blocks_module, "_BLOCK", block)  # several blocks, then one
    for leaf, marginal in [(False, False), (True, False), (False, True), (True, True)]:
        out = level_outputs(logits, tables, method, leaf=leaf, marginal=marginal)  # type: ignore[arg-type]
        assert out.finite.item() is True
        assert (out.leaf is None) == (not leaf) and (out.decoded is None) == (method is None)
        if leaf:
            assert torch.equal(out.leaf, logits.argmax(1))
        if method is not None:
            assert torch.equal(out.decoded, torch.stack(decode_levels(logits, tree, method)))
        if not marginal:
            assert out.marginal is None and out.confidence is None
            continue
        assert torch.equal(out.marginal, torch.stack(decode_levels(logits, tree, "marginal")))
        if method == "marginal":
            assert out.marginal is out.decoded  # computed once
        for d, p in enumerate(probs):
            torch.testing.assert_close(out.confidence[d], p.amax(1))
            chosen = p.gather(1, out.marginal[d].unsqueeze(1)).squeeze(1)
            torch.testing.assert_close(chosen, p.amax(1))  # the group of largest probability


@pytest.mark.parametrize("method", [None, *METHODS])
def test_the_block_pass_returns_exactly_the_fields_asked_for_by_name(
    tree: Hierarchy, method: str | None
) -> None:
    logits = torch.randn(2, tree.num_leaves, 6)
    tables = LevelTables.of(tree, torch.device("cpu"))
    for leaf, marginal in [(False, False), (True, False), (False, True), (True, True)]:
        fields = _level_block(logits, tables, method, leaf, marginal, None)  # type: ignore[arg-type]
        want = {"finite"} | ({"leaf"} if leaf else set())
        want |= {"decoded"} if method is not None else set()
        want |= {"confidence"} if marginal else set()
        want |= {"marginal"} if marginal and method != "marginal" else set()  # else: decoded
        assert set(fields) == want, (leaf, marginal)
        assert fields["finite"].shape == (2, 6)
        for name in want - {"finite", "leaf"}:
            assert fields[name].shape == (tree.num_levels, 2, 6), name
        out = level_outputs(logits, tables, method, leaf=leaf, marginal=marginal)  # type: ignore[arg-type]
        for name, value in fields.items():
            if name != "finite":
                assert torch.equal(getattr(out, name), value), name


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_level_outputs_tell_non_finite_logits_in_any_block(
    monkeypatch: pytest.MonkeyPatch, bad: float
) -> None:
    h = random_hierarchy(30, 4, seed=9, shuffle_leaves=True)
    tables = LevelTables.of(h, torch.device("cpu"))
    logits = torch.randn(2, 30, 6, 6)
    monkeypatch.setattr(blocks_module, "_BLOCK", 200)
    for method, marginal in [(None, False), ("top_down", False), ("marginal", True)]:
        assert level_outputs(logits, tables, method, marginal=marginal).finite  # type: ignore[arg-type]
    logits[1, 7, 5, 4] = bad  # in the last block, one of 30 logits of a pixel
    for method, marginal in [(None, False), ("top_down", False), ("marginal", True)]:
        assert not level_outputs(logits, tables, method, marginal=marginal).finite  # type: ignore[arg-type]


@pytest.mark.parametrize("channels", [3, 300, 40000])
def test_fast_argmax_equals_torch_argmax_with_ties(channels: int) -> None:
    x = torch.randint(0, 4, (2, channels, 3, 2)).float()  # many ties
    x[0, :, 0, 0] = 7.0  # all tie: the first index wins
    assert torch.equal(_argmax(x), x.argmax(1))
    assert torch.equal(_argmax(x, x - x.amax(1, keepdim=True)), x.argmax(1))


def test_unknown_method_lists_the_valid_ones() -> None:
    h = random_hierarchy(5, 2, shuffle_leaves=True)
    with pytest.raises(ValueError, match="'marginal', 'leaf', 'top_down'"):
        decode_levels(torch.randn(1, 5, 2, 2), h, "argmax")
    assert check_method("top_down") == "top_down"


def test_wrong_channel_count_is_named() -> None:
    h = random_hierarchy(11, 3, shuffle_leaves=True)
    with pytest.raises(ValueError, match="logits have 5 channels but the hierarchy has 11 leaves"):
        decode_levels(torch.randn(1, 5, 2, 2), h)
    with pytest.raises(ValueError, match="floating point"):
        level_log_probs(torch.zeros(1, 11, 2, 2, dtype=torch.long), h)


def reference_crm(logits: torch.Tensor, hierarchy: Hierarchy) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the float64 argmin over leaves j of sum_i p_i * leaf_distance(i, j) (the
    written definition: a K x K product per pixel) and the margin to the second best."""
    p = torch.softmax(logits.double(), 1)
    risk = torch.einsum("bi...,ij->bj...", p, hierarchy.leaf_distance().double())
    two = risk.topk(2, dim=1, largest=False).values
    return risk.argmin(1), two[:, 1] - two[:, 0]


@pytest.mark.parametrize("scale", [1.0, 3.0, 10.0])
def test_crm_is_the_leaf_of_least_expected_distance(tree: Hierarchy, scale: float) -> None:
    logits = scale * torch.randn(
        3, tree.num_leaves, 7, 5, generator=torch.Generator().manual_seed(1)
    )
    best, margin = reference_crm(logits, tree)
    clear = margin > 1e-6  # ties aside (fp32 sums decide those)
    assert clear.float().mean() > 0.9
    got = decode_levels(logits, tree, "crm")
    for d, pred in enumerate(got):
        assert torch.equal(pred[clear], tree.level_index(d)[best][clear]), f"level {d}"


def test_crm_on_seed_trees_and_in_float64(seed_tree: Hierarchy) -> None:
    logits = 2 * torch.randn(2, seed_tree.num_leaves, 6, 6, dtype=torch.float64)
    best, margin = reference_crm(logits, seed_tree)
    got = decode_levels(logits, seed_tree, "crm")[-1]
    clear = margin > 1e-12
    assert torch.equal(got[clear], seed_tree.level_index(-1)[best][clear])


def test_crm_ties_go_to_the_first_leaf_and_it_prefers_a_sure_group() -> None:
    h = Hierarchy.from_dict({"a": ["a1", "a2"], "b": ["b1", "b2"]}).reorder(
        ["b2", "a1", "b1", "a2"]
    )
    assert decode_levels(torch.zeros(1, 4), h, "crm")[-1].tolist() == [h.level_index(-1)[0].item()]
    # b2 is the single most probable leaf, but group a holds most of the mass
    logits = torch.tensor([[1.0, 0.9, 0.01, 0.9]]).log()  # b2, a1, b1, a2 probabilities
    leaf = decode_levels(logits, h, "crm")[-1]
    assert decode_levels(logits, h, "leaf")[-1].tolist() != leaf.tolist()
    assert h.group_names(1)[leaf.item()] == "a1"  # the first of the tied a-leaves
