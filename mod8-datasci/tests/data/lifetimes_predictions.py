"""Reference per-customer predictions from the Python package lifetimes 0.11.3.

Fits lifetimes' BG/NBD (BetaGeoFitter) and Gamma-Gamma (GammaGammaFitter) on a CDNOW summary
in weeks, exactly as `mod8 clv predict --summary` does, and writes P(alive), the expected
purchases over the CLV horizon, the expected average spend and the CLV of a deterministic
subset of customers, for `tests/summary.rs` to compare at 1e-6 relative.

BG/NBD is fitted to `tol=1e-9` instead of lifetimes' default 1e-7: at 1e-7 lifetimes' fit stops
4e-7 (bundled) and 7e-7 (full) relative short of the maximum of its own likelihood (Newton steps
on `BetaGeoFitter._negative_log_likelihood` from its answer find the optimum), which alone moves
P(alive) and CLV of the heaviest long-silent buyers by 1.2e-6 to 1.4e-6; at 1e-9 it is within
3e-8 of it. Gamma-Gamma keeps the default (at 1e-9 scipy reports a precision loss and lifetimes
refuses the fit; expected spend depends on it only weakly).

Conventions matched to mod8 (`ClvOptions::default()` in `src/clv.rs`):
- time in weeks; the horizon is 12 periods of 4.345 weeks (52.14 weeks);
- CLV = `GammaGammaFitter.customer_lifetime_value(bgf, ..., time=12, freq="W",
  discount_rate=0.01)`: 12 periods of 4.345 weeks, period k discounted by 1.01^k;
- Gamma-Gamma is fitted on the customers with frequency > 0 and a positive monetary value;
- expected purchases = `conditional_expected_number_of_purchases_up_to_time(52.14, ...)`.

Usage (from this directory; `setuptools<81` because lifetimes imports pkg_resources):

    python3 -m venv venv && venv/bin/pip install lifetimes==0.11.3 'setuptools<81'
    venv/bin/python lifetimes_predictions.py

writes `cdnow_lifetimes_predictions.csv` from `cdnow_summary.csv` (lifetimes' own
`cdnow_customers_summary_with_transactions.csv`: ID,x,t_x,T,zbar in weeks),
`cdnow_full_lifetimes_predictions.csv` from `cdnow_full_summary.csv`
(frequency,recency_days,T_days,monetary_value; weeks = days / 7; customer ids are the 1-based
row numbers) and the fitted parameters of both to `lifetimes_parameters.json`.
"""

import json
import sys
import warnings

import numpy as np
import pandas as pd

warnings.simplefilter("ignore")  # lifetimes' pkg_resources and pandas deprecation warnings

from lifetimes import BetaGeoFitter, GammaGammaFitter  # noqa: E402

PERIODS = 12
PERIOD_WEEKS = 4.345
DISCOUNT_RATE = 0.01
HORIZON_WEEKS = PERIODS * PERIOD_WEEKS
TOLERANCE = 1e-9
# Every STRIDE-th customer (by position), plus the extremes below.
STRIDE = {"bundled": 12, "full": 120}
OUTPUT = {
    "bundled": "cdnow_lifetimes_predictions.csv",
    "full": "cdnow_full_lifetimes_predictions.csv",
}


def load(dataset):
    if dataset == "bundled":
        raw = pd.read_csv("cdnow_summary.csv")
        return pd.DataFrame(
            {
                "customer_id": raw["ID"].astype(str),
                "frequency": raw["x"],
                "recency": raw["t_x"],
                "T": raw["T"],
                "monetary_value": raw["zbar"],
            }
        )
    if dataset == "full":
        raw = pd.read_csv("cdnow_full_summary.csv")
        return pd.DataFrame(
            {
                "customer_id": [str(i + 1) for i in range(len(raw))],
                "frequency": raw["frequency"],
                "recency": raw["recency_days"] / 7.0,
                "T": raw["T_days"] / 7.0,
                "monetary_value": raw["monetary_value"],
            }
        )
    raise SystemExit(f"unknown dataset {dataset!r} (bundled or full)")


def subset(d, stride):
    """Row positions: every stride-th customer and the extremes."""
    picks = set(range(0, len(d), stride))
    f, r, t, m = d["frequency"], d["recency"], d["T"], d["monetary_value"]
    repeat = d[f > 0]
    for column in (f, r, t, m):  # the largest of each
        picks.add(int(np.argmax(column.to_numpy())))
    picks.update(int(i) for i in np.flatnonzero((f == f.max()).to_numpy()))  # max frequency
    picks.update(int(i) for i in np.flatnonzero((t == t.max()).to_numpy())[:5])  # oldest
    picks.update(int(i) for i in np.flatnonzero((t == t.min()).to_numpy())[:5])  # youngest
    picks.update(int(i) for i in np.flatnonzero((f == 0).to_numpy())[:5])  # zero frequency
    # Zero frequency and the largest T; repeat buyers with recency 0 or the smallest spend.
    zero = d[f == 0]
    picks.add(int(d.index.get_loc(zero["T"].idxmax())))
    picks.add(int(d.index.get_loc(repeat["monetary_value"].idxmin())))
    picks.add(int(d.index.get_loc(repeat["recency"].idxmin())))
    # Alive-looking and dead-looking heavy buyers: recent and long-silent.
    gap = (repeat["T"] - repeat["recency"]) / repeat["T"]
    picks.add(int(d.index.get_loc(gap.idxmax())))
    picks.add(int(d.index.get_loc(gap.idxmin())))
    return sorted(picks)


def predictions(dataset):
    """Fits both models on the dataset, writes its predictions file, returns the parameters."""
    d = load(dataset)
    bgf = BetaGeoFitter(penalizer_coef=0.0).fit(
        d["frequency"], d["recency"], d["T"], tol=TOLERANCE
    )
    spenders = d[(d["frequency"] > 0) & (d["monetary_value"] > 0)]
    ggf = GammaGammaFitter(penalizer_coef=0.0).fit(
        spenders["frequency"], spenders["monetary_value"]
    )

    s = d.iloc[subset(d, STRIDE[dataset])].copy()
    f, r, t, m = s["frequency"], s["recency"], s["T"], s["monetary_value"]
    s["p_alive"] = bgf.conditional_probability_alive(f, r, t)
    s["expected_purchases"] = bgf.conditional_expected_number_of_purchases_up_to_time(
        HORIZON_WEEKS, f, r, t
    )
    s["expected_average_spend"] = ggf.conditional_expected_average_profit(f, m)
    s["clv"] = ggf.customer_lifetime_value(
        bgf, f, r, t, m, time=PERIODS, discount_rate=DISCOUNT_RATE, freq="W"
    )
    # Shortest round-trip floats.
    s.to_csv(OUTPUT[dataset], index=False, lineterminator="\n")
    print(f"{dataset}: {len(s)} customers -> {OUTPUT[dataset]}", file=sys.stderr)
    return {
        "customers": len(d),
        "bgnbd": {k: float(bgf.params_[k]) for k in ["r", "alpha", "a", "b"]},
        "gamma_gamma": {
            "p": float(ggf.params_["p"]),
            "q": float(ggf.params_["q"]),
            "gamma": float(ggf.params_["v"]),
        },
    }


def main():
    params = {dataset: predictions(dataset) for dataset in ["bundled", "full"]}
    params["bgnbd_tol"] = TOLERANCE
    with open("lifetimes_parameters.json", "w") as out:
        json.dump(params, out, indent=2)
        out.write("\n")


if __name__ == "__main__":
    main()
