//! What a Redis server does when its memory is full. At `maxmemory` with the policy
//! `noeviction` it refuses writes (`OOM`): the store or the queue is full, and clients are told
//! so with 507, as for a full disk, rather than 503 and a retry in a second. With any other
//! policy it evicts keys to make room, and messages and tasks would vanish without an error;
//! glassbox warns at start when the server it is given would do that.

use std::time::Duration;

use redis::RedisError;
use redis::aio::ConnectionManager;

/// How long the start-up check waits for `INFO memory`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether Redis refused a write for being at its `maxmemory`.
pub(crate) fn is_full(err: &RedisError) -> bool {
    err.code() == Some("OOM")
}

/// Asks the server for its memory settings, in the background, and logs a warning if it
/// evicts keys at its `maxmemory`. `holds`: what glassbox keeps there (messages, tasks). A
/// server that does not answer is left to the health checks.
pub(crate) fn warn_if_evicting(conn: ConnectionManager, holds: &'static str, location: String) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut conn = conn;
        let info = tokio::time::timeout(
            CHECK_TIMEOUT,
            redis::cmd("INFO")
                .arg("memory")
                .query_async::<String>(&mut conn),
        )
        .await;
        if let Ok(Ok(info)) = info
            && let Some((maxmemory, policy)) = evicting(&info)
        {
            tracing::warn!(
                %location,
                maxmemory,
                policy,
                "Redis evicts keys when it reaches its maxmemory: {holds} kept there can vanish \
                 without an error; set maxmemory-policy noeviction (a full Redis then answers \
                 writes with 507)"
            );
        }
    });
}

/// The `maxmemory` and policy in an `INFO memory` answer, when the server evicts at a limit.
fn evicting(info: &str) -> Option<(u64, &str)> {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
    };
    let maxmemory: u64 = field("maxmemory:")?.parse().ok()?;
    let policy = field("maxmemory_policy:")?;
    (maxmemory > 0 && policy != "noeviction").then_some((maxmemory, policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(maxmemory: u64, policy: &str) -> String {
        format!(
            "# Memory\r\nused_memory:1000\r\nmaxmemory:{maxmemory}\r\nmaxmemory_human:2M\r\n\
             maxmemory_policy:{policy}\r\nallocator_frag_ratio:1.0\r\n"
        )
    }

    #[test]
    fn only_a_limit_with_an_evicting_policy_is_evicting() {
        assert_eq!(
            evicting(&info(2 << 20, "allkeys-lru")),
            Some((2 << 20, "allkeys-lru"))
        );
        assert_eq!(
            evicting(&info(2 << 20, "volatile-ttl")),
            Some((2 << 20, "volatile-ttl"))
        );
        assert_eq!(evicting(&info(2 << 20, "noeviction")), None);
        // No limit: nothing is ever evicted, whatever the policy says.
        assert_eq!(evicting(&info(0, "allkeys-lru")), None);
        assert_eq!(evicting("# Memory\r\n"), None);
    }
}
