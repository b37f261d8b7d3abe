//! The sum-evens parser: decimal integers separated by ASCII whitespace or commas, each with an
//! optional sign and any number of digits, summed exactly when even.
//!
//! It is fed a file block by block and keeps only the token a block ends in the middle of. A
//! block is first classified 64 bytes at a time into separator, digit and sign bitmasks (16-byte
//! vector compares), 16 KiB at a time; where every byte is in place, the positions where
//! tokens start and end are written down from those bits and read back in pairs, and each
//! number of up to 32 digits is added into digit-column sums (`columns`) without being
//! converted; longer ones, and the few at a block's edges, are converted (by words up to 19
//! digits, as `u128` up to 38, as big integers beyond). From a piece with anything else in it,
//! the rest of the block goes through a byte-wise path that finds the bad token's offset.
//! Sums are `i128` and spill into a big integer only when they would overflow.

use num_bigint::BigInt;

use super::long::LongSum;
use wide::u8x16;

use super::columns::{self, Columns};

/// Separators: ASCII whitespace (space, tab, LF, VT, FF, CR) and commas.
static SEPARATOR: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    let separators = b" \t\n\x0b\x0c\r,";
    while i < separators.len() {
        table[separators[i] as usize] = true;
        i += 1;
    }
    table
};

pub fn is_separator(byte: u8) -> bool {
    SEPARATOR[usize::from(byte)]
}

fn is_digit(byte: u8) -> bool {
    byte.wrapping_sub(b'0') < 10
}

/// A token that is not an integer, and where it starts (0-based byte offset in the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad token at byte {offset}: `{preview}`")]
pub struct BadToken {
    pub offset: u64,
    /// The token's first bytes, escaped.
    pub preview: String,
}

impl BadToken {
    fn at(offset: u64, token: &[u8]) -> Self {
        let end = token
            .iter()
            .position(|&b| is_separator(b))
            .unwrap_or(token.len())
            .min(24);
        Self {
            offset,
            preview: token[..end].escape_ascii().to_string(),
        }
    }
}

/// What a run over some bytes found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partial {
    /// The sum of the even numbers, exact.
    pub sum: Sum,
    pub numbers: u64,
    pub evens: u64,
}

impl Partial {
    pub fn merge(&mut self, other: &Partial) {
        self.sum.add_sum(&other.sum);
        self.numbers += other.numbers;
        self.evens += other.evens;
    }
}

/// An exact sum: an `i128` fast path, a big integer for sums of short numbers that do not fit
/// (it grows by a few bits each time the `i128` overflows), and numbers of more than 38 digits
/// added in decimal ([`LongSum`]: linear in their digits, where converting them would not be).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sum {
    small: i128,
    big: Option<BigInt>,
    long: Option<LongSum>,
}

impl Sum {
    pub(super) fn add_i128(&mut self, value: i128) {
        match self.small.checked_add(value) {
            Some(sum) => self.small = sum,
            None => {
                *self.big.get_or_insert_with(BigInt::default) += self.small;
                self.small = value;
            }
        }
    }

    pub(super) fn add_big(&mut self, value: BigInt) {
        *self.big.get_or_insert_with(BigInt::default) += value;
    }

    /// Adds a long number given by its ASCII digits.
    fn add_long(&mut self, digits: &[u8], negative: bool) {
        self.long
            .get_or_insert_with(LongSum::default)
            .add_digits(digits, negative);
    }

    pub fn add_sum(&mut self, other: &Sum) {
        self.add_i128(other.small);
        if let Some(big) = &other.big {
            self.add_big(big.clone());
        }
        if let Some(long) = &other.long {
            self.long.get_or_insert_with(LongSum::default).merge(long);
        }
    }

    /// The sum in decimal, in time linear in its digits.
    pub fn to_decimal(&self) -> String {
        let short = (self.big.clone().unwrap_or_default() + self.small).to_string();
        match &self.long {
            Some(long) => long.to_decimal(&short),
            None => short,
        }
    }

