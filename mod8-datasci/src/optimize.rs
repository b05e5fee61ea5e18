//! A small bounded quasi-Newton minimiser (BFGS with backtracking line search) for the
//! maximum-likelihood fits. Parameters are optimised in log space, so positivity is built in;
//! the box `[-bound, bound]` on each log-parameter keeps the search away from overflow, and an
//! optimum on the box is reported as non-convergence rather than returned as a fit.

/// Why the minimiser stopped without an optimum.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// The objective was not finite at the starting point.
    NonFiniteStart,
    /// The iteration limit was reached before the gradient vanished.
    IterationLimit {
        iterations: usize,
        gradient_norm: f64,
    },
    /// The best point lies on the box boundary of parameter `index`.
    AtBound { index: usize },
    /// The line search could not make progress although the gradient is not small.
    Stalled { gradient_norm: f64 },
    /// The gradient vanished, but moving the parameters in `indices` (one, or two together)
    /// much further towards 0 or ∞ is at least as good: the likelihood flattens out towards a
    /// degenerate model.
    Degenerate { indices: Vec<usize> },
}

impl Failure {
    /// The failure in words, with parameters called by `names` (log-parameter `i` is
    /// `names[i]`; `#i` when the slice is short).
    pub(crate) fn describe(&self, names: &[&str]) -> String {
        let name = |index: usize| {
            names
                .get(index)
                .map_or_else(|| format!("#{index}"), |n| (*n).to_owned())
        };
        match self {
            Failure::AtBound { index } => format!(
                "parameter {} ran to its bound (the likelihood keeps improving towards a degenerate model)",
                name(*index)
            ),
            Failure::Degenerate { indices } => {
                let names: Vec<String> = indices.iter().map(|i| name(*i)).collect();
                format!(
                    "{} {} off towards 0 or ∞ (the likelihood is flat or still improving there, so there is no interior optimum)",
                    if names.len() == 1 { "parameter" } else { "parameters" },
                    if names.len() == 1 {
                        format!("{} runs", names.join(""))
                    } else {
                        format!("{} run", names.join(" and "))
                    }
                )
            }
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NonFiniteStart => write!(f, "log-likelihood not finite at the start values"),
            Failure::IterationLimit {
                iterations,
                gradient_norm,
            } => write!(
                f,
                "stopped after {iterations} iterations with gradient norm {gradient_norm:.3e}"
            ),
            Failure::AtBound { index } => write!(
                f,
                "parameter #{index} ran to its bound (the likelihood keeps improving towards a degenerate model)"
            ),
            Failure::Stalled { gradient_norm } => write!(
                f,
                "line search stalled with gradient norm {gradient_norm:.3e}"
            ),
            Failure::Degenerate { indices } => write!(
                f,
                "parameters {indices:?} run off towards 0 or ∞ (the likelihood is flat or still improving there, so there is no interior optimum)"
            ),
        }
    }
}

/// A minimum found by [`minimize`].
#[derive(Debug, Clone)]
pub(crate) struct Minimum {
    pub x: Vec<f64>,
    pub value: f64,
    pub iterations: usize,
}

