//! A client-side token bucket per (account, region, operation), so a sync spends only its configured share
//! of each KMS request quota and leaves the rest to the account's own traffic (aws-facts: KMS quotas).
//! The bucket adapts: a throttled call means someone else is using the quota, so the rate halves, then it
//! climbs back to the allowed rate with each call that goes through (additive increase, multiplicative
//! decrease). Each bucket also counts its calls and throttles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Mutex as AsyncMutex;
use tokio::time::{Duration, Instant, sleep};

/// The KMS operations the engine calls, with today's default quota in requests per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KmsOperation {
    ListKeys,
    ListAliases,
    DescribeKey,
    ListResourceTags,
    GetKeyRotationStatus,
    GetKeyPolicy,
}

impl KmsOperation {
    pub const ALL: [KmsOperation; 6] = [
        KmsOperation::ListKeys,
        KmsOperation::ListAliases,
        KmsOperation::DescribeKey,
        KmsOperation::ListResourceTags,
        KmsOperation::GetKeyRotationStatus,
        KmsOperation::GetKeyPolicy,
    ];

    /// The AWS name of the operation.
    pub fn name(self) -> &'static str {
        match self {
            KmsOperation::ListKeys => "ListKeys",
            KmsOperation::ListAliases => "ListAliases",
            KmsOperation::DescribeKey => "DescribeKey",
            KmsOperation::ListResourceTags => "ListResourceTags",
            KmsOperation::GetKeyRotationStatus => "GetKeyRotationStatus",
            KmsOperation::GetKeyPolicy => "GetKeyPolicy",
        }
    }

    /// Requests per second per account and region (KMS developer guide, "Request quotas"): today's
    /// defaults, or the older ones some accounts still have.
    pub fn quota(self, quotas: Quotas) -> f64 {
        match (self, quotas) {
            (KmsOperation::ListKeys | KmsOperation::ListAliases, Quotas::Current) => 500.0,
            (KmsOperation::DescribeKey | KmsOperation::ListResourceTags, Quotas::Current) => 2000.0,
            (KmsOperation::GetKeyRotationStatus | KmsOperation::GetKeyPolicy, Quotas::Current) => {
                1000.0
            }
            (KmsOperation::GetKeyRotationStatus | KmsOperation::GetKeyPolicy, Quotas::Legacy) => {
                30.0
            }
            (_, Quotas::Legacy) => 100.0,
        }
    }
}

/// Which KMS request quotas the accounts have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quotas {
    #[default]
    Current,
    Legacy,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The most a bucket holds: a tenth of a second at `rate`, and at least one request.
fn burst(rate: f64) -> f64 {
    (rate / 10.0).max(1.0)
}

/// The rate never falls below one request a second, so a unit always moves; a storm that leaves the sync
/// a sliver of the quota (other callers using the rest) slows it down instead of failing its units.
const MIN_RATE: f64 = 1.0;
/// Each call that goes through gives back this share of the allowed rate after a throttle.
const RECOVERY_PER_CALL: f64 = 0.002;

/// One token bucket: up to `allowed` requests per second. It holds a tenth of a second's worth at most, so
/// that no second ever sees more than 1.1 times the allowed rate (a full second's burst would double it).
pub struct TokenBucket {
    allowed: f64,
    /// The rate in force, as f64 bits: `allowed`, or less after a throttle.
    rate: AtomicU64,
    bucket: AsyncMutex<Bucket>,
    calls: AtomicU64,
    throttles: AtomicU64,
}

impl TokenBucket {
    pub fn new(rate: f64) -> Self {
        let allowed = rate.max(0.1);
        TokenBucket {
            allowed,
            rate: AtomicU64::new(allowed.to_bits()),
            bucket: AsyncMutex::new(Bucket {
                tokens: burst(allowed),
                last: Instant::now(),
            }),
            calls: AtomicU64::new(0),
            throttles: AtomicU64::new(0),
        }
    }

