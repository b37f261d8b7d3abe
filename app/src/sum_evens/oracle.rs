//! The obvious computation, to check the fast one against: split on separators, parse each
//! token as a big integer. Used by the unit tests, the fuzz target (`fuzz/`) and the regression
//! test that replays the fuzz corpus.

use num_bigint::BigInt;

use super::parse::{Parser, is_separator};

/// The sum of the even numbers, the count of numbers and of even ones; or the offset of the
/// first bad token.
pub fn reference(text: &[u8]) -> Result<(BigInt, u64, u64), u64> {
    let mut sum = BigInt::default();
    let (mut numbers, mut evens) = (0, 0);
    let mut i = 0;
    while i < text.len() {
        if is_separator(text[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && !is_separator(text[i]) {
            i += 1;
        }
        let token = std::str::from_utf8(&text[start..i]).map_err(|_| start as u64)?;
        let digits = token.strip_prefix(['+', '-']).unwrap_or(token);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(start as u64);
        }
        let value: BigInt = token
            .trim_start_matches('+')
            .parse()
            .map_err(|_| start as u64)?;
        numbers += 1;
        if &value % 2 == BigInt::default() {
            evens += 1;
            sum += value;
        }
    }
    Ok((sum, numbers, evens))
}

/// Where the parser and [`reference()`] disagreed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("blocks of {block}: expected {expected}, got {got} for {text:?}")]
pub struct Mismatch {
    pub block: usize,
    pub expected: String,
    pub got: String,
    /// The text's first 200 bytes.
    pub text: String,
}

/// Runs the parser over `text` whole and cut into blocks of several sizes, and says how it
/// differs from [`reference()`], if it does.
pub fn check(text: &[u8]) -> Result<(), Mismatch> {
    let expected = reference(text);
    for block in [1, 2, 3, 7, 16, 64, 4096, text.len().max(1)] {
        let mut parser = Parser::new(0);
        let got = text
            .chunks(block)
            .try_for_each(|c| parser.feed(c))
            .and_then(|()| parser.finish());
        let same = match (&expected, &got) {
            (Ok((sum, numbers, evens)), Ok(p)) => {
                (&p.sum.value(), p.numbers, p.evens) == (sum, *numbers, *evens)
            }
            (Err(offset), Err(bad)) => bad.offset == *offset,
            _ => false,
        };
        if !same {
            return Err(Mismatch {
                block,
                expected: format!("{expected:?}"),
                got: format!("{got:?}"),
                text: String::from_utf8_lossy(&text[..text.len().min(200)]).into_owned(),
            });
        }
    }
    Ok(())
}