    /// The sum as a big integer (for comparisons; converting a long sum is quadratic).
    pub fn value(&self) -> BigInt {
        match &self.long {
            Some(_) => self.to_decimal().parse().unwrap_or_default(),
            None => self.big.clone().unwrap_or_default() + self.small,
        }
    }
}

/// A streaming parser over consecutive blocks of one file (or of one range of it).
#[derive(Debug)]
pub struct Parser {
    partial: Partial,
    /// Offset in the file of the next byte to be fed.
    offset: u64,
    /// The token the last block ended in, and where it started.
    carry: Vec<u8>,
    carry_start: u64,
    /// The structural walk's token positions, kept to reuse their allocation.
    tapes: Tapes,
}

impl Parser {
    /// A parser whose first byte is at `offset` in the file.
    pub fn new(offset: u64) -> Self {
        Self {
            partial: Partial::default(),
            offset,
            carry: Vec::new(),
            carry_start: 0,
            tapes: Tapes::default(),
        }
    }

    /// Parses the next block.
    pub fn feed(&mut self, block: &[u8]) -> Result<(), BadToken> {
        let base = self.offset;
        self.offset += block.len() as u64;
        let mut rest = block;
        let mut rest_base = base;
        if !self.carry.is_empty() {
            // The carried token goes on until the first separator.
            match block.iter().position(|&b| is_separator(b)) {
                Some(end) => {
                    self.carry.extend_from_slice(&block[..end]);
                    let token = std::mem::take(&mut self.carry);
                    self.token(&token, self.carry_start)?;
                    rest = &block[end..];
                    rest_base = base + end as u64;
                }
                None => {
                    self.carry.extend_from_slice(block);
                    return Ok(());
                }
            }
        }
        let tail = scan(rest, rest_base, &mut self.partial, &mut self.tapes)?;
        if tail < rest.len() {
            self.carry.extend_from_slice(&rest[tail..]);
            self.carry_start = rest_base + tail as u64;
        }
        Ok(())
    }

    /// Whether the last block ended inside a token.
    pub fn in_token(&self) -> bool {
        !self.carry.is_empty()
    }

    /// The totals, once every block has been fed (the last token ends at the end of input).
    pub fn finish(mut self) -> Result<Partial, BadToken> {
        if !self.carry.is_empty() {
            let token = std::mem::take(&mut self.carry);
            self.token(&token, self.carry_start)?;
        }
        Ok(self.partial)
    }

    /// One whole token, by the slow path (a carried or very long token).
    fn token(&mut self, token: &[u8], offset: u64) -> Result<(), BadToken> {
        let (negative, digits) = match token.first() {
            Some(b'-') => (true, &token[1..]),
            Some(b'+') => (false, &token[1..]),
            _ => (false, token),
        };
        if digits.is_empty() || !digits.iter().all(|&b| is_digit(b)) {
            return Err(BadToken::at(offset, token));
        }
        add_number(&mut self.partial, digits, negative);
        Ok(())
    }
}

/// Adds one number given by its digits.
fn add_number(partial: &mut Partial, digits: &[u8], negative: bool) {
    partial.numbers += 1;
    if digits[digits.len() - 1] & 1 != 0 {
        return;
    }
    partial.evens += 1;
    if digits.len() <= 38 {
        let mut value: u128 = 0;
        if digits.len() <= 19 {
            let mut small: u64 = 0;
            for &d in digits {
                small = small * 10 + u64::from(d - b'0');
            }
            value = u128::from(small);
        } else {
            for &d in digits {
                value = value * 10 + u128::from(d - b'0');
            }
        }
        // Below 10^38 < 2^127: always fits in an i128.
        let value = value as i128;
        partial.sum.add_i128(if negative { -value } else { value });
    } else {
        partial.sum.add_long(digits, negative);
    }
}

const LOW_NIBBLES_OFF: u64 = 0xF0F0_F0F0_F0F0_F0F0;
const SIXES: u64 = 0x0606_0606_0606_0606;
const THREES: u64 = 0x3333_3333_3333_3333;
const ZEROS: u64 = 0x3030_3030_3030_3030;

