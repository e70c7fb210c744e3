"""The taxonomy of §3 (Figure 1): every work placed in a known cell, every cell of the axes used."""

from __future__ import annotations

from unrolling_lib.theory import taxonomy


def test_every_method_and_metric_holds_a_work_and_the_paper_sits_on_weights_and_l2() -> None:
    works = taxonomy.works()
    assert list(works.columns) == ["work", "cite", "method", "metric", "explanation", "space"]
    assert set(works["method"]) == set(taxonomy.METHODS)
    assert set(works["metric"]) == set(taxonomy.METRICS)
    assert works["cite"].is_unique and works["work"].is_unique
    ours = works.set_index("cite").loc["thudi2022unrolling"]
    assert (ours["method"], ours["metric"]) == ("Weights", "ℓ2 distance (verification error)")


def test_space_follows_the_metric() -> None:
    # §3.2: membership inference is judged on outputs; ℓ2, KL and privacy leakage on weights
    works = taxonomy.works()
    assert set(taxonomy.SPACE) == set(taxonomy.METRICS)
    assert list(works["space"]) == [taxonomy.SPACE[m] for m in works["metric"]]
    assert set(works.loc[works["metric"] == "Membership inference", "space"]) == {"outputs"}
    assert works.loc[works["cite"] == "bourtoule2021machine", "space"].item() == "both"


def test_the_papers_row_claims_only_the_sup_norm_bound_of_section_4_1() -> None:
    # Lemma 1 bounds sup |P″ − P′| under assumed noise; it does not bound KL or total variation (§4.1)
    ours = taxonomy.works().set_index("cite").loc["thudi2022unrolling", "explanation"]
    assert "sup-norm" in ours and "noise" in ours
    assert "metrics" not in ours and "implies" not in ours
