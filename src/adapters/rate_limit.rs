//! A client-side token bucket per (account, region, operation), so a sync spends only its configured share
//! of each KMS request quota and leaves the rest to the account's own traffic (aws-facts: KMS quotas).

use std::collections::HashMap;
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

/// One token bucket: `rate` requests per second, bursting to one second's worth.
pub struct TokenBucket {
    rate: f64,
    bucket: AsyncMutex<Bucket>,
}

impl TokenBucket {
    pub fn new(rate: f64) -> Self {
        let rate = rate.max(0.1);
        TokenBucket {
            rate,
            bucket: AsyncMutex::new(Bucket {
                tokens: rate,
                last: Instant::now(),
            }),
        }
    }

    /// Waits until a request may go out.
    pub async fn acquire(&self) {
        let mut bucket = self.bucket.lock().await;
        let now = Instant::now();
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.last).as_secs_f64() * self.rate)
            .min(self.rate);
        bucket.last = now;
        if bucket.tokens < 1.0 {
            let wait = (1.0 - bucket.tokens) / self.rate;
            sleep(Duration::from_secs_f64(wait)).await;
            bucket.tokens = 1.0;
            bucket.last = Instant::now();
        }
        bucket.tokens -= 1.0;
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
    async fn a_bucket_lets_a_burst_through_then_paces_to_its_rate() {
        let bucket = TokenBucket::new(10.0);
        let start = Instant::now();
        for _ in 0..10 {
            bucket.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(1),
            "the first second's worth is a burst"
        );
        for _ in 0..10 {
            bucket.acquire().await;
        }
        let paced = start.elapsed();
        assert!(
            paced >= Duration::from_millis(900) && paced <= Duration::from_millis(1100),
            "{paced:?}"
        );
    }

    #[test]
    fn buckets_are_per_account_region_and_operation_at_the_configured_share() {
        let limits = RateLimits::new(0.5, Quotas::Current);
        let a = limits.bucket("111122223333", "us-east-1", KmsOperation::DescribeKey);
        let b = limits.bucket("111122223333", "us-east-1", KmsOperation::DescribeKey);
        let c = limits.bucket("111122223333", "eu-west-1", KmsOperation::DescribeKey);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(a.rate, 1000.0);
        let legacy = RateLimits::new(0.5, Quotas::Legacy);
        assert_eq!(
            legacy
                .bucket("111122223333", "us-east-1", KmsOperation::GetKeyPolicy)
                .rate,
            15.0
        );
        assert_eq!(limits.keys_per_second(), 500.0);
        assert_eq!(legacy.keys_per_second(), 15.0);
    }
}
