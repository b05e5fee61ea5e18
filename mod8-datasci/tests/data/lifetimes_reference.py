"""Reference values from lifetimes 0.11.3 for tests/models.rs.

Fits lifetimes' ParetoNBDFitter, ModifiedBetaGeoFitter and BetaGeoBetaBinomFitter on the data
in this folder and prints the parameters, total log-likelihoods and per-customer outputs as
Rust constants. Environment that installs on Python 3.11 and still runs lifetimes:

    python3 -m venv venv
    venv/bin/pip install lifetimes==0.11.3 numpy==1.23.5 pandas==1.5.3 scipy==1.10.1 \
        autograd==1.9.1 mpmath==1.4.1
    venv/bin/python tests/data/lifetimes_reference.py            # ~10 minutes
    venv/bin/python tests/data/lifetimes_reference.py --quick    # skips the full-CDNOW fits

Notes:
- lifetimes works in rescaled time (ages divided by the largest one) and reports alpha/beta
  back in weeks; log-likelihoods here are lifetimes' own per-customer functions evaluated at the
  fitted parameters on the unscaled data (weeks), summed.
- ParetoNBDFitter's defaults (Nelder-Mead, tol=1e-4, random start) stop ~1e-4 (relative) short
  of the optimum; the references use the same fitter with tol=1e-12, maxiter=50000 and a fixed
  start (1, 1, 1, 1), and the default-settings result is printed for comparison.
- high_frequency_summary.csv (generated here, seed 1) is a Pareto/NBD customer base with
  high purchase rates (mean 20 a week, at most one purchase a day, up to 723 repeat purchase
  days): lifetimes' Pareto/NBD likelihood overflows on it (hyp2f1(r+s+x, r+x; ...) -> inf, NaN
  log-likelihoods, parameters far off) and ModifiedBetaGeoFitter raises ConvergenceError. The
  references for it are the maximum-likelihood estimates refined by Newton's method on the
  log-likelihood evaluated with mpmath at 40 digits (started from mod8's fit; Newton converges
  to the stationary point, and the Hessian there is checked to be negative definite).
- bgbb_weekly.csv (generated here, seed 2) is a BG/BB base of 2,000 customers over 100 weekly
  opportunities (alpha=2, beta=1, gamma=0.5, delta=20), grouped as in donations.csv: lifetimes'
  BetaGeoBetaBinomFitter overflows on it and raises ConvergenceError; its reference is found
  the same way.
"""

import contextlib
import io
import os
import sys
import time
import warnings

import mpmath as mp
import numpy as np
import pandas as pd
from lifetimes import BetaGeoBetaBinomFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from lifetimes.utils import ConvergenceError

HERE = os.path.dirname(os.path.abspath(__file__))
QUICK = "--quick" in sys.argv


def r(v):
    return repr(float(v))


def load_small():
    d = pd.read_csv(os.path.join(HERE, "cdnow_summary.csv"))
    return d.rename(columns={"x": "frequency", "t_x": "recency"})[["frequency", "recency", "T"]]


def load_full():
    d = pd.read_csv(os.path.join(HERE, "cdnow_full_summary.csv"))
    return pd.DataFrame(
        {"frequency": d.frequency, "recency": d.recency_days / 7, "T": d.T_days / 7}
    )


def simulate_high_frequency():
    """Pareto/NBD r=1, alpha=0.05, s=0.2, beta=100 (weeks), ages 52-104 weeks, purchase days."""
    rng = np.random.default_rng(1)
    n, step = 400, 1 / 7
    lam = rng.gamma(1.0, 1 / 0.05, n)
    mu = rng.gamma(0.2, 1 / 100.0, n)
    T = np.round(rng.uniform(52, 104, n) / step) * step
    life = rng.exponential(1 / mu)
    rows = []
    for i in range(n):
        end = min(life[i], T[i])
        k = rng.poisson(lam[i] * end)
        if k == 0:
            rows.append((0, 0.0, T[i]))
            continue
        ts = np.sort(rng.uniform(0, end, k))
        ts = np.unique(np.round(ts / step) * step)
        ts = ts[ts > 0]
        if len(ts) == 0:
            rows.append((0, 0.0, T[i]))
            continue
        rows.append((len(ts), ts[-1], T[i]))
    return pd.DataFrame(rows, columns=["frequency", "recency", "T"])


