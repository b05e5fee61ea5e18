//! ₂F₁(1, q; c; z) with its partial derivatives, for the Pareto/NBD likelihood.
//!
//! The Pareto/NBD likelihood needs ∫ₐ^∞ (m+y)^−p (M+y)^−q dy (m ≤ M, p, q > 0). Fader, Hardie &
//! Lee's note "A Note on Deriving the Pareto/NBD Model and Related Expressions" (2005, eqs.
//! 19–20) and lifetimes' `ParetoNBDFitter._log_A_0` write it with ₂F₁(r+s+x, ·; r+s+x+1; z),
//! whose value grows like (1−z)^−(r+x) and overflows for large purchase counts. Euler's
//! transformation ₂F₁(a, b; c; z) = (1−z)^(c−a−b) ₂F₁(c−a, c−b; c; z) turns it into
//! ₂F₁(1, q; q+p; z) times elementary factors (see `pareto_nbd`), a series of positive terms
//! (q)ₙ/(q+p)ₙ zⁿ, each at most zⁿ: the value lies in [1, 1/(1−z)] whatever the counts.
//!
//! For z ≤ 1/2 the power series is summed directly (≤ 60 terms); above, where it needs
//! ~40/(1−z) terms, Gauss's continued fraction for the same function (the one behind the
//! incomplete beta function, Numerical Recipes §6.4, evaluated by the modified Lentz method)
//! takes ~2.4/√(1−z) steps. Derivatives come along: analytically in the series, carried through
//! the Lentz recurrences in the continued fraction. Accuracy: ~1e-15 relative from the series;
//! from the continued fraction ~1e-14/√(1−z) for the value and ~1e-10/√(1−z) for the
//! derivatives, whose conditioning worsens near z = 1 (enough for an optimiser's gradient; the
//! CDNOW fits never leave the series range at their optimum).

use crate::error::{Error, Result};

/// Most continued-fraction steps before giving up: enough for 1 − z down to ~1e-11.
const MAX_CF_STEPS: usize = 1_000_000;

/// Above this z the continued fraction is used instead of the power series.
const SERIES_LIMIT: f64 = 0.5;

/// ₂F₁(1, q; c; z) and its partial derivatives in q, c and z.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct UnitHyp {
    /// The value, ≥ 1.
    pub value: f64,
    /// ∂/∂q.
    pub d_q: f64,
    /// ∂/∂c.
    pub d_c: f64,
    /// ∂/∂z.
    pub d_z: f64,
}

/// ₂F₁(1, q; c; z) for q > 0, c > max(q, 1) and 0 ≤ z < 1, with its partial derivatives.
///
/// # Errors
///
/// [`Error::Validation`] for arguments outside that range; [`Error::NotConverged`] when the
/// continued fraction has not settled after a million steps (1 − z below ~1e-11).
pub(crate) fn hyp2f1_one(q: f64, c: f64, z: f64) -> Result<UnitHyp> {
    if !(q.is_finite() && c.is_finite() && z.is_finite() && q > 0.0 && c > q && c > 1.0) {
        return Err(Error::validation(
            "q, c",
            format!("hyp2f1(1, {q}; {c}; z) needs q > 0 and c > max(q, 1)"),
        ));
    }
    if !(0.0..1.0).contains(&z) {
        return Err(Error::validation(
            "z",
            format!("hyp2f1(1, {q}; {c}; z) needs 0 ≤ z < 1, got {z}"),
        ));
    }
    if z == 0.0 {
        return Ok(UnitHyp {
            value: 1.0,
            d_q: 0.0,
            d_c: 0.0,
            d_z: q / c,
        });
    }
    if z <= SERIES_LIMIT {
        Ok(series(q, c, z))
    } else {
        continued_fraction(q, c, z)
    }
}

