"""Expanding SGD around w₀ (§5.1–5.3): Eq. 4–9, measured on small models.

t steps of plain SGD from w₀ over the batches x̂₀ … x̂_{t−1} give w_t. With g_i = ∇L(w₀; x̂_i) and
H_i = ∇²L(w₀; x̂_i) at the initial weights, Eq. 4–5 write w_t ≈ w₀ − η Σ_{i<t} g_i + Σ_{i=1}^{t−1} f(i) with
f(i) = −η H_i (−η Σ_{j<i} g_j + Σ_{j<i} f(j)); its η² part is Eq. 6, η² c_t = η² Σ_{i=1}^{t−1} H_i Σ_{j<i} g_j,
bounded by Eq. 8 (σ = max_i σ_i) and estimated by the unlearning error of Eq. 9 (σ_avg).

- :mod:`.problem`: the problem (a float64 model at w₀ and the batches of a fixed order), g_i, H_i·v through
  :class:`unrolling_lib.curvature.HVPOperator`, and the paths: real SGD, first order, Eq. 4–5, c_t of Eq. 6.
- :mod:`.bounds`: σ per batch in both modes, Eq. 8–9 beside ‖η² c_t‖, the log-log slopes in η.
- :mod:`.terms`: the recursion run on symbols, which terms contain a batch, their numerical value, and the grid
  of products H_i·g_j (what e bounds against what v is made of).
- :mod:`.kinks`: where a ReLU or max-pool network leaves the expansion: ties at w₀, margins, the first switch.
- :mod:`.regime`: where the η² truncation holds (η·t·σ ≪ 1): closed forms on a quadratic, the same measured on
  a model.
- :mod:`.study`: single-gradient unlearning against retraining, the chapter's study and what it reads off it.

Figures of this section are in :mod:`unrolling_lib.figures.expansion`.
"""

from .bounds import (
    OperatorNormCheck,
    SigmaSummary,
    batch_sigmas,
    eq8_ratio_growth,
    expansion_table,
    fit_slopes,
    operator_norm_check,
    sigma_summary,
)
from .kinks import KinkDiagnostics, kink_diagnostics, slope_below_first_switch
from .problem import (
    ExpansionProblem,
    build_problem,
    eta2_coefficients,
    first_order_path,
    gradients_at_w0,
    hvp_at_w0,
    problem_from,
    second_order_path,
    sgd_path,
)
from .regime import (
    REGIME_COLUMNS,
    quadratic_order_term,
    quadratic_regime,
    quadratic_remainder,
    quadratic_verification_error,
    quadratic_weight_change,
    regime_table,
)
from .study import (
    EXPANSION_DEFAULTS,
    PIECEWISE_SMOOTH_MODELS,
    RIGOROUS_RTOL,
    BoundSummary,
    ExpansionStudy,
    SigmaComparison,
    bound_summary,
    check_expansion_params,
    expansion_study,
    sigma_comparison,
    sigma_lr,
    sigma_table,
    slope_regime,
    unlearning_table,
)
from .terms import (
    ProductGrid,
    SymbolicCheck,
    count_terms_with,
    evaluate_terms,
    product_grid,
    symbolic_check,
    symbolic_terms,
    term_count_table,
)

__all__ = [
    "EXPANSION_DEFAULTS",
    "PIECEWISE_SMOOTH_MODELS",
    "REGIME_COLUMNS",
    "RIGOROUS_RTOL",
    "BoundSummary",
    "ExpansionProblem",
    "ExpansionStudy",
    "KinkDiagnostics",
    "OperatorNormCheck",
    "ProductGrid",
    "SigmaComparison",
    "SigmaSummary",
    "SymbolicCheck",
    "batch_sigmas",
    "bound_summary",
    "build_problem",
    "check_expansion_params",
    "count_terms_with",
    "eq8_ratio_growth",
    "eta2_coefficients",
    "evaluate_terms",
    "expansion_study",
    "expansion_table",
    "first_order_path",
    "fit_slopes",
    "gradients_at_w0",
    "kink_diagnostics",
    "hvp_at_w0",
    "operator_norm_check",
    "product_grid",
    "quadratic_order_term",
    "quadratic_regime",
    "quadratic_remainder",
    "quadratic_verification_error",
    "quadratic_weight_change",
    "regime_table",
    "problem_from",
    "second_order_path",
    "sgd_path",
    "sigma_comparison",
    "sigma_lr",
    "sigma_summary",
    "sigma_table",
    "slope_below_first_switch",
    "slope_regime",
    "symbolic_check",
    "symbolic_terms",
    "term_count_table",
    "unlearning_table",
]
