//! A key store that counts the keys it is asked to write, in front of the in-memory twin, or in front of
//! nothing (a sink that keeps no key: the engine's own memory, without a copy of every key; in Lambda the
//! keys go to DynamoDB).

use async_trait::async_trait;
use cckm_aws_sync::domain::AppError;
use cckm_aws_sync::domain::key::KeyRecord;
use cckm_aws_sync::domain::time::Timestamp;
use cckm_aws_sync::ports::{GoneSweep, KeyStore, Settled, StoredKeyStub, StoredState, Verdict};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

pub struct CountingKeyStore {
    inner: Option<Arc<dyn KeyStore>>,
    written: AtomicU64,
}

impl CountingKeyStore {
    pub fn new(inner: Option<Arc<dyn KeyStore>>) -> Self {
        CountingKeyStore {
            inner,
            written: AtomicU64::new(0),
        }
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
        match &self.inner {
            Some(inner) => inner.get_many(ids).await,
            None => Ok(Vec::new()),
        }
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
    async fn update_from_refresh(&self, key: &KeyRecord) -> Result<(), AppError> {
        match &self.inner {
            Some(inner) => inner.update_from_refresh(key).await,
            None => Ok(()),
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
    async fn scan(
        &self,
        units: Option<&[String]>,
        visit: &mut (dyn FnMut(KeyRecord) + Send),
    ) -> Result<(), AppError> {
        match &self.inner {
            Some(inner) => inner.scan(units, visit).await,
            None => Ok(()),
        }
    }
}