/// Σ tₙ with t₀ = 1, tₙ₊₁ = tₙ (q+n)/(c+n) z; ∂tₙ/∂q = tₙ Σₖ₍ₙ 1/(q+k),
/// ∂tₙ/∂c = −tₙ Σₖ₍ₙ 1/(c+k), ∂tₙ/∂z = n tₙ / z. All terms are positive.
fn series(q: f64, c: f64, z: f64) -> UnitHyp {
    let (mut t, mut sum, mut sum_q, mut sum_c, mut sum_z) = (1.0, 1.0, 0.0, 0.0, 0.0);
    let (mut acc_q, mut acc_c) = (0.0, 0.0);
    // 0.5ⁿ < 1e-17 · n⁻¹ by n = 64; positive terms that shrink by ≤ z each step.
    for n in 0..200 {
        let n = f64::from(n);
        // One division for both reciprocals.
        let w = 1.0 / ((q + n) * (c + n));
        let (inv_q, inv_c) = ((c + n) * w, (q + n) * w);
        let t_over_z = t * (q + n) * inv_c;
        acc_q += inv_q;
        acc_c += inv_c;
        t = t_over_z * z;
        sum += t;
        sum_q += t * acc_q;
        sum_c -= t * acc_c;
        let dz = (n + 1.0) * t_over_z;
        sum_z += dz;
        if t <= 1e-17 * sum && dz <= 1e-17 * sum_z {
            break;
        }
    }
    UnitHyp {
        value: sum,
        d_q: sum_q,
        d_c: sum_c,
        d_z: sum_z,
    }
}

/// Keeps a Lentz denominator away from 0 (such a step does not happen for the arguments used
/// here, and has no meaningful derivative).
fn away_from_zero(v: f64) -> f64 {
    if v.abs() < 1e-300 {
        1e-300
    } else {
        v
    }
}

/// The modified-Lentz state: D and C with their derivatives in (q, c, z), and the running
/// value with the derivatives of its logarithm.
struct Lentz {
    d: f64,
    d_d: [f64; 3],
    c: f64,
    d_c: [f64; 3],
    value: f64,
    d_ln: [f64; 3],
}

impl Lentz {
    /// One step with partial numerator `aa` (gradient `d_aa`): D ← 1/(1 + aa D),
    /// C ← 1 + aa/C, value ← value · C D. Returns whether the step factor and its
    /// derivatives have settled.
    fn step(&mut self, aa: f64, d_aa: [f64; 3]) -> bool {
        let den = away_from_zero(1.0 + aa * self.d);
        let inv_c = 1.0 / self.c;
        let new_d = 1.0 / den;
        let new_c = away_from_zero(1.0 + aa * inv_c);
        let inv_new_c = 1.0 / new_c;
        let mut settled = true;
        for (i, &da) in d_aa.iter().enumerate() {
            let d_den = da * self.d + aa * self.d_d[i];
            let d_new_c = (da - aa * self.d_c[i] * inv_c) * inv_c;
            self.d_d[i] = -d_den * new_d * new_d;
            self.d_c[i] = d_new_c;
            // ∂ln(C D) = ∂C/C + ∂D/D.
            let g = d_new_c * inv_new_c - d_den * new_d;
            self.d_ln[i] += g;
            settled &= g.abs() <= 1e-16 * self.d_ln[i].abs().max(1.0);
        }
        self.d = new_d;
        self.c = new_c;
        let factor = new_c * new_d;
        self.value *= factor;
        settled && (factor - 1.0).abs() <= f64::EPSILON
    }
}

