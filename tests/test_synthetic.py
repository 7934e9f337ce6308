"""Tests of hl_lightning.data: the synthetic dataset, its hierarchy and the datamodules."""

from __future__ import annotations

import lightning.pytorch as lightning
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from hl_lightning.data import (
    IGNORE_INDEX,
    SYNTHETIC_CLASSES,
    SYNTHETIC_HARD_CLASSES,
    SYNTHETIC_MEAN,
    SYNTHETIC_STD,
    SegmentationDataModule,
    SyntheticDataModule,
    SyntheticShapes,
    synthetic_hierarchy,
    synthetic_normalisation,
    synthetic_variant_hierarchy,
)
from hl_lightning.hierarchy import Hierarchy, HierarchyError
from hl_lightning.models import UNet
from hl_lightning.options import OptionError

K = len(SYNTHETIC_CLASSES)


@pytest.fixture(scope="module")
def sample() -> SyntheticShapes:
    return SyntheticShapes(32, image_size=64, seed=0)


def test_items_have_documented_shapes_and_types(sample: SyntheticShapes) -> None:
    image, mask = sample[3]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert mask.shape == (64, 64) and mask.dtype == torch.int64
    assert len(sample) == 32 and sample.class_names == SYNTHETIC_CLASSES
    assert torch.isfinite(sample.images).all()


def test_images_are_standardised(sample: SyntheticShapes) -> None:
    raw = (
        sample.images * torch.tensor(SYNTHETIC_STD)[:, None, None]
        + torch.tensor(SYNTHETIC_MEAN)[:, None, None]
    )
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5
    assert sample.images.mean().abs() < 0.5
    assert 0.5 < sample.images.std() < 2


def test_label_ids_are_classes_or_ignore(sample: SyntheticShapes) -> None:
    labels = sample.masks.unique()
    assert ((labels >= 0) & (labels < K) | (labels == IGNORE_INDEX)).all()


def test_every_class_appears_in_a_modest_sample(sample: SyntheticShapes) -> None:
    counts = torch.bincount(sample.masks[sample.masks != IGNORE_INDEX], minlength=K)
    assert (counts > 0).all(), [n for n, c in zip(SYNTHETIC_CLASSES, counts, strict=True) if not c]


def test_ignore_edges_marks_thin_boundaries_only() -> None:
    marked = SyntheticShapes(8, image_size=48, seed=5)
    plain = SyntheticShapes(8, image_size=48, seed=5, ignore_edges=False)
    assert not (plain.masks == IGNORE_INDEX).any()
    ignored = marked.masks == IGNORE_INDEX
    assert 0 < ignored.float().mean() < 0.25
    assert torch.equal(marked.masks[~ignored], plain.masks[~ignored])
    assert torch.equal(marked.images, plain.images)


def test_same_seed_gives_identical_data() -> None:
    a, b = SyntheticShapes(10, image_size=32, seed=7), SyntheticShapes(10, image_size=32, seed=7)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)


def test_different_seed_gives_different_data() -> None:
    a, b = SyntheticShapes(10, image_size=32, seed=7), SyntheticShapes(10, image_size=32, seed=8)
    assert not torch.equal(a.images, b.images)
    assert not torch.equal(a.masks, b.masks)


def test_sample_depends_on_index_not_dataset_length() -> None:
    short, long = (
        SyntheticShapes(5, image_size=32, seed=3),
        SyntheticShapes(70, image_size=32, seed=3),
    )
    assert torch.equal(short.images, long.images[:5])
    assert torch.equal(short.masks, long.masks[:5])
    assert len(SyntheticShapes(0, image_size=32)) == 0


def test_hierarchy_is_deep_wide_and_unbalanced() -> None:
    h = synthetic_hierarchy()
    assert h.num_levels >= 3
    assert h.num_leaves >= 12
    depths = {
        leaf: min(d for d in range(h.num_levels) if leaf in h.group_names(d)) for leaf in h.leaves
    }
    assert len(set(depths.values())) >= 2, depths
    sizes = {h.level_index(1).tolist().count(g) for g in range(h.num_groups(1))}
    assert len(sizes) >= 2  # families of different sizes


