//! The Sanic seed's functions on exact big integers.

use num_bigint::BigUint;

/// The n-th Fibonacci number, fib(0) = 0, fib(1) = 1, by fast doubling (O(log n) products).
pub fn fibonacci(n: u32) -> BigUint {
    // (fib(k), fib(k+1)) from the bits of n, most significant first.
    let mut a = BigUint::ZERO;
    let mut b = BigUint::from(1u32);
    for bit in (0..u32::BITS - n.leading_zeros()).rev() {
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