def pareto_ll(params, d):
    return ParetoNBDFitter._conditional_log_likelihood(
        params, d.frequency.values, d.recency.values, d["T"].values
    ).sum()


def mbg_ll(params, d):
    # lifetimes' objective is the mean negative log-likelihood on log-parameters.
    return -ModifiedBetaGeoFitter._negative_log_likelihood(
        np.log(params), d.frequency.values, d.recency.values, d["T"].values,
        np.ones(len(d)), 0.0,
    ) * len(d)


def fit_pareto(d, name):
    np.random.seed(0)
    t0 = time.time()
    default = ParetoNBDFitter().fit(d.frequency, d.recency, d["T"])
    t_default = time.time() - t0
    t0 = time.time()
    tight = ParetoNBDFitter().fit(
        d.frequency, d.recency, d["T"], tol=1e-12, maxiter=50000, initial_params=np.ones(4)
    )
    t_tight = time.time() - t0
    p = tight.params_[["r", "alpha", "s", "beta"]].values
    print(f"// Pareto/NBD {name}: default settings {default.params_.values.tolist()} "
          f"in {t_default:.1f} s; tol=1e-12 in {t_tight:.1f} s")
    print(f"const PARETO_NBD_{name}: ([f64; 4], f64) = ([{', '.join(r(v) for v in p)}], "
          f"{r(pareto_ll(p, d))});")
    return tight


def fit_mbg(d, name):
    t0 = time.time()
    m = ModifiedBetaGeoFitter().fit(d.frequency, d.recency, d["T"])
    p = m.params_[["r", "alpha", "a", "b"]].values
    print(f"// MBG/NBD {name}: {time.time() - t0:.1f} s")
    print(f"const MBG_NBD_{name}: ([f64; 4], f64) = ([{', '.join(r(v) for v in p)}], "
          f"{r(mbg_ll(p, d))});")
    return m


SMALL_HISTORIES = [
    (0, 0.0, 38.86),
    (1, 1.71, 38.86),
    (1, 5.0, 38.86),
    (2, 30.43, 38.86),
    (5, 24.43, 38.86),
    (5, 36.14, 38.14),
    (10, 34.14, 38.86),
    (29, 37.71, 38.0),
]
HORIZONS = [10.0, 39.0, 52.0]


def per_customer(model, name):
    print(f"// {name}: (x, t_x, T, P(alive), E[X(T, T+t)] for t = {HORIZONS})")
    print(f"const {name}_CUSTOMERS: [(u32, f64, f64, f64, [f64; 3]); {len(SMALL_HISTORIES)}] = [")
    for x, tx, T in SMALL_HISTORIES:
        pa = float(np.atleast_1d(model.conditional_probability_alive(x, tx, T))[0])
        ex = [float(model.conditional_expected_number_of_purchases_up_to_time(t, x, tx, T))
              for t in HORIZONS]
        print(f"    ({x}, {r(tx)}, {r(T)}, {r(pa)}, [{', '.join(r(v) for v in ex)}]),")
    print("];")
    new = [float(model.expected_number_of_purchases_up_to_time(t)) for t in HORIZONS]
    print(f"const {name}_NEW: [f64; 3] = [{', '.join(r(v) for v in new)}];")


