//! Natural numbers held in base 10^19: each limb is 19 decimal digits, so writing one out only
//! formats its limbs. A binary big integer has to be divided by 10^19 once per limb to be
//! written, which for 400! (869 digits) cost more than computing it.

use std::fmt;

/// 10^19, the largest power of ten in a `u64`. Its top bit is set, so it is its own normalised
/// divisor for [`divide_by_ten_19`].
pub(super) const TEN_19: u64 = 10_000_000_000_000_000_000;
/// The reciprocal of [`TEN_19`] for division by multiplication (Möller and Granlund, "Improved
/// division by invariant integers", 2011): floor((2^128 - 1) / d) - 2^64.
const TEN_19_RECIPROCAL: u64 = (u128::MAX / TEN_19 as u128 - (1 << 64)) as u64;

/// (high·2^64 + low) divided by 10^19, for high < 10^19: the quotient and remainder with two
/// multiplications instead of a 128-bit division.
fn divide_by_ten_19(high: u64, low: u64) -> (u64, u64) {
    debug_assert!(high < TEN_19);
    let product = u128::from(TEN_19_RECIPROCAL) * u128::from(high)
        + ((u128::from(high) << 64) | u128::from(low));
    let mut quotient = ((product >> 64) as u64).wrapping_add(1);
    let mut remainder = low.wrapping_sub(quotient.wrapping_mul(TEN_19));
    if remainder > product as u64 {
        quotient = quotient.wrapping_sub(1);
        remainder = remainder.wrapping_add(TEN_19);
    }
    if remainder >= TEN_19 {
        quotient += 1;
        remainder -= TEN_19;
    }
    (quotient, remainder)
}

/// A natural number as limbs of 19 decimal digits, least significant first, with no zero limb
/// at the top (zero has no limbs), times a power of ten: trailing zeros are written out, not
/// multiplied in (400! ends in 99 of them). Compare numbers by their digits: 10 may be the limb
/// 10 or the limb 1 with one zero.
#[derive(Clone, Debug, Default)]
pub(crate) struct Decimal {
    limbs: Vec<u64>,
    zeros: usize,
}

impl Decimal {
    /// An empty number (zero) with room for `digits` decimal digits.
    fn with_capacity(digits: usize) -> Self {
        Self {
            limbs: Vec::with_capacity(digits.div_ceil(19)),
            zeros: 0,
        }
    }

    /// The number whose binary digits are `words`, least significant word first. `words` is
    /// used as scratch space and left holding zero.
    pub(crate) fn from_binary(words: &mut [u64]) -> Self {
        let mut len = words.iter().rposition(|&w| w != 0).map_or(0, |top| top + 1);
        let mut number = Self::with_capacity(len * 20);
        while len > 0 {
            if len == 1 && words[0] < TEN_19 {
                number.limbs.push(std::mem::take(&mut words[0]));
                break;
            }
            let mut remainder = 0;
            for word in words[..len].iter_mut().rev() {
                (*word, remainder) = divide_by_ten_19(remainder, *word);
            }
            number.limbs.push(remainder);
            while len > 0 && words[len - 1] == 0 {
                len -= 1;
            }
        }
        number
    }

    /// Multiplies by 10^exponent.
    pub(crate) fn times_power_of_ten(mut self, exponent: usize) -> Self {
        if !self.limbs.is_empty() {
            self.zeros += exponent;
        }
        self
    }

