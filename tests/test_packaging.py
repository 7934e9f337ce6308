"""Packaging: the version defined once, the command-line tools' ``--version``, and the wheel
that ``python -m build`` makes, installed in a fresh virtual environment outside the
repository and run from there (hl-train, hl-tree, hl-predict, hl-compare, hl-eval)."""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

import hl_lightning
from hl_lightning.cli import evaluate as eval_cli
from hl_lightning.cli import predict, tree
from hl_lightning.cli import train as train_cli
from hl_lightning.cli.compare import command as compare_cli

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ("hl-train", "hl-tree", "hl-compare", "hl-predict", "hl-eval")


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command in cwd on one torch thread, without this session's PYTHONPATH."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment.update(OMP_NUM_THREADS="1", **env)
    return subprocess.run(
        args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300, check=False
    )


# ---------------------------------------------------------------------------- the version
def test_the_version_is_defined_once_in_the_package() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    assert not re.search(r"^version\s*=\s*\"", pyproject, re.M)  # no second definition
    assert re.search(r'^dynamic = \["version"\]', pyproject, re.M)
    assert 'version = { attr = "hl_lightning.__version__" }' in pyproject
    assert re.fullmatch(r"\d+\.\d+\.\d+", hl_lightning.__version__)
    assert re.search(r'^hl-train = "hl_lightning.cli.train:main"', pyproject, re.M)


def test_the_public_names_are_imported_on_first_use() -> None:
    for name in hl_lightning.__all__:
        value = getattr(hl_lightning, name)
        assert value.__name__ == name and value.__module__.startswith("hl_lightning."), name
    assert set(dir(hl_lightning)) >= set(hl_lightning.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'tree_list'"):
        hl_lightning.tree_list  # noqa: B018


def test_the_torch_free_parts_start_without_torch() -> None:
    """``import hl_lightning`` and what hl-compare and the table scripts use import neither
    torch nor Lightning (seconds of start-up each)."""
    probe = (
        "import sys, hl_lightning, hl_lightning.atomic, hl_lightning.cli.compare; "
        "print(sorted({'torch', 'torchmetrics', 'lightning'} & set(sys.modules)))"
    )
    done = run([sys.executable, "-c", probe], REPO, PYTHONPATH=str(REPO))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == "[]\n"


@pytest.mark.parametrize(
    "cli", [tree, predict, compare_cli], ids=["hl-tree", "hl-predict", "hl-compare"]
)
def test_small_clis_print_their_version(cli: object, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])  # type: ignore[attr-defined]
    assert exit_info.value.code == 0
    line = capsys.readouterr().out
    assert re.fullmatch(rf"hl-\w+ {hl_lightning.__version__} \(torch [^,]+, lightning .+\)\n", line)


def test_hl_train_prints_its_version_not_hydras(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["hl-train", "--version"])
    assert train_cli.main() is None
    out = capsys.readouterr().out
    assert out.startswith(f"hl-train {hl_lightning.__version__} (torch ") and "Hydra" not in out


def test_hl_eval_prints_its_version_not_hydras(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["hl-eval", "--version"])
    assert eval_cli.main() is None
    out = capsys.readouterr().out
    assert out.startswith(f"hl-eval {hl_lightning.__version__} (torch ") and "Hydra" not in out