#[inline]
fn load(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The bytes of `word` that are not ASCII digits, as non-zero bytes: in each byte, the high
/// nibble of the byte and the high nibble of the byte plus six meet as `0x33` exactly for
/// `'0'..='9'`. (A carry out of a byte only reaches later bytes, and only from a byte that is not
/// a digit, so the first non-digit is always found right.)
fn non_digits(word: u64) -> u64 {
    let t = (word & LOW_NIBBLES_OFF) | ((word.wrapping_add(SIXES) & LOW_NIBBLES_OFF) >> 4);
    t ^ THREES
}

/// Where the run of digits starting at `i` ends: sixteen bytes at a time, one branch for any
/// number of up to fifteen digits.
fn digits_end(bytes: &[u8], mut i: usize) -> usize {
    while i + 16 <= bytes.len() {
        let low = non_digits(load(bytes, i));
        let high = non_digits(load(bytes, i + 8));
        let both = (u128::from(high) << 64) | u128::from(low);
        if both != 0 {
            return i + (both.trailing_zeros() / 8) as usize;
        }
        i += 16;
    }
    while i < bytes.len() && is_digit(bytes[i]) {
        i += 1;
    }
    i
}

/// The value of eight ASCII digits, the first in the lowest byte (three multiplications
/// instead of eight dependent ones).
#[inline]
fn eight_digits(word: u64) -> u64 {
    let w = word.wrapping_sub(ZEROS);
    let w = w.wrapping_mul(10).wrapping_add(w >> 8);
    let high = (w & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32));
    let low = ((w >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32));
    high.wrapping_add(low) >> 32
}

/// For `count` digits at the top of a word: the bytes to keep.
const KEEP: [u64; 9] = {
    let mut keep = [0u64; 9];
    let mut count = 1;
    while count <= 8 {
        keep[count] = u64::MAX << (8 * (8 - count));
        count += 1;
    }
    keep
};

/// The value of the `count` (0 to 8) digits that end at `end`, read as one word; the bytes
/// before them in the word count as leading zeros.
#[inline]
fn group(bytes: &[u8], end: usize, count: usize) -> u64 {
    let word = load(bytes, end - 8);
    let keep = KEEP[count];
    eight_digits((word & keep) | (ZEROS & !keep))
}

/// The value of up to 19 digits ending at `end`, by words (two up to 16 digits, three up to
/// 19: a branch that real data rarely flips), when 24 bytes end at `end`.
#[inline]
fn swar_value(bytes: &[u8], end: usize, count: usize) -> Option<u64> {
    if count > 19 || end < 24 {
        return None;
    }
    let low = group(bytes, end, count.min(8));
    let middle = group(bytes, end - 8, count.saturating_sub(8).min(8));
    let value = middle * 100_000_000 + low;
    if count <= 16 {
        return Some(value);
    }
    let high = group(bytes, end - 16, count - 16);
    Some(high * 10_000_000_000_000_000 + value)
}

/// Powers of ten up to 10^8.
const POW10: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// The first `count` (1 to 8) bytes of `word` (digits) moved to its top, below them `'0'`s:
/// the word [`eight_digits`] reads as the value of those digits.
fn top_digits(word: u64, count: usize) -> u64 {
    let spare = 8 * (8 - count) as u32;
    (word << spare) | (ZEROS.checked_shr(64 - spare).unwrap_or(0) * u64::from(spare != 0))
}

