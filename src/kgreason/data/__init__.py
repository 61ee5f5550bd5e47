"""Data layer: triples, vocabularies, datasets, graph views, corpora, synthetic data, dataset registry."""

from kgreason.data.dataset import SPLITS, Dataset, SplitReport
from kgreason.data.triples import LabeledTriples, TripleFileError, add_inverse_triples, read_triples
from kgreason.data.vocabulary import UnknownLabelError, Vocabulary

__all__ = [
    "SPLITS",
    "Dataset",
    "LabeledTriples",
    "SplitReport",
    "TripleFileError",
    "UnknownLabelError",
    "Vocabulary",
    "add_inverse_triples",
    "read_triples",
]
