//! The Sanic seed's functions on exact big integers, computed as the decimal digits they are
//! answered with: [`Decimal`] numbers hold 19 digits a limb, so no big division is needed to
//! write them; [`fibonacci`] doubles in fixed-width binary words, a handful of limbs at most.

mod decimal;
mod fibonacci;

pub(crate) use decimal::Decimal;
pub(crate) use fibonacci::{MAX_N as FIBONACCI_MAX_N, fibonacci};

/// n! = 1 × 2 × … × n, with 0! = 1. Every k ≤ n is 2^i·5^j·r with r coprime to 10, so n! is
/// the product of the r ≤ n/(2^i·5^j) for every i and j, times 2^t and 5^z: t and z count the
/// 2s and 5s of n! (Legendre), and t ≥ z. The r are gathered four at a time (1, 3, 7, 9 of
/// each ten), with no test for 2s or 5s; t − z 2s are shifted in, and 10^z is written as z
/// zeros, not computed. 400! is 770 digits and 99 zeros, and the multiplying and converting
/// grow with the square of the digits.
pub(crate) fn factorial(n: u32) -> Decimal {
    let n = u64::from(n);
    // n! < n^n has fewer bits than n·bits(n), and chunks are nearly full.
    let bits = n * u64::from(u64::BITS - n.leading_zeros());
    let mut chunks = Chunks::with_capacity(bits as usize / 56 + 2);
    // r runs to n/(2^i·5^j): `halved` is n/2^i, `part` n/(2^i·5^j).
    let mut halved = n;
    while halved > 0 {
        let mut part = halved;
        while part > 0 {
            chunks.coprime_to_ten(0, part);
            part /= 5;
        }
        halved /= 2;
    }
    let zeros = legendre(n, 5);
    chunks.twos(legendre(n, 2) - zeros);
    product(&chunks.finish()).times_power_of_ten(zeros as usize)
}

/// How many factors p (a prime) n! has (Legendre): n/p + n/p^2 + n/p^3 + …
fn legendre(n: u64, p: u64) -> u64 {
    let mut count = 0;
    let mut multiples = n / p;
    while multiples > 0 {
        count += multiples;
        multiples /= p;
    }
    count
}

/// Factors gathered into chunks, products that fit in 64 bits, each as full as taking the
/// factors one at a time would leave it.
struct Chunks {
    full: Vec<u64>,
    chunk: u64,
}

impl Chunks {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            full: Vec::with_capacity(capacity),
            chunk: 1,
        }
    }

    /// Gathers one factor.
    fn push(&mut self, factor: u64) {
        match self.chunk.checked_mul(factor) {
            Some(bigger) => self.chunk = bigger,
            None => self.full.push(std::mem::replace(&mut self.chunk, factor)),
        }
    }

    /// Gathers the numbers from `first` (a multiple of 10) to `last` (below 2^32) that are
    /// coprime to 10. A whole ten is one multiplication into the chunk while their product
    /// fits, which is most of the time; where it does not, its four numbers are gathered one
    /// by one.
    fn coprime_to_ten(&mut self, first: u64, last: u64) {
        debug_assert!(first.is_multiple_of(10) && last < 1 << 32);
        let mut ten = first;
        while ten + 9 <= last {
            let [a, b, c, d] = [ten + 1, ten + 3, ten + 7, ten + 9];
            // A pair of numbers below 2^32 fits in 64 bits; four may not.
            let four = (a * b).checked_mul(c * d);
            match four.and_then(|four| self.chunk.checked_mul(four)) {
                Some(bigger) => self.chunk = bigger,
                None => [a, b, c, d].into_iter().for_each(|k| self.push(k)),
            }
            ten += 10;
        }
        for k in [ten + 1, ten + 3, ten + 7] {
            if k <= last {
                self.push(k);
            }
        }
    }

    /// Gathers 2^count, as shifts into the chunks.
    fn twos(&mut self, mut count: u64) {
        while count > 0 {
            let shift = count.min(u64::from(self.chunk.leading_zeros()));
            if shift == 0 {
                self.full.push(std::mem::replace(&mut self.chunk, 1));
                continue;
            }
            self.chunk <<= shift;
            count -= shift;
        }
    }

    fn finish(mut self) -> Vec<u64> {
        self.full.push(self.chunk);
        self.full
    }
}

/// Chunks a leaf of [`product`] multiplies together, in binary, before converting to base
/// 10^19. A column of a product costs two divisions by 10^19 and some bookkeeping, so products
/// of short numbers do not pay. For 400! with its digits (callgrind; a timed loop of 200,000),
/// whose 42 chunks make four leaves of 16 or fewer: 35.1k instructions, 2.74 µs; leaves of 8:
/// 39.7k, 2.94 µs; 24: 33.4k, 3.10 µs.
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
pub(crate) fn ackermann(m: u32, n: u32) -> Decimal {
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

    /// The product of `chunks`, checking that each is as full as one at a time leaves it: no
    /// two neighbours would fit in one.
    fn chunks_product(chunks: Chunks) -> BigUint {
        let chunks = chunks.finish();
        for pair in chunks.windows(2) {
            assert!(pair[0].checked_mul(pair[1]).is_none(), "{chunks:?}");
        }
        chunks.iter().map(|&c| BigUint::from(c)).product()
    }

    #[test]
    fn chunks_multiply_to_the_numbers_coprime_to_ten() {
        let max = u64::from(u32::MAX);
        let ranges = [
            (0, 0),
            (0, 1),
            (0, 8),
            (0, 9),
            (0, 10),
            (0, 11),
            (0, 400),
            (0, 2_023),
            // Where four numbers no longer fit in 64 bits, and the largest there are.
            (65_520, 65_600),
            (max / 10 * 10 - 200, max),
        ];
        for (first, last) in ranges {
            let mut chunks = Chunks::with_capacity(0);
            chunks.coprime_to_ten(first, last);
            let expected: BigUint = (first..=last)
                .filter(|k| !k.is_multiple_of(2) && !k.is_multiple_of(5))
                .map(BigUint::from)
                .product();
            assert_eq!(chunks_product(chunks), expected, "{first}..={last}");
        }
    }

    #[test]
    fn twos_fill_the_chunks() {
        for (factor, count) in [(1, 0), (1, 63), (1, 64), (3, 62), (3, 200), (u64::MAX, 5)] {
            let mut chunks = Chunks::with_capacity(0);
            chunks.push(factor);
            chunks.twos(count);
            let expected = BigUint::from(factor) << count;
            assert_eq!(chunks_product(chunks), expected, "{factor} << {count}");
        }
    }

    #[test]
    fn primes_are_counted_as_legendre_says() {
        let count = |mut k: u64, p: u64| {
            let mut count = 0;
            while k.is_multiple_of(p) {
                k /= p;
                count += 1;
            }
            count
        };
        for p in [2, 5] {
            for n in 0..=2_000u64 {
                let expected: u64 = (1..=n).map(|k| count(k, p)).sum();
                assert_eq!(legendre(n, p), expected, "{n} {p}");
            }
        }
        assert_eq!(legendre(400, 5), 99);
        assert_eq!(legendre(400, 2), 397);
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
