"""Level probabilities and decoders: per-level predictions from the K leaf logits.

A network predicts K leaf logits per pixel; the probability of a group at level ``d`` is
the sum of its leaves' softmax probabilities. :func:`level_log_probs` returns those
probabilities in the log domain (exact and finite for any finite logits) and
:func:`decode_levels` turns the logits into one label map per level with one of
:data:`METHODS` (a :data:`DecodeMethod`, the ``decode=`` keyword of the metrics and the
module):

- ``marginal``: argmax of the group probabilities at each level (matches the loss);
- ``leaf``: the argmax leaf, mapped up the tree;
- ``top_down``: greedy descent from the root, always a consistent path;
- ``crm``: the leaf of least expected tree distance (:meth:`Hierarchy.leaf_distance`)
  under the softmax, mapped up the tree (conditional risk minimisation, Karthik et al.
  2021): milder mistakes at no training cost.

:func:`predict_nodes` predicts, per pixel, the deepest node (a leaf or an internal node)
whose probability reaches a threshold in [0.5, 1), as its label id.

:func:`level_outputs` returns from one pass everything the metrics count (a
:class:`LevelOutputs`): the decoded maps, the argmax leaf, each level's most probable
group and its probability, and whether the logits are finite. Everything runs in fp32
(fp64 input stays fp64) with autocast disabled.

The modules: :mod:`~hl_lightning.decode.probabilities` (log P per level, the parent
tables), :mod:`~hl_lightning.decode.methods` (the method names and the top-down rule),
:mod:`~hl_lightning.decode.levels` (the one pass and the decoded maps),
:mod:`~hl_lightning.decode.nodes` (node predictions at a threshold),
:mod:`~hl_lightning.decode.blocks` (cache-sized blocks on CPU) and ``_ops`` (tensor
primitives fast on CPU).
"""

from hl_lightning.decode.levels import LevelOutputs, decode_levels, leaf_argmax, level_outputs
from hl_lightning.decode.methods import METHODS, DecodeMethod, check_method
from hl_lightning.decode.nodes import (
    NO_NODE,
    THRESHOLD_RANGE,
    check_threshold,
    check_thresholds,
    predict_nodes,
)
from hl_lightning.decode.probabilities import level_log_probs, level_parents, node_log_probs

__all__ = [
    "METHODS",
    "NO_NODE",
    "THRESHOLD_RANGE",
    "DecodeMethod",
    "LevelOutputs",
    "check_method",
    "check_threshold",
    "check_thresholds",
    "decode_levels",
    "leaf_argmax",
    "level_log_probs",
    "level_outputs",
    "level_parents",
    "node_log_probs",
    "predict_nodes",
]
