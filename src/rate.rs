//! A token bucket driven by the host's clock, for message floods and for
//! counting a connection's protocol violations.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// The shape of a token bucket: how many tokens it holds when full, and how
/// many it regains per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Tokens in a full bucket: the largest burst allowed.
    pub burst: u32,
    /// Tokens regained per second.
    pub per_second: u32,
}

/// A bucket's state. Tokens are counted in thousandths so that refill is
/// exact in integer arithmetic.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    milli_tokens: u64,
    last: Millis,
}

impl TokenBucket {
    pub(crate) fn full(limit: RateLimit, now: Millis) -> Self {
        TokenBucket { milli_tokens: u64::from(limit.burst) * 1000, last: now }
    }

    /// (thousandths of a token, time of the last refill), for snapshots.
    pub(crate) fn state(&self) -> (u64, Millis) {
        (self.milli_tokens, self.last)
    }

    pub(crate) fn from_state((milli_tokens, last): (u64, Millis)) -> Self {
        TokenBucket { milli_tokens, last }
    }

    /// Takes one token if there is one; says whether it could.
    pub(crate) fn try_take(&mut self, limit: RateLimit, now: Millis) -> bool {
        let elapsed = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        let cap = u64::from(limit.burst) * 1000;
        let refill = elapsed.saturating_mul(u64::from(limit.per_second));
        self.milli_tokens = self.milli_tokens.saturating_add(refill).min(cap);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills_with_time() {
        let limit = RateLimit { burst: 3, per_second: 2 };
        let mut b = TokenBucket::full(limit, 0);
        assert!(b.try_take(limit, 0));
        assert!(b.try_take(limit, 0));
        assert!(b.try_take(limit, 0));
        assert!(!b.try_take(limit, 0));
        assert!(!b.try_take(limit, 499));
        assert!(b.try_take(limit, 500));
        // A clock that goes backwards refills nothing and breaks nothing.
        assert!(!b.try_take(limit, 100));
    }
}
