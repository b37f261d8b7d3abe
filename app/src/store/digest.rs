//! A message's key: the SHA-256 of its UTF-8 bytes, shown as 64 lowercase hex digits.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Digest(pub [u8; 32]);

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Digest {
    /// The digest of `message`'s UTF-8 bytes.
    pub(crate) fn of(message: &str) -> Self {
        Self(Sha256::digest(message.as_bytes()).into())
    }

    /// Reads 64 hex digits (either case); anything else is not a digest.
    pub(crate) fn parse_hex(text: &str) -> Option<Self> {
        let text = text.as_bytes();
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Self(out))
    }

    /// 64 lowercase hex digits.
    pub(crate) fn to_hex(self) -> String {
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        out
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            Digest::of("foo").to_hex(),
            "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        );
        assert_eq!(
            Digest::of("").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn malformed_hex_is_not_a_digest() {
        let good = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
        assert_eq!(Digest::parse_hex(good), Some(Digest::of("foo")));
        assert_eq!(
            Digest::parse_hex(&good.to_uppercase()),
            Some(Digest::of("foo"))
        );
        for bad in [
            "",
            &good[1..],
            &format!("{good}0"),
            &good.replace('c', "g"),
            &format!("{}é", &good[..62]),
        ] {
            assert_eq!(Digest::parse_hex(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn hex_round_trips(bytes in prop::array::uniform32(any::<u8>())) {
            let digest = Digest(bytes);
            prop_assert_eq!(Digest::parse_hex(&digest.to_hex()), Some(digest));
        }
    }
}