def test_hierarchy_leaves_are_the_dataset_classes() -> None:
    h = synthetic_hierarchy().reorder(SYNTHETIC_CLASSES)
    assert h.leaves == SYNTHETIC_CLASSES
    assert h.level_names == ("kind", "family", "class")


def test_leaves_of_a_family_look_alike(sample: SyntheticShapes) -> None:
    """The nearest class by mean colour is a sibling, for every class that has siblings."""
    h = synthetic_hierarchy().reorder(SYNTHETIC_CLASSES)
    family = h.level_index(1)
    pixels = sample.images.permute(0, 2, 3, 1)[sample.masks != IGNORE_INDEX]  # (P, 3)
    labels = sample.masks[sample.masks != IGNORE_INDEX]
    means = torch.stack([pixels[labels == k].mean(0) for k in range(K)])
    distance = torch.cdist(means, means).fill_diagonal_(float("inf"))
    for k in range(K):
        if (family == family[k]).sum() > 1:
            assert family[distance[k].argmin()] == family[k], SYNTHETIC_CLASSES[k]


@pytest.fixture(scope="module")
def hard() -> SyntheticShapes:
    return SyntheticShapes(48, image_size=64, seed=0, variant="hard")


def _family_colours(data: SyntheticShapes, family: torch.Tensor) -> torch.Tensor:
    """Return the mean standardised colour (F, 3) of each level-1 group's pixels."""
    counted = data.masks != IGNORE_INDEX
    pixels = data.images.permute(0, 2, 3, 1)[counted]
    groups = family[data.masks[counted]]
    return torch.stack([pixels[groups == f].mean(0) for f in range(int(family.max()) + 1)])


def test_hard_variant_has_its_own_classes_tree_and_statistics(hard: SyntheticShapes) -> None:
    h = synthetic_variant_hierarchy("hard").reorder(SYNTHETIC_HARD_CLASSES)
    assert hard.class_names == SYNTHETIC_HARD_CLASSES == h.leaves
    assert [h.num_groups(d) for d in range(3)] == [3, 6, 17]
    assert synthetic_variant_hierarchy("default") == synthetic_hierarchy()
    counts = torch.bincount(hard.masks[hard.masks != IGNORE_INDEX], minlength=17)
    assert (counts > 0).all()
    assert hard.images.mean((0, 2, 3)).abs().max() < 0.1  # its own mean and std
    assert (hard.images.transpose(0, 1).flatten(1).std(1) - 1).abs().max() < 0.1
    assert synthetic_normalisation("hard") != synthetic_normalisation("default")


def test_hard_variant_thing_families_wear_the_hues_of_stuff_families(hard: SyntheticShapes) -> None:
    """In the default data every family's nearest family by colour is of its own kind; in
    the hard variant round things look nearest to water, angular things to vegetation."""
    for data, classes, tree in (
        (SyntheticShapes(48, image_size=64, seed=0), SYNTHETIC_CLASSES, "default"),
        (hard, SYNTHETIC_HARD_CLASSES, "hard"),
    ):
        h = synthetic_variant_hierarchy(tree).reorder(classes)  # type: ignore[arg-type]
        colours = _family_colours(data, h.level_index(1))
        names = h.group_names(1)
        distance = torch.cdist(colours, colours).fill_diagonal_(float("inf"))
        nearest = {names[f]: names[int(distance[f].argmin())] for f in range(len(names))}
        if tree == "default":
            assert nearest["round"] == "angular" and nearest["water"] != "round"
        else:
            assert nearest["round"] == "water" and nearest["angular"] == "vegetation"


def test_hard_variant_is_deterministic_and_apart_from_the_default() -> None:
    a = SyntheticShapes(6, image_size=32, seed=2, variant="hard")
    b = SyntheticShapes(6, image_size=32, seed=2, variant="hard")
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, SyntheticShapes(6, image_size=32, seed=2).images)


def test_unknown_variant_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown synthetic data variant 'easy'.*'hard'"):
        SyntheticShapes(2, variant="easy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'default', 'hard'"):
        SyntheticDataModule(variant="easy")  # type: ignore[arg-type]


