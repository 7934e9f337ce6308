"""Temperature scaling: one temperature T fitted on held-out pixels (minimum NLL), so that
``softmax(z / T)`` is calibrated before threshold decisions.

:class:`TemperatureScaling` collects a uniform random sample of the labelled pixels of
any number of batches (their logits and label ids, at most ``max_logits`` logit values
kept, so memory stays bounded on a whole validation split), then :meth:`~TemperatureScaling.fit`
finds the T of least mean NLL of the labels on the sample: L-BFGS on log T in float64
(T within (1/100, 100)). A
label's likelihood is its node's probability (a leaf's softmax probability, a coarse
label's summed over its leaves). The fit reports the NLL and the per-level calibration
error (:class:`~hl_lightning.metrics.HierarchicalCalibrationError`) on the sample before
and after. Dividing logits by T keeps every argmax-type decoding of a flat softmax
(the argmax leaf) but changes the probabilities that thresholds read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hl_lightning.decode import node_log_probs
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics.functional.arguments import _validate_args
from hl_lightning.metrics.functional.calibration import hierarchical_calibration_error
from hl_lightning.tables import LevelTables, validate_inputs

__all__ = ["TemperatureFit", "TemperatureScaling", "fit_temperature"]

#: The fitted temperature lies in (1 / 100, 100): log T = 4.6 tanh(u), u free. A model
#: worse than chance pushes T to the upper end (the uniform prediction), a model that is
#: right everywhere to the lower end; ordinary models land near 1 to 3.
_LOG_T_BOUND = 4.6


@dataclass(frozen=True)
class TemperatureFit:
    """The fitted temperature and what it changed on the pixels it was fitted on.

    ``temperature``: T (divide the logits by it); ``pixels``: the pixels of the sample;
    ``nll_before``/``nll_after``: their mean NLL at T = 1 and at T; ``ece_before``/
    ``ece_after`` (D,): the per-level calibration error (l1, ``n_bins`` bins) at T = 1 and
    at T.
    """

    temperature: float
    pixels: int
    nll_before: float
    nll_after: float
    ece_before: Tensor
    ece_after: Tensor


class TemperatureScaling:
    """Collect labelled pixels over batches, then fit one temperature (minimum NLL).

    Args:
        hierarchy: the class tree (K leaves; labels may be any node id, coarse ones too).
        ignore_index: the label of pixels left out.
        max_logits: at most this many logit values are kept (``max_logits // K`` pixels,
            float32 on the CPU): a uniform random sample of all the labelled pixels seen,
            without replacement (each pixel gets a random key; the smallest keys stay).
        n_bins: the calibration error's bins.
        seed: the sample's random generator seed.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> gen = torch.Generator().manual_seed(0)
        >>> calibrated = 2 * torch.randn(4, 3, 16, 16, generator=gen)  # labels drawn from it:
        >>> p = calibrated.movedim(1, -1).reshape(-1, 3).softmax(1)
        >>> target = torch.multinomial(p, 1, generator=gen).view(4, 16, 16)
        >>> scaling = TemperatureScaling(h)
        >>> scaling.update(3 * calibrated, target)  # a model 3 times too sure
        >>> fit = scaling.fit()
        >>> round(fit.temperature, 1), fit.pixels, fit.nll_after < fit.nll_before
        (2.9, 1024, True)
        >>> fit.ece_before, fit.ece_after  # per level
        (tensor([0.1007, 0.1558]), tensor([0.0176, 0.0279]))
    """

    def __init__(
        self,
        hierarchy: Hierarchy,
        ignore_index: int | None = 255,
        max_logits: int = 2**22,
        n_bins: int = 15,
        seed: int = 0,
    ) -> None:
        _validate_args(hierarchy, ignore_index, n_bins=n_bins)
        if isinstance(max_logits, bool) or not isinstance(max_logits, int) or max_logits < 1:
            raise ValueError(f"max_logits must be a positive int, got {max_logits!r}")
        self.hierarchy, self.ignore_index, self.n_bins = hierarchy, ignore_index, n_bins
        self.capacity = max(1, max_logits // hierarchy.num_leaves)
        self._generator = torch.Generator().manual_seed(seed)
        k = hierarchy.num_leaves
        self._keys = torch.empty(0)
        self._logits = torch.empty(0, k)
        self._labels = torch.empty(0, dtype=torch.long)

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Add one batch: logits (B, K, *S) float, target (B, *S) label ids."""
        validate_inputs(logits, target, self.hierarchy, self.ignore_index)
        if not torch.isfinite(logits).all():
            count = int((~torch.isfinite(logits)).sum())
            raise ValueError(
                f"TemperatureScaling.update: the logits have {count} non-finite values (NaN "
                f"or inf) out of {logits.numel()}; a temperature needs finite logits"
            )
        k = self.hierarchy.num_leaves
        pixels = logits.detach().movedim(1, -1).reshape(-1, k)
        labels = target.reshape(-1).long()
        if self.ignore_index is not None:
            keep = labels != self.ignore_index
            pixels, labels = pixels[keep], labels[keep]
        keys = torch.rand(len(labels), generator=self._generator)
        keys = torch.cat([self._keys, keys])
        order = keys.argsort()[: self.capacity]
        self._keys = keys[order]
        self._logits = torch.cat([self._logits, pixels.float().cpu()])[order]
        self._labels = torch.cat([self._labels, labels.cpu()])[order]

    def _nll(self, logits: Tensor, log_t: Tensor, under_node: Tensor) -> Tensor:
        """Return the mean NLL of the labels' nodes (``under_node`` (P, K): their leaves) at
        temperature exp(log_t)."""
        return -node_log_probs(logits / log_t.exp(), under_node).mean()

    def fit(self) -> TemperatureFit:
        """Return the :class:`TemperatureFit` of the collected pixels; raise a ValueError if
        there are none."""
        if not len(self._labels):
            raise ValueError("no labelled pixels to fit a temperature on (every pixel ignored?)")
        h = self.hierarchy
        under = LevelTables.of(h, torch.device("cpu")).node_members  # (N, K): leaves under nodes
        logits, under_node = self._logits.double(), under[self._labels]
        free = torch.zeros((), dtype=torch.float64, requires_grad=True)  # log T = 4.6 tanh
        optimizer = torch.optim.LBFGS(
            [free], lr=1.0, max_iter=100, line_search_fn="strong_wolfe", tolerance_change=1e-12
        )

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = self._nll(logits, _LOG_T_BOUND * free.tanh(), under_node)
            loss.backward()
            return loss

        optimizer.step(closure)
        log_t = (_LOG_T_BOUND * free.tanh()).detach()
        temperature = float(log_t.exp())
        if not 0 < temperature < float("inf"):
            raise ValueError(f"the temperature fit did not converge (T = {temperature})")
        with torch.no_grad():
            before = float(self._nll(logits, torch.zeros((), dtype=torch.float64), under_node))
            after = float(self._nll(logits, log_t, under_node))
        ece = [
            hierarchical_calibration_error(
                self._logits / t, self._labels, h, None, n_bins=self.n_bins
            )
            for t in (1.0, temperature)
        ]
        return TemperatureFit(temperature, len(self._labels), before, after, *ece)


def fit_temperature(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    ignore_index: int | None = 255,
    n_bins: int = 15,
) -> TemperatureFit:
    """Return the :class:`TemperatureFit` of one batch's labelled pixels (all of them, up to
    :class:`TemperatureScaling`'s default sample size).

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> target = torch.tensor([[0, 1, 2, 3]])  # sky, car, truck, vehicle (coarse)
        >>> logits = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0],
        ...                         [0.0, 0.0, 1.0, 0.0]]])  # right, but unsure
        >>> fit_temperature(logits, target, h).temperature < 1  # sharpen
        True
    """
    scaling = TemperatureScaling(hierarchy, ignore_index, n_bins=n_bins)
    scaling.update(logits, target)
    return scaling.fit()
