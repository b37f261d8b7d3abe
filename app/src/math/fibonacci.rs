//! Fibonacci numbers by fast doubling: O(log n) products, in 128-bit integers while the values
//! fit and then in fixed-width words on the stack, so a request allocates nothing until the
//! digits are written.

use super::Decimal;

/// Words of the fixed-width numbers: 320 bits, which hold every value the doubling meets for
/// n up to [`MAX_N`].
const WORDS: usize = 5;
type Wide = [u64; WORDS];

/// The largest n [`fibonacci`] takes: fib(n + 1), the largest value computed, stays below
/// 2^320 up to here (checked by a test).
pub(crate) const MAX_N: u32 = 460;

/// The n-th Fibonacci number, fib(0) = 0, fib(1) = 1, for n up to [`MAX_N`].
pub(crate) fn fibonacci(n: u32) -> Decimal {
    assert!(
        n <= MAX_N,
        "fib({n}) is beyond the {}-bit words",
        64 * WORDS
    );
    let bits = u32::BITS - n.leading_zeros();
    // (fib(k), fib(k+1)) for k = the bits of n above `bit`, most significant first.
    let (mut a, mut b) = (0u128, 1u128);
    let mut bit = bits;
    // While fib(k+1) < 2^64 (k <= 92) every value of a step is at most fib(2k+2) <= fib(186) <
    // 2^128.
    while bit > 0 && b < 1 << 64 {
        bit -= 1;
        let c = a * (2 * b - a);
        let d = a * a + b * b;
        (a, b) = if n >> bit & 1 == 0 {
            (c, d)
        } else {
            (d, c + d)
        };
    }
    if bit == 0 {
        return Decimal::from_binary(&mut [a as u64, (a >> 64) as u64]);
    }
    let (mut a, mut b) = (wide(a), wide(b));
    for bit in (0..bit).rev() {
        // fib(2k) = fib(k) * (2 fib(k+1) - fib(k)); fib(2k+1) = fib(k)^2 + fib(k+1)^2
        let c = mul(&a, &sub(&add(&b, &b), &a));
        let d = add(&mul(&a, &a), &mul(&b, &b));
        (a, b) = if n >> bit & 1 == 0 {
            (c, d)
        } else {
            (d, add(&c, &d))
        };
    }
    Decimal::from_binary(&mut a)
}

fn wide(value: u128) -> Wide {
    let mut words = [0; WORDS];
    words[0] = value as u64;
    words[1] = (value >> 64) as u64;
    words
}

/// x + y; the callers' sums fit in [`WORDS`] words.
fn add(x: &Wide, y: &Wide) -> Wide {
    let mut sum = [0; WORDS];
    let mut carry = 0;
    for i in 0..WORDS {
        let t = u128::from(x[i]) + u128::from(y[i]) + carry;
        sum[i] = t as u64;
        carry = t >> 64;
    }
    debug_assert_eq!(carry, 0, "sum overflows {WORDS} words");
    sum
}

/// x - y for x >= y.
fn sub(x: &Wide, y: &Wide) -> Wide {
    let mut difference = [0; WORDS];
    let mut borrow = false;
    for i in 0..WORDS {
        let (d, first) = x[i].overflowing_sub(y[i]);
        let (d, second) = d.overflowing_sub(u64::from(borrow));
        difference[i] = d;
        borrow = first || second;
    }
    debug_assert!(!borrow, "negative difference");
    difference
}

/// x · y, schoolbook; the callers' products fit in [`WORDS`] words, so words past the last
/// are not computed.
fn mul(x: &Wide, y: &Wide) -> Wide {
    let mut product = [0; WORDS];
    for i in 0..WORDS {
        if x[i] == 0 {
            continue;
        }
        let mut carry = 0u64;
        for j in 0..WORDS - i {
            let t = u128::from(x[i]) * u128::from(y[j])
                + u128::from(product[i + j])
                + u128::from(carry);
            product[i + j] = t as u64;
            carry = (t >> 64) as u64;
        }
    }
    product
}

#[cfg(test)]
mod tests {
    use num_bigint::BigUint;

    use super::*;

    fn fib_by_addition(n: u32) -> BigUint {
        let (mut a, mut b) = (BigUint::ZERO, BigUint::from(1u32));
        for _ in 0..n {
            let next = &a + &b;
            a = std::mem::replace(&mut b, next);
        }
        a
    }

    #[test]
    fn fibonacci_matches_repeated_addition() {
        for n in 0..=MAX_N {
            assert_eq!(
                fibonacci(n).to_string(),
                fib_by_addition(n).to_string(),
                "fib({n})"
            );
        }
        assert_eq!(fibonacci(100).to_string(), "354224848179261915075");
    }

    #[test]
    fn the_words_hold_every_value_up_to_the_limit() {
        assert!(fib_by_addition(MAX_N + 1).bits() <= 64 * WORDS as u64);
        assert!(
            fib_by_addition(MAX_N + 3).bits() > 64 * WORDS as u64,
            "MAX_N is not too low"
        );
    }

    #[test]
    #[should_panic(expected = "beyond the 320-bit words")]
    fn larger_n_is_refused() {
        fibonacci(MAX_N + 1);
    }
}
