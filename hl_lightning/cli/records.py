"""hl-train's record of each invocation, written whole: ``config.yaml``, ``hydra.yaml`` and
``overrides.yaml`` in the run's ``.hydra`` (or ``.hydra/again/<time>`` for a rerun).

Hydra writes these files in place before the run starts; a kill during that write would
leave a cut config that ``resume=`` and ``hl-compare`` then read. hl-train's config turns
Hydra's own record off (``hydra.output_subdir: null``) and this Hydra callback writes the
same three files through :func:`~hl_lightning.atomic.atomic_write` instead.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from hl_lightning.atomic import atomic_write
from hl_lightning.cli.resume import second_output_subdir

__all__ = ["AtomicConfigRecord", "record_dir"]

#: The override Lightning gives the processes its DDP strategy starts: they record nothing.
_NO_RECORD = "hydra.output_subdir=null"


def record_dir(hydra: Any) -> str | None:
    """Return the folder (relative to the run directory) that records this invocation:
    ``.hydra``, or ``.hydra/again/<time>`` where a record is already there (decided once per
    process); None in the processes Lightning's DDP strategy starts (they record nothing).
    ``hydra`` is Hydra's config node (``HydraConfig.get()``).
    """
    if _NO_RECORD in hydra.overrides.hydra:
        return None
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return second_output_subdir(str(hydra.runtime.output_dir), stamp)


class AtomicConfigRecord(Callback):
    """A Hydra callback writing the invocation's record whole, where Hydra would have."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Write ``config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` of the job starting."""
        hydra = config.hydra
        subdir = record_dir(hydra)
        if subdir is None:
            return
        folder = Path(hydra.runtime.output_dir) / subdir
        folder.mkdir(parents=True, exist_ok=True)
        task = OmegaConf.masked_copy(config, [str(k) for k in config if k != "hydra"])
        records = {
            "config.yaml": task,
            "hydra.yaml": OmegaConf.masked_copy(config, "hydra"),
            "overrides.yaml": hydra.overrides.task,
        }
        for name, node in records.items():
            with atomic_write(folder / name, "w") as file:
                file.write(OmegaConf.to_yaml(node))
