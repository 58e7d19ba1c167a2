//! The two-proportion z-test behind `GET /v1/experiments/{name}`: is a variant's rate (lists
//! clicked, carted, bought over lists served) different from the control's? Pure computation.
//!
//! The test statistic uses the pooled rate (the null hypothesis: both rates are equal); the
//! interval of the difference uses each arm's own variance (Wald), as is usual for reporting.
//! Both are normal approximations: trust them once each arm has some tens of successes and
//! failures, which the report states as `enough_data`.

use serde::Serialize;
use utoipa::ToSchema;

/// Two-sided significance level.
pub const ALPHA: f64 = 0.05;
/// The standard normal quantile for a 95% two-sided interval.
const Z_95: f64 = 1.959_963_984_540_054;
/// Successes and failures each arm needs before the normal approximation is trusted.
pub const MIN_OUTCOMES: u64 = 10;

/// A variant's rate compared with the control's.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Comparison {
    /// Variant rate minus control rate.
    pub difference: f64,
    /// 95% confidence interval of the difference, `[low, high]`.
    pub interval: [f64; 2],
    /// Relative change (difference over the control's rate); null when the control's rate is 0.
    pub lift: Option<f64>,
    pub z: f64,
    /// Two-sided p-value of "the rates are equal".
    pub p_value: f64,
    /// `p_value < 0.05` and enough data in both arms.
    pub significant: bool,
    /// Each arm has at least 10 successes and 10 failures.
    pub enough_data: bool,
}

/// Compares `x2` successes of `n2` (the variant) with `x1` of `n1` (the control); `None` when
/// either arm has no trials.
pub fn two_proportions(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<Comparison> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    // feedback counted on lists that were recorded before a restart of the counters could
    // exceed the lists: a rate is at most 1
    let (x1, x2) = (x1.min(n1), x2.min(n2));
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let p1 = x1 as f64 / n1f;
    let p2 = x2 as f64 / n2f;
    let difference = p2 - p1;
    let pooled = (x1 + x2) as f64 / (n1f + n2f);
    let se_pooled = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    let (z, p_value) = if se_pooled > 0.0 {
        let z = difference / se_pooled;
        (z, 2.0 * (1.0 - normal_cdf(z.abs())))
    } else {
        (0.0, 1.0)
    };
    let se = (p1 * (1.0 - p1) / n1f + p2 * (1.0 - p2) / n2f).sqrt();
    let enough_data = [x1, n1 - x1, x2, n2 - x2]
        .iter()
        .all(|&c| c >= MIN_OUTCOMES);
    Some(Comparison {
        difference,
        interval: [difference - Z_95 * se, difference + Z_95 * se],
        lift: (p1 > 0.0).then(|| difference / p1),
        z,
        p_value: p_value.clamp(0.0, 1.0),
        significant: enough_data && p_value < ALPHA,
        enough_data,
    })
}

/// The standard normal CDF through erf (Abramowitz and Stegun 7.1.26, error below 1.5e-7).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

fn erf(x: f64) -> f64 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    sign * (1.0 - poly * (-x * x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn normal_cdf_matches_tables() {
        for (x, want) in [
            (0.0, 0.5),
            (1.0, 0.841_344_7),
            (1.959_964, 0.975),
            (-2.575_829, 0.005),
            (3.0, 0.998_650_1),
        ] {
            assert!(
                close(normal_cdf(x), want, 2e-7),
                "cdf({x}) = {}",
                normal_cdf(x)
            );
        }
    }

    #[test]
    fn a_textbook_comparison() {
        // control 200 of 1000 (20%), variant 250 of 1000 (25%): pooled 22.5%,
        // z = 0.05 / sqrt(0.225 * 0.775 * 0.002) = 2.6774, p = 0.00742;
        // interval 0.05 -/+ 1.96 * sqrt(0.16/1000 + 0.1875/1000) = [0.013464, 0.086536]
        let c = two_proportions(200, 1000, 250, 1000).unwrap();
        assert!(close(c.difference, 0.05, 1e-12));
        assert!(close(c.z, 2.6774, 1e-4), "{}", c.z);
        assert!(close(c.p_value, 0.00742, 1e-5), "{}", c.p_value);
        assert!(close(c.interval[0], 0.013464, 1e-6), "{:?}", c.interval);
        assert!(close(c.interval[1], 0.086536, 1e-6), "{:?}", c.interval);
        assert!(close(c.lift.unwrap(), 0.25, 1e-12));
        assert!(c.significant && c.enough_data);
    }

    #[test]
    fn small_or_equal_samples_are_not_significant() {
        let c = two_proportions(3, 10, 6, 10).unwrap();
        assert!(!c.enough_data && !c.significant);
        let c = two_proportions(100, 1000, 100, 1000).unwrap();
        assert_eq!(c.difference, 0.0);
        assert!(!c.significant);
        let c = two_proportions(0, 50, 0, 50).unwrap();
        assert_eq!((c.z, c.p_value, c.lift), (0.0, 1.0, None));
        assert!(two_proportions(0, 0, 1, 2).is_none());
    }
}
