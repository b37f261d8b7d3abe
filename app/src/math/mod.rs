//! The Sanic seed's functions on exact big integers, computed as the decimal digits they are
//! answered with: [`Decimal`] numbers hold 19 digits a limb, so no big division is needed to
//! write them; [`fibonacci`] doubles in fixed-width binary words, a handful of limbs at most.

mod decimal;
mod fibonacci;

pub use decimal::Decimal;
pub use fibonacci::{MAX_N as FIBONACCI_MAX_N, fibonacci};

/// n! = 1 × 2 × … × n, with 0! = 1. n! is 10^z·m, z being the number of 5s in its factors
/// (there are more 2s): the factors are multiplied with z 5s and z 2s taken out, and the z
/// zeros are written, not computed. 400! is 770 digits and 99 zeros, and the multiplying and
/// converting grow with the square of the digits.
pub fn factorial(n: u32) -> Decimal {
    let n = u64::from(n);
    let zeros = fives_in_factorial(n);
    let mut twos_left = zeros;
    let factors = (2..=n).map(|mut k| {
        let twos = u64::from(k.trailing_zeros()).min(twos_left);
        twos_left -= twos;
        k >>= twos;
        while k % 5 == 0 {
            k /= 5;
        }
        k
    });
    product(&chunks(factors)).times_power_of_ten(zeros as usize)
}

/// How many factors 5 n! has (Legendre): n/5 + n/25 + n/125 + …
fn fives_in_factorial(n: u64) -> u64 {
    let mut fives = 0;
    let mut multiples = n / 5;
    while multiples > 0 {
        fives += multiples;
        multiples /= 5;
    }
    fives
}

/// `factors` (each below 2^32) gathered into chunks, products that fit in 64 bits. They are
/// taken two at a time (a pair fits in 64 bits) where the pair fits in the chunk: about half
/// the multiplications and tests of one at a time, with chunks as full.
fn chunks(factors: impl IntoIterator<Item = u64>) -> Vec<u64> {
    fn gather(chunks: &mut Vec<u64>, chunk: &mut u64, factor: u64) {
        match chunk.checked_mul(factor) {
            Some(bigger) => *chunk = bigger,
            None => chunks.push(std::mem::replace(chunk, factor)),
        }
    }
    let mut factors = factors.into_iter();
    let mut chunks = Vec::with_capacity(factors.size_hint().0 / 4 + 1);
    let mut chunk = 1u64;
    while let Some(a) = factors.next() {
        let Some(b) = factors.next() else {
            gather(&mut chunks, &mut chunk, a);
            break;
        };
        match chunk.checked_mul(a * b) {
            Some(bigger) => chunk = bigger,
            None => {
                gather(&mut chunks, &mut chunk, a);
                gather(&mut chunks, &mut chunk, b);
            }
        }
    }
    chunks.push(chunk);
    chunks
}

/// Chunks a leaf of [`product`] multiplies together, in binary, before converting to base
/// 10^19. A column of a product costs two divisions by 10^19 and some bookkeeping, so products
/// of short numbers do not pay. For 400! with its digits (callgrind; a timed loop of 200,000):
/// leaves of 16 chunks 37.8k instructions, 3.4 µs; 24: 38.3k, 3.55 µs; 32 (a single product):
/// 3.6 µs; 8: 41.3k, 4.5 µs.
const LEAF_CHUNKS: usize = 16;

/// The product of `chunks`, as a balanced tree: each leaf of up to [`LEAF_CHUNKS`] chunks is
/// multiplied in binary and converted to base 10^19 once, then the leaves are multiplied
/// pairwise in base 10^19.
fn product(chunks: &[u64]) -> Decimal {
    if chunks.len() <= LEAF_CHUNKS {
        // In binary, where multiplying by a chunk needs no division, then converted once.
        let mut words = [0u64; LEAF_CHUNKS];
        words[0] = 1;
        let mut len = 1;
        for &chunk in chunks {
            let mut carry = 0;
            for word in &mut words[..len] {
                let t = u128::from(*word) * u128::from(chunk) + u128::from(carry);
                (*word, carry) = (t as u64, (t >> 64) as u64);
            }
            // The product of i chunks is below 2^(64·i), so this never passes the array.
            if carry > 0 {
                words[len] = carry;
                len += 1;
            }
        }
        return Decimal::from_binary(&mut words[..len]);
    }
    let (low, high) = chunks.split_at(chunks.len() / 2);
    product(low).mul(&product(high))
}

/// The Ackermann–Péter function, evaluated with an explicit stack instead of recursion, so
/// depth never touches the thread's stack. Only call it with small arguments: it takes A(m, n)
/// steps or more, and A(4, 1) is already 65,533.
pub fn ackermann(m: u32, n: u32) -> Decimal {
    let mut stack: Vec<u64> = vec![u64::from(m)];
    let mut n = u64::from(n);
    while let Some(m) = stack.pop() {
        match (m, n) {
            (0, _) => n += 1,
            (_, 0) => {
                stack.push(m - 1);
                n = 1;
            }
            _ => {
                stack.push(m - 1);
                stack.push(m);
                n -= 1;
            }
        }
    }
    Decimal::from(n)
}

#[cfg(test)]
mod tests {
    use num_bigint::BigUint;

    use super::*;

    #[test]
    fn factorial_matches_the_definition() {
        let mut expected = BigUint::from(1u32);
        for n in 0..=1_000u32 {
            if n > 0 {
                expected *= n;
            }
            assert_eq!(factorial(n).to_string(), expected.to_string(), "{n}!");
        }
        assert_eq!(factorial(400).digits(), 869);
    }

    #[test]
    fn chunks_multiply_to_their_factors() {
        let ranges = [
            (2, 2),
            (2, 3),
            (2, 400),
            (3, 401),
            (u64::from(u32::MAX) - 100, u64::from(u32::MAX)),
        ];
        for (first, last) in ranges {
            let chunks = chunks(first..=last);
            let product: BigUint = chunks.iter().map(|&c| BigUint::from(c)).product();
            let expected: BigUint = (first..=last).map(BigUint::from).product();
            assert_eq!(product, expected, "{first}..={last}");
            // As full as one at a time: no two neighbours would fit in one.
            for pair in chunks.windows(2) {
                assert!(pair[0].checked_mul(pair[1]).is_none(), "{first}..={last}");
            }
        }
    }

    #[test]
    fn fives_are_counted_as_legendre_says() {
        for n in 0..=2_000u64 {
            let expected: u64 = (1..=n)
                .map(|k| {
                    let mut fives = 0;
                    let mut k = k;
                    while k % 5 == 0 {
                        k /= 5;
                        fives += 1;
                    }
                    fives
                })
                .sum();
            assert_eq!(fives_in_factorial(n), expected, "{n}");
        }
        assert_eq!(fives_in_factorial(400), 99);
    }

    fn ackermann_recursive(m: u64, n: u64) -> u64 {
        match (m, n) {
            (0, n) => n + 1,
            (m, 0) => ackermann_recursive(m - 1, 1),
            (m, n) => ackermann_recursive(m - 1, ackermann_recursive(m, n - 1)),
        }
    }

    #[test]
    fn ackermann_matches_the_recursive_definition() {
        for m in 0..=3 {
            for n in 0..=4 {
                assert_eq!(
                    ackermann(m, n).to_string(),
                    ackermann_recursive(m.into(), n.into()).to_string()
                );
            }
        }
        assert_eq!(ackermann(3, 4).to_string(), "125");
    }
}
