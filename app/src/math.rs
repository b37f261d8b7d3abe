//! The Sanic seed's functions on exact big integers.

use num_bigint::BigUint;

/// The n-th Fibonacci number, fib(0) = 0, fib(1) = 1, by fast doubling (O(log n) products):
/// in machine words while they hold the products (up to fib(93), the top bits of n), then on
/// big integers for the last few bits.
pub fn fibonacci(n: u32) -> BigUint {
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
    let (mut a, mut b) = (BigUint::from(a), BigUint::from(b));
    for bit in (0..bit).rev() {
        // fib(2k) = fib(k) * (2 fib(k+1) - fib(k)); fib(2k+1) = fib(k)^2 + fib(k+1)^2
        let two_b_minus_a = (&b << 1u32) - &a;
        let c = &a * &two_b_minus_a;
        let d = &a * &a + &b * &b;
        if n >> bit & 1 == 0 {
            (a, b) = (c, d);
        } else {
            b = &c + &d;
            a = d;
        }
    }
    a
}

/// n! = 1 × 2 × … × n, with 0! = 1.
pub fn factorial(n: u32) -> BigUint {
    let mut product = BigUint::from(1u32);
    // Gather factors into a u64 while they fit, so 400! takes ~60 big multiplications, not 400.
    let mut chunk = 1u64;
    for k in 2..=u64::from(n) {
        match chunk.checked_mul(k) {
            Some(bigger) => chunk = bigger,
            None => {
                product *= chunk;
                chunk = k;
            }
        }
    }
    product * chunk
}

/// The Ackermann–Péter function, evaluated with an explicit stack instead of recursion, so
/// depth never touches the thread's stack. Only call it with small arguments: A(4, 2) already
/// has 19,729 digits.
pub fn ackermann(m: u32, n: u32) -> BigUint {
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
    BigUint::from(n)
}

/// 10^19, the largest power of ten in a `u64`. Its top bit is set, so it is its own normalised
/// divisor for [`divide_by_ten_19`].
const TEN_19: u64 = 10_000_000_000_000_000_000;
/// The reciprocal of [`TEN_19`] for division by multiplication (Möller and Granlund, "Improved
/// division by invariant integers", 2011): floor((2^128 - 1) / d) - 2^64.
const TEN_19_RECIPROCAL: u64 = (u128::MAX / TEN_19 as u128 - (1 << 64)) as u64;

/// (high·2^64 + low) divided by 10^19, for high < 10^19: the quotient and remainder with two
/// multiplications instead of a 128-bit division.
fn divide_by_ten_19(high: u64, low: u64) -> (u64, u64) {
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

/// `chunk` (below 10^19) as exactly 19 digits, leading zeros included.
fn nineteen_digits(mut chunk: u64) -> [u8; 19] {
    let mut digits = [b'0'; 19];
    let mut end = 19;
    while end > 1 {
        let pair = DIGIT_PAIRS[(chunk % 100) as usize];
        digits[end - 2..end].copy_from_slice(&pair);
        chunk /= 100;
        end -= 2;
    }
    digits[0] = b'0' + chunk as u8;
    digits
}

/// Appends `value` in decimal to `out`. The same digits as `value.to_string()`, several times
/// faster for numbers of hundreds of digits (400! has 869): the number is divided by 10^19 a
/// word at a time with a precomputed reciprocal, and each remainder gives 19 digits.
pub fn write_decimal(value: &BigUint, out: &mut Vec<u8>) {
    let mut words = value.to_u64_digits();
    // Groups of 19 digits, least significant first.
    let mut groups: Vec<u64> = Vec::with_capacity(words.len() * 64 / 63 + 1);
    while let Some(&top) = words.last() {
        if words.len() == 1 && top < TEN_19 {
            groups.push(top);
            break;
        }
        let mut remainder = 0;
        for word in words.iter_mut().rev() {
            (*word, remainder) = divide_by_ten_19(remainder, *word);
        }
        groups.push(remainder);
        while words.last() == Some(&0) {
            words.pop();
        }
    }
    let Some((&first, rest)) = groups.split_last() else {
        out.push(b'0');
        return;
    };
    let first = nineteen_digits(first);
    let leading = first.iter().take(18).take_while(|&&d| d == b'0').count();
    out.reserve(19 - leading + 19 * rest.len());
    out.extend_from_slice(&first[leading..]);
    for &group in rest.iter().rev() {
        out.extend_from_slice(&nineteen_digits(group));
    }
}

#[cfg(test)]
mod tests {
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
        for n in 0..=400 {
            assert_eq!(fibonacci(n), fib_by_addition(n), "fib({n})");
        }
        assert_eq!(fibonacci(100).to_string(), "354224848179261915075");
    }

    fn decimal(value: &BigUint) -> String {
        let mut out = Vec::new();
        write_decimal(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn division_by_ten_19_matches_u128_division() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut samples = vec![
            (0, 0),
            (0, u64::MAX),
            (TEN_19 - 1, u64::MAX),
            (TEN_19 - 1, 0),
        ];
        for _ in 0..10_000 {
            // xorshift
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
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

    #[test]
    fn decimal_digits_match_num_bigint() {
        let mut values: Vec<BigUint> = (0..=400).map(factorial).collect();
        values.extend((0..=400).map(fibonacci));
        for k in 0..200u32 {
            let power = BigUint::from(10u32).pow(k);
            values.push(&power - 1u32);
            values.push(power.clone());
            values.push(power + 1u32);
            values.push(BigUint::from(2u32).pow(k * 3));
            values.push(BigUint::from(2u32).pow(k * 3) - 1u32);
        }
        values.push(BigUint::from(TEN_19 - 1));
        values.push(BigUint::from(u64::MAX));
        for value in values {
            assert_eq!(decimal(&value), value.to_string());
        }
    }

    #[test]
    fn factorial_matches_the_definition() {
        let mut expected = BigUint::from(1u32);
        for n in 0..=400u32 {
            if n > 0 {
                expected *= n;
            }
            assert_eq!(factorial(n), expected, "{n}!");
        }
        assert_eq!(factorial(400).to_string().len(), 869);
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
                    BigUint::from(ackermann_recursive(m.into(), n.into()))
                );
            }
        }
        assert_eq!(ackermann(3, 4), BigUint::from(125u32));
    }
}
