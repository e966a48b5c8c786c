"""Unsupervised and domain-adaptive fine-tuning by cluster contrast (Dai et al., "Cluster
Contrast for Unsupervised Person Re-Identification", as shipped with TransReID-SSL).

    from reidcli.unsupervised import ClusterParams, pseudo_labels, ClusterMemory
    labels = pseudo_labels(features, ClusterParams(eps=0.6))
    memory = ClusterMemory.from_features(features, labels.labels)

`reid finetune --unsupervised` (`FinetuneConfig(unsupervised=True)`) runs the whole loop.
"""

from reidcli.unsupervised.memory import MEMORY_UPDATES, ClusterMemory
from reidcli.unsupervised.pseudo_labels import (
    ClusterParams,
    PseudoLabels,
    camera_centred,
    jaccard_graph,
    label_agreement,
    pseudo_labels,
)
from reidcli.unsupervised.sampling import FixedIterations

__all__ = [
    "MEMORY_UPDATES",
    "ClusterMemory",
    "ClusterParams",
    "FixedIterations",
    "PseudoLabels",
    "camera_centred",
    "jaccard_graph",
    "label_agreement",
    "pseudo_labels",
]