    /// The product of `self` and `other`, schoolbook and column by column: a column's limb
    /// products are summed in three words held in registers and the column divided by 10^19
    /// once (two steps of a word), so k limbs by k limbs take about 4k division steps, not one
    /// per limb product (k^2). Row by row, summing into a vector of columns, took 10% fewer
    /// instructions but 12% more time for 400!: each limb product's sum went through memory.
    pub(crate) fn mul(&self, other: &Self) -> Self {
        let (a, b) = (&self.limbs, &other.limbs);
        if a.is_empty() || b.is_empty() {
            return Self::default();
        }
        let columns = a.len() + b.len() - 1;
        let mut limbs = Vec::with_capacity(columns + 1);
        // The column's sum, wraps·2^128 + sum: a limb product is below 10^38, so three of them
        // can pass 2^128. It starts as the carry, the previous column's quotient.
        let (mut sum, mut wraps) = (0u128, 0u64);
        // b backwards, so that a column's pairs are two slices read forwards.
        let b_reversed: Vec<u64> = b.iter().rev().copied().collect();
        for column in 0..columns {
            // The limb pairs a[i]·b[column - i] for every i both have.
            let first = column.saturating_sub(b.len() - 1);
            let last = column.min(a.len() - 1);
            let backwards = &b_reversed[b.len() - 1 + first - column..b.len() + last - column];
            for (&x, &y) in a[first..=last].iter().zip(backwards) {
                let (next, wrapped) = sum.overflowing_add(u128::from(x) * u128::from(y));
                sum = next;
                wraps += u64::from(wrapped);
            }
            // Divided by 10^19 a word at a time, top word first; the quotient is below 2^128.
            let (high, middle) = divide_by_ten_19(wraps, (sum >> 64) as u64);
            let (low, limb) = divide_by_ten_19(middle, sum as u64);
            limbs.push(limb);
            (sum, wraps) = (u128::from(high) << 64 | u128::from(low), 0);
        }
        while sum > 0 {
            limbs.push((sum % u128::from(TEN_19)) as u64);
            sum /= u128::from(TEN_19);
        }
        Self {
            limbs,
            zeros: self.zeros + other.zeros,
        }
    }

    /// How many decimal digits the number has (zero has one).
    pub(crate) fn digits(&self) -> usize {
        match self.limbs.split_last() {
            None => 1,
            Some((&top, rest)) => {
                19 * rest.len() + top.checked_ilog10().unwrap_or(0) as usize + 1 + self.zeros
            }
        }
    }

    /// Appends the decimal digits to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let Some((&top, rest)) = self.limbs.split_last() else {
            out.push(b'0');
            return;
        };
        out.reserve(self.digits());
        let top = nineteen_digits(top);
        let leading = top.iter().take(18).take_while(|&&d| d == b'0').count();
        out.extend_from_slice(&top[leading..]);
        for &limb in rest.iter().rev() {
            out.extend_from_slice(&nineteen_digits(limb));
        }
        out.resize(out.len() + self.zeros, b'0');
    }
}