    /// Requests per second allowed now.
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Ordering::Relaxed))
    }

    /// The quota share this bucket may use at most.
    pub fn allowed(&self) -> f64 {
        self.allowed
    }

    fn set_rate(&self, change: impl Fn(f64) -> f64) {
        let floor = MIN_RATE.min(self.allowed);
        let _ = self
            .rate
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some(
                    change(f64::from_bits(bits))
                        .clamp(floor, self.allowed)
                        .to_bits(),
                )
            });
    }

    /// Waits until a request may go out, and counts it. A timer that wakes late (tokio's tick is 1 ms, the
    /// wait at 500/s is 2 ms) leaves its extra time in the bucket, so the rate is kept, not rounded down.
    pub async fn acquire(&self) {
        let mut bucket = self.bucket.lock().await;
        loop {
            let rate = self.rate();
            let now = Instant::now();
            bucket.tokens = (bucket.tokens + now.duration_since(bucket.last).as_secs_f64() * rate)
                .min(burst(rate));
            bucket.last = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                self.calls.fetch_add(1, Ordering::Relaxed);
                return;
            }
            sleep(Duration::from_secs_f64((1.0 - bucket.tokens) / rate)).await;
        }
    }

    /// A call went through: the rate climbs back towards the allowed rate.
    pub fn succeeded(&self) {
        self.set_rate(|rate| rate + self.allowed * RECOVERY_PER_CALL);
    }

    /// A call was throttled: someone else is using the quota, so the rate halves.
    pub fn throttled(&self) {
        self.throttles.fetch_add(1, Ordering::Relaxed);
        self.set_rate(|rate| rate / 2.0);
    }

    /// Calls let through and throttles met so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.throttles.load(Ordering::Relaxed),
        )
    }
}

/// The buckets of every (account, region, operation) this process has called.
pub struct RateLimits {
    share: f64,
    quotas: Quotas,
    buckets: Mutex<HashMap<(String, String, KmsOperation), Arc<TokenBucket>>>,
}

impl RateLimits {
    pub fn new(share: f64, quotas: Quotas) -> Self {
        RateLimits {
            share,
            quotas,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Keys per second one (account, region) may be read at: the allowed rate of the slowest per-key read.
    pub fn keys_per_second(&self) -> f64 {
        [
            KmsOperation::DescribeKey,
            KmsOperation::ListResourceTags,
            KmsOperation::GetKeyPolicy,
            KmsOperation::GetKeyRotationStatus,
        ]
        .into_iter()
        .map(|operation| operation.quota(self.quotas) * self.share)
        .fold(f64::INFINITY, f64::min)
    }

    pub fn bucket(
        &self,
        account_id: &str,
        region: &str,
        operation: KmsOperation,
    ) -> Arc<TokenBucket> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        buckets
            .entry((account_id.to_string(), region.to_string(), operation))
            .or_insert_with(|| {
                Arc::new(TokenBucket::new(operation.quota(self.quotas) * self.share))
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_lets_a_tenth_of_a_second_through_then_paces_to_its_rate() {
        let bucket = TokenBucket::new(100.0);
        let start = Instant::now();
        for _ in 0..10 {
            bucket.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(1),
            "a tenth of a second's worth goes at once"
        );
        for _ in 0..100 {
            bucket.acquire().await;
        }
        let paced = start.elapsed();
        assert!(
            paced >= Duration::from_millis(990) && paced <= Duration::from_millis(1010),
            "110 calls at 100/s: {paced:?}"
        );
    }

    #[test]
    fn every_operation_is_listed_in_its_declaration_order() {
        for (index, operation) in KmsOperation::ALL.iter().enumerate() {
            assert_eq!(*operation as usize, index, "{operation:?}");
        }
    }

    #[test]
    fn a_throttle_halves_the_rate_and_calls_that_go_through_bring_it_back() {
        let bucket = TokenBucket::new(100.0);
        bucket.throttled();
        assert_eq!(bucket.rate(), 50.0);
        for _ in 0..10 {
            bucket.throttled();
        }
        assert_eq!(bucket.rate(), 1.0, "never below one request a second");
        for _ in 0..1000 {
            bucket.succeeded();
        }
        assert_eq!(bucket.rate(), 100.0, "never above the allowed rate");
        assert_eq!(bucket.counts(), (0, 11));
    }

    #[test]
    fn buckets_are_per_account_region_and_operation_at_the_configured_share() {
        let limits = RateLimits::new(0.5, Quotas::Current);
        let a = limits.bucket("111122223333", "us-east-1", KmsOperation::DescribeKey);
        let b = limits.bucket("111122223333", "us-east-1", KmsOperation::DescribeKey);
        let c = limits.bucket("111122223333", "eu-west-1", KmsOperation::DescribeKey);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(a.rate(), 1000.0);
        let legacy = RateLimits::new(0.5, Quotas::Legacy);
        assert_eq!(
            legacy
                .bucket("111122223333", "us-east-1", KmsOperation::GetKeyPolicy)
                .rate(),
            15.0
        );
        assert_eq!(limits.keys_per_second(), 500.0);
        assert_eq!(legacy.keys_per_second(), 15.0);
    }
}