/// One token whose digits start at `digits` with at least 24 bytes after them: its end and
/// its value, read from the words already loaded to find the end. `None` for 20 digits or more.
fn token_by_words(bytes: &[u8], digits: usize) -> (usize, Option<u64>) {
    let first = load(bytes, digits);
    let second = load(bytes, digits + 8);
    let (other_first, other_second) = (non_digits(first), non_digits(second));
    if other_first | other_second != 0 {
        // Up to 15 digits: no branch on the length.
        let count = if other_first != 0 {
            other_first.trailing_zeros() / 8
        } else {
            8 + other_second.trailing_zeros() / 8
        } as usize;
        let long = count > 8;
        let low_word = if long { second } else { first };
        let low_count = if long { count - 8 } else { count };
        let high = if long { eight_digits(first) } else { 0 };
        if count == 0 {
            return (digits, None);
        }
        let low = eight_digits(top_digits(low_word, low_count));
        return (digits + count, Some(high * POW10[low_count] + low));
    }
    let third = load(bytes, digits + 16);
    let other = non_digits(third);
    let count = 16 + (other.trailing_zeros() / 8) as usize;
    if other == 0 || count > 19 {
        return (digits_end(bytes, digits), None);
    }
    let top = eight_digits(first) * 100_000_000 + eight_digits(second);
    let value = if count == 16 {
        top
    } else {
        let low_count = count - 16;
        top * POW10[low_count] + eight_digits(top_digits(third, low_count))
    };
    (digits + count, Some(value))
}

/// Separator, digit and sign bits of 64 bytes, a bit per byte, by 16-byte vector compares.
/// Always inlined: the walk calls it for every 64 bytes, and left to itself the compiler
/// stopped inlining it once the pairs' loop moved out (1.59–1.65 against 1.66–1.71 GB/s).
#[inline(always)]
fn classify64(bytes: &[u8]) -> (u64, u64, u64) {
    let (mut separators, mut digits, mut signs) = (0u64, 0u64, 0u64);
    for k in 0..4 {
        let mut lanes = [0u8; 16];
        lanes.copy_from_slice(&bytes[16 * k..16 * k + 16]);
        let v = u8x16::new(lanes);
        let eq = |c: u8| v.simd_eq(u8x16::splat(c));
        let within = |lo: u8, hi: u8| {
            v.max(u8x16::splat(lo)).simd_eq(v) & v.min(u8x16::splat(hi)).simd_eq(v)
        };
        let shift = 16 * k;
        separators |= u64::from((eq(b' ') | eq(b',') | within(9, 13)).to_bitmask()) << shift;
        digits |= u64::from(within(b'0', b'9').to_bitmask()) << shift;
        signs |= u64::from((eq(b'+') | eq(b'-')).to_bitmask()) << shift;
    }
    (separators, digits, signs)
}

/// Words walked at a time: their token positions are written down and then read back while
/// both the positions and the bytes are still in the first-level cache.
const PIECE_WORDS: usize = 256;

/// The positions where the tokens of one piece start and where they end (their last byte),
/// relative to the piece, and the numbers the columns' loop left out, reused from piece to piece
/// and from block to block.
#[derive(Debug, Default)]
pub(super) struct Tapes {
    starts: Tape,
    lasts: Tape,
    others: Vec<usize>,
}

/// Positions in a piece, written eight at a time.
#[derive(Debug)]
struct Tape {
    positions: Vec<u32>,
    len: usize,
}

impl Default for Tape {
    fn default() -> Self {
        // At most one token starts (or ends) in every other byte, and a write may run eight
        // positions past the last.
        Self {
            positions: vec![0; PIECE_WORDS * 32 + 8],
            len: 0,
        }
    }
}

impl Tape {
    /// Appends `at` plus the index of each of the `count` set bits of `bits`, in order. Eight
    /// positions are written whatever the count, so the loop does not branch on it below nine.
    #[inline]
    fn push_bits(&mut self, at: u32, mut bits: u64, count: usize) {
        debug_assert_eq!(count, bits.count_ones() as usize);
        let mut written = 0;
        while written < count {
            let room = &mut self.positions[self.len + written..self.len + written + 8];
            for slot in room {
                *slot = at + bits.trailing_zeros();
                bits &= bits.wrapping_sub(1);
            }
            written += 8;
        }
        self.len += count;
    }

    fn as_slice(&self) -> &[u32] {
        &self.positions[..self.len]
    }
}

