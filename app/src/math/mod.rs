//! The Sanic seed's functions on exact big integers, computed as the decimal digits they are
//! answered with: [`Decimal`] numbers hold 19 digits a limb, so no big division is needed to
//! write them; [`fibonacci`] doubles in fixed-width binary words, a handful of limbs at most.

mod decimal;
mod fibonacci;

pub use decimal::Decimal;
use decimal::TEN_19;
pub use fibonacci::{MAX_N as FIBONACCI_MAX_N, fibonacci};

/// n! = 1 × 2 × … × n, with 0! = 1.
pub fn factorial(n: u32) -> Decimal {
    product(&chunks(2, u64::from(n)))
}

/// The numbers `first..=last` gathered into products below 10^19 (one limb each), 49 of them
/// for 2..=400, taken two at a time where the pair fits: about half the 128-bit products and
/// tests of one at a time. `last` must be below 2^32.
fn chunks(first: u64, last: u64) -> Vec<u64> {
    let mut chunks = Vec::with_capacity(last.saturating_sub(first) as usize / 4 + 1);
    // chunk and factor are below 10^19: the product fits in 128 bits.
    let times = |chunk: u64, factor: u64| {
        let product = u128::from(chunk) * u128::from(factor);
        (product < u128::from(TEN_19)).then_some(product as u64)
    };
    let mut chunk = 1u64;
    let mut k = first;
    while k <= last {
        // k + 1 <= last < 2^32: the pair fits in 64 bits. When it does not fit in the chunk,
        // k goes alone, so the chunks come out as full as without pairs.
        if k < last
            && let pair = k * (k + 1)
            && pair < TEN_19
            && let Some(bigger) = times(chunk, pair)
        {
            chunk = bigger;
            k += 2;
            continue;
        }
        match times(chunk, k) {
            Some(bigger) => chunk = bigger,
            None => chunks.push(std::mem::replace(&mut chunk, k)),
        }
        k += 1;
    }
    chunks.push(chunk);
    chunks
}

/// Chunks a leaf of [`product`] multiplies together, in binary, before converting to base
/// 10^19. A column of a product costs two divisions by 10^19 and some bookkeeping, so products
/// of short numbers do not pay: counted with callgrind, 400! and its digits take 35.9k
/// instructions with leaves of 16 chunks, 36.2k with 24, 36.6k with 32 (a single product),
/// 36.8k with 12, 39.5k with 8; 43.8k multiplying one chunk at a time in base 10^19 all the way.
const LEAF_CHUNKS: usize = 16;

/// The product of `chunks` (each below 10^19), as a balanced tree: leaves of a few limbs,
/// multiplied one chunk at a time, then multiplied pairwise; one chunk at a time all the way
/// would divide by 10^19 once per limb per chunk, over a thousand times for 400!.
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
    fn chunks_multiply_to_the_range_and_stay_below_ten_19() {
        // Pairs below 10^19, pairs above it (k·(k+1) passes 10^19 at k = 3,162,277,660), and
        // single factors near 2^32.
        let ranges = [
            (2, 2),
            (2, 3),
            (2, 400),
            (3, 401),
            (3_162_277_000, 3_162_278_000),
            (u64::from(u32::MAX) - 100, u64::from(u32::MAX)),
        ];
        for (first, last) in ranges {
            let chunks = chunks(first, last);
            assert!(chunks.iter().all(|&c| c < TEN_19), "{first}..={last}");
            let product: BigUint = chunks.iter().map(|&c| BigUint::from(c)).product();
            let expected: BigUint = (first..=last).map(BigUint::from).product();
            assert_eq!(product, expected, "{first}..={last}");
        }
        assert_eq!(chunks(2, 400).len(), 49);
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
                    ackermann(m, n),
                    Decimal::from(ackermann_recursive(m.into(), n.into()))
                );
            }
        }
        assert_eq!(ackermann(3, 4).to_string(), "125");
    }
}
