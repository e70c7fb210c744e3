"""The paper's theory (§3–§6.2), one module per result; each returns tidy results (figures live in
:mod:`unrolling_lib.figures`).

- :mod:`.taxonomy`: the taxonomy of approximate unlearning (§3, Figure 1).
- :mod:`.lemma1`: Lemma 1, Corollary 1 and the reverse direction (§4.1, Appendix A) by enumerating orderings.
- :mod:`.weight_densities`: the densities P, P′, P″ of §4.1 (Gaussian noise on the final weights) and their
  sup-norm distance.
- :mod:`.symmetry`: outputs against weights (§4.2): hidden-unit permutations, interpolation between models.
- :mod:`.expansion`: expanding SGD around w₀ (§5.1–5.3, Eq. 4–9): paths, bounds, term counts, the study.
- :mod:`.toy`: the binary toy classifier of §6.2 (Eq. 11–12): landscape, minimum, minimum-norm update, SGD.
"""
