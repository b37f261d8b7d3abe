//! Even numbers summed by digit columns instead of converted one by one.
//!
//! A sum is linear in the digits: the sum of many numbers is the sum, over each decimal
//! position, of the digits in that position times its power of ten. So each number of up to
//! 32 digits is not turned into a value at all: the 32 bytes that end at its last digit are
//! loaded as two 16-byte vectors, every byte that is not one of its digits is masked off, and
//! what is left (the digits minus `'0'`) is added lane by lane into column sums, one set for
//! every even number and one for the negative ones again (the sum is the first less twice the
//! second); an odd number is masked off whole. The masks come from one table indexed by the
//! digit count, the parity and the sign, so there is no branch on any of them. Byte lanes are
//! emptied into 16-bit lanes every 28 numbers (9 × 28 = 252 still fits a byte), those into
//! `u64` columns every 256 times (256 × 252 fits 16 bits), and the columns become one exact
//! sum when a scan ends.

use num_bigint::BigInt;
use wide::{u8x16, u16x8};

use super::parse::Sum;

/// The longest number the columns take; longer ones are converted.
pub(crate) const MAX_DIGITS: usize = 32;

/// Numbers added to the byte lanes before they are emptied.
const LANE_NUMBERS: u32 = 28;

/// Times the byte lanes are emptied into the 16-bit lanes before those are emptied.
const WIDE_EMPTIES: u32 = 256;

/// `MASKS[kind][n]`, for the last `n` of 16 lanes of a number of a `kind` (odd, even and
/// positive, even and negative): the lanes it adds to the columns of every even number, and the
/// lanes it adds to the negative numbers' columns.
const MASKS: [[(u8x16, u8x16); 17]; 3] = {
    let mut masks = [[(u8x16::ZERO, u8x16::ZERO); 17]; 3];
    let mut n = 0;
    while n <= 16 {
        let mut lanes = [0u8; 16];
        let mut lane = 16 - n;
        while lane < 16 {
            lanes[lane] = 0xFF;
            lane += 1;
        }
        let keep = u8x16::new(lanes);
        masks[1][n] = (keep, u8x16::ZERO);
        masks[2][n] = (keep, keep);
        n += 1;
    }
    masks
};

const ZEROS: u8x16 = u8x16::splat(b'0');

/// Digit column sums of the even numbers of one scan.
#[derive(Debug, Default)]
pub(crate) struct Columns {
    /// Byte lanes ([`Lanes`]) of the numbers added one by one since they were last emptied.
    lanes: Lanes,
    pending: u32,
    /// The byte lanes' sums so far, in 16-bit lanes: `wide[2 × set]` holds lanes 0–7 of a
    /// set, `wide[2 × set + 1]` lanes 8–15.
    wide: [u16x8; 8],
    /// Times the byte lanes were emptied into `wide` since it was last emptied.
    empties: u32,
    /// `sums[set][lane]`, sets in the order of [`Lanes`]; lane 15 is the units column
    /// of its window.
    sums: [[u64; 16]; 4],
}

/// Byte lanes of digit sums: the low 16 digit positions and the next 16 of every even number,
/// then the same of the negative ones alone. The sum is the first pair's less twice the
/// second's: a negative number is added once with the rest and taken away twice.
type Lanes = [u8x16; 4];

/// Sixteen bytes as byte lanes.
#[inline]
fn lanes_of(bytes: &[u8]) -> u8x16 {
    let mut lanes = [0u8; 16];
    lanes.copy_from_slice(&bytes[..16]);
    u8x16::new(lanes)
}

