//! The Sanic seed's functions on exact big integers, computed as the decimal digits they are
//! answered with: [`decimal`] numbers hold 19 digits a limb, so no big division is needed to
//! write them; [`fibonacci`] doubles in fixed-width binary words, a handful of limbs at most.

mod decimal;
mod fibonacci;

pub use decimal::Decimal;
use decimal::TEN_19;
pub use fibonacci::{MAX_N as FIBONACCI_MAX_N, fibonacci};

/// n! = 1 × 2 × … × n, with 0! = 1.
pub fn factorial(n: u32) -> Decimal {
    let mut product = Decimal::from(1);
    // log10(n!) <= n·log10(n): room for every limb from the start.
    product.reserve_digits((f64::from(n) * f64::from(n.max(1)).log10()) as usize);
    // Gather factors into one below 10^19 while they fit, so 400! takes 49 passes over the
    // limbs, not 400.
    let mut chunk = 1u64;
    for k in 2..=u64::from(n) {
        match chunk.checked_mul(k).filter(|&bigger| bigger < TEN_19) {
            Some(bigger) => chunk = bigger,
            None => {
                product.mul_small(chunk);
                chunk = k;
            }
        }
    }
    product.mul_small(chunk);
    product
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