impl From<u64> for Decimal {
    fn from(value: u64) -> Self {
        let limbs = match value {
            0 => vec![],
            1..TEN_19 => vec![value],
            _ => vec![value % TEN_19, value / TEN_19],
        };
        Self { limbs, zeros: 0 }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut digits = Vec::new();
        self.write(&mut digits);
        // Only ASCII digits were written.
        f.write_str(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
    }
}

/// The pairs "00" to "99".
const DIGIT_PAIRS: [[u8; 2]; 100] = {
    let mut pairs = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        pairs[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    pairs
};

/// `limb` (below 10^19) as exactly 19 digits, leading zeros included: three digits and two
/// groups of eight, each group split into pairs with 32-bit arithmetic and the two groups
/// independent of each other, instead of nine dependent 64-bit divisions by 100.
fn nineteen_digits(limb: u64) -> [u8; 19] {
    let mut digits = [0u8; 19];
    let top = (limb / 10_000_000_000_000_000) as u32;
    let rest = limb % 10_000_000_000_000_000;
    digits[0] = b'0' + (top / 100) as u8;
    digits[1..3].copy_from_slice(&DIGIT_PAIRS[(top % 100) as usize]);
    eight_digits((rest / 100_000_000) as u32, &mut digits[3..11]);
    eight_digits((rest % 100_000_000) as u32, &mut digits[11..19]);
    digits
}

/// `group` (below 10^8) as exactly eight digits into `out`.
fn eight_digits(group: u32, out: &mut [u8]) {
    let (high, low) = (group / 10_000, group % 10_000);
    for (i, quad) in [high, low].into_iter().enumerate() {
        out[4 * i..4 * i + 2].copy_from_slice(&DIGIT_PAIRS[(quad / 100) as usize]);
        out[4 * i + 2..4 * i + 4].copy_from_slice(&DIGIT_PAIRS[(quad % 100) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use num_bigint::BigUint;

    use super::*;

    /// Pseudo-random words (xorshift), the same every run.
    fn words(seed: u64) -> impl Iterator<Item = u64> {
        std::iter::successors(Some(seed), |&x| {
            let x = x ^ x << 13;
            let x = x ^ x >> 7;
            Some(x ^ x << 17)
        })
        .skip(1)
    }

    #[test]
    fn division_by_ten_19_matches_u128_division() {
        let mut samples = vec![
            (0, 0),
            (0, u64::MAX),
            (TEN_19 - 1, u64::MAX),
            (TEN_19 - 1, 0),
        ];
        for x in words(0x9e37_79b9_7f4a_7c15).take(10_000) {
            samples.push((x % TEN_19, x.rotate_left(23)));
        }
        for (high, low) in samples {
            let n = (u128::from(high) << 64) | u128::from(low);
            let expected = (
                (n / u128::from(TEN_19)) as u64,
                (n % u128::from(TEN_19)) as u64,
            );
            assert_eq!(divide_by_ten_19(high, low), expected, "{high} {low}");
        }
    }

    fn from_biguint(value: &BigUint) -> Decimal {
        let mut words = value.to_u64_digits();
        Decimal::from_binary(&mut words)
    }

    #[test]
    fn binary_numbers_convert_to_their_digits() {
        let mut values: Vec<BigUint> = vec![BigUint::ZERO, TEN_19.into(), u64::MAX.into()];
        for k in 0..200u32 {
            let power = BigUint::from(10u32).pow(k);
            values.push(&power - 1u32);
            values.push(power.clone());
            values.push(power + 1u32);
            values.push(BigUint::from(2u32).pow(k * 3));
            values.push(BigUint::from(2u32).pow(k * 3) - 1u32);
        }
        for value in values {
            let decimal = from_biguint(&value);
            assert_eq!(decimal.to_string(), value.to_string());
            assert_eq!(decimal.digits(), value.to_string().len(), "{value}");
            assert_ne!(decimal.limbs.last(), Some(&0), "{value}");
        }
    }

    #[test]
    fn powers_of_ten_append_zeros() {
        let cases = [
            (0, 5, "0"),
            (7, 0, "7"),
            (7, 3, "7000"),
            (TEN_19 - 1, 19, ""),
        ];
        for (value, exponent, expected) in cases {
            let number = Decimal::from(value).times_power_of_ten(exponent);
            let expected = if expected.is_empty() {
                format!("{value}{}", "0".repeat(exponent))
            } else {
                expected.to_owned()
            };
            assert_eq!(number.to_string(), expected);
            assert_eq!(number.digits(), expected.len());
        }
        let product = Decimal::from(12)
            .times_power_of_ten(2)
            .mul(&Decimal::from(5).times_power_of_ten(1));
        assert_eq!(product.to_string(), "60000");
        assert_eq!(product.digits(), 5);
    }

    #[test]
    fn limbs_are_written_as_nineteen_digits() {
        let mut limbs = vec![
            0,
            1,
            9,
            10,
            99_999_999,
            100_000_000,
            TEN_19 - 1,
            TEN_19 / 10,
        ];
        for x in words(0x9e37_79b9_7f4a_7c15).take(10_000) {
            limbs.push(x % TEN_19);
            limbs.push(x % 1_000_000_000_000);
        }
        for limb in limbs {
            assert_eq!(nineteen_digits(limb), *format!("{limb:019}").as_bytes());
        }
    }

    #[test]
    fn products_match_big_integer_products() {
        let mut values = vec![
            Decimal::default(),
            Decimal::from(1),
            Decimal::from(TEN_19 - 1),
            Decimal::from(u64::MAX),
        ];
        // All limbs 10^19 - 1: the largest column sums and carries.
        for k in [2, 3, 10, 40, 100] {
            values.push(Decimal {
                limbs: vec![TEN_19 - 1; k],
                zeros: 0,
            });
        }
        for k in [2, 5, 23, 64] {
            let limbs: Vec<u64> = words(0x2545_f491_4f6c_dd1d ^ k as u64)
                .take(k)
                .map(|x| x % TEN_19)
                .collect();
            // Some trailing zeros too, which products add up.
            values.push(Decimal {
                limbs,
                zeros: k % 3,
            });
        }
        let big = |d: &Decimal| d.to_string().parse::<BigUint>().unwrap();
        for a in &values {
            for b in &values {
                let product = a.mul(b);
                assert_eq!(big(&product), big(a) * big(b));
                assert_ne!(product.limbs.last(), Some(&0), "{a} × {b}");
            }
        }
    }
}
