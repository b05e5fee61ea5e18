//! Special functions statrs does not provide: the Gaussian hypergeometric function ₂F₁.

use crate::error::{Error, Result};

/// Upper bound on series terms; at |z| = 0.999 the series needs a few thousand.
const MAX_TERMS: usize = 200_000;

/// ₂F₁(a, b; c; z) by its power series, for 0 ≤ |z| < 1.
///
/// Terms are summed until two consecutive terms are below 1e-15 of the running sum (the series
/// terminates early when `a` or `b` is a non-positive integer). `c` must not be a non-positive
/// integer (the function has a pole there).
///
/// # Errors
///
/// [`Error::Validation`] for |z| ≥ 1, non-finite arguments or a pole in `c`;
/// [`Error::NotConverged`] when the series has not settled after 200,000 terms.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Result<f64> {
    check_arguments(a, b, c, &[z])?;
    let mut sum = 1.0_f64;
    let mut term = 1.0_f64;
    let mut small_in_a_row = 0;
    for n in 0..MAX_TERMS {
        let n = n as f64;
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        sum += term;
        if term == 0.0 {
            return Ok(sum);
        }
        if !sum.is_finite() {
            break;
        }
        if term.abs() <= 1e-15 * sum.abs() {
            small_in_a_row += 1;
            if small_in_a_row >= 2 {
                return Ok(sum);
            }
        } else {
            small_in_a_row = 0;
        }
    }
    Err(not_converged(a, b, c, z))
}

/// The argument checks of [`hyp2f1`], for every `z` of `zs`.
fn check_arguments(a: f64, b: f64, c: f64, zs: &[f64]) -> Result<()> {
    if let Some((name, _)) = [("a", a), ("b", b), ("c", c)]
        .into_iter()
        .chain(zs.iter().map(|&z| ("z", z)))
        .find(|(_, v)| !v.is_finite())
    {
        let z = zs
            .iter()
            .find(|z| !z.is_finite())
            .or(zs.first())
            .copied()
            .unwrap_or(f64::NAN);
        return Err(Error::validation(
            name,
            format!("hyp2f1({a}, {b}; {c}; {z}): non-finite argument"),
        ));
    }
    if let Some(z) = zs.iter().copied().find(|z| z.abs() >= 1.0) {
        return Err(Error::validation(
            "z",
            format!("hyp2f1 series needs |z| < 1, got {z}"),
        ));
    }
    if c <= 0.0 && (c - c.round()).abs() < 1e-12 {
        return Err(Error::validation(
            "c",
            format!("hyp2f1: c = {c} is a non-positive integer (pole)"),
        ));
    }
    Ok(())
}

/// [`hyp2f1`] at several `zs` with the same `a`, `b`, `c`, into `out` (same length).
///
/// The series are summed side by side: each term ratio (a+n)(b+n)/((c+n)(n+1)) — a division —
/// is computed once for all of them, and a series leaves the working set as soon as it stops.
/// Every series does exactly the operations of [`hyp2f1`] alone, in the same order, and stops by
/// the same rule, so every value is bit for bit the single-`z` result.
///
/// # Errors
///
/// As [`hyp2f1`], for the first `z` that fails.
pub(crate) fn hyp2f1_many(a: f64, b: f64, c: f64, zs: &[f64], out: &mut [f64]) -> Result<()> {
    debug_assert_eq!(zs.len(), out.len());
    if let ([z], [o]) = (zs, &mut *out) {
        *o = hyp2f1(a, b, c, *z)?;
        return Ok(());
    }
    check_arguments(a, b, c, zs)?;
    /// A series still being summed, and where its value goes.
    #[derive(Clone, Copy)]
    struct Open {
        z: f64,
        sum: f64,
        term: f64,
        small_in_a_row: u32,
        index: usize,
    }
    const ON_STACK: usize = 16;
    let start = |index: usize| Open {
        z: zs.get(index).copied().unwrap_or(0.0),
        sum: 1.0,
        term: 1.0,
        small_in_a_row: 0,
        index,
    };
    let mut stack = [start(0); ON_STACK];
    let mut heap = Vec::new();
    let open: &mut [Open] = if zs.len() <= ON_STACK {
        for (i, s) in stack.iter_mut().enumerate().take(zs.len()) {
            *s = start(i);
        }
        &mut stack[..zs.len()]
    } else {
        heap.extend((0..zs.len()).map(start));
        &mut heap
    };
    // `open[..live]` are the series still running; a finished one is swapped behind them.
    let mut live = open.len();
    for n in 0..MAX_TERMS {
        if live == 0 {
            return Ok(());
        }
        let n = n as f64;
        let ratio = (a + n) * (b + n) / ((c + n) * (n + 1.0));
        let mut k = 0;
        while k < live {
            let s = &mut open[k];
            s.term *= ratio * s.z;
            s.sum += s.term;
            let finished = if s.term == 0.0 {
                true
            } else if !s.sum.is_finite() {
                return Err(not_converged(a, b, c, s.z));
            } else if s.term.abs() <= 1e-15 * s.sum.abs() {
                s.small_in_a_row += 1;
                s.small_in_a_row >= 2
            } else {
                s.small_in_a_row = 0;
                false
            };
            if finished {
                out[s.index] = s.sum;
                live -= 1;
                open.swap(k, live);
            } else {
                k += 1;
            }
        }
    }
    if live == 0 {
        return Ok(());
    }
    Err(not_converged(a, b, c, open[0].z))
}

