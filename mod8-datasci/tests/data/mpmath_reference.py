"""High-precision reference values for the Pareto/NBD pieces (mpmath, 50 digits).

Prints the constant tables used by `src/hyp2f1.rs` (unit tests, `MPMATH`) and
`tests/models.rs` (`PARETO_NBD_MPMATH`). Regenerate with

    python3 -m venv venv && venv/bin/pip install mpmath==1.4.1
    venv/bin/python tests/data/mpmath_reference.py

Values are printed with 32 significant digits.
"""

import mpmath as mp

mp.mp.dps = 50


def fmt(v):
    v = mp.mpf(v)
    if v != 0 and abs(v) < mp.mpf("1e-300"):
        return "0.0"  # below f64's normal range: the f64 value is 0
    return mp.nstr(v, 32, min_fixed=-5, max_fixed=30)


# ---------------------------------------------------------------------------
# 2F1(1, q; c; z) and its partial derivatives in q, c and z.
HYP_CASES = [
    (1.0, 2.0, 0.5),
    (0.55, 2.16, 0.1),
    (1.61, 2.16, 0.3),
    (3.5, 5.0, 0.5),
    (3.5, 5.0, 0.51),
    (1.6, 2.15, 0.9),
    (1.5, 2.7, 0.99),
    (50.0, 50.6, 0.999),
    (0.6, 50.6, 0.99),
    (1.2, 3.4, 0.99999),
    (1000.5, 1002.1, 0.7),
    (1.61, 1001.6, 0.95),
    (2.0, 2.0000001, 0.3),
    (1.0000001, 1.5, 0.999999),
]


def hyp_row(q, c, z):
    f = lambda q, c, z: mp.hyp2f1(1, q, c, z)
    q, c, z = mp.mpf(q), mp.mpf(c), mp.mpf(z)
    return (
        f(q, c, z),
        mp.diff(lambda t: f(t, c, z), q),
        mp.diff(lambda t: f(q, t, z), c),
        # d/dz 2F1(1, q; c; z) = q/c 2F1(2, q+1; c+1; z)
        q / c * mp.hyp2f1(2, q + 1, c + 1, z),
    )


# ---------------------------------------------------------------------------
# Pareto/NBD: log-likelihood and P(alive) by Fader, Hardie & Lee's note (18)-(20), as in
# lifetimes' ParetoNBDFitter, and cross-checked against the integral form
#   L = G(r+x) a^r b^s / G(r) [ (a+T)^-(r+x) (b+T)^-s + s Int_tx^T (a+y)^-(r+x) (b+y)^-(s+1) dy ].
def pnbd(r, alpha, s, beta, x, tx, T):
    r, alpha, s, beta, tx, T = map(mp.mpf, (r, alpha, s, beta, tx, T))
    if alpha >= beta:
        lo, hi, t = beta, alpha, s + 1
    else:
        lo, hi, t = alpha, beta, r + x
    rsx = r + s + x
    d = hi - lo
    if tx < T:
        a0 = (
            mp.hyp2f1(rsx, t, rsx + 1, d / (hi + tx)) / (hi + tx) ** rsx
            - mp.hyp2f1(rsx, t, rsx + 1, d / (hi + T)) / (hi + T) ** rsx
        )
    else:
        a0 = mp.mpf(0)
    alive = (alpha + T) ** -(r + x) * (beta + T) ** -s
    dead = s / rsx * a0
    if tx < T and x < 100:
        integral = mp.quad(
            lambda y: (alpha + y) ** -(r + x) * (beta + y) ** -(s + 1), [tx, (tx + T) / 2, T]
        )
        assert abs(s * integral / dead - 1) < mp.mpf(10) ** -30, (x, tx, T)
    ln_l = mp.loggamma(r + x) - mp.loggamma(r) + r * mp.log(alpha) + s * mp.log(beta)
    ln_l += mp.log(alive + dead)
    return ln_l, alive / (alive + dead)


