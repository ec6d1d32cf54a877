//! A key store that counts what it is handed and keeps nothing: the engine's own memory, without the
//! in-memory twin's copy of every key (in Lambda, the keys go to DynamoDB).

use async_trait::async_trait;
use cckm_aws_sync::domain::AppError;
use cckm_aws_sync::domain::key::KeyRecord;
use cckm_aws_sync::domain::time::Timestamp;
use cckm_aws_sync::ports::{GoneSweep, KeyStore, Settled, StoredKeyStub, Verdict};
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

#[derive(Default)]
pub struct SinkKeyStore {
    written: AtomicU64,
}

impl SinkKeyStore {
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl KeyStore for SinkKeyStore {
    async fn put_all(&self, keys: &[KeyRecord]) -> Result<(), AppError> {
        self.written.fetch_add(keys.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    async fn get(&self, _: Uuid) -> Result<Option<KeyRecord>, AppError> {
        Ok(None)
    }
    async fn delete(&self, _: Uuid) -> Result<bool, AppError> {
        Ok(false)
    }
    async fn unit_stubs(&self, _: &str) -> Result<Vec<StoredKeyStub>, AppError> {
        Ok(Vec::new())
    }
    async fn update_from_refresh(&self, _: &KeyRecord) -> Result<(), AppError> {
        Ok(())
    }
    async fn settle_sweep(
        &self,
        _: &GoneSweep,
        _: &[Verdict],
        _: Timestamp,
    ) -> Result<Settled, AppError> {
        Ok(Settled::default())
    }
    async fn scan(
        &self,
        _: Option<&[String]>,
        _: &mut (dyn FnMut(KeyRecord) + Send),
    ) -> Result<(), AppError> {
        Ok(())
    }
}
