"""Tests for hl_lightning/data/files.py: the behaviour every file-backed data module shares.

Every test runs over every loader (:data:`_data_sets.CASES`: any folder, Helen, Mapillary
Vistas, Cityscapes, COCO-Stuff, Pascal-Person-Part, LIP), each on a fixture written in its
own layout: options and defaults, batches and label ids, splits and seeds, flips, the
Hydra config, a one-batch fit, and bad data (named in the error, or skipped).
"""

from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from _compose import make_config
from _data_sets import (
    CASES,
    HEIGHT,
    DataSetCase,
    Folder,
    fit_one_batch,
    rgb,
    save,
    truncate,
)
from hydra.utils import instantiate
from omegaconf import Container
from PIL import Image

from hl_lightning.data import BadDataError, FileDataModule, FileOptions
from hl_lightning.hierarchies import load_hierarchy
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.options import OptionError

IGNORED = 255
BAD_VALUES = [case for case in CASES if case.bad_value is not None]
LABEL_ID_MASKS = [case for case in CASES if case.colour_refusal is not None]
TEST_SPLITS = [case for case in CASES if case.bad_test_split is not None]
FOLDER = next(case for case in CASES if isinstance(case, Folder))

every_loader = pytest.mark.parametrize("case", CASES, ids=repr)


@pytest.fixture(scope="session")
def written() -> dict[DataSetCase, Path]:
    """Return the data sets written so far in this session, by case."""
    return {}