def pnbd_expected(r, alpha, s, beta, x, tx, T, t):
    """Note (41): P(alive) (r+x)(b+T)/((a+T)(s-1)) [1 - ((b+T)/(b+T+t))^(s-1)]."""
    _, p_alive = pnbd(r, alpha, s, beta, x, tx, T)
    r, alpha, s, beta, tx, T, t = map(mp.mpf, (r, alpha, s, beta, tx, T, t))
    if s == 1:
        span = mp.log((beta + T + t) / (beta + T))
    else:
        span = (1 - ((beta + T) / (beta + T + t)) ** (s - 1)) / (s - 1)
    return p_alive * (r + x) * (beta + T) / (alpha + T) * span


CDNOW = (0.5532755276314094, 10.577612654866332, 0.606213540979588, 11.667910369613868)
PNBD_CASES = [
    # (r, alpha, s, beta), x, tx, T, horizon
    (CDNOW, 0, 0.0, 38.86, 39.0),
    (CDNOW, 2, 30.43, 38.86, 39.0),
    (CDNOW, 1, 1.71, 38.86, 10.0),
    (CDNOW, 10, 35.0, 38.86, 52.0),
    (CDNOW, 5, 38.86, 38.86, 39.0),  # tx = T: no dropout term
    (CDNOW, 3, 38.8599, 38.86, 39.0),  # tx close to T
    # alpha = beta exactly and nearly
    ((0.7, 4.0, 0.9, 4.0), 3, 12.0, 30.0, 20.0),
    ((0.7, 4.0, 0.9, 4.0 * (1 + 1e-9)), 3, 12.0, 30.0, 20.0),
    ((0.7, 4.0 * (1 + 1e-9), 0.9, 4.0), 3, 12.0, 30.0, 20.0),
    # alpha >> beta and alpha << beta (z close to 1 for small recency)
    ((0.5, 200.0, 0.3, 0.5), 0, 0.0, 30.0, 20.0),
    ((0.5, 200.0, 0.3, 0.5), 2, 0.5, 30.0, 20.0),
    ((0.5, 0.02, 0.3, 5000.0), 0, 0.0, 30.0, 20.0),
    ((0.5, 0.02, 0.3, 5000.0), 4, 0.1, 30.0, 20.0),
    # large counts, where lifetimes' hyp2f1(r+s+x, r+x; ...) overflows (alpha < beta)
    ((0.6, 11.6, 0.52, 18.8), 800, 50.0, 52.0, 10.0),
    ((0.6, 11.6, 0.52, 18.8), 2000, 51.9, 52.0, 10.0),
    ((0.6, 11.6, 0.52, 18.8), 2000, 20.0, 52.0, 10.0),
    ((0.6, 18.8, 0.52, 11.6), 2000, 20.0, 52.0, 10.0),
    # s = 1 exactly (the expected-purchases limit)
    ((0.6, 11.6, 1.0, 18.8), 4, 20.0, 52.0, 26.0),
]


def main():
    print("// hyp2f1.rs MPMATH: (q, c, z, value, d/dq, d/dc, d/dz)")
    for q, c, z in HYP_CASES:
        row = hyp_row(q, c, z)
        print(f"({q!r}, {c!r}, {z!r}, {', '.join(fmt(v) for v in row)}),")
    print()
    print("// models.rs PARETO_NBD_MPMATH: ([r, alpha, s, beta], x, tx, T, t, ln L, P(alive), E[X(T, T+t)])")
    for params, x, tx, T, t in PNBD_CASES:
        ln_l, p_alive = pnbd(*params, x, tx, T)
        expected = pnbd_expected(*params, x, tx, T, t)
        ps = ", ".join(repr(float(p)) for p in params)
        print(f"([{ps}], {x}, {tx!r}, {T!r}, {t!r}, {fmt(ln_l)}, {fmt(p_alive)}, {fmt(expected)}),")


if __name__ == "__main__":
    main()