def bgbb():
    d = pd.read_csv(os.path.join(HERE, "donations.csv"))
    m = BetaGeoBetaBinomFitter().fit(d.frequency, d.recency, d.periods, weights=d.weights)
    p = m.params_[["alpha", "beta", "gamma", "delta"]].values
    ll = (BetaGeoBetaBinomFitter._loglikelihood(
        p, d.frequency.values, d.recency.values, d.periods.values) * d.weights.values).sum()
    print(f"const BG_BB_DONATIONS: ([f64; 4], f64) = ([{', '.join(r(v) for v in p)}], {r(ll)});")
    print("// (x, t_x, n, P(alive at n), P(alive at n+1), E[X(n, n+5)], E[X(n, n+10)])")
    print(f"const BG_BB_CUSTOMERS: [(u32, u32, u32, f64, f64, f64, f64); {len(d)}] = [")
    for x, tx, n in d[["frequency", "recency", "periods"]].values:
        a0 = float(np.atleast_1d(m.conditional_probability_alive(0, x, tx, n))[0])
        a1 = float(np.atleast_1d(m.conditional_probability_alive(1, x, tx, n))[0])
        e5 = float(np.atleast_1d(m.conditional_expected_number_of_purchases_up_to_time(5, x, tx, n))[0])
        e10 = float(np.atleast_1d(m.conditional_expected_number_of_purchases_up_to_time(10, x, tx, n))[0])
        print(f"    ({x}, {tx}, {n}, {r(a0)}, {r(a1)}, {r(e5)}, {r(e10)}),")
    print("];")
    # FHS (8) for a new customer (lifetimes has no such method): alpha/(alpha+beta) delta/(gamma-1)
    # [1 - G(gamma+delta) G(1+delta+n) / (G(gamma+delta+n) G(1+delta))]
    mp.mp.dps = 30
    a, b, g, dl = map(mp.mpf, p)
    new = [a / (a + b) * dl / (g - 1) * (1 - mp.exp(mp.loggamma(g + dl) + mp.loggamma(1 + dl + n)
           - mp.loggamma(g + dl + n) - mp.loggamma(1 + dl))) for n in (1, 5, 10)]
    print(f"const BG_BB_NEW: [f64; 3] = [{', '.join(r(v) for v in new)}]; // n* = 1, 5, 10")


# --- high-frequency data: mpmath log-likelihoods and Newton refinement ----------------------
def mp_pareto_ll(params, rows):
    r_, alpha, s, beta = params
    total = mp.mpf(0)
    for (x, tx, T), w in rows:
        tx, T = mp.mpf(tx), mp.mpf(T)
        if alpha >= beta:
            lo, hi, t = beta, alpha, s + 1
        else:
            lo, hi, t = alpha, beta, r_ + x
        rsx = r_ + s + x
        a0 = mp.mpf(0)
        if tx < T:
            a0 = (mp.hyp2f1(rsx, t, rsx + 1, (hi - lo) / (hi + tx)) / (hi + tx) ** rsx
                  - mp.hyp2f1(rsx, t, rsx + 1, (hi - lo) / (hi + T)) / (hi + T) ** rsx)
        ll = (mp.loggamma(r_ + x) - mp.loggamma(r_) + r_ * mp.log(alpha) + s * mp.log(beta)
              + mp.log((alpha + T) ** -(r_ + x) * (beta + T) ** -s + s / rsx * a0))
        total += w * ll
    return total


def mp_mbg_ll(params, rows):
    r_, alpha, a, b = params
    total = mp.mpf(0)
    for (x, tx, T), w in rows:
        tx, T = mp.mpf(tx), mp.mpf(T)
        ll = (mp.loggamma(r_ + x) - mp.loggamma(r_) + r_ * mp.log(alpha)
              + mp.loggamma(a + b) + mp.loggamma(b + x + 1) - mp.loggamma(b)
              - mp.loggamma(a + b + x + 1)
              + mp.log((alpha + T) ** -(r_ + x) + a / (b + x) * (alpha + tx) ** -(r_ + x)))
        total += w * ll
    return total