/// What the structural walk adds up before it goes into a [`Partial`].
#[derive(Default)]
struct Totals {
    numbers: u64,
    evens: u64,
    columns: Columns,
    /// Numbers too near the start of the bytes for the columns, summed as values: positive
    /// and negative apart.
    edge: [u128; 2],
}

impl Totals {
    /// The number whose token is `bytes[start..end]` (a sign, then digits).
    #[inline]
    fn add(&mut self, partial: &mut Partial, bytes: &[u8], start: usize, end: usize) {
        let first = bytes[start];
        let negative = first == b'-';
        let digits = start + usize::from(first < b'0');
        let count = end - digits;
        let even = bytes[end - 1] & 1 == 0;
        if count <= columns::MAX_DIGITS && end >= columns::MAX_DIGITS {
            self.numbers += 1;
            self.evens += u64::from(even);
            self.columns.add(bytes, end, count, negative, even);
            return;
        }
        match swar_value(bytes, end, count) {
            Some(value) => {
                self.numbers += 1;
                self.evens += u64::from(even);
                self.edge[usize::from(negative)] += u128::from(value * u64::from(even));
            }
            None => add_number(partial, &bytes[digits..end], negative),
        }
    }

    /// The numbers whose tokens start at `at + starts[i]` and end at `at + lasts[i]` (their
    /// last byte): most in the columns' loop, the few it leaves (listed in `others`, a buffer
    /// kept for reuse) one by one.
    fn add_run(
        &mut self,
        partial: &mut Partial,
        bytes: &[u8],
        at: usize,
        starts: &[u32],
        lasts: &[u32],
        others: &mut Vec<usize>,
    ) {
        others.clear();
        let evens = self.columns.add_run(bytes, at, starts, lasts, others);
        self.numbers += (starts.len().min(lasts.len()) - others.len()) as u64;
        self.evens += evens;
        for &i in others.iter() {
            self.add(
                partial,
                bytes,
                at + starts[i] as usize,
                at + lasts[i] as usize + 1,
            );
        }
    }

    fn finish(self, partial: &mut Partial) {
        partial.numbers += self.numbers;
        partial.evens += self.evens;
        self.columns.finish(&mut partial.sum);
        partial.sum.add_i128(self.edge[0] as i128);
        partial.sum.add_i128(-(self.edge[1] as i128));
    }
}

