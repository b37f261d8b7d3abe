//! Summing one byte range of a file. A range owns the tokens that *start* inside it: it skips a
//! token cut by its start (the range before owns it) and reads past its end to finish its last
//! token. So the ranges of a file can be summed independently and their results merged, and the
//! first bad token is the one with the smallest offset any range reports.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::parse::{BadToken, Parser, Partial, is_separator};

/// How much of the file one read takes.
pub(crate) const BLOCK: usize = 1 << 20;

/// Why a range could not be summed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RangeError {
    #[error(transparent)]
    Bad(#[from] BadToken),
    #[error("reading the upload: {0}")]
    Io(#[from] io::Error),
}

/// Where a range's bytes come from: a file, or a file some of whose blocks are in memory.
pub(crate) trait Source {
    /// Bytes at `offset`: at least one and at most `want` (at most `buf.len()` when read into
    /// `buf`), or none at the end of the file. Fewer than `want` may come before the end.
    fn block<'a>(&'a self, offset: u64, want: usize, buf: &'a mut [u8]) -> io::Result<&'a [u8]>;
}

impl Source for File {
    fn block<'a>(&'a self, offset: u64, want: usize, buf: &'a mut [u8]) -> io::Result<&'a [u8]> {
        let want = want.min(buf.len());
        let got = read_at(self, &mut buf[..want], offset)?;
        Ok(&buf[..got])
    }
}

/// Reads up to `buf.len()` bytes at `offset` (fewer only at the end of the file).
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Sums the tokens that start in `start..end` of `source`, whose length is `len`. `buf` is the
/// read buffer for what is read from a file (its length is the most one read takes).
pub(crate) fn sum_range(
    source: &impl Source,
    start: u64,
    end: u64,
    len: u64,
    buf: &mut [u8],
) -> Result<Partial, RangeError> {
    let end = end.min(len);
    let mut pos = start;
    // Inside a token that began before `start`: skip to its end.
    if start > 0 && start < end {
        let before = source.block(start - 1, 1, buf)?;
        if before.first().is_some_and(|&b| !is_separator(b)) {
            loop {
                if pos >= end {
                    return Ok(Partial::default());
                }
                let got = source.block(pos, (end - pos) as usize, buf)?;
                if got.is_empty() {
                    return Ok(Partial::default());
                }
                match got.iter().position(|&b| is_separator(b)) {
                    Some(i) => {
                        pos += i as u64;
                        break;
                    }
                    None => pos += got.len() as u64,
                }
            }
        }
    }
    let mut parser = Parser::new(pos);
    while pos < end {
        let got = source.block(pos, (end - pos) as usize, buf)?;
        if got.is_empty() {
            break;
        }
        parser.feed(got)?;
        pos += got.len() as u64;
    }
    // The last token may go on past the end: feed up to its separator and no further.
    while parser.in_token() && pos < len {
        let got = source.block(pos, (len - pos) as usize, buf)?;
        if got.is_empty() {
            break;
        }
        match got.iter().position(|&b| is_separator(b)) {
            Some(i) => {
                parser.feed(&got[..=i])?;
                break;
            }
            None => {
                parser.feed(got)?;
                pos += got.len() as u64;
            }
        }
    }
    Ok(parser.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sum_evens::parse::sum_bytes;
    use std::io::Write;

    fn file_with(text: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text).unwrap();
        let file = File::open(f.path()).unwrap();
        (f, file)
    }

    /// Every way of cutting the file into ranges, with tiny read blocks, gives the whole sum.
    #[test]
    fn ranges_cut_anywhere_merge_to_the_whole() {
        let text =
            b"12 -4,,\r\n 1234567890123456789012345678901234567890 7 +8\n99999999999999999998 0";
        let whole = sum_bytes(text).unwrap();
        let (_keep, file) = file_with(text);
        let len = text.len() as u64;
        for block in [1, 3, 8, 64] {
            let mut buf = vec![0; block];
            for cut in 0..=len {
                for cut2 in cut..=len {
                    let mut merged = Partial::default();
                    for (s, e) in [(0, cut), (cut, cut2), (cut2, len)] {
                        merged.merge(&sum_range(&file, s, e, len, &mut buf).unwrap());
                    }
                    assert_eq!(merged, whole, "cuts {cut} {cut2}, block {block}");
                }
            }
        }
    }

    #[test]
    fn the_first_bad_token_is_reported_by_whichever_range_owns_it() {
        let text = b"2 4 6 8 1x2 10 zz";
        let (_keep, file) = file_with(text);
        let len = text.len() as u64;
        let mut buf = vec![0; 4];
        // Cut inside the bad token: the range before owns it.
        let first = sum_range(&file, 0, 10, len, &mut buf).unwrap_err();
        assert!(
            matches!(first, RangeError::Bad(BadToken { offset: 8, .. })),
            "{first}"
        );
        assert!(sum_range(&file, 10, len, len, &mut buf).is_err());
    }
}