def newton(f, start, steps=4):
    """Newton's method on the log-parameters with central differences at 40 digits."""
    mp.mp.dps = 40
    theta = [mp.log(mp.mpf(v)) for v in start]
    g_fun = lambda th: f([mp.exp(v) for v in th])
    h = mp.mpf("1e-12")
    for _ in range(steps):
        f0 = g_fun(theta)
        grad, hess = [], [[None] * 4 for _ in range(4)]
        for i in range(4):
            e = [h if k == i else 0 for k in range(4)]
            fp = g_fun([a + b for a, b in zip(theta, e)])
            fm = g_fun([a - b for a, b in zip(theta, e)])
            grad.append((fp - fm) / (2 * h))
            hess[i][i] = (fp - 2 * f0 + fm) / h ** 2
        for i in range(4):
            for j in range(i + 1, 4):
                def at(si, sj):
                    return g_fun([theta[k] + (si * h if k == i else 0) + (sj * h if k == j else 0)
                                  for k in range(4)])
                hess[i][j] = hess[j][i] = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * h * h)
        step = mp.lu_solve(mp.matrix(hess), mp.matrix(grad))
        theta = [theta[k] - step[k] for k in range(4)]
        print(f"//   newton: |grad| = {mp.nstr(max(abs(v) for v in grad), 3)}, "
              f"|step| = {mp.nstr(max(abs(v) for v in step), 3)}")
    eig = mp.eigsy(mp.matrix(hess))[0]
    assert all(v < 0 for v in eig), "not a maximum"
    params = [mp.exp(v) for v in theta]
    return params, f(params)


