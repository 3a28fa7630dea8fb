"""Comparing several methods over several data sets: Friedman, Iman–Davenport, Nemenyi, CD diagram.

This is the procedure of Demšar (2006) that Ballester et al. use to rank regularisers over
networks. With ``N`` data sets (here: trained networks) and ``k`` methods (regularisers), each
data set ranks the methods (1 = best, ties get the average of the ranks they span) and ``R_j`` is
the average rank of method ``j``:

* Friedman statistic, χ² with ``k − 1`` degrees of freedom under the null hypothesis that all
  methods are equivalent:
  ``χ²_F = 12N / (k(k+1)) · (Σ_j R_j² − k(k+1)²/4)``;
* Iman–Davenport statistic (less conservative), F with ``(k − 1, (k − 1)(N − 1))`` degrees of
  freedom: ``F_F = (N − 1) χ²_F / (N(k − 1) − χ²_F)``;
* Nemenyi post-hoc test: two methods differ when their average ranks differ by at least the
  critical difference ``CD = q_α · sqrt(k(k+1) / (6N))``, with ``q_α`` the studentized range
  quantile (infinite degrees of freedom) divided by ``√2``.

References
----------
J. Demšar, "Statistical Comparisons of Classifiers over Multiple Data Sets", JMLR 7:1–30, 2006.
R. L. Iman and J. M. Davenport, "Approximations of the critical region of the Friedman
statistic", Communications in Statistics 9(6):571–595, 1980.
"""

from ._demsar import (
    NEMENYI_Q,
    FriedmanResult,
    average_ranks,
    critical_difference,
    friedman_from_ranks,
    friedman_test,
    nemenyi_groups,
    nemenyi_q,
    rank_scores,
)
from ._figures import plot_cd_diagram  # drawn beside the other figures; importable here too

__all__ = [
    "NEMENYI_Q",
    "FriedmanResult",
    "average_ranks",
    "critical_difference",
    "friedman_from_ranks",
    "friedman_test",
    "nemenyi_groups",
    "nemenyi_q",
    "plot_cd_diagram",
    "rank_scores",
]