fn not_converged(a: f64, b: f64, c: f64, z: f64) -> Error {
    Error::NotConverged {
        model: "hyp2f1",
        reason: format!("series for ({a}, {b}; {c}; {z}) did not settle in {MAX_TERMS} terms"),
    }
}

/// `ln(exp(x) + exp(y))` without overflow.
pub(crate) fn log_add_exp(x: f64, y: f64) -> f64 {
    let m = x.max(y);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((x - m).exp() + (y - m).exp()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    #[test]
    fn closed_forms() {
        // 2F1(1,1;2;z) = -ln(1-z)/z
        for z in [-0.9, -0.5, 0.1, 0.5, 0.9, 0.99] {
            let v = hyp2f1(1.0, 1.0, 2.0, z).unwrap();
            assert!(close(v, -(1.0 - z).ln() / z, 1e-12), "z={z} v={v}");
        }
        // 2F1(a,b;b;z) = (1-z)^-a
        let v = hyp2f1(0.7, 2.5, 2.5, 0.6).unwrap();
        assert!(close(v, 0.4_f64.powf(-0.7), 1e-12));
        // terminating: 2F1(-2,b;c;z) = 1 - 2bz/c + b(b+1)z^2/(c(c+1))
        let (b, c, z) = (3.0, 5.0, 0.5);
        let expected = 1.0 - 2.0 * b * z / c + b * (b + 1.0) * z * z / (c * (c + 1.0));
        assert!(close(hyp2f1(-2.0, b, c, z).unwrap(), expected, 1e-14));
        // 2F1(1/2,1/2;3/2;z^2) = asin(z)/z
        let z: f64 = 0.8;
        assert!(close(
            hyp2f1(0.5, 0.5, 1.5, z * z).unwrap(),
            z.asin() / z,
            1e-12
        ));
    }

    /// The series one term after the other, as `hyp2f1` summed it before the terms' ratios were
    /// shared between several `z`.
    fn one_series(a: f64, b: f64, c: f64, z: f64) -> f64 {
        let (mut sum, mut term, mut small) = (1.0_f64, 1.0_f64, 0);
        for n in 0..MAX_TERMS {
            let n = n as f64;
            term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
            sum += term;
            if term == 0.0 {
                return sum;
            }
            if term.abs() <= 1e-15 * sum.abs() {
                small += 1;
                if small >= 2 {
                    return sum;
                }
            } else {
                small = 0;
            }
        }
        panic!("did not converge")
    }

    #[test]
    fn many_z_at_once_give_the_single_z_bits() {
        // Few and many (more than the 16 kept on the stack) z, with z = 0, negative z, z near
        // 1 (thousands of terms), and a terminating series.
        let zs: Vec<f64> = [0.0, -0.7, 0.05, 0.3, 0.55, 0.9, 0.999]
            .into_iter()
            .chain((1..=20).map(|k| k as f64 / 21.0))
            .collect();
        for (a, b, c) in [
            (0.7, 2.5, 3.1),
            (-0.4, 1.9, 2.2),
            (2.0, -3.0, 1.5),
            (1.0, 1.0, 2.0),
        ] {
            for len in [1, 3, zs.len()] {
                let mut out = vec![f64::NAN; len];
                hyp2f1_many(a, b, c, &zs[..len], &mut out).unwrap();
                for (&z, &v) in zs.iter().zip(&out) {
                    let alone = hyp2f1(a, b, c, z).unwrap();
                    assert_eq!(v.to_bits(), alone.to_bits(), "({a}, {b}; {c}; {z})");
                    assert_eq!(alone.to_bits(), one_series(a, b, c, z).to_bits());
                }
            }
        }
        assert!(hyp2f1_many(1.0, 1.0, 2.0, &[], &mut []).is_ok());
        assert!(matches!(
            hyp2f1_many(1.0, 1.0, 2.0, &[0.5, 1.0], &mut [0.0, 0.0]),
            Err(Error::Validation { field, .. }) if field == "z"
        ));
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(matches!(
            hyp2f1(1.0, 1.0, 2.0, 1.0),
            Err(Error::Validation { field, .. }) if field == "z"
        ));
        assert!(matches!(
            hyp2f1(1.0, 1.0, -1.0, 0.5),
            Err(Error::Validation { field, .. }) if field == "c"
        ));
        assert!(matches!(
            hyp2f1(f64::NAN, 1.0, 2.0, 0.5),
            Err(Error::Validation { field, .. }) if field == "a"
        ));
    }

    #[test]
    fn log_add_exp_is_stable() {
        assert!(close(
            log_add_exp(1000.0, 1000.0),
            1000.0 + 2f64.ln(),
            1e-15
        ));
        assert!(close(log_add_exp(-1000.0, 0.0), 0.0, 1e-15));
        assert_eq!(
            log_add_exp(f64::NEG_INFINITY, f64::NEG_INFINITY),
            f64::NEG_INFINITY
        );
    }
}
