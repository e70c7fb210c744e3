"""The paper's experiments (§6.1, §8), one module per section; each returns tidy results.

- :mod:`.error_curves`: the machinery of §6.1, §8.1 and §8.2 — e(t), ‖w_t − w₀‖₂, ‖w_t‖₂, σ and accuracy
  over a grid of settings, losses and pre-training lengths, checkpointed and resumable.
- :mod:`.strawmen`: §6.1, training for less and ℓ2 regularisation (Figures 3, 4, 16, Table 3).
- :mod:`.sd_loss`: §8.1, the SD loss lowers e (Figure 7, Tables 1 and 4).
- :mod:`.ablation`: §8.2, σ_avg against the distance travelled, and the influence of N (Figure 8, Table 4).
- :mod:`.verification`: §8.3, is the unlearning error a proxy for the verification error?
"""