@pytest.fixture
def data_root(
    case: DataSetCase, written: dict[DataSetCase, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Return the case's data set, written once a session: read it, do not change it."""
    if case not in written:
        written[case] = case.write(tmp_path_factory.mktemp(case.name))
    return written[case]


@pytest.fixture
def data_copy(data_root: Path, tmp_path: Path) -> Path:
    """Return a copy of the case's data set that the test may change."""
    return Path(shutil.copytree(data_root, tmp_path / "data"))


# ---------------------------------------------------------------------------- options
@every_loader
def test_every_hydra_config_shows_every_shared_option(case: DataSetCase) -> None:
    text = resources.files("hl_lightning.conf").joinpath(f"data/{case.name}.yaml").read_text()
    keys = set(yaml.safe_load(text))
    assert set(FileOptions.__annotations__) <= keys, set(FileOptions.__annotations__) - keys


@every_loader
def test_subclass_defaults_are_known_options(case: DataSetCase) -> None:
    assert issubclass(case.module_class, FileDataModule)
    assert set(case.module_class.defaults) <= set(FileOptions.__annotations__)


@every_loader
def test_defaults_and_overrides_reach_the_module(case: DataSetCase, data_root: Path) -> None:
    root = data_root
    dm = case.module_class(root, **case.options(root))
    own = vars(case.module_class).get("defaults", {})  # the data set's own defaults
    for key, value in own.items():
        assert dm.hparams[key] == value, key
    assert dm.batch_size == 16  # the shared default
    dm = case.module_class(root, **case.options(root), image_size=64, batch_size=2, on_bad="skip")
    assert (dm.image_size, dm.batch_size, dm.on_bad) == (64, 2, "skip")


@every_loader
def test_an_unknown_option_is_named_with_the_known_ones(case: DataSetCase, data_root: Path) -> None:
    root = data_root
    with pytest.raises(TypeError, match=r"unknown options imagesize; the shared options are"):
        case.module_class(root, **case.options(root), imagesize=64)


@every_loader
def test_ignore_index_must_not_be_a_label(case: DataSetCase, data_root: Path) -> None:
    """Neither a leaf's id nor an internal node's (a coarse label): the metrics' wording."""
    leaf = case.module(data_root).hierarchy.leaves[2]
    with pytest.raises(
        OptionError, match=rf"ignore_index=2 is the label id of leaf '{leaf}'; use a value outside"
    ) as info:
        case.module(data_root, ignore_index=2)
    assert info.value.option == "ignore_index"  # hl-train names data.ignore_index
    tree = case.module(data_root).hierarchy
    if tree.num_nodes > tree.num_leaves:
        node = tree.num_nodes - 1
        with pytest.raises(
            OptionError,
            match=rf"ignore_index={node} is the label id of internal node "
            rf"'{tree.node_names[node]}'; use a value outside the node ids 0\.\.{node} ",
        ):
            case.module(data_root, ignore_index=node)


@pytest.mark.parametrize("case", TEST_SPLITS, ids=repr)
def test_an_unknown_test_split_is_refused(case: DataSetCase, data_root: Path) -> None:
    with pytest.raises(ValueError, match="test_split"):
        case.module(data_root, test_split=case.bad_test_split)


# ---------------------------------------------------------------------------- loading
@every_loader
def test_classes_are_the_leaves_of_the_tree(case: DataSetCase, data_root: Path) -> None:
    dm = case.module(data_root)
    assert dm.class_names == case.classes and dm.num_classes == len(case.classes)
    assert dm.hierarchy.leaves == case.classes
    assert dm.hierarchy.level_names == case.levels


def with_children(tree: Hierarchy, leaf: str, children: tuple[str, ...]) -> Hierarchy:
    """Return ``tree`` with ``leaf`` made an internal node over new ``children`` leaves."""

    def split(node: dict[str, Any]) -> dict[str, Any]:
        return {
            name: dict.fromkeys(children) if name == leaf else sub if sub is None else split(sub)
            for name, sub in node.items()
        }

    return Hierarchy.from_dict(split(tree.to_dict()))


@every_loader
def test_a_class_naming_an_internal_node_gives_its_node_id(
    case: DataSetCase, data_root: Path
) -> None:
    """The data set's class of the first labelled pixel becomes an internal node of the
    tree (over two finer classes, as another data set's): its pixels are coarse labels,
    the node's id; every other class its leaf's id in the matched tree."""
    dm = case.module(data_root)
    labels = case.labels("val", 0)
    coarse = dm.class_names[int(labels[labels != IGNORED][0])]
    tree = with_children(dm.hierarchy, coarse, ("fine_a", "fine_b"))
    matched = dm.use_hierarchy(tree)
    assert matched.leaves == (*[n for n in case.classes if n != coarse], "fine_a", "fine_b")
    assert dm.num_classes == len(case.classes) + 1 and dm.hierarchy == matched
    ids = dm.label_ids
    assert [matched.node_names[i] for i in ids.tolist()] == list(case.classes)
    assert ids[case.classes.index(coarse)] >= matched.num_leaves  # an internal node's id
    dm.setup("fit")
    _, masks = next(iter(dm.val_dataloader()))
    for index in range(2):
        classes = case.labels("val", index)
        known = classes != IGNORED
        expected = torch.where(known, ids[classes.clamp(0, len(ids) - 1)], classes)
        assert torch.equal(masks[index], expected)
    assert bool((masks == matched.label_id(coarse)).any())


@every_loader
def test_batches_hold_the_decoded_label_maps(case: DataSetCase, data_root: Path) -> None:
    dm = case.module(data_root)
    dm.setup("fit")
    assert [s.name for s in dm.train_dataset.samples] == case.names("train")
    assert [s.name for s in dm.val_dataset.samples] == case.names("val")
    images, masks = next(iter(dm.val_dataloader()))  # val: in file order, no augmentation
    assert images.shape == (2, 3, HEIGHT, case.width) and images.dtype == torch.float32
    assert masks.shape == (2, HEIGHT, case.width) and masks.dtype == torch.int64
    expected = torch.stack([case.labels("val", 0), case.labels("val", 1)])
    assert torch.equal(masks, expected)
    assert bool((masks == IGNORED).any()) == bool((expected == IGNORED).any())  # kept ignored
    dm.setup("test")
    assert [s.name for s in dm.test_dataset.samples] == case.names("test")


@every_loader
def test_resized_batches_and_seeded_augmentation(case: DataSetCase, data_root: Path) -> None:
    root = data_root
    size, scale = case.resize
    dm = case.module(root, image_size=size, scale=scale, hflip=0.5)
    dm.setup("fit")
    shape = size if isinstance(size, tuple) else (size, size)
    labels = set(range(len(case.classes))) | ({IGNORED} if case.ignores else set())
    images, masks = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, *shape) and masks.shape == (2, *shape)
    assert set(masks.unique().tolist()) <= labels
    val_images, val_masks = next(iter(dm.val_dataloader()))  # the size, no augmentation
    assert val_images.shape == (2, 3, *shape) and set(val_masks.unique().tolist()) <= labels
    again = case.module(root, image_size=size, scale=scale, hflip=0.5)
    again.setup("fit")
    assert torch.equal(next(iter(again.train_dataloader()))[1], masks)  # seeded


@every_loader
def test_eval_size_gives_whole_frames_or_a_size_of_its_own(
    case: DataSetCase, data_root: Path
) -> None:
    root = data_root
    default = case.module(root, image_size=16)  # eval_size: image_size, as training
    default.setup("validate")
    assert default.hparams["eval_size"] == "image_size"
    assert next(iter(default.val_dataloader()))[0].shape == (2, 3, 16, 16)
    whole = case.module(root, image_size=16, scale=[1.0, 1.5], eval_size=None, eval_batch_size=1)
    whole.setup("fit")
    whole.setup("test")
    for split, loader in (("val", whole.val_dataloader()), ("test", whole.test_dataloader())):
        images, masks = next(iter(loader))  # the file's own size, one a batch
        assert images.shape == (1, 3, HEIGHT, case.width)
        assert torch.equal(masks[0], case.labels(split, 0))
    assert next(iter(whole.train_dataloader()))[0].shape == (2, 3, 16, 16)  # crops still
    sized = case.module(root, image_size=16, eval_size=[12, 20])
    sized.setup("validate")
    assert next(iter(sized.val_dataloader()))[0].shape == (2, 3, 12, 20)
    with pytest.raises(ValueError, match=r"eval_size must be 'image_size', null .* got 'full'"):
        case.module(root, eval_size="full")


@pytest.mark.parametrize("case", [FOLDER], ids=repr)
def test_loader_workers_augment_reproducibly(case: DataSetCase, data_root: Path) -> None:
    """Workers draw from their own seeded streams (on one loader: workers take a while)."""
    root = data_root

    def masks(seed: int) -> list[torch.Tensor]:
        options = {"image_size": 16, "scale": [1.0, 2.0], "hflip": 0.5, "batch_size": 1}
        dm = case.module(root, num_workers=2, seed=seed, **options)
        dm.setup("fit")
        return [mask for _, mask in dm.train_dataloader()]

    first, again, other = masks(0), masks(0), masks(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


@every_loader
def test_flips_swap_the_data_sets_left_right_pairs(case: DataSetCase, data_root: Path) -> None:
    root = data_root
    dm = case.module(root, hflip=1.0)
    dm.setup("fit")
    assert (dm.train_transform.flip_map is None) == (not case.flips)
    swap = torch.arange(256)
    for left, right in case.flips:
        swap[left], swap[right] = right, left
    flipped = case.labels("train", 0).flip(-1)
    assert torch.equal(dm.train_dataset[0][1], swap[flipped])
    plain = case.module(root, hflip=1.0, flip_pairs=[])
    plain.setup("fit")
    assert torch.equal(plain.train_dataset[0][1], flipped)


@every_loader
def test_images_are_read_as_rgb_or_named(case: DataSetCase, data_copy: Path) -> None:
    root = data_copy
    grey_file, _ = case.paths(root, "val", 0)
    rgba_file, _ = case.paths(root, "val", 1)
    grey = torch.arange(HEIGHT * case.width).view(HEIGHT, case.width) % 256
    rgba = torch.cat(
        [grey[..., None].expand(-1, -1, 3) // 2, torch.full_like(grey[..., None], 9)], -1
    )
    save(grey, grey_file, "L", format="PNG")  # greyscale: expanded
    save(rgba, rgba_file, "RGBA", format="PNG")  # alpha: dropped
    dm = case.module(root, mean=[0, 0, 0], std=[1, 1, 1])
    dm.setup("validate")
    image, _ = dm.val_dataset[0]
    assert image.shape == (3, HEIGHT, case.width) and torch.equal(image[0], image[2])
    assert torch.allclose(image[1] * 255, grey.float())
    image, _ = dm.val_dataset[1]
    assert torch.allclose(image * 255, rgba[..., :3].permute(2, 0, 1).float())
    Image.new("I;16", (case.width, HEIGHT)).save(grey_file, format="PNG")
    with pytest.raises(
        BadDataError, match=rf"{re.escape(grey_file.name)}: image mode 'I;16' is not"
    ):
        case.module(root).setup("validate")


# ---------------------------------------------------------------------------- training
@every_loader
def test_one_batch_fit(case: DataSetCase, data_root: Path) -> None:
    trainer = fit_one_batch(case.module(data_root, image_size=16))
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert {f"val/miou/{level}" for level in case.levels} <= trainer.callback_metrics.keys()


@every_loader
def test_hydra_config_composes_and_builds(
    case: DataSetCase, data_root: Path, tmp_path: Path
) -> None:
    root = data_root
    cfg = make_config([f"data={case.name}", f"data.root={root}", *case.hydra], tmp_path)
    dm = instantiate(cfg.data)
    assert isinstance(dm, case.module_class) and dm.class_names == case.classes
    assert dm.train_transform.size == case.default_size
    assert dm.on_bad == "error"
    flip_map = dm.train_transform.flip_map
    assert (flip_map is None) == (not case.flips)
    for left, right in case.flips:
        assert flip_map is not None and flip_map[[left, right]].tolist() == [right, left]
    assert cfg.hierarchy.source == case.tree_source.format(root=root)
    hierarchy = load_hierarchy(cfg.hierarchy.source, dm.class_names, cfg.hierarchy.level_names)
    assert hierarchy == dm.hierarchy
    assert hierarchy.level_names == (case.hydra_levels or case.levels)
    # hyper-parameters are plain data (checkpoints load with weights_only)
    assert not [key for key, value in dm.hparams.items() if isinstance(value, Container | Path)]
    assert type(dm.hparams["mean"]) is list


# ---------------------------------------------------------------------------- bad data
@every_loader
def test_missing_root_and_mask_folder_raise(case: DataSetCase, data_copy: Path) -> None:
    root = data_copy
    with pytest.raises(FileNotFoundError, match=r"data root .*nowhere is not a folder"):
        case.module(data_copy / "nowhere")
    folder = case.mask_folder(root, "train")
    shutil.rmtree(folder)
    owner = case.module_class.__name__
    with pytest.raises(
        FileNotFoundError, match=rf"{owner}: no folder {re.escape(str(folder))} \(train split\)"
    ):
        case.module(root).setup("fit")


@every_loader
def test_bad_samples_are_named_or_skipped_with_a_count(case: DataSetCase, data_copy: Path) -> None:
    root = data_copy
    _, (kept, *_) = case.paths(root, "train", 0)
    image, masks = case.paths(root, "train", 1)
    masks[-1].unlink()  # no mask
    _, (small, *_) = case.paths(root, "train", 2)
    save(torch.zeros(HEIGHT, 8), small, "L")  # a mask of another size
    lost, lost_masks = case.paths(root, "val", 0)
    lost.unlink()  # no image
    unreadable, _ = case.paths(root, "val", 2)
    unreadable.write_bytes(b"not an image")
    with pytest.raises(BadDataError) as error:
        case.module(root).setup("fit")
    message = str(error.value)
    assert "2 bad samples" in message and "on_bad=skip" in message
    assert case.no_mask(image, masks[-1]) in message
    assert f"{small}: mask size (8, {HEIGHT}) differs from image" in message
    with pytest.raises(BadDataError) as error:
        case.module(root).setup("validate")
    assert case.no_image(lost, lost_masks[0]) in str(error.value)
    assert f"{unreadable}: cannot read the image" in str(error.value)
    dm = case.module(root, on_bad="skip")
    owner = case.module_class.__name__
    with pytest.warns(UserWarning) as caught:
        dm.setup("fit")
    warned = "\n".join(str(w.message) for w in caught)
    for split in ("train", "val"):
        assert re.search(rf"skipped 2 bad samples in the {owner} {split} .* \(1 left\)", warned)
    assert [s.name for s in dm.train_dataset.samples] == case.names("train")[:1]
    assert [s.name for s in dm.val_dataset.samples] == case.names("val")[1:2]
    assert kept.is_file()


@pytest.mark.parametrize("case", LABEL_ID_MASKS, ids=repr)
def test_a_colour_mask_is_refused_at_set_up(case: DataSetCase, data_copy: Path) -> None:
    root = data_copy
    _, (mask, *_) = case.paths(root, "val", 2)
    save(torch.zeros(HEIGHT, case.width, 3), mask, "RGB")
    with pytest.raises(
        BadDataError, match=rf"{re.escape(mask.name)}: mask mode 'RGB' {case.colour_refusal}"
    ):
        case.module(root).setup("validate")


@pytest.mark.parametrize("case", BAD_VALUES, ids=repr)
def test_bad_mask_values_raise_naming_the_file_or_are_ignored(
    case: DataSetCase, data_copy: Path
) -> None:
    root = data_copy
    _, masks = case.paths(root, "val", 0)
    values = case.values("val", 0).clone()
    values[0, :5] = case.bad_value
    case.write_mask(values, masks)
    meaning = case.bad_meaning.format(last=len(case.classes) - 1)
    message = rf"{re.escape(masks[0].name)}: 5 pixels with values {case.bad_value}, {meaning}"
    dm = case.module(root)
    dm.setup("validate")  # found when the file is loaded
    with pytest.raises(BadDataError, match=message + r" \(on_bad=skip ignores such pixels\)"):
        dm.val_dataset[0]
    lenient = case.module(root, on_bad="skip")
    lenient.setup("validate")
    with pytest.warns(UserWarning, match=message + "; those pixels are ignored"):
        _, mask = lenient.val_dataset[0]
    expected = case.labels("val", 0).clone()
    expected[0, :5] = IGNORED
    assert torch.equal(mask, expected)


# ---------------------------------------------------------------------------- truncated files
@every_loader
def test_a_truncated_file_is_named_or_skipped_at_load_and_found_by_verify(
    case: DataSetCase, data_copy: Path
) -> None:
    bad = truncate(case.paths(data_copy, "train", 1)[0])
    named = re.escape(str(bad))
    dm = case.module(data_copy, batch_size=1)
    dm.setup("fit")  # the headers are sound
    with pytest.raises(BadDataError, match=rf"{named}: cannot decode the image.*on_bad=skip"):
        [dm.train_dataset[i] for i in range(3)]

    # skip: replaced by the next sample, with one warning
    dm = case.module(data_copy, batch_size=1, on_bad="skip")
    dm.setup("fit")
    with pytest.warns(UserWarning, match=rf"skipped: {named}: cannot decode") as caught:
        items = [dm.train_dataset[i] for _ in range(2) for i in range(3)]
    assert len(items) == 6 and len([w for w in caught if "skipped" in str(w.message)]) == 1

    # verify: every file decoded at set-up, the bad one named or dropped
    with pytest.raises(BadDataError, match=rf"1 bad samples .*\n  {named}: cannot decode"):
        case.module(data_copy, verify=True).setup("fit")
    dm = case.module(data_copy, verify=True, on_bad="skip")
    with pytest.warns(UserWarning, match="skipped 1 bad samples"):
        dm.setup("fit")
    assert len(dm.train_dataset) == 2


# ---------------------------------------------------------------------------- decompression bombs
@every_loader
@pytest.mark.parametrize("limit", [3000, 5000], ids=["refused", "warned"])
def test_a_decompression_bomb_is_named_or_skipped(
    case: DataSetCase, data_copy: Path, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image over PIL's limit (MAX_IMAGE_PIXELS) is bad data naming the file: refused
    (over twice the limit: PIL's DecompressionBombError) or over the limit (PIL only warns,
    then decodes it whole): both, at set-up, never a raw error nor a huge decode."""
    root = data_copy
    image, masks = case.paths(root, "train", 1)
    save(rgb(80, 80, 0), image, "RGB")  # 6400 pixels; the fixtures' others: 960 or fewer
    case.write_mask(torch.zeros(80, 80, dtype=torch.long), masks)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    named = rf"{re.escape(str(image))}: cannot read the image: Image size \(6400 pixels\) exceeds"
    with pytest.raises(BadDataError, match=rf"1 bad samples .*\n  {named}"):
        case.module(root).setup("fit")
    dm = case.module(root, on_bad="skip")
    with pytest.warns(UserWarning, match=rf"skipped 1 bad samples .*\n  {named}"):
        dm.setup("fit")
    assert [s.name for s in dm.train_dataset.samples] == [case.names("train")[i] for i in (0, 2)]


@pytest.mark.parametrize("case", [FOLDER], ids=repr)
def test_a_decompression_bomb_found_when_loaded_is_named_or_skipped(
    case: DataSetCase, data_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file over the limit once the set-up has passed (the limit lowered since): named
    when it is loaded, or skipped with a warning like any undecodable file."""
    root = data_copy
    image, masks = case.paths(root, "train", 1)
    save(rgb(80, 80, 0), image, "RGB")
    case.write_mask(torch.zeros(80, 80, dtype=torch.long), masks)
    strict = case.module(root, batch_size=1)
    lenient = case.module(root, batch_size=1, on_bad="skip")
    strict.setup("fit")
    lenient.setup("fit")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)
    named = rf"{re.escape(str(image))}: .*Image size \(6400 pixels\) exceeds"
    with pytest.raises(BadDataError, match=rf"{named}.*data.on_bad=skip skips such files"):
        strict.train_dataset[1]
    with pytest.warns(UserWarning, match=rf"skipped: {named}"):
        _, mask = lenient.train_dataset[1]  # the next sample instead
    assert torch.equal(mask, case.labels("train", 2))