/// The structural fast path, a piece of [`PIECE_WORDS`] words at a time: classify 64 bytes at
/// a time into bitmasks and check that every byte is a separator, a digit or a sign that starts
/// a number, writing down where tokens start and end as it goes; then read the positions back
/// in pairs, so finding a number costs no loop over its bytes and no branch on how many numbers
/// a word holds. From a piece with anything else in it, the rest of the bytes go through the
/// byte-wise path (which finds the bad token's offset).
fn scan_structural(
    bytes: &[u8],
    base: u64,
    partial: &mut Partial,
    tapes: &mut Tapes,
) -> Result<usize, BadToken> {
    let words = bytes.len() / 64;
    let mut totals = Totals::default();
    // A token begun in an earlier piece and not yet ended.
    let mut open: Option<usize> = None;
    let mut previous_sep = true; // the bytes start on a token boundary
    let mut next = (words > 0).then(|| classify64(bytes));
    let mut resume = 64 * words;
    'pieces: for piece in (0..words).step_by(PIECE_WORDS) {
        let piece_at = 64 * piece;
        tapes.starts.len = 0;
        tapes.lasts.len = 0;
        for j in piece..words.min(piece + PIECE_WORDS) {
            let (sep, digit, sign) = next.take().unwrap_or_default();
            next = (j + 1 < words).then(|| classify64(&bytes[64 * (j + 1)..]));
            // The first byte after this word, from the next word or the tail (assumed fine
            // when there is none: that token is unfinished and checked byte-wise).
            let (next_sep, next_digit) = match next {
                Some((s, d, _)) => (s & 1, d & 1),
                None => bytes.get(64 * (j + 1)).map_or((0, 1), |&b| {
                    (u64::from(is_separator(b)), u64::from(is_digit(b)))
                }),
            };
            let before_sep = (sep << 1) | u64::from(previous_sep);
            let after_digit = (digit >> 1) | (next_digit << 63);
            let misplaced_sign = sign & !(before_sep & after_digit);
            if (sep | digit | sign) != u64::MAX || misplaced_sign != 0 {
                resume = open.unwrap_or(piece_at);
                break 'pieces;
            }
            let at = (64 * (j - piece)) as u32;
            let starts = !sep & before_sep;
            let lasts = !sep & ((sep >> 1) | (next_sep << 63));
            // Every run of token bytes in the word has a start and a last byte in it, except
            // a run that came from the word before (no start) and one that goes on into the
            // next (no last byte): one count of set bits gives the other (this build has no
            // instruction for it, and it takes seventeen).
            let starts_count = starts.count_ones() as usize;
            let from_before = usize::from(!previous_sep) & (!sep & 1) as usize;
            let into_next = ((!sep >> 63) & (next_sep ^ 1)) as usize;
            tapes.starts.push_bits(at, starts, starts_count);
            tapes
                .lasts
                .push_bits(at, lasts, starts_count + from_before - into_next);
            previous_sep = sep >> 63 == 1;
        }
        let mut lasts = tapes.lasts.as_slice().iter();
        if let Some(start) = open {
            // The first end in this piece is the open token's; with none, the token goes on
            // through the whole piece.
            let Some(&last) = lasts.next() else {
                continue;
            };
            totals.add(partial, bytes, start, piece_at + last as usize + 1);
        }
        let starts = tapes.starts.as_slice();
        let lasts = lasts.as_slice();
        let ended = lasts.len();
        totals.add_run(partial, bytes, piece_at, starts, lasts, &mut tapes.others);
        // Only the last token can be left without an end.
        open = (starts.len() > ended).then(|| piece_at + starts[ended] as usize);
    }
    totals.finish(partial);
    // The unfinished token, or the tail after the last whole word, byte by byte.
    let resume = open.unwrap_or(resume);
    scan_bytewise(&bytes[resume..], base + resume as u64, partial).map(|tail| resume + tail)
}

/// Whole tokens of `bytes` (which starts at `base` in the file); returns where the unfinished
/// last token starts (`bytes.len()` when the block ends on a separator).
fn scan(
    bytes: &[u8],
    base: u64,
    partial: &mut Partial,
    tapes: &mut Tapes,
) -> Result<usize, BadToken> {
    if bytes.len() >= 128 {
        return scan_structural(bytes, base, partial, tapes);
    }
    scan_bytewise(bytes, base, partial)
}