def high_frequency():
    path = os.path.join(HERE, "high_frequency_summary.csv")
    text = simulate_high_frequency().to_csv(index=False)
    if os.path.exists(path):
        with open(path) as f:
            assert f.read() == text, "regenerated data differ from the checked-in file"
    else:
        with open(path, "w") as f:
            f.write(text)
    d = pd.read_csv(path)  # what mod8's tests read
    print(f"// high_frequency_summary.csv: {len(d)} customers, max frequency {d.frequency.max()}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.random.seed(0)
        p = ParetoNBDFitter().fit(d.frequency, d.recency, d["T"])
        kinds = sorted({str(w.message) for w in caught})
    print(f"// lifetimes ParetoNBDFitter: {p.params_.values.tolist()} with warnings {kinds}")
    scipy_report = io.StringIO()  # lifetimes prints scipy's result before raising
    try:
        with contextlib.redirect_stdout(scipy_report):
            ModifiedBetaGeoFitter().fit(d.frequency, d.recency, d["T"])
        print("// lifetimes ModifiedBetaGeoFitter: converged")
    except ConvergenceError:
        message = [l.strip() for l in scipy_report.getvalue().splitlines() if "message" in l]
        print(f"// lifetimes ModifiedBetaGeoFitter: ConvergenceError ({'; '.join(message)})")
    rows = list(d.groupby(["frequency", "recency", "T"]).size().items())
    # Starting points: mod8's fits (Newton then converges to the exact stationary point).
    start = [3.5393931073711413, 0.6932607971442893, 0.12179285881976441, 39.19329082935362]
    params, ll = newton(lambda q: mp_pareto_ll(q, rows), start)
    print(f"const PARETO_NBD_HIGH_FREQUENCY: ([f64; 4], f64) = "
          f"([{', '.join(r(v) for v in params)}], {r(ll)});")
    lifetimes_p = p.params_[["r", "alpha", "s", "beta"]].values
    print(f"// log-likelihood at lifetimes' parameters: {r(mp_pareto_ll([mp.mpf(v) for v in lifetimes_p], rows))}")
    start = [3.549720288744129, 0.6941710685728477, 0.1020567933591324, 138.46594087523923]
    params, ll = newton(lambda q: mp_mbg_ll(q, rows), start)
    print(f"const MBG_NBD_HIGH_FREQUENCY: ([f64; 4], f64) = "
          f"([{', '.join(r(v) for v in params)}], {r(ll)});")


def simulate_bgbb_weekly():
    """BG/BB alpha=2, beta=1, gamma=0.5, delta=20, 100 opportunities, 2,000 customers."""
    rng = np.random.default_rng(2)
    n, customers = 100, 2000
    p = rng.beta(2.0, 1.0, customers)
    theta = rng.beta(0.5, 20.0, customers)
    rows = []
    for i in range(customers):
        x = tx = 0
        for t in range(1, n + 1):
            if rng.random() < theta[i]:
                break
            if rng.random() < p[i]:
                x, tx = x + 1, t
        rows.append((x, tx, n))
    d = pd.DataFrame(rows, columns=["frequency", "recency", "periods"])
    return d.groupby(["frequency", "recency", "periods"]).size().reset_index(name="weights")


def mp_bgbb_ll(params, rows):
    a, b, g, dl = params
    top = max(n for (_, _, n), _ in rows) + 2
    lg = lambda base: [mp.loggamma(base + k) for k in range(top)]
    la, lb, lab, ld, lgd = lg(a), lg(b), lg(a + b), lg(dl), lg(g + dl)
    lg_g, lg_g1 = mp.loggamma(g), mp.loggamma(g + 1)
    ln_b_ab, ln_b_gd = la[0] + lb[0] - lab[0], lg_g + ld[0] - lgd[0]
    total = mp.mpf(0)
    for (x, tx, n), w in rows:
        terms = [la[x] + lb[n - x] - lab[n] + lg_g + ld[n] - lgd[n]]
        terms += [la[x] + lb[k - x] - lab[k] + lg_g1 + ld[k] - lgd[k + 1] for k in range(tx, n)]
        total += w * (mp.log(mp.fsum(mp.exp(t) for t in terms)) - ln_b_ab - ln_b_gd)
    return total


def bgbb_weekly():
    path = os.path.join(HERE, "bgbb_weekly.csv")
    text = simulate_bgbb_weekly().to_csv(index=False)
    if os.path.exists(path):
        with open(path) as f:
            assert f.read() == text, "regenerated data differ from the checked-in file"
    else:
        with open(path, "w") as f:
            f.write(text)
    d = pd.read_csv(path)
    print(f"// bgbb_weekly.csv: {d.weights.sum()} customers, {len(d)} distinct histories")
    scipy_report = io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(scipy_report):
                BetaGeoBetaBinomFitter().fit(d.frequency, d.recency, d.periods, weights=d.weights)
            print("// lifetimes BetaGeoBetaBinomFitter: converged")
        except ConvergenceError:
            message = [l.strip() for l in scipy_report.getvalue().splitlines() if "message" in l]
            print(f"// lifetimes BetaGeoBetaBinomFitter: ConvergenceError ({'; '.join(message)}), "
                  f"warnings {sorted({str(w.message) for w in caught})}")
    rows = [((int(x), int(tx), int(n)), int(w)) for x, tx, n, w in d.values]
    start = [1.953920003560931, 0.991295345091087, 0.5619504264247406, 24.20132174988091]
    params, ll = newton(lambda q: mp_bgbb_ll(q, rows), start, steps=3)
    print(f"const BG_BB_WEEKLY: ([f64; 4], f64) = ([{', '.join(r(v) for v in params)}], {r(ll)});")


def main():
    warnings.simplefilter("ignore")
    small = load_small()
    print("// generated by tests/data/lifetimes_reference.py")
    pnbd = fit_pareto(small, "SMALL")
    per_customer(pnbd, "PARETO_NBD")
    mbg = fit_mbg(small, "SMALL")
    per_customer(mbg, "MBG_NBD")
    if not QUICK:
        full = load_full()
        fit_pareto(full, "FULL")
        fit_mbg(full, "FULL")
    bgbb()
    bgbb_weekly()
    high_frequency()


if __name__ == "__main__":
    main()