# ---------------------------------------------------------------------------- the wheel
def build(tmp_path: Path) -> tuple[Path, Path]:
    """Build the sdist and, from it, the wheel of a copy of the sources; return both files."""
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copy(REPO / "README.md", source)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "hl_lightning", source / "hl_lightning", ignore=ignore)
    dist = tmp_path / "dist"
    # --no-isolation: this environment's setuptools (the [test] extra), no download
    built = run(
        [sys.executable, "-m", "build", "--no-isolation", "-o", str(dist), str(source)], tmp_path
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    (sdist,) = dist.glob("hl_lightning-*.tar.gz")
    (wheel,) = dist.glob("hl_lightning-*.whl")
    return sdist, wheel


def fresh_venv(tmp_path: Path, wheel: Path) -> tuple[Path, Path]:
    """Return a new venv (its bin folder and site-packages) with the wheel installed.

    The venv sees this environment's packages (torch & co.; a venv cannot re-install 5 GB
    in a test) through a ``.pth`` file of plain paths. Plain paths add folders to
    ``sys.path`` without running their ``.pth`` files, so this environment's editable
    hl_lightning (an import hook started by a ``.pth`` file) stays off: only the wheel's
    copy can be imported.
    """
    venv = tmp_path / "venv"
    created = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    assert created.returncode == 0, created.stderr[-3000:]
    (site_dir,) = venv.glob("lib/python*/site-packages")
    (site_dir / "outer_environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
    installed = run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp_path)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv / "bin", site_dir


def write_photos(folder: Path) -> Path:
    """Write two small RGB images into folder; return it."""
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (40, 30), (60 * i, 120, 200)).save(folder / f"photo{i}.png")
    return folder


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_runs_every_console_script(
    tmp_path: Path, tiny_run: list[str]
) -> None:
    sdist, wheel = build(tmp_path)
    version = hl_lightning.__version__
    assert wheel.name.startswith(f"hl_lightning-{version}-py3-none-any")
    with tarfile.open(sdist) as archive:
        assert f"hl_lightning-{version}/hl_lightning/conf/train.yaml" in archive.getnames()

    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        f"hl_lightning/conf/{p.relative_to(REPO / 'hl_lightning' / 'conf').as_posix()}"
        for p in (REPO / "hl_lightning" / "conf").rglob("*.yaml")
    }
    assert {"hl_lightning/conf/train.yaml", "hl_lightning/conf/debug/fdr.yaml"} <= shipped
    assert shipped <= names, shipped - names  # every config, the trees, the type marker
    trees = {
        f"hl_lightning/hierarchies/{p.name}"
        for p in (REPO / "hl_lightning" / "hierarchies").glob("*.yaml")
    }
    assert {"hl_lightning/hierarchies/synthetic.yaml", "hl_lightning/py.typed"} <= names
    assert trees <= names, trees - names
    metadata = zipfile.ZipFile(wheel).read(f"hl_lightning-{version}.dist-info/METADATA").decode()
    assert f"\nVersion: {version}\n" in metadata
    assert "Provides-Extra: wandb" in metadata and "Provides-Extra: mlflow" in metadata

    bin_dir, site_dir = fresh_venv(tmp_path, wheel)
    elsewhere = tmp_path / "elsewhere"  # outside the repository, no hl_lightning nearby
    elsewhere.mkdir()
    probe = (
        "import hl_lightning, importlib.metadata as m; from importlib import resources; "
        "print(hl_lightning.__file__, resources.files('hl_lightning.conf'), "
        "m.version('hl_lightning'))"
    )
    out = elsewhere / "run"
    # Independent commands run side by side (mostly seconds of imports each): the probe,
    # --version and hl-tree beside the training run; then the three that read its checkpoint.
    with ThreadPoolExecutor(max_workers=3) as pool:
        probed = pool.submit(run, [str(bin_dir / "python"), "-c", probe], elsewhere)
        versioned = pool.submit(run, [str(bin_dir / "hl-train"), "--version"], elsewhere)
        tree_png = [str(bin_dir / "hl-tree"), "synthetic", "--png", "tree.png"]
        drawing = pool.submit(run, tree_png, elsewhere)
        trained = run([str(bin_dir / "hl-train"), *tiny_run, f"hydra.run.dir={out}"], elsewhere)
        assert trained.returncode == 0, trained.stderr[-3000:]
        photos = write_photos(elsewhere / "photos")
        args = [str(out / "checkpoints" / "last.ckpt"), str(photos), "masks"]
        predicting = pool.submit(run, [str(bin_dir / "hl-predict"), *args], elsewhere)
        checkpoint = f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}"
        eval_args = [str(bin_dir / "hl-eval"), checkpoint, "hydra.run.dir=eval"]
        evaluating = pool.submit(run, eval_args, elsewhere)
        compare_args = [str(bin_dir / "hl-compare"), str(out), "--out", "compare"]
        comparing = pool.submit(run, compare_args, elsewhere)
        where, shown, drawn = probed.result(), versioned.result(), drawing.result()
        predicted, evaluated = predicting.result(), evaluating.result()
        compared = comparing.result()

    assert where.returncode == 0, where.stderr[-3000:]
    package_file, conf_dir, installed_version = where.stdout.split()
    assert Path(package_file).is_relative_to(site_dir) and Path(conf_dir).is_relative_to(site_dir)
    assert installed_version == version

    for script in SCRIPTS:
        assert (bin_dir / script).read_text().startswith(f"#!{bin_dir / 'python'}")
    assert shown.stdout.startswith(f"hl-train {version} (torch "), shown.stderr[-3000:]

    assert "test per level:" in trained.stdout
    assert (out / "checkpoints" / "last.ckpt").is_file()
    log = "\n".join(p.read_text() for p in out.glob("*.log"))
    shipped_tree = site_dir / "hl_lightning" / "hierarchies" / "synthetic.yaml"
    assert f"source='{shipped_tree}'" in log  # the synthetic tree came from the wheel
    assert str(REPO / "hl_lightning") not in log

    assert drawn.returncode == 0, drawn.stderr[-3000:]
    assert "13 leaves (classes), depth 3 (levels)" in drawn.stdout
    assert (elsewhere / "tree.png").stat().st_size > 10_000

    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert len(list((elsewhere / "masks").glob("photo*_*.png"))) == 2 * 3

    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert (elsewhere / "eval" / "results.json").is_file()

    assert compared.returncode == 0, compared.stderr[-3000:]
    assert list((elsewhere / "compare").iterdir())
    assert sorted(p.name for p in elsewhere.iterdir()) == [
        "compare", "eval", "masks", "photos", "run", "tree.png"
    ]  # fmt: skip
