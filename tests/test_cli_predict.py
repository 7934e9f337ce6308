"""Tests for hl_lightning/cli/predict.py: hl-predict's colour masks from a checkpoint alone."""

from __future__ import annotations

import csv
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from _trainer import quiet_trainer
from PIL import Image

from hl_lightning import atomic
from hl_lightning.cli import predict
from hl_lightning.data import SYNTHETIC_MEAN, SYNTHETIC_STD, SyntheticDataModule
from hl_lightning.data.io import pixels
from hl_lightning.decode import decode_levels
from hl_lightning.lightning.module import HierarchicalSegmenter
from hl_lightning.palette import colorize, level_palettes, node_palette

LEVELS = ("kind", "family", "class")
SIZES = {"noise.png": (48, 40), "photo.jpg": (30, 50), "scene.PNG": (32, 32)}  # (W, H)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Return a checkpoint of a config-built one-layer network after a training step (32 x 32).

    One layer of random weights keeps its predictions varied (a U-Net after one step
    predicts one class everywhere); the data module's hyper-parameters are saved with it.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    dm = SyntheticDataModule(num_train=4, num_val=4, num_test=4, batch_size=4, image_size=32)
    backbone = {
        "_target_": "torch.nn.Conv2d",
        "in_channels": 3,
        "out_channels": dm.num_classes,
        "kernel_size": 3,
        "padding": 1,
    }
    model = HierarchicalSegmenter(backbone, dm.hierarchy.with_level_names(LEVELS))
    trainer = quiet_trainer(tmp_path_factory.mktemp("run"), max_epochs=1, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    path = Path(trainer.default_root_dir) / "tiny.ckpt"
    trainer.save_checkpoint(path)
    torch.set_num_threads(threads)
    yield path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Return a folder of three images of different sizes and formats, and a text file."""
    folder = tmp_path / "images"
    folder.mkdir()
    generator = torch.Generator().manual_seed(0)
    for name, (width, height) in SIZES.items():
        pixels = torch.randint(256, (height, width, 3), dtype=torch.uint8, generator=generator)
        Image.fromarray(pixels.numpy()).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    return folder


def colours(path: Path) -> set[tuple[int, int, int]]:
    with Image.open(path) as image:
        return {colour for _, colour in image.convert("RGB").getcolors(maxcolors=1 << 16)}


def test_all_levels_give_masks_of_the_image_size_in_the_level_palette(
    checkpoint: Path, images: Path, tmp_path: Path
) -> None:
    out = tmp_path / "masks"
    written = predict.predict_folder(checkpoint, images, out)
    expected = [out / f"{Path(n).stem}_{level}.png" for n in sorted(SIZES) for level in LEVELS]
    assert written == [*expected, out / "legend.csv"]
    model = HierarchicalSegmenter.load_from_checkpoint(checkpoint)
    palettes = level_palettes(model.hierarchy)
    for name, size in SIZES.items():
        for d, level in enumerate(LEVELS):
            path = out / f"{Path(name).stem}_{level}.png"
            with Image.open(path) as mask:
                mask.verify()
            with Image.open(path) as mask:
                assert mask.format == "PNG" and mask.size == size
            found = colours(path)
            assert found <= {tuple(c) for c in palettes[d].tolist()}
    assert len(colours(out / "noise_class.png")) >= 2  # a noise image is not one class
    with (out / "legend.csv").open(newline="") as file:
        legend = list(csv.reader(file))
    assert legend[0] == ["level", "group", "red", "green", "blue"]
    assert len(legend) == 1 + 3 + 6 + 13
    assert legend[1][:2] == ["kind", "background"]


def test_defaults_come_from_the_checkpoint_then_the_synthetic_data(
    checkpoint: Path, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    load_image = predict.load_image

    def spy(path: Path, channels: int, size: Any, mean: Any, std: Any) -> Any:
        calls.append({"channels": channels, "size": size, "mean": mean, "std": std})
        return load_image(path, channels, size, mean, std)

    monkeypatch.setattr(predict, "load_image", spy)
    predict.predict_folder(checkpoint, images, tmp_path / "a", level="family")
    assert calls[0] == {
        "channels": 3,
        "size": (32, 32),  # the data module's image_size, saved in the checkpoint
        "mean": list(SYNTHETIC_MEAN),
        "std": list(SYNTHETIC_STD),
    }
    calls.clear()
    predict.predict_folder(
        checkpoint, images, tmp_path / "b", level=-1, size="16x24", mean="0.5", std="[1,2,3]"
    )
    assert calls[0]["size"] == (16, 24)
    assert calls[0]["mean"] == [0.5] and calls[0]["std"] == [1.0, 2.0, 3.0]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "legend.csv",
        "noise_class.png",
        "photo_class.png",
        "scene_class.png",
    ]


def test_load_image_resizes_and_normalises(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("RGB", (10, 6), (51, 102, 153)).save(path)
    image, original = predict.load_image(path, 3, (4, 8), [0.2, 0.4, 0.6], [0.5, 0.5, 0.5])
    assert original == (6, 10) and image.shape == (1, 3, 4, 8)
    assert torch.allclose(image[0, :, 0, 0], torch.zeros(3), atol=1e-6)
    grey, _ = predict.load_image(path, 1, None, [0.0], [1.0])
    assert grey.shape == (1, 1, 6, 10)


def test_command_takes_positional_paths_and_flags(
    checkpoint: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = [str(checkpoint), str(images), str(out), "--level", "kind"]
    assert predict.main(args) == 0
    assert f"wrote 3 masks and legend.csv into {out}" in capsys.readouterr().out
    assert (out / "scene_kind.png").is_file() and not (out / "scene_class.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a", "b"], "the following arguments are required: output"),
        (["a", "b", "c", "--colour", "red"], "unrecognized arguments: --colour"),
        (["a", "b", "c", "--level"], "--level: expected one argument"),
    ],
)
def test_bad_arguments_exit_with_one_line_and_status_1(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        predict.main(args)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("hl-predict: error: ") and message in err
    assert err.count("\n") == 1 and err.endswith("(see hl-predict --help)\n")


@pytest.mark.parametrize("flag", ["--size", "--mean", "--std"])
def test_a_flag_value_of_the_wrong_type_is_one_line_naming_it(
    checkpoint: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    assert predict.main([str(checkpoint), str(images), str(tmp_path / "out"), flag, "abc"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"hl-predict: error: {flag} ")


def test_bad_inputs_exit_non_zero_with_a_message(
    checkpoint: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out")
    assert predict.main([str(checkpoint), str(images), out, "--level", "species"]) == 1
    assert "no level 'species': use all, a level name (kind, family, class)" in (
        capsys.readouterr().err
    )
    (tmp_path / "empty").mkdir()
    assert predict.main([str(checkpoint), str(tmp_path / "empty"), out]) == 1
    assert "no .png/.jpg/.jpeg images in" in capsys.readouterr().err
    assert predict.main(["missing.ckpt", str(images), out]) == 1
    assert "missing.ckpt" in capsys.readouterr().err


def test_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        predict.main(["--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: hl-predict") and "--level" in text and "``" not in text


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """Return hl-predict's one error line on stderr (and check it is the only output there)."""
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hl-predict: error: "), err
    return lines[0]


def test_an_output_over_an_input_is_refused_naming_both(
    checkpoint: Path, images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Masks written into the image folder would replace the input noise_class.png."""
    Image.new("RGB", (8, 8)).save(images / "noise_class.png")
    before = {p.name: p.read_bytes() for p in images.iterdir()}
    assert predict.main([str(checkpoint), str(images), str(images)]) == 1
    line = error_line(capsys)
    assert f"{images}/noise_class.png" in line and "the input image" in line
    assert "would overwrite" in line
    assert {p.name: p.read_bytes() for p in images.iterdir()} == before  # nothing written


def test_an_output_over_the_checkpoint_is_refused(
    checkpoint: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    ckpt = out / "noise_kind.png"  # an odd name, but an input all the same
    ckpt.write_bytes(checkpoint.read_bytes())
    assert predict.main([str(ckpt), str(images), str(out)]) == 1
    assert f"would overwrite the input checkpoint {ckpt}" in error_line(capsys)
    assert ckpt.read_bytes() == checkpoint.read_bytes()


def test_the_image_folder_may_take_the_masks_where_no_name_clashes(
    checkpoint: Path, images: Path
) -> None:
    written = predict.predict_folder(checkpoint, images, images, level="kind")
    assert [p.name for p in written] == [
        "noise_kind.png",
        "photo_kind.png",
        "scene_kind.png",
        "legend.csv",
    ]


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_a_broken_checkpoint_gives_one_line_naming_it(
    damage: str, checkpoint: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.ckpt"
    if damage == "truncated":
        path.write_bytes(checkpoint.read_bytes()[:5000])
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    assert predict.main([str(path), str(images), str(tmp_path / "out")]) == 1
    assert f"the checkpoint {path} is" in error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--std", "0"], "--std must be finite and non-zero, got [0.0]"),
        (["--std", "0.5,0,0.5"], "--std must be finite and non-zero, got [0.5, 0.0, 0.5]"),
        (["--mean", "nan"], "--mean must be finite, got [nan]"),
        (["--std", "inf"], "--std must be finite and non-zero, got [inf]"),
    ],
)
def test_a_normalisation_that_gives_non_finite_inputs_is_refused(
    flags: list[str],
    message: str,
    checkpoint: Path,
    images: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert predict.main([str(checkpoint), str(images), str(tmp_path / "out"), *flags]) == 1
    assert message in error_line(capsys)
    assert not list((tmp_path / "out").glob("*.png"))


def test_a_tiny_std_that_overflows_names_the_image(
    checkpoint: Path, images: Path, tmp_path: Path
) -> None:
    with pytest.raises(
        predict.PredictError, match=r"noise.png: the normalised image is not finite"
    ):
        predict.predict_folder(checkpoint, images, tmp_path / "out", std="1e-45")


def test_non_finite_weights_are_refused(
    checkpoint: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = torch.load(checkpoint, weights_only=True)
    state["state_dict"]["backbone.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.ckpt"
    torch.save(state, path)
    assert predict.main([str(path), str(images), str(tmp_path / "out")]) == 1
    line = error_line(capsys)
    assert f"the checkpoint {path} holds non-finite weights" in line
    assert line.endswith("in backbone.weight")


def test_non_finite_logits_are_refused_naming_the_image(
    checkpoint: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finite weights so large that the network's sums overflow to infinity."""
    state = torch.load(checkpoint, weights_only=True)
    state["state_dict"]["backbone.weight"].fill_(3e38)
    path = tmp_path / "huge.ckpt"
    torch.save(state, path)
    assert predict.main([str(path), str(images), str(tmp_path / "out")]) == 1
    line = error_line(capsys)
    assert f"{images}/noise.png" in line and "logits are not finite" in line
    assert not list((tmp_path / "out").glob("*.png"))


def test_a_full_disk_gives_one_line_naming_the_path(
    checkpoint: Path, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    (out / "noise_kind.png").write_bytes(b"an earlier mask")

    def full(descriptor: int) -> None:  # the flush to disk of a full file system
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    assert predict.main([str(checkpoint), str(images), str(out), "--level", "kind"]) == 1
    line = error_line(capsys)
    assert f"no space left on the device to write {out}/noise_kind.png (" in line
    assert (out / "noise_kind.png").read_bytes() == b"an earlier mask"
    assert [p.name for p in out.iterdir()] == ["noise_kind.png"]


def test_whole_frames_in_windows_where_the_checkpoint_evaluated_so(
    checkpoint: Path, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model whose data evaluated whole frames (eval_size null) with slide windows:
    hl-predict runs the windows over each image at its own size."""
    saved = torch.load(checkpoint, weights_only=True)
    saved["datamodule_hyper_parameters"]["eval_size"] = None
    windows = {"inference": "slide", "crop_size": [16, 16], "stride": [8, 8]}
    saved["hyper_parameters"].update(windows)
    slide_checkpoint = tmp_path / "slide.ckpt"
    torch.save(saved, slide_checkpoint)
    sizes: list[Any] = []
    load_image = predict.load_image

    def spy(path: Path, channels: int, size: Any, mean: Any, std: Any) -> Any:
        sizes.append(size)
        return load_image(path, channels, size, mean, std)

    monkeypatch.setattr(predict, "load_image", spy)
    out = tmp_path / "masks"
    predict.predict_folder(slide_checkpoint, images, out, level="class")
    assert sizes == [None] * len(SIZES)  # each image's own size
    model = HierarchicalSegmenter.load_from_checkpoint(slide_checkpoint).eval()
    palette = level_palettes(model.hierarchy)[-1]
    differ = 0
    for name in SIZES:
        inputs, _ = load_image(images / name, 3, None, list(SYNTHETIC_MEAN), list(SYNTHETIC_STD))
        with torch.no_grad():
            slide = model.predict_step(inputs)["class"][0]
            whole = decode_levels(model(inputs), model.hierarchy, model.decode)[-1][0]
        with Image.open(out / f"{Path(name).stem}_class.png") as mask:
            written = pixels(mask.convert("RGB")).long()
        assert torch.equal(written, colorize(slide, palette).long())
        differ += int((slide != whole).sum())
    assert differ > 0  # the windows' borders change some pixels: not whole-image inference


@pytest.mark.parametrize("limit", [500, 1000], ids=["refused", "warned"])
def test_a_decompression_bomb_is_one_line_naming_the_image(
    checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    limit: int,
) -> None:
    """1200 pixels: over twice the limit (PIL refuses it) or over it (PIL only warns)."""
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (40, 30)).save(folder / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    assert predict.main([str(checkpoint), str(folder), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        f"hl-predict: error: {folder / 'big.png'}: cannot read the image: Image size (1200 "
        "pixels) exceeds limit"
    )
    assert not (tmp_path / "out" / "big_class.png").exists()


def test_decode_and_threshold_write_node_maps_in_node_colours(
    checkpoint: Path, images: Path, tmp_path: Path
) -> None:
    out = tmp_path / "nodes"
    args = [str(checkpoint), str(images), str(out), "--level", "class", "--decode", "crm"]
    assert predict.main([*args, "--threshold", "0.5"]) == 0
    model = HierarchicalSegmenter.load_from_checkpoint(checkpoint)
    palette = {tuple(c) for c in node_palette(model.hierarchy).tolist()} | {(0, 0, 0)}
    for name, size in SIZES.items():
        path = out / f"{Path(name).stem}_nodes.png"
        with Image.open(path) as mask:
            assert mask.size == size
        assert colours(path) <= palette
    with (out / "legend.csv").open(newline="") as file:
        legend = [row for row in csv.reader(file) if row[0] == "nodes"]
    assert [row[1] for row in legend] == list(model.hierarchy.node_names)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--threshold", "0.3"], r"threshold=0.3 is outside [0.5, 1)"),
        (["--decode", "argmax"], "unknown decoding method 'argmax'; valid methods are"),
    ],
)
def test_bad_decode_options_exit_1_before_reading_images(
    checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    empty = tmp_path / "no_images_here"  # not even read: the options are checked first
    assert predict.main([str(checkpoint), str(empty), str(tmp_path / "out"), *flags]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hl-predict: error: ") and message in err
