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
    if let Some((name, _)) = [("a", a), ("b", b), ("c", c), ("z", z)]
        .into_iter()
        .find(|(_, v)| !v.is_finite())
    {
        return Err(Error::validation(
            name,
            format!("hyp2f1({a}, {b}; {c}; {z}): non-finite argument"),
        ));
    }
    if z.abs() >= 1.0 {
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
    Err(Error::NotConverged {
        model: "hyp2f1",
        reason: format!("series for ({a}, {b}; {c}; {z}) did not settle in {MAX_TERMS} terms"),
    })
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