/// Adds to `lanes` the number of `count` digits (at most [`MAX_DIGITS`]) whose last 16 bytes
/// are `low` and the 16 before them `high`, when it is even: no branch on the count, the sign
/// or the parity.
#[inline(always)]
fn add_number(
    lanes: &mut Lanes,
    low: u8x16,
    high: u8x16,
    count: usize,
    negative: bool,
    even: bool,
) {
    // The kind as a number, not as a mask of the sign, which the compiler makes a branch.
    let masks = &MASKS[usize::from(even) + usize::from(even & negative)];
    let (low_all, low_again) = masks[count.min(16)];
    let (high_all, high_again) = masks[count.saturating_sub(16).min(16)];
    let (low, high) = (low - ZEROS, high - ZEROS);
    lanes[0] += low & low_all;
    lanes[1] += high & high_all;
    lanes[2] += low & low_again;
    lanes[3] += high & high_again;
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
        let window = &bytes[end - 32..end];
        add_number(
            &mut self.lanes,
            lanes_of(&window[16..]),
            lanes_of(&window[..16]),
            count,
            negative,
            even,
        );
        self.pending += 1;
        if self.pending == LANE_NUMBERS {
            self.empty_lanes();
        }
    }

    /// Adds the run of numbers whose tokens start at `at + starts[i]` and end at
    /// `at + lasts[i]` (their last byte), when even, [`LANE_NUMBERS`] at a time in byte lanes
    /// of the loop's own. A number this loop cannot take (within 48 bytes of the start of
    /// `bytes`, or of more than [`MAX_DIGITS`] digits) is left out and its index pushed to
    /// `others`. Returns how many of the numbers taken were even.
    ///
    /// Compiled on its own (not inlined into the scan), so that the loop's lanes and counters
    /// stay in registers instead of on the stack with the scan's state.
    #[inline(never)]
    pub(crate) fn add_run(
        &mut self,
        bytes: &[u8],
        at: usize,
        starts: &[u32],
        lasts: &[u32],
        others: &mut Vec<usize>,
    ) -> u64 {
        let numbers = starts.len().min(lasts.len());
        // Only the first few numbers can end within 48 bytes of the start: they are left out
        // here, so that the loop has no check for them.
        let near = lasts[..numbers].partition_point(|&last| at + (last as usize) < 47);
        others.extend(0..near);
        let (starts, lasts) = (&starts[near..numbers], &lasts[near..numbers]);
        let mut evens = 0;
        let chunk = LANE_NUMBERS as usize;
        for (c, (starts, lasts)) in starts.chunks(chunk).zip(lasts.chunks(chunk)).enumerate() {
            let mut lanes = Lanes::default();
            // The numbers left out, a bit each: no call in the loop, which would make the
            // lanes live on the stack across it.
            let mut left_out = 0u32;
            for (i, (&start, &last)) in starts.iter().zip(lasts).enumerate() {
                let end = at + last as usize + 1;
                let len = (last - start) as usize + 1;
                if len > MAX_DIGITS + 1 {
                    left_out |= 1 << i;
                    continue;
                }
                let window: &[u8; 48] = bytes[end - 48..end]
                    .try_into()
                    .expect("a window of 48 bytes");
                let first = window[48 - len];
                let count = len - usize::from(first < b'0');
                if count > MAX_DIGITS {
                    left_out |= 1 << i;
                    continue;
                }
                let even = window[47] & 1 == 0;
                evens += u64::from(even);
                add_number(
                    &mut lanes,
                    lanes_of(&window[32..]),
                    lanes_of(&window[16..32]),
                    count,
                    first == b'-',
                    even,
                );
            }
            self.widen(lanes);
            while left_out != 0 {
                others.push(near + c * chunk + left_out.trailing_zeros() as usize);
                left_out &= left_out - 1;
            }
        }
        evens
    }

    /// Byte lanes into 16-bit lanes: two unpacks and two adds a vector.
    #[cold]
    fn empty_lanes(&mut self) {
        let lanes = std::mem::take(&mut self.lanes);
        self.pending = 0;
        self.widen(lanes);
    }

    /// Adds byte lanes to the 16-bit lanes.
    #[inline]
    fn widen(&mut self, lanes: Lanes) {
        for (lanes, wide) in lanes.into_iter().zip(self.wide.chunks_exact_mut(2)) {
            wide[0] += u16x8::from_u8x16_low(lanes);
            wide[1] += u16x8::from_u8x16_high(lanes);
        }
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
            // The negative numbers' columns count twice against the sum (see `Lanes`).
            let (negative, times) = if set >= 2 { (true, 2u32) } else { (false, 1) };
            let window = if set % 2 == 1 { 16 } else { 0 };
            for (lane, &column) in sums.iter().enumerate() {
                if column == 0 {
                    continue;
                }
                let power = (window + 15 - lane) as u32;
                match 10u128
                    .checked_pow(power)
                    .and_then(|p| p.checked_mul(u128::from(column) * u128::from(times)))
                    .and_then(|v| i128::try_from(v).ok())
                {
                    Some(value) => sum.add_i128(if negative { -value } else { value }),
                    None => {
                        let value = BigInt::from(column) * times * BigInt::from(10u32).pow(power);
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
        // Negative numbers go into both sets of lanes, and the second set must be emptied in
        // time as the first is.
        let nines: BigInt = "99999999999999999999999999999998".parse().unwrap();
        for count in [1000, 7_167, 7_168, 7_169, 20_000] {
            let many = vec!["99999999999999999999999999999998"; count];
            assert_eq!(sum_of(&many), &nines * count, "{count}");
            let negative = vec!["-99999999999999999999999999999998"; count];
            assert_eq!(sum_of(&negative), -&nines * count, "-{count}");
            let both: Vec<&str> = many
                .iter()
                .zip(&negative)
                .flat_map(|(p, n)| [*p, *n, *n])
                .collect();
            assert_eq!(sum_of(&both), -&nines * count, "+--{count}");
        }
    }
}
