//! How a connection ended, when that is worth telling apart: a request head hyper refused,
//! an HTTP/2 client that broke the protocol; and the lingering close after a refusal, so the
//! client gets to read it.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::telemetry::connections::Closed;

/// How long a connection whose head hyper refused is read from after the refusal, at most.
const LINGER_TIME: Duration = Duration::from_secs(5);
/// How long it may bring nothing before it is closed.
const LINGER_QUIET: Duration = Duration::from_secs(1);
/// How much of it is read, at most.
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// Reads and drops what the client is still sending after the server has answered and shut
/// its side, before the socket closes: closing with unread bytes makes the kernel send a
/// reset, and a client still sending its body would lose the answer (curl: exit 55). nginx's
/// lingering close, with bounds: [`LINGER_TIME`], [`LINGER_QUIET`], [`LINGER_BYTES`]. The raw
/// bytes are dropped undecrypted.
pub(super) async fn linger(mut tcp: TcpStream) {
    let mut sink = vec![0u8; 64 * 1024];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while left > 0 {
            match tokio::time::timeout(LINGER_QUIET, tcp.read(&mut sink)).await {
                Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
                _ => return,
            }
        }
    })
    .await;
}

/// Why an HTTP/1 connection ended on a request head hyper refused: over twice
/// `--max-head-bytes` (431 sent), or not HTTP/1 at all (400 sent; nothing for an HTTP/2
/// preface). Such a head never reaches the service, so this is where it is counted.
pub(super) fn refused_head(error: &hyper::Error) -> Option<Closed> {
    if error.is_parse_too_large() {
        Some(Closed::HeadTooLarge)
    } else if error.is_parse() {
        Some(Closed::BadHead)
    } else {
        None
    }
}

/// Whether an HTTP/2 connection ended because h2 sent a GOAWAY for the client's breaking the
/// protocol (rapid resets, a CONTINUATION flood, a bad frame), not because the client left.
pub(super) fn broke_protocol(error: &hyper::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|cause| cause.downcast_ref::<h2::Error>())
        .is_some_and(|h2| h2.is_go_away() && h2.is_library())
}
