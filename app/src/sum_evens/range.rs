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

/// Sums the tokens that start in `start..end` of `file`, whose length is `len`. `buf` is the
/// read buffer (its length is the block size).
pub(crate) fn sum_range(
    file: &File,
    start: u64,
    end: u64,
    len: u64,
    buf: &mut [u8],
) -> Result<Partial, RangeError> {
    let end = end.min(len);
    let mut pos = start;
    // Inside a token that began before `start`: skip to its end.
    if start > 0 && start < end {
        let mut before = [0u8];
        read_at(file, &mut before, start - 1)?;
        if !is_separator(before[0]) {
            loop {
                if pos >= end {
                    return Ok(Partial::default());
                }
                let want = buf.len().min((end - pos) as usize);
                let got = read_at(file, &mut buf[..want], pos)?;
                if got == 0 {
                    return Ok(Partial::default());
                }
                match buf[..got].iter().position(|&b| is_separator(b)) {
                    Some(i) => {
                        pos += i as u64;
                        break;
                    }
                    None => pos += got as u64,
                }
            }
        }
    }
    let mut parser = Parser::new(pos);
    while pos < end {
        let want = buf.len().min((end - pos) as usize);
        let got = read_at(file, &mut buf[..want], pos)?;
        if got == 0 {
            break;
        }
        parser.feed(&buf[..got])?;
        pos += got as u64;
    }
    // The last token may go on past the end: feed up to its separator and no further.
    while parser.in_token() && pos < len {
        let got = read_at(file, buf, pos)?;
        if got == 0 {
            break;
        }
        match buf[..got].iter().position(|&b| is_separator(b)) {
            Some(i) => {
                parser.feed(&buf[..=i])?;
                break;
            }
            None => {
                parser.feed(&buf[..got])?;
                pos += got as u64;
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
