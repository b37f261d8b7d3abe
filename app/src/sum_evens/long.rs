//! Numbers too long for an `i128`, added in decimal: each is added digit group by digit group
//! into a sum held in base 10^18, from its last digit up, so a number of D digits costs O(D)
//! (converting it to a binary big integer first costs O(D²): 4 million digits took 20 s).
//! The final sum is written out from the same limbs, again in linear time.

/// 10^18, the base of a limb: 18 decimal digits.
const BASE: u64 = 1_000_000_000_000_000_000;
const LIMB_DIGITS: usize = 18;

/// A signed sum of long numbers: the positive and the negative ones apart, each a magnitude
/// in base 10^18, least significant limb first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LongSum {
    positive: Vec<u64>,
    negative: Vec<u64>,
}

impl LongSum {
    /// Adds the number whose ASCII digits (most significant first) are `digits`.
    pub(crate) fn add_digits(&mut self, digits: &[u8], negative: bool) {
        let target = if negative {
            &mut self.negative
        } else {
            &mut self.positive
        };
        add_digits(target, digits);
    }

    pub(crate) fn merge(&mut self, other: &LongSum) {
        add_limbs(&mut self.positive, &other.positive);
        add_limbs(&mut self.negative, &other.negative);
    }

    /// The sum plus `plus` (given as a decimal, `-` allowed), as a decimal.
    pub(crate) fn to_decimal(&self, plus: &str) -> String {
        let mut positive = self.positive.clone();
        let mut negative = self.negative.clone();
        match plus.strip_prefix('-') {
            Some(digits) => add_digits(&mut negative, digits.as_bytes()),
            None => add_digits(&mut positive, plus.as_bytes()),
        }
        let (sign, magnitude) = if compare(&positive, &negative).is_lt() {
            subtract(&mut negative, &positive);
            ("-", negative)
        } else {
            subtract(&mut positive, &negative);
            ("", positive)
        };
        let text = write(&magnitude);
        if text == "0" {
            text
        } else {
            format!("{sign}{text}")
        }
    }
}

/// Adds decimal `digits` into `limbs`.
fn add_digits(limbs: &mut Vec<u64>, digits: &[u8]) {
    let groups = digits.len().div_ceil(LIMB_DIGITS);
    if limbs.len() < groups {
        limbs.resize(groups, 0);
    }
    let mut carry = 0;
    let mut end = digits.len();
    let mut i = 0;
    while end > 0 {
        let start = end.saturating_sub(LIMB_DIGITS);
        let group = digits[start..end]
            .iter()
            .fold(0u64, |value, &d| value * 10 + u64::from(d - b'0'));
        let sum = limbs[i] + group + carry;
        (limbs[i], carry) = if sum >= BASE {
            (sum - BASE, 1)
        } else {
            (sum, 0)
        };
        end = start;
        i += 1;
    }
    propagate(limbs, i, carry);
}

/// Adds `other` into `limbs`.
fn add_limbs(limbs: &mut Vec<u64>, other: &[u64]) {
    if limbs.len() < other.len() {
        limbs.resize(other.len(), 0);
    }
    let mut carry = 0;
    for (i, &limb) in other.iter().enumerate() {
        let sum = limbs[i] + limb + carry;
        (limbs[i], carry) = if sum >= BASE {
            (sum - BASE, 1)
        } else {
            (sum, 0)
        };
    }
    propagate(limbs, other.len(), carry);
}

/// Carries `carry` into `limbs` from limb `i` on.
fn propagate(limbs: &mut Vec<u64>, mut i: usize, mut carry: u64) {
    while carry > 0 {
        if i == limbs.len() {
            limbs.push(0);
        }
        let sum = limbs[i] + carry;
        (limbs[i], carry) = if sum >= BASE {
            (sum - BASE, 1)
        } else {
            (sum, 0)
        };
        i += 1;
    }
}

fn significant(limbs: &[u64]) -> &[u64] {
    let len = limbs.iter().rposition(|&l| l != 0).map_or(0, |i| i + 1);
    &limbs[..len]
}

fn compare(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    let (a, b) = (significant(a), significant(b));
    a.len()
        .cmp(&b.len())
        .then_with(|| a.iter().rev().cmp(b.iter().rev()))
}

/// `limbs -= other`, where `limbs >= other`.
fn subtract(limbs: &mut [u64], other: &[u64]) {
    let mut borrow = 0;
    for (i, limb) in limbs.iter_mut().enumerate() {
        if i >= other.len() && borrow == 0 {
            break;
        }
        let take = other.get(i).copied().unwrap_or(0) + borrow;
        (*limb, borrow) = if *limb >= take {
            (*limb - take, 0)
        } else {
            (*limb + BASE - take, 1)
        };
    }
}

fn write(limbs: &[u64]) -> String {
    let limbs = significant(limbs);
    let Some((top, rest)) = limbs.split_last() else {
        return "0".to_owned();
    };
    let mut text = String::with_capacity(limbs.len() * LIMB_DIGITS);
    text.push_str(&top.to_string());
    for limb in rest.iter().rev() {
        text.push_str(&format!("{limb:018}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigInt;
    use proptest::prelude::*;

    fn reference(numbers: &[(String, bool)], plus: &str) -> String {
        let mut sum: BigInt = plus.parse().unwrap();
        for (digits, negative) in numbers {
            let value: BigInt = digits.parse().unwrap();
            sum += if *negative { -value } else { value };
        }
        sum.to_string()
    }

    #[test]
    fn carries_borrows_and_signs() {
        let nines = "9".repeat(40);
        let mut sum = LongSum::default();
        sum.add_digits(nines.as_bytes(), false);
        sum.add_digits(b"1", false);
        assert_eq!(sum.to_decimal("0"), format!("1{}", "0".repeat(40)));
        assert_eq!(sum.to_decimal("-1"), nines);
        let mut sum = LongSum::default();
        sum.add_digits(nines.as_bytes(), true);
        assert_eq!(sum.to_decimal("0"), format!("-{nines}"));
        assert_eq!(sum.to_decimal(&nines), "0");
        assert_eq!(LongSum::default().to_decimal("-12"), "-12");
        assert_eq!(LongSum::default().to_decimal("0"), "0");
    }

    proptest! {
        #[test]
        fn matches_big_integer_arithmetic(
            numbers in proptest::collection::vec(("[1-9][0-9]{0,80}", any::<bool>()), 0..12),
            plus in "-?[1-9][0-9]{0,30}|0",
            split in 0usize..12,
        ) {
            // Added in two halves merged, as ranges of a file are.
            let (left, right) = numbers.split_at(split.min(numbers.len()));
            let mut a = LongSum::default();
            for (digits, negative) in left {
                a.add_digits(digits.as_bytes(), *negative);
            }
            let mut b = LongSum::default();
            for (digits, negative) in right {
                b.add_digits(digits.as_bytes(), *negative);
            }
            a.merge(&b);
            prop_assert_eq!(a.to_decimal(&plus), reference(&numbers, &plus));
        }
    }
}
