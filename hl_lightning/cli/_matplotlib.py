"""Figures for the plotting commands: matplotlib's Agg canvas, an install hint when missing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INSTALL_HINT = 'matplotlib is needed for figures: pip install "hl_lightning[plots]"'


def agg_figure(prog: str, **kwargs: Any) -> Figure:
    """Return a matplotlib ``Figure(**kwargs)`` drawn by the Agg canvas (headless, no pyplot).

    Exits with ``<prog>: error:`` and the install hint when matplotlib is missing.
    Without ``pyplot`` no window opens and no global backend is switched.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise SystemExit(f"{prog}: error: {INSTALL_HINT}") from None
    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure
