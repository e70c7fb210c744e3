"""Numerics of the paper's theory, one module per result.

- ``toy``: the binary toy classifier of §6.2 (Eq. 11) and its closed-form minimum.
- ``lemma1``: Lemma 1, Corollary 1 and the reverse direction (§4.1, Appendix A) by enumerating orderings.
- ``symmetry``: outputs against weights (§4.2): hidden-unit permutations, interpolation between models.
- ``expansion``: expanding SGD around w₀ (§5.1–5.3, Eq. 4–9): slopes, bounds, term counts, σ modes.
"""

from . import expansion, lemma1, symmetry
from .expansion import (
    EXPANSION_DEFAULTS,
    ExpansionProblem,
    batch_sigmas,
    build_problem,
    expansion_table,
    fit_slopes,
    symbolic_terms,
    term_count_table,
    unlearning_table,
)
from .lemma1 import LEMMA1_DEFAULTS, gaussian_lipschitz, lemma1_case, lemma1_table, orderings
from .symmetry import SYMMETRY_DEFAULTS, interpolation_table, permute_hidden, train_nearby_models
from .toy import SCALINGS, SD_COEFFICIENT, toy_sd_loss, toy_sd_minimum

__all__ = ["SCALINGS", "SD_COEFFICIENT", "toy_sd_loss", "toy_sd_minimum"]

__all__ += [
    "expansion", "lemma1", "symmetry",
    "EXPANSION_DEFAULTS", "ExpansionProblem", "batch_sigmas", "build_problem", "expansion_table",
    "fit_slopes", "symbolic_terms", "term_count_table", "unlearning_table",
    "LEMMA1_DEFAULTS", "gaussian_lipschitz", "lemma1_case", "lemma1_table", "orderings",
    "SYMMETRY_DEFAULTS", "interpolation_table", "permute_hidden", "train_nearby_models",
]