/// Options of [`minimize`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub max_iterations: usize,
    /// Converged when the largest gradient component is below this.
    pub gradient_tolerance: f64,
    /// Box on every coordinate: `[-bound, bound]`.
    pub bound: f64,
    /// A probe a factor of 20 away from the optimum (see [`finish`]) that is worse by no more
    /// than this (in objective units) means the objective is flat there. 0: only rounding
    /// (1e-10 relative) counts as flat.
    pub flat_tolerance: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_iterations: 500,
            gradient_tolerance: 1e-7,
            bound: 18.0,
            flat_tolerance: 0.0,
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn inf_norm(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Minimise `f`, which returns the objective and writes its gradient into the slice.
///
/// A non-finite objective (or a point outside the box) counts as +∞, so the line search backs
/// off from it.
pub(crate) fn minimize<F>(mut f: F, x0: &[f64], options: Options) -> Result<Minimum, Failure>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let n = x0.len();
    let in_box = |x: &[f64]| x.iter().all(|v| v.abs() <= options.bound);
    let mut eval = |x: &[f64], g: &mut [f64]| -> f64 {
        if !in_box(x) {
            return f64::INFINITY;
        }
        let v = f(x, g);
        if v.is_finite() && g.iter().all(|d| d.is_finite()) {
            v
        } else {
            f64::INFINITY
        }
    };

    let mut x = x0.to_vec();
    let mut g = vec![0.0; n];
    let mut fx = eval(&x, &mut g);
    if !fx.is_finite() {
        return Err(Failure::NonFiniteStart);
    }
    // Inverse Hessian approximation, row-major.
    let mut h = identity(n);
    let mut fresh_h = true;
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    let mut dir = vec![0.0; n];

    for iteration in 0..options.max_iterations {
        let gnorm = inf_norm(&g);
        if gnorm < options.gradient_tolerance {
            return finish(x, fx, iteration, options, &mut eval);
        }
        for i in 0..n {
            dir[i] = -(0..n).map(|j| h[i * n + j] * g[j]).sum::<f64>();
        }
        let mut slope = dot(&g, &dir);
        if slope >= 0.0 || !slope.is_finite() {
            h = identity(n);
            fresh_h = true;
            for i in 0..n {
                dir[i] = -g[i];
            }
            slope = dot(&g, &dir);
        }
        // Never step more than 2 (a factor e² in a parameter) in one go.
        let longest = inf_norm(&dir);
        let mut step = if longest > 2.0 { 2.0 / longest } else { 1.0 };
        let mut accepted = false;
        for _ in 0..60 {
            for i in 0..n {
                x_new[i] = x[i] + step * dir[i];
            }
            let f_new = eval(&x_new, &mut g_new);
            if f_new <= fx + 1e-4 * step * slope {
                // BFGS update of the inverse Hessian.
                let s: Vec<f64> = (0..n).map(|i| x_new[i] - x[i]).collect();
                let y: Vec<f64> = (0..n).map(|i| g_new[i] - g[i]).collect();
                let sy = dot(&s, &y);
                if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() && sy > 0.0 {
                    if fresh_h {
                        // Scale the initial identity to the curvature just seen.
                        let scale = sy / dot(&y, &y);
                        for v in h.iter_mut() {
                            *v *= scale;
                        }
                        fresh_h = false;
                    }
                    bfgs_update(&mut h, &s, &y, sy);
                }
                let decrease = fx - f_new;
                x.copy_from_slice(&x_new);
                g.copy_from_slice(&g_new);
                fx = f_new;
                accepted = true;
                // Descent keeps pushing a coordinate out through its bound: a degenerate optimum.
                if let Some(index) = near_bound(&x, options) {
                    if g[index] * x[index].signum() < 0.0 {
                        return Err(Failure::AtBound { index });
                    }
                }
                // Objective flat to machine precision: done if the gradient is small too.
                if decrease <= 1e-15 * fx.abs().max(1.0) && inf_norm(&g) < 1e-4 {
                    return finish(x, fx, iteration + 1, options, &mut eval);
                }
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            if fresh_h {
                let gradient_norm = inf_norm(&g);
                if gradient_norm < 1e-4 || near_bound(&x, options).is_some() {
                    return finish(x, fx, iteration, options, &mut eval);
                }
                return Err(Failure::Stalled { gradient_norm });
            }
            h = identity(n);
            fresh_h = true;
        }
    }
    Err(Failure::IterationLimit {
        iterations: options.max_iterations,
        gradient_norm: inf_norm(&g),
    })
}

/// How far (in log-parameter units, a factor e³ ≈ 20) [`finish`] probes each coordinate,
/// less where the box is closer.
const PROBE_STEP: f64 = 3.0;

fn finish(
    x: Vec<f64>,
    value: f64,
    iterations: usize,
    options: Options,
    eval: &mut dyn FnMut(&[f64], &mut [f64]) -> f64,
) -> Result<Minimum, Failure> {
    if let Some(index) = near_bound(&x, options) {
        return Err(Failure::AtBound { index });
    }
    // A small gradient is not enough: a likelihood that keeps improving ever more slowly as
    // parameters run off to 0 or ∞ has a vanishing gradient long before the box (BG/NBD with
    // no visible dropout: a → 0 with b → ∞, or a and b → ∞ together, a point mass of dropout
    // probability). A true optimum is strictly better than the points a factor of 20 away along
    // every coordinate and every pair of coordinates; if one of them is as good, report a
    // degenerate model instead of returning it as a fit. (2n² evaluations, a few per cent of a
    // fit.)
    let tolerance = (1e-10 * value.abs().max(1.0)).max(options.flat_tolerance);
    let n = x.len();
    let mut probe = x.clone();
    let mut scratch = vec![0.0; n];
    let mut directions: Vec<Vec<(usize, f64)>> = Vec::new();
    for i in 0..n {
        for si in [1.0, -1.0] {
            directions.push(vec![(i, si)]);
            for j in i + 1..n {
                for sj in [1.0, -1.0] {
                    directions.push(vec![(i, si), (j, sj)]);
                }
            }
        }
    }
    for direction in directions {
        // One step length for every coordinate of the direction, shortened to stay in the box,
        // so a pair keeps its ratio (a and b growing together near b's bound).
        let step = direction
            .iter()
            .map(|&(i, sign)| options.bound - sign * x[i])
            .fold(PROBE_STEP, f64::min);
        if step < 0.5 {
            continue;
        }
        for &(i, sign) in &direction {
            probe[i] = x[i] + sign * step;
        }
        let probed = eval(&probe, &mut scratch);
        probe.copy_from_slice(&x);
        if probed <= value + tolerance {
            return Err(Failure::Degenerate {
                indices: direction.iter().map(|&(i, _)| i).collect(),
            });
        }
    }
    Ok(Minimum {
        x,
        value,
        iterations,
    })
}

fn near_bound(x: &[f64], options: Options) -> Option<usize> {
    x.iter().position(|v| v.abs() > options.bound - 0.5)
}

fn identity(n: usize) -> Vec<f64> {
    let mut h = vec![0.0; n * n];
    for i in 0..n {
        h[i * n + i] = 1.0;
    }
    h
}

/// H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ with ρ = 1/(yᵀs).
fn bfgs_update(h: &mut [f64], s: &[f64], y: &[f64], sy: f64) {
    let n = s.len();
    let rho = 1.0 / sy;
    let hy: Vec<f64> = (0..n)
        .map(|i| (0..n).map(|j| h[i * n + j] * y[j]).sum())
        .collect();
    let yhy = dot(y, &hy);
    for i in 0..n {
        for j in 0..n {
            h[i * n + j] +=
                -rho * (hy[i] * s[j] + s[i] * hy[j]) + (rho * rho * yhy + rho) * s[i] * s[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rosenbrock() {
        let m = minimize(
            |x, g| {
                let (a, b) = (x[0], x[1]);
                g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
                g[1] = 200.0 * (b - a * a);
                (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
            },
            &[-1.2, 1.0],
            Options::default(),
        )
        .unwrap();
        assert!(
            (m.x[0] - 1.0).abs() < 1e-5 && (m.x[1] - 1.0).abs() < 1e-5,
            "{m:?}"
        );
    }

    #[test]
    fn unbounded_descent_is_reported_at_bound() {
        // f = -x decreases forever.
        let r = minimize(
            |x, g| {
                g[0] = -1.0;
                -x[0]
            },
            &[0.0],
            Options::default(),
        );
        assert!(matches!(r, Err(Failure::AtBound { index: 0 })), "{r:?}");
    }

    #[test]
    fn vanishing_gradient_towards_infinity_is_degenerate() {
        // f = exp(−x) in x: the gradient falls below the tolerance near x ≈ 16 (inside the
        // box), but the infimum is at x → ∞, so there is no optimum to return.
        let r = minimize(
            |x, g| {
                g[0] = -(-x[0]).exp();
                (-x[0]).exp()
            },
            &[0.0],
            Options::default(),
        );
        assert_eq!(r.unwrap_err(), Failure::Degenerate { indices: vec![0] });
        assert_eq!(
            Failure::Degenerate { indices: vec![0] }.describe(&["a"]),
            "parameter a runs off towards 0 or ∞ (the likelihood is flat or still improving there, so there is no interior optimum)"
        );
    }

    #[test]
    fn flat_valley_towards_infinity_is_degenerate() {
        // f = (x − y)² + exp(−(x + y)): the minimum of the first term is the line x = y, along
        // which f keeps falling towards x = y → ∞; no single coordinate improves on its own.
        let r = minimize(
            |x, g| {
                let (d, e) = (x[0] - x[1], (-(x[0] + x[1])).exp());
                g[0] = 2.0 * d - e;
                g[1] = -2.0 * d - e;
                d * d + e
            },
            &[0.0, 0.0],
            Options::default(),
        );
        assert_eq!(
            r.unwrap_err(),
            Failure::Degenerate {
                indices: vec![0, 1]
            }
        );
        assert_eq!(
            Failure::Degenerate { indices: vec![2, 3] }.describe(&["r", "alpha", "a", "b"]),
            "parameters a and b run off towards 0 or ∞ (the likelihood is flat or still improving there, so there is no interior optimum)"
        );
    }

    #[test]
    fn nan_start_is_reported() {
        let r = minimize(|_, _| f64::NAN, &[0.0], Options::default());
        assert_eq!(r.unwrap_err(), Failure::NonFiniteStart);
    }
}