def test_hard_datamodule_serves_its_classes_and_tree() -> None:
    dm = SyntheticDataModule(num_train=8, num_val=4, num_test=4, batch_size=4, variant="hard")
    dm.setup("fit")
    assert dm.class_names == SYNTHETIC_HARD_CLASSES == dm.hierarchy.leaves
    assert dm.train_dataset.class_names == SYNTHETIC_HARD_CLASSES  # type: ignore[union-attr]
    _, masks = next(iter(dm.train_dataloader()))
    assert masks[masks != IGNORE_INDEX].max() < 17


def test_datamodule_splits_and_batches() -> None:
    dm = SyntheticDataModule(num_train=20, num_val=8, num_test=6, image_size=32, batch_size=8)
    dm.setup("fit")
    dm.setup("test")
    assert [len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)] == [20, 8, 6]
    images, masks = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 32, 32) and masks.shape == (8, 32, 32)
    assert [len(m) for _, m in dm.val_dataloader()] == [8]
    assert not torch.equal(dm.train_dataset.images[:6], dm.test_dataset.images)
    assert not torch.equal(dm.val_dataset.images[:6], dm.test_dataset.images)


def test_datamodule_properties() -> None:
    dm = SyntheticDataModule()
    assert dm.class_names == SYNTHETIC_CLASSES and dm.num_classes == K
    assert dm.ignore_index == IGNORE_INDEX == 255
    assert dm.hierarchy.leaves == dm.class_names
    assert dm.hparams["num_train"] == 512


def _train_order(seed: int) -> list[torch.Tensor]:
    dm = SyntheticDataModule(num_train=24, image_size=16, batch_size=8, seed=seed)
    dm.setup("fit")
    loader = dm.train_dataloader()
    return [masks for _ in range(2) for _, masks in loader]  # two epochs


def test_same_seed_gives_same_train_batch_order() -> None:
    a, b = _train_order(seed=1), _train_order(seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], a[3])  # a new order every epoch


def test_different_seed_gives_different_train_data() -> None:
    a, b = _train_order(seed=1), _train_order(seed=2)
    assert not all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_workers_persist_when_there_are_some(num_workers: int) -> None:
    dm = SyntheticDataModule(num_train=4, image_size=16, num_workers=num_workers)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.num_workers == num_workers
    assert loader.persistent_workers == (num_workers > 0)


def test_generic_datamodule_checks_the_hierarchy_at_set_up() -> None:
    tree = synthetic_hierarchy()
    with pytest.raises(HierarchyError, match=r"missing from the class names: .*diamond"):
        SegmentationDataModule(SYNTHETIC_CLASSES[:-1], tree)
    dm = SegmentationDataModule(tuple(reversed(SYNTHETIC_CLASSES)), tree)
    assert dm.hierarchy.leaves == tuple(reversed(SYNTHETIC_CLASSES))


def test_generic_datamodule_without_a_split_says_so() -> None:
    data = TensorDataset(torch.randn(4, 3, 8, 8), torch.randint(2, (4, 8, 8)))
    dm = SegmentationDataModule(["a", "b"], train_dataset=data, batch_size=2)
    assert len(dm.train_dataloader()) == 2
    with pytest.raises(RuntimeError, match="no val dataset"):
        dm.val_dataloader()


