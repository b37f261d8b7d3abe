//! Medians and round-by-round ratios: on a shared machine a ratio of two measurements taken
//! seconds apart holds where an absolute number does not.

/// The median (the lower middle of an even count); NaN for nothing.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .get((sorted.len().max(1) - 1) / 2)
        .copied()
        .unwrap_or(f64::NAN)
}

/// Each round's `a / b`.
pub(crate) fn per_round(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(a, b)| a / b).collect()
}

/// A set of per-round ratios: median, smallest and largest, and each one.
pub(crate) fn spread(ratios: &[f64]) -> String {
    let mut sorted = ratios.to_vec();
    sorted.sort_by(f64::total_cmp);
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
    match (sorted.first(), sorted.last()) {
        (Some(low), Some(high)) => format!(
            "median {:.3} x ({low:.3}-{high:.3}; {})",
            median(ratios),
            each.join(", ")
        ),
        _ => "no rounds".to_owned(),
    }
}

/// Whether `value` meets a target of at least (`at_least`) or at most `target`.
pub(crate) fn verdict(value: f64, target: f64, at_least: bool) -> &'static str {
    if (at_least && value >= target) || (!at_least && value <= target) {
        "met"
    } else {
        "NOT met"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.0, "the lower middle");
        assert!(median(&[]).is_nan());
        assert_eq!(per_round(&[2.0, 9.0], &[1.0, 3.0]), [2.0, 3.0]);
        assert_eq!(
            spread(&[1.0, 0.5, 2.0]),
            "median 1.000 x (0.500-2.000; 1.000, 0.500, 2.000)"
        );
        assert_eq!(verdict(0.9, 0.85, true), "met");
        assert_eq!(verdict(1.5, 1.3, false), "NOT met");
    }
}
