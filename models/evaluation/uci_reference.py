"""Published UCI results (mean over the 20 standard splits), from ../shared/data/uci/README.md:
PBP (Hernandez-Lobato & Adams 2015), MC dropout (Gal & Ghahramani 2016, and the grid-searched
numbers of their repository), deep ensembles (Lakshminarayanan et al. 2017)."""

PUBLISHED = {
    # data set: {method: (RMSE, test log-likelihood per point in nats)}
    "yacht": {"PBP": (1.02, -1.63), "MC dropout (2016)": (1.11, -1.55),
              "MC dropout (grid)": (0.67, -1.25), "Deep ensembles": (1.58, -1.18)},
    "energy": {"PBP": (1.80, -2.04), "MC dropout (2016)": (1.66, -1.99),
               "MC dropout (grid)": (0.54, -1.21), "Deep ensembles": (2.09, -1.38)},
    "concrete": {"PBP": (5.67, -3.16), "MC dropout (2016)": (5.23, -3.04),
                 "MC dropout (grid)": (4.82, -2.93), "Deep ensembles": (6.03, -3.06)},
    "wine-quality-red": {"PBP": (0.64, -0.97), "MC dropout (2016)": (0.62, -0.93),
                         "MC dropout (grid)": (0.62, -0.93), "Deep ensembles": (0.64, -0.94)},
}

# The targets of issue 18, test LL in nats per point (mean over the 20 splits): the best
# published BNN-family number per data set (deep ensembles on yacht; MC dropout grid-searched
# on energy and concrete; MC dropout tuned on wine-quality-red), and, where known, the level of
# gradient-boosted trees with uncertainty (CatBoost ensembles, Malinin et al. 2021; "about").
BEST_BNN_LL = {"yacht": (-1.18, "deep ensembles"), "energy": (-1.21, "MC dropout, grid"),
               "concrete": (-2.93, "MC dropout, grid"),
               "wine-quality-red": (-0.92, "MC dropout, tuned")}
GBT_LL = {"yacht": -0.55, "energy": -0.63}
