//! Even numbers summed by digit columns instead of converted one by one.
//!
//! A sum is linear in the digits: the sum of many numbers is the sum, over each decimal
//! position, of the digits in that position times its power of ten. So each number of up to
//! 32 digits is not turned into a value at all: the 32 bytes that end at its last digit are
//! loaded as two 16-byte vectors, every byte that is not one of its digits is masked off, and
//! what is left (the digits minus `'0'`) is added lane by lane into column sums, one set for
//! positive and one for negative numbers, both masked off for odd numbers. The masks come from
//! tables indexed by the digit count, the sign and the parity, so there is no branch on any of
//! them. Byte lanes are emptied into 16-bit lanes every 28 numbers (9 × 28 = 252 still fits
//! a byte), those into `u64` columns every 256 times (256 × 252 fits 16 bits), and the columns
//! become one exact sum when a scan ends.

use num_bigint::BigInt;
use wide::{u8x16, u16x8};

use super::parse::Sum;

/// The longest number the columns take; longer ones are converted.
pub(crate) const MAX_DIGITS: usize = 32;

/// Numbers added to the byte lanes before they are emptied.
const LANE_NUMBERS: u32 = 28;

/// Times the byte lanes are emptied into the 16-bit lanes before those are emptied.
const WIDE_EMPTIES: u32 = 256;

/// `KEEP[n]`: the last `n` of 16 lanes.
const KEEP: [u8x16; 17] = {
    let mut keep = [u8x16::ZERO; 17];
    let mut n = 0;
    while n <= 16 {
        let mut lanes = [0u8; 16];
        let mut lane = 16 - n;
        while lane < 16 {
            lanes[lane] = 0xFF;
            lane += 1;
        }
        keep[n] = u8x16::new(lanes);
        n += 1;
    }
    keep
};

/// By `2 × negative + even`: the lanes kept for the positive and the negative columns.
const SELECT: [(u8x16, u8x16); 4] = [
    (u8x16::ZERO, u8x16::ZERO), // positive, odd
    (u8x16::MAX, u8x16::ZERO),  // positive, even
    (u8x16::ZERO, u8x16::ZERO), // negative, odd
    (u8x16::ZERO, u8x16::MAX),  // negative, even
];

const ZEROS: u8x16 = u8x16::splat(b'0');

/// Digit column sums of the even numbers of one scan.
#[derive(Debug, Default)]
pub(crate) struct Columns {
    /// Byte lanes: the low 16 digit positions and the next 16, positive and negative.
    low_positive: u8x16,
    high_positive: u8x16,
    low_negative: u8x16,
    high_negative: u8x16,
    pending: u32,
    /// The byte lanes' sums so far, in 16-bit lanes: `wide[2 × set]` holds lanes 0–7 of a
    /// set, `wide[2 × set + 1]` lanes 8–15.
    wide: [u16x8; 8],
    /// Times the byte lanes were emptied into `wide` since it was last emptied.
    empties: u32,
    /// `sums[set][lane]`, sets in the order of the lanes above; lane 15 is the units column
    /// of its window.
    sums: [[u64; 16]; 4],
}

fn load16(bytes: &[u8], at: usize) -> u8x16 {
    let mut lanes = [0u8; 16];
    lanes.copy_from_slice(&bytes[at..at + 16]);
    u8x16::new(lanes)
}

impl Columns {
    /// Adds the number of `count` digits (at most [`MAX_DIGITS`]) that ends at `end`, when it
    /// is even; `bytes[end - 32..end]` must exist.
    #[inline]
    pub(crate) fn add(
        &mut self,
        bytes: &[u8],
        end: usize,
        count: usize,
        negative: bool,
        even: bool,
    ) {
        debug_assert!(count <= MAX_DIGITS && end >= MAX_DIGITS);
        let low = (load16(bytes, end - 16) - ZEROS) & KEEP[count.min(16)];
        let high = (load16(bytes, end - 32) - ZEROS) & KEEP[count.saturating_sub(16)];
        let (positive, negative) = SELECT[usize::from(negative) * 2 + usize::from(even)];
        self.low_positive += low & positive;
        self.high_positive += high & positive;
        self.low_negative += low & negative;
        self.high_negative += high & negative;
        self.pending += 1;
        if self.pending == LANE_NUMBERS {
            self.empty_lanes();
        }
    }

