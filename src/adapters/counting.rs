//! A key store that counts the keys it is asked to write and the items its reads cost, in front of another
//! store, or in front of nothing (a sink that keeps no key: the engine's own memory, without a copy of
//! every key; in Lambda the keys go to DynamoDB). Not wired in the function: the benchmarks and the tests
//! measure with it.

use crate::domain::AppError;
use crate::domain::key::KeyRecord;
use crate::domain::time::Timestamp;
use crate::ports::{
    GoneSweep, KeyIndex, KeyStore, Settled, StoredKeyStub, StoredState, UnitCount, Verdict,
};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

pub struct CountingKeyStore {
    inner: Option<Arc<dyn KeyStore>>,
    written: AtomicU64,
    read: AtomicU64,
}

impl CountingKeyStore {
    pub fn new(inner: Option<Arc<dyn KeyStore>>) -> Self {
        CountingKeyStore {
            inner,
            written: AtomicU64::new(0),
            read: AtomicU64::new(0),
        }
    }

    /// Items the list reads cost so far (index entries and records), and the count set back to zero.
    pub fn take_read(&self) -> u64 {
        self.read.swap(0, Ordering::Relaxed)
    }

    /// Keys written so far, and the count set back to zero.
    pub fn take_written(&self) -> u64 {
        self.written.swap(0, Ordering::Relaxed)
    }
}

#[async_trait]
impl KeyStore for CountingKeyStore {
    async fn put_all(&self, keys: &[KeyRecord]) -> Result<(), AppError> {
        self.written.fetch_add(keys.len() as u64, Ordering::Relaxed);
        match &self.inner {
            Some(inner) => inner.put_all(keys).await,
            None => Ok(()),
        }
    }
    async fn get(&self, id: Uuid) -> Result<Option<KeyRecord>, AppError> {
        match &self.inner {
            Some(inner) => inner.get(id).await,
            None => Ok(None),
        }
    }
    async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<KeyRecord>, AppError> {
        let found = match &self.inner {
            Some(inner) => inner.get_many(ids).await?,
            None => Vec::new(),
        };
        self.read.fetch_add(found.len() as u64, Ordering::Relaxed);
        Ok(found)
    }
    async fn delete(&self, id: Uuid) -> Result<bool, AppError> {
        match &self.inner {
            Some(inner) => inner.delete(id).await,
            None => Ok(false),
        }
    }
    async fn stored_states(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, StoredState>, AppError> {
        match &self.inner {
            Some(inner) => inner.stored_states(ids).await,
            None => Ok(HashMap::new()),
        }
    }
    async fn for_each_stub(
        &self,
        unit_key: &str,
        visit: &mut (dyn FnMut(StoredKeyStub) + Send),
    ) -> Result<(), AppError> {
        match &self.inner {
            Some(inner) => inner.for_each_stub(unit_key, visit).await,
            None => Ok(()),
        }
    }
    async fn store_read(&self, key: &KeyRecord, create: bool) -> Result<bool, AppError> {
        match &self.inner {
            Some(inner) => inner.store_read(key, create).await,
            None => Ok(false),
        }
    }
    async fn settle_sweep(
        &self,
        sweep: &GoneSweep,
        verdicts: &[Verdict],
        now: Timestamp,
    ) -> Result<Settled, AppError> {
        match &self.inner {
            Some(inner) => inner.settle_sweep(sweep, verdicts, now).await,
            None => Ok(Settled::default()),
        }
    }
    async fn for_each_indexed(
        &self,
        index: &KeyIndex,
        newest_first: bool,
        want: usize,
        visit: &mut (dyn FnMut(KeyRecord) -> bool + Send),
    ) -> Result<u64, AppError> {
        let read = match &self.inner {
            Some(inner) => {
                inner
                    .for_each_indexed(index, newest_first, want, visit)
                    .await?
            }
            None => 0,
        };
        self.read.fetch_add(read, Ordering::Relaxed);
        Ok(read)
    }
    async fn unit_counts(&self) -> Result<Vec<UnitCount>, AppError> {
        match &self.inner {
            Some(inner) => inner.unit_counts().await,
            None => Ok(Vec::new()),
        }
    }
    async fn recount(&self, unit_key: &str) -> Result<(), AppError> {
        match &self.inner {
            Some(inner) => inner.recount(unit_key).await,
            None => Ok(()),
        }
    }
    async fn scan(
        &self,
        units: Option<&[String]>,
        visit: &mut (dyn FnMut(KeyRecord) + Send),
    ) -> Result<(), AppError> {
        let mut scanned = 0u64;
        let result = match &self.inner {
            Some(inner) => {
                inner
                    .scan(units, &mut |key| {
                        scanned += 1;
                        visit(key)
                    })
                    .await
            }
            None => Ok(()),
        };
        self.read.fetch_add(scanned, Ordering::Relaxed);
        result
    }
}