/// Gauss's continued fraction for ₂F₁(a+b, 1; a+1; x) with a = c−1, b = 1−(c−q), x = z (the
/// incomplete-beta fraction of Numerical Recipes §6.4), by the modified Lentz method, carrying
/// the derivatives of every partial numerator (∂a = ∂c, ∂b = ∂q − ∂c, ∂x = ∂z) through the
/// recurrences. The value is the product of the step factors, so ∂ln F is a sum.
fn continued_fraction(q: f64, c: f64, z: f64) -> Result<UnitHyp> {
    let (a, b, x) = (c - 1.0, q - c + 1.0, z);
    // D₀ = 1/(1 − q z / c).
    let first = away_from_zero(1.0 - q * x / c);
    let d_first = [-x / c, q * x / (c * c), -q / c];
    let d0 = 1.0 / first;
    let mut state = Lentz {
        d: d0,
        d_d: d_first.map(|v| -v * d0 * d0),
        c: 1.0,
        d_c: [0.0; 3],
        value: d0,
        d_ln: d_first.map(|v| -v * d0),
    };
    for m in 1..=MAX_CF_STEPS {
        let mf = m as f64;
        let m2 = 2.0 * mf;
        // Even: aa = m (b − m) x / ((a − 1 + 2m)(a + 2m)).
        let (p1, p2) = (a - 1.0 + m2, a + m2);
        let inv = 1.0 / (p1 * p2);
        let aa = mf * (b - mf) * x * inv;
        let by_b = mf * x * inv;
        let by_a = -aa * (p1 + p2) * inv;
        let even = state.step(aa, [by_b, by_a - by_b, mf * (b - mf) * inv]);
        // Odd: aa = −(a + m)(a + b + m) x / ((a + 2m)(a + 1 + 2m)), with a + b = q.
        let (p1, p2) = (a + m2, a + 1.0 + m2);
        let inv = 1.0 / (p1 * p2);
        let numerator = (a + mf) * (q + mf);
        let aa = -numerator * x * inv;
        let by_q = -(a + mf) * x * inv;
        let by_a = -(q + mf) * x * inv - aa * (p1 + p2) * inv;
        let odd = state.step(aa, [by_q, by_a, -numerator * inv]);
        if even && odd {
            let value = state.value;
            return Ok(UnitHyp {
                value,
                d_q: value * state.d_ln[0],
                d_c: value * state.d_ln[1],
                d_z: value * state.d_ln[2],
            });
        }
        if !state.value.is_finite() {
            break;
        }
    }
    Err(Error::not_converged(
        "hyp2f1",
        format!(
            "continued fraction for 2F1(1, {q}; {c}; {z}) did not settle in {MAX_CF_STEPS} steps"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    // (q, c, z, value, ∂q, ∂c, ∂z): mpmath at 50 digits, printed to 32 by
    // tests/data/mpmath_reference.py.
    #[allow(clippy::excessive_precision)]
    const MPMATH: [(f64, f64, f64, f64, f64, f64, f64); 14] = [
        (
            1.0,
            2.0,
            0.5,
            1.3862943611198906188344642429164,
            0.48045301391820142466710252632666,
            -0.25863970572833581763795092372967,
            1.2274112777602187623310715141673,
        ),
        (
            0.55,
            2.16,
            0.1,
            1.0267941861843726903029596939619,
            0.049609511869082328430745951984665,
            -0.01284693627571340492580424953466,
            0.28213804740297977610448038445061,
        ),
        (
            1.61,
            2.16,
            0.3,
            1.2987721689471872715813685794385,
            0.22134032283343420055348103148984,
            -0.16819982377657318696389708317276,
            1.336815436298829502237301943705,
        ),
        (
            3.5,
            5.0,
            0.5,
            1.5690624259901340054141492818538,
            0.23613229658539219788450109886011,
            -0.17019697300758198651505048623847,
            1.8784381660887939512726564633155,
        ),
        (
            3.5,
            5.0,
            0.51,
            1.588103590713712736100300245052,
            0.24647677483391166656792612584701,
            -0.17780465703952371575099146252618,
            1.9301742559788969157618231072467,
        ),
        (
            1.6,
            2.15,
            0.9,
            4.6482645705446412613468014300183,
            5.972523025853920008255304839656,
            -4.9613912924381320922312845547839,
            27.755519171754970217356645605853,
        ),
        (
            1.5,
            2.7,
            0.99,
            4.5527306642752883308736478705451,
            7.8619507741088182103010877277388,
            -5.8234868219156294048976098928804,
            72.844738099071887178227130755196,
        ),
        (
            50.0,
            50.6,
            0.999,
            256.85213682407280120667555375241,
            495.74364632676024085887654700489,
            -493.39868672468535093123291851663,
            139637.88577419918083357927218651,
        ),
        (
            0.6,
            50.6,
            0.99,
            1.0121184103968628925263159120954,
            0.0204420578140638755659545068089,
            -0.00024723040824037568369256820076576,
            0.01264445367040847288364138858127,
        ),
        (
            1.2,
            3.4,
            0.99999,
            1.9998957476736163246986152196284,
            1.6661292205922947442371699551471,
            -0.83292449333193276515000155265968,
            10.110505373943369784477530811626,
        ),
        (
            1000.5,
            1002.1,
            0.7,
            3.3209894510329063949680192314214,
            0.0076864501739284128558621525141508,
            -0.0076742058002088568116385015929526,
            11.01153619930095804416630046393,
        ),
        (
            1.61,
            1001.6,
            0.95,
            1.0015308461890983938168919139821,
            0.00095229165309203934492182621483146,
            -1.5321933724134811583094759199295e-6,
            0.0016154196710131923752311272267927,
        ),
        (
            2.0,
            2.0000001,
            0.3,
            1.4285714015833616251175498593675,
            0.26988066637651832441402998706819,
            -0.26988065393389593392127638421354,
            2.0408161738548344718966420658364,
        ),
        (
            1.0000001,
            1.5,
            0.999999,
            1569.7990640833284582361856141599,
            19525.801692130819491980695002871,
            -18563.792137855108440108933869893,
            785398904.59866959715766825179892,
        ),
    ];

    #[test]
    fn matches_mpmath() {
        for (q, c, z, value, d_q, d_c, d_z) in MPMATH {
            let h = hyp2f1_one(q, c, z).unwrap();
            // The continued fraction takes ~2.4/√(1−z) steps and its rounding errors grow
            // with them (~3e-12 at 1 − z = 1e-6); the derivatives are worse conditioned still
            // (~3e-9 in ∂/∂z at 1 − z = 1e-5), enough for an optimiser's gradient.
            let (tol, tol_d) = if z <= SERIES_LIMIT {
                (1e-14, 1e-14)
            } else {
                let steps = 1.0 / (1.0 - z).sqrt();
                (1e-14 * steps, 1e-10 * steps)
            };
            assert!(
                close(h.value, value, tol),
                "({q}, {c}, {z}): {h:?} vs {value}"
            );
            assert!(
                close(h.d_q, d_q, tol_d),
                "({q}, {c}, {z}) dq: {h:?} vs {d_q}"
            );
            assert!(
                close(h.d_c, d_c, tol_d),
                "({q}, {c}, {z}) dc: {h:?} vs {d_c}"
            );
            assert!(
                close(h.d_z, d_z, tol_d),
                "({q}, {c}, {z}) dz: {h:?} vs {d_z}"
            );
        }
    }

    #[test]
    fn closed_form() {
        let v = hyp2f1_one(1.0, 2.0, 0.5).unwrap();
        // ₂F₁(1, 1; 2; z) = −ln(1−z)/z
        assert!(close(v.value, 2.0 * 2f64.ln(), 1e-15));
    }

    #[test]
    fn series_and_continued_fraction_agree_at_the_switch() {
        for (q, c) in [(0.6, 2.2), (3.5, 5.0), (40.0, 40.7), (1.6, 300.0)] {
            let below = hyp2f1_one(q, c, SERIES_LIMIT).unwrap();
            let above = hyp2f1_one(q, c, f64::from_bits(SERIES_LIMIT.to_bits() + 1)).unwrap();
            assert!(
                close(above.value, below.value, 1e-13),
                "{below:?} {above:?}"
            );
            assert!(close(above.d_q, below.d_q, 1e-12), "{below:?} {above:?}");
            assert!(close(above.d_c, below.d_c, 1e-12), "{below:?} {above:?}");
            assert!(close(above.d_z, below.d_z, 1e-12), "{below:?} {above:?}");
        }
    }

    #[test]
    fn rejects_bad_arguments_and_reports_non_convergence() {
        for (q, c, z) in [
            (1.0, 2.0, 1.0),
            (1.0, 2.0, -0.1),
            (0.0, 2.0, 0.5),
            (2.0, 2.0, 0.5),
            (0.5, 0.9, 0.5),
            (f64::NAN, 2.0, 0.5),
        ] {
            assert!(
                matches!(hyp2f1_one(q, c, z), Err(Error::Validation { .. })),
                "({q}, {c}, {z})"
            );
        }
        // 1 − z = 1e-15 would take ~8e7 continued-fraction steps.
        assert!(matches!(
            hyp2f1_one(0.5, 1.7, 1.0 - 1e-15),
            Err(Error::NotConverged { .. })
        ));
        // z = 0 is exact.
        let h = hyp2f1_one(2.0, 5.0, 0.0).unwrap();
        assert_eq!((h.value, h.d_q, h.d_c, h.d_z), (1.0, 0.0, 0.0, 0.4));
    }
}