    /// Byte lanes into 16-bit lanes: two unpacks and two adds a vector.
    #[cold]
    fn empty_lanes(&mut self) {
        let lanes = [
            &mut self.low_positive,
            &mut self.high_positive,
            &mut self.low_negative,
            &mut self.high_negative,
        ];
        for (lanes, wide) in lanes.into_iter().zip(self.wide.chunks_exact_mut(2)) {
            wide[0] += u16x8::from_u8x16_low(*lanes);
            wide[1] += u16x8::from_u8x16_high(*lanes);
            *lanes = u8x16::ZERO;
        }
        self.pending = 0;
        self.empties += 1;
        if self.empties == WIDE_EMPTIES {
            self.empty_wide();
        }
    }

    fn empty_wide(&mut self) {
        for (set, sums) in self.sums.iter_mut().enumerate() {
            let halves = [self.wide[2 * set], self.wide[2 * set + 1]];
            let lanes = halves.iter().flat_map(|half| half.to_array());
            for (sum, lane) in sums.iter_mut().zip(lanes) {
                *sum += u64::from(lane);
            }
        }
        self.wide = [u16x8::ZERO; 8];
        self.empties = 0;
    }

    /// Adds what the columns hold to `sum`, exactly.
    pub(crate) fn finish(mut self, sum: &mut Sum) {
        self.empty_lanes();
        self.empty_wide();
        for (set, sums) in self.sums.iter().enumerate() {
            let negative = set >= 2;
            let window = if set % 2 == 1 { 16 } else { 0 };
            for (lane, &column) in sums.iter().enumerate() {
                if column == 0 {
                    continue;
                }
                let power = (window + 15 - lane) as u32;
                match 10u128
                    .checked_pow(power)
                    .and_then(|p| p.checked_mul(u128::from(column)))
                    .and_then(|v| i128::try_from(v).ok())
                {
                    Some(value) => sum.add_i128(if negative { -value } else { value }),
                    None => {
                        let value = BigInt::from(column) * BigInt::from(10u32).pow(power);
                        sum.add_big(if negative { -value } else { value });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum_of(numbers: &[&str]) -> BigInt {
        let mut text = " ".repeat(40);
        let mut columns = Columns::default();
        for n in numbers {
            text.push_str(n);
            let end = text.len();
            let (negative, digits) = match n.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, *n),
            };
            let even = digits.as_bytes()[digits.len() - 1] % 2 == 0;
            columns.add(text.as_bytes(), end, digits.len(), negative, even);
            text.push(',');
        }
        let mut sum = Sum::default();
        columns.finish(&mut sum);
        sum.value()
    }

    #[test]
    fn sums_the_even_numbers_exactly() {
        assert_eq!(sum_of(&["1", "2", "-4", "10"]), BigInt::from(8));
        let long = "98765432109876543210987654321098"; // 32 digits, even
        assert_eq!(
            sum_of(&[long, long, "-8"]),
            long.parse::<BigInt>().unwrap() * 2 - 8
        );
        // More than a byte lane holds, and more than a 16-bit lane (28 × 256 = 7,168 numbers
        // of nines): the lanes are emptied on the way.
        for count in [1000, 7_167, 7_168, 7_169, 20_000] {
            let many = vec!["99999999999999999999999999999998"; count];
            assert_eq!(
                sum_of(&many),
                "99999999999999999999999999999998"
                    .parse::<BigInt>()
                    .unwrap()
                    * count,
                "{count}"
            );
        }
    }
}
