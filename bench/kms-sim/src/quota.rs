//! KMS request quotas per (account, region, operation): a bucket of one second's worth of requests, as
//! KMS applies its per-second quotas. A request finds a token or is throttled; nothing waits here.

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

/// Requests per second per account and region (KMS developer guide, "Request quotas"): today's defaults,
/// or the older ones.
pub fn defaults(legacy: bool) -> HashMap<String, f64> {
    let (list, read, policy) = if legacy {
        (100.0, 100.0, 30.0)
    } else {
        (500.0, 2000.0, 1000.0)
    };
    HashMap::from([
        ("ListKeys".to_string(), list),
        ("ListAliases".to_string(), list),
        ("DescribeKey".to_string(), read),
        ("ListResourceTags".to_string(), read),
        ("GetKeyRotationStatus".to_string(), policy),
        ("GetKeyPolicy".to_string(), policy),
    ])
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Default)]
struct Counts {
    calls: BTreeMap<String, u64>,
    throttles: BTreeMap<String, u64>,
    /// Calls let through per operation and wall-clock second: the busiest second shows whether any
    /// client passed its share.
    per_second: BTreeMap<String, BTreeMap<u64, u64>>,
}

pub struct Quotas {
    rates: HashMap<String, f64>,
    buckets: Mutex<HashMap<(String, String, String), Bucket>>,
    counts: Mutex<Counts>,
}

impl Quotas {
    pub fn new(rates: HashMap<String, f64>) -> Quotas {
        Quotas {
            rates,
            buckets: Mutex::default(),
            counts: Mutex::default(),
        }
    }

    /// Counts the call; false when it is over the quota (and counts the throttle).
    pub fn admit(&self, account: &str, region: &str, operation: &str) -> bool {
        let rate = self.rates.get(operation).copied().unwrap_or(f64::INFINITY);
        let admitted = rate.is_infinite() || {
            let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let bucket = buckets
                .entry((account.into(), region.into(), operation.into()))
                .or_insert(Bucket {
                    tokens: rate,
                    last: now,
                });
            bucket.tokens =
                (bucket.tokens + now.duration_since(bucket.last).as_secs_f64() * rate).min(rate);
            bucket.last = now;
            bucket.tokens >= 1.0 && {
                bucket.tokens -= 1.0;
                true
            }
        };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.calls.entry(operation.into()).or_default() += 1;
        if admitted {
            let second = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            *counts
                .per_second
                .entry(operation.into())
                .or_default()
                .entry(second)
                .or_default() += 1;
        } else {
            *counts.throttles.entry(operation.into()).or_default() += 1;
        }
        admitted
    }

    pub fn stats(&self) -> Value {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let busiest: BTreeMap<&String, u64> = counts
            .per_second
            .iter()
            .map(|(operation, seconds)| (operation, seconds.values().copied().max().unwrap_or(0)))
            .collect();
        json!({"calls": counts.calls, "throttles": counts.throttles, "quotas": self.rates,
            "busiest_second": busiest})
    }

    pub fn reset(&self) {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner()) = Counts::default();
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_s_worth_goes_through_then_calls_are_throttled_and_counted() {
        let quotas = Quotas::new(HashMap::from([("DescribeKey".to_string(), 10.0)]));
        let admitted = (0..15)
            .filter(|_| quotas.admit("1", "us-east-1", "DescribeKey"))
            .count();
        assert_eq!(admitted, 10);
        assert!(quotas.admit("1", "eu-west-1", "DescribeKey"), "per region");
        assert!(quotas.admit("1", "us-east-1", "ListKeys"), "no quota set");
        let stats = quotas.stats();
        assert_eq!(stats["calls"]["DescribeKey"], 16);
        assert_eq!(stats["throttles"]["DescribeKey"], 5);
    }
}