class _FlatSegmenter(lightning.LightningModule):
    """A minimal cross-entropy module, to run the datamodule through a real Trainer."""

    def __init__(self, num_classes: int, ignore_index: int) -> None:
        super().__init__()
        self.net = UNet(num_classes, width=4, depth=2)
        self.ignore_index = ignore_index

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, masks = batch
        return F.cross_entropy(self.net(images), masks, ignore_index=self.ignore_index)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        return self._loss(batch)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        self.log("val_loss", self._loss(batch))

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        self.log("test_loss", self._loss(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters())


def test_datamodule_runs_through_a_lightning_fit_and_test() -> None:
    dm = SyntheticDataModule(num_train=8, num_val=4, num_test=4, image_size=16, batch_size=4)
    trainer = lightning.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = _FlatSegmenter(dm.num_classes, dm.ignore_index)
    trainer.fit(model, datamodule=dm)
    (result,) = trainer.test(model, datamodule=dm, verbose=False)
    assert trainer.num_training_batches == 2
    assert torch.isfinite(torch.tensor(result["test_loss"]))


# ---------------------------------------------------------------------------- coarse mode
def coarse_run(num_train: int, fraction: float = 0.0, **options: object) -> SyntheticDataModule:
    dm = SyntheticDataModule(
        num_train=num_train, num_val=4, num_test=4, image_size=32, coarse_fraction=fraction,
        **options,
    )  # fmt: skip
    dm.setup("fit")
    dm.setup("test")
    return dm


def family_of_every_pixel(masks: torch.Tensor, level: int = 1) -> torch.Tensor:
    """The node id of each leaf pixel's group at ``level`` from the tree's paths (a leaf
    that is its own group there: its own id), read off the tree by name."""
    h = synthetic_variant_hierarchy("default").reorder(SYNTHETIC_CLASSES)
    groups = h.group_names(level)
    table = [h.node_names.index(groups[g]) for g in h.level_index(level).tolist()]
    mapped = torch.tensor(table)[masks.clamp(max=K - 1)]
    return torch.where(masks == IGNORE_INDEX, masks, mapped)


def test_coarse_mode_labels_the_last_training_images_at_the_family_level() -> None:
    fine, coarse = coarse_run(8), coarse_run(8, 0.5)
    fine_masks, coarse_masks = fine.train_dataset.masks, coarse.train_dataset.masks
    assert torch.equal(coarse.train_dataset.images, fine.train_dataset.images)
    assert torch.equal(coarse_masks[:4], fine_masks[:4])  # the first images stay fine
    assert torch.equal(coarse_masks[4:], family_of_every_pixel(fine_masks[4:]))
    h = coarse.hierarchy
    assert {h.node_names[i] for i in coarse_masks[4:].unique().tolist() if i < h.num_nodes} == {
        "background", "sky", "water", "vegetation", "round", "angular"
    }  # fmt: skip
    for split in ("val", "test"):  # evaluation stays fine
        ours, theirs = getattr(coarse, f"{split}_dataset"), getattr(fine, f"{split}_dataset")
        assert torch.equal(ours.masks, theirs.masks)
    kinds = coarse_run(8, 0.25, coarse_level=0).train_dataset.masks
    assert torch.equal(kinds[6:], family_of_every_pixel(fine_masks[6:], level=0))


def test_n_fine_then_m_coarse_shares_the_first_n_images_with_n_and_with_n_plus_m_fine() -> None:
    """The evidence study's arms: (a) N fine, (b) N fine + M coarse, (c) N + M fine."""
    n, m = 6, 10
    a, b, c = coarse_run(n), coarse_run(n + m, m / (n + m)), coarse_run(n + m)
    assert b.num_coarse == m and a.num_coarse == c.num_coarse == 0
    assert torch.equal(b.train_dataset.images[:n], a.train_dataset.images)
    assert torch.equal(b.train_dataset.masks[:n], a.train_dataset.masks)
    assert torch.equal(b.train_dataset.images, c.train_dataset.images)
    assert torch.equal(b.train_dataset.masks[n:], family_of_every_pixel(c.train_dataset.masks[n:]))
    assert torch.equal(a.val_dataset.images, c.val_dataset.images)


def test_bad_coarse_options_are_named() -> None:
    with pytest.raises(
        OptionError, match=r"coarse_fraction is a share in \[0, 1\], got 1.5"
    ) as info:
        SyntheticDataModule(num_train=4, coarse_fraction=1.5)
    assert info.value.option == "coarse_fraction"
    with pytest.raises(OptionError, match=r"coarse_level must be a level coarser .*got 2"):
        SyntheticDataModule(num_train=4, coarse_fraction=0.5, coarse_level=2)
    dm = SyntheticDataModule(num_train=4, num_val=2, coarse_fraction=0.5)
    dm.use_hierarchy(Hierarchy.flat(SYNTHETIC_CLASSES))  # one level: nothing coarser
    with pytest.raises(OptionError, match=r"need a tree of 2 levels or more .* this one has 1"):
        dm.setup("fit")
