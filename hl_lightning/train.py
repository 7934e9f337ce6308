"""``python -m hl_lightning.train``: the hl-train app of :mod:`hl_lightning.cli.train`."""

from hl_lightning.cli.train import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