/// The byte-wise path over whole tokens of `bytes` (which starts at `base` in the file): for
/// short blocks, block tails, and blocks with a bad token, whose offset it finds. Returns where
/// the unfinished last token starts (`bytes.len()` when the block ends on a separator).
///
/// Random numbers make data-dependent branches mispredict, and a mispredicted branch costs more
/// than converting a number: so every number up to 19 digits is converted from the words that
/// were loaded to find its end, and added times its parity (the last digit's low bit), with no
/// branch on its sign or parity and none on its length below 16 digits.
fn scan_bytewise(bytes: &[u8], base: u64, partial: &mut Partial) -> Result<usize, BadToken> {
    let n = bytes.len();
    let mut i = 0;
    let (mut numbers, mut evens) = (0u64, 0u64);
    // Positive and negative evens summed apart, each below 2^64 a number: with fewer than 2^60
    // numbers in one call neither can overflow, so they are added without a check.
    let mut sums = [0u128; 2];
    let flush = |partial: &mut Partial, numbers: u64, evens: u64, sums: [u128; 2]| {
        partial.numbers += numbers;
        partial.evens += evens;
        partial.sum.add_i128(sums[0] as i128);
        partial.sum.add_i128(-(sums[1] as i128));
    };
    while i < n {
        if is_separator(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        let negative = bytes[i] == b'-';
        i += usize::from(negative | (bytes[i] == b'+'));
        let digits = i;
        let (end, value) = if digits + 24 <= n {
            token_by_words(bytes, digits)
        } else {
            let end = digits_end(bytes, digits);
            (end, swar_value(bytes, end, end - digits))
        };
        if end == n {
            flush(partial, numbers, evens, sums);
            return Ok(start);
        }
        if end == digits || !is_separator(bytes[end]) {
            flush(partial, numbers, evens, sums);
            return Err(BadToken::at(base + start as u64, &bytes[start..]));
        }
        match value {
            Some(value) => {
                let even = u64::from(!bytes[end - 1] & 1);
                numbers += 1;
                evens += even;
                // Zero when odd; into the negative sum when negative.
                sums[usize::from(negative)] += u128::from(value * even);
            }
            None => add_number(partial, &bytes[digits..end], negative),
        }
        i = end + 1;
    }
    flush(partial, numbers, evens, sums);
    Ok(n)
}

/// The whole computation over bytes in memory (tests, benchmarks, fuzzing).
/// Fed in blocks of `range::BLOCK` bytes, as files are read.
pub fn sum_bytes(bytes: &[u8]) -> Result<Partial, BadToken> {
    let mut parser = Parser::new(0);
    for block in bytes.chunks(super::range::BLOCK) {
        parser.feed(block)?;
    }
    parser.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(text: &[u8]) {
        if let Err(difference) = super::super::oracle::check(text) {
            panic!("{difference}");
        }
    }

    #[test]
    fn the_cases_the_contract_names() {
        check(b"");
        check(b" \n,\r\n\t ");
        check(b"1 2 3 4");
        check(b"2\r\n4,6 ,8\n");
        check(b",,-2,+4,-0,+0,00,\n");
        check(b"10 20"); // no final newline
        check(b"1234567890123456789012345678901234567890 2");
        check(
            b"-9999999999999999999999999999999999999998 99999999999999999999999999999999999999998",
        );
        check(b"170141183460469231731687303715884105726 170141183460469231731687303715884105726");
        for bad in [
            &b"1 12a 4"[..],
            b"--3",
            b"+",
            b"- 2",
            b"4 \x00 2",
            b"3 1.5",
            b"\xff",
        ] {
            check(bad);
        }
        assert_eq!(sum_bytes(b"2 4 12a").unwrap_err().offset, 4);
        assert_eq!(sum_bytes(b"  --3").unwrap_err().offset, 2);
        assert_eq!(sum_bytes(b"1\n+").unwrap_err().offset, 2);
        assert_eq!(sum_bytes(b"8 \x00").unwrap_err().offset, 2);
        assert_eq!(sum_bytes(b"2 4 12a").unwrap_err().preview, "12a");
    }

    #[test]
    fn words_of_digits() {
        for text in [
            "0", "7", "12345678", "98765432", "1", "00000001", "10000000",
        ] {
            let padded = format!("{text:0>8}");
            assert_eq!(
                eight_digits(load(padded.as_bytes(), 0)),
                text.parse::<u64>().unwrap()
            );
        }
        let text = b"xxxxx-1234567890123456789 12 5 ";
        assert_eq!(swar_value(text, 25, 19), Some(1_234_567_890_123_456_789));
        assert_eq!(swar_value(text, 28, 2), Some(12));
        assert_eq!(swar_value(text, 30, 1), Some(5));
        assert_eq!(
            swar_value(text, 25, 20),
            None,
            "20 digits take the u128 path"
        );
        assert_eq!(
            swar_value(b"12", 2, 2),
            None,
            "not enough bytes before it for three words"
        );
        for text in [
            "7 ",
            "12345678 ",
            "123456789 ",
            "123456789012345 ",
            "1234567890123456 ",
            "1234567890123456789 ",
            "12345678901234567890 ",
            "0000000000000000000000000001 ",
        ] {
            let padded = format!("{text}{}", "x".repeat(30));
            let digits = text.trim_end().len();
            let (end, value) = token_by_words(padded.as_bytes(), 0);
            assert_eq!(end, digits, "{text}");
            let expected = text.trim_end().parse::<u64>().ok().filter(|_| digits <= 19);
            assert_eq!(value, expected, "{text}");
        }
        assert_eq!(digits_end(b"123456789012x", 0), 12);
        assert_eq!(digits_end(b"12\xfa\xff56789012", 0), 2);
        assert_eq!(digits_end(b"9:", 0), 1);
    }

    /// Several pieces of the structural walk: tokens of every length across piece edges, a
    /// token longer than a whole piece, and bad tokens in a later piece.
    #[test]
    fn the_pieces_of_the_structural_walk_join_up() {
        let piece = PIECE_WORDS * 64;
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let mut text = String::new();
        while text.len() < 3 * piece + 500 {
            match next(10) {
                0 => text.push('-'),
                1 => text.push('+'),
                _ => {}
            }
            let digits = 1 + next(45);
            for _ in 0..digits {
                text.push(char::from(b'0' + next(10) as u8));
            }
            text.push_str([" ", "\n", "\r\n", ",", "\t"][next(5) as usize]);
        }
        check(text.as_bytes());
        // A number whose last digit is a piece's last byte, and one that starts the next piece.
        for (ones, number, edge) in [(piece / 2 - 1, "-8 ", b"8 "), (piece / 2, "+46 ", b" +")] {
            let edges = format!("{}{number}{}", "1 ".repeat(ones), "3 ".repeat(piece));
            assert_eq!(&edges.as_bytes()[piece - 1..=piece], edge);
            check(edges.as_bytes());
        }
        // A number longer than a piece, starting and ending in the middle of pieces (after
        // the last separator before the middle of the first).
        let cut = text[..piece / 2].rfind([' ', '\n', ',', '\t']).unwrap() + 1;
        let long = format!("{}-{}8 {}", &text[..cut], "9".repeat(2 * piece), &text);
        check(long.as_bytes());
        assert!(
            sum_bytes(long.as_bytes()).is_ok(),
            "the long number is whole"
        );
        // A bad token, and a sign in the wrong place, two pieces in.
        for bad in ["12a", "5-3", "7+"] {
            let at = text[2 * piece + 100..].find(' ').unwrap() + 2 * piece + 101;
            let broken = format!("{}{bad} {}", &text[..at], &text[at..]);
            check(broken.as_bytes());
            assert_eq!(sum_bytes(broken.as_bytes()).unwrap_err().offset, at as u64);
        }
    }

    #[test]
    fn i128_overflow_spills_into_a_big_integer() {
        let big = "170141183460469231731687303715884105726"; // i128::MAX - 1, even
        let text = format!("{big} {big} {big} -{big}");
        let partial = sum_bytes(text.as_bytes()).unwrap();
        let expected: BigInt = big.parse::<BigInt>().unwrap() * 2;
        assert_eq!(partial.sum.value(), expected);
    }

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[+-]?[0-9]{1,5}",
            2 => "[+-]?[0-9]{17,21}",
            // Around the columns' 32 digits, signed and not.
            1 => "[+-]?[0-9]{30,34}",
            1 => "[+-]?[0-9]{36,45}",
            1 => "[0-9a+-]{1,3}",
        ]
    }

    fn separator() -> impl Strategy<Value = String> {
        prop::sample::select(vec![" ", "\n", "\r\n", ",", ", ", "\t", "  ", "\x0b"])
            .prop_map(str::to_owned)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn matches_the_reference_at_every_block_size(
            parts in prop::collection::vec((token(), separator()), 0..30),
            lead in prop::option::of(separator()),
        ) {
            let mut text = lead.unwrap_or_default();
            for (t, s) in parts {
                text.push_str(&t);
                text.push_str(&s);
            }
            check(text.as_bytes());
        }
    }
}
