//! The wired application: every port behind an `Arc`, plus the settings the services need. Built once at
//! cold start (`main.rs`) or per test (`App::in_memory`), then shared by every invocation.

use crate::adapters::memory::*;
use crate::config::{SyncSettings, Tenancy};
use crate::domain::connection::AwsConnection;
use crate::domain::job_config::JobConfig;
use crate::domain::organization::DiscoveryInput;
use crate::ports::*;
use std::sync::Arc;

#[derive(Clone)]
pub struct App {
    pub kms: Arc<dyn KmsRegistry>,
    pub connections: Arc<dyn NamedStore<AwsConnection>>,
    pub job_configs: Arc<dyn NamedStore<JobConfig>>,
    /// The schedules of the job configurations; None when no scheduler target is configured.
    pub schedules: Option<Arc<dyn Schedules>>,
    pub secrets: Arc<dyn SecretStore>,
    pub jobs: Arc<dyn JobStore>,
    pub keys: Arc<dyn KeyStore>,
    pub source: Arc<dyn KeySourceFactory>,
    /// Changes keys in AWS, for the API's key operations.
    pub writer: Arc<dyn KeyWriterFactory>,
    pub dispatcher: Arc<dyn Dispatcher>,
    pub identity: Arc<dyn CallerIdentity>,
    pub organization: Arc<dyn Organization>,
    /// The user pool behind `POST /v1/auth/tokens`; None when none is configured.
    pub sign_in: Option<Arc<dyn SignIn>>,
    pub tenancy: Tenancy,
    pub sync: SyncSettings,
    /// The configured discovery inputs (`ORG_*`): run before each scheduled sync when configured.
    pub discovery: DiscoveryInput,
}

/// The in-memory twins behind an `App`, kept so tests can look inside them.
pub struct MemoryParts {
    pub jobs: Arc<MemoryJobStore>,
    pub keys: Arc<MemoryKeyStore>,
    pub source: Arc<MemoryKeySource>,
    pub dispatcher: Arc<MemoryDispatcher>,
    pub organization: Arc<MemoryOrganization>,
    pub schedules: Arc<MemorySchedules>,
}

impl App {
    /// An app on in-memory adapters whose own credentials belong to `caller_account`.
    pub fn in_memory(caller_account: &str, page_size: usize) -> (App, MemoryParts) {
        let jobs = Arc::new(MemoryJobStore::default());
        let parts = MemoryParts {
            keys: Arc::new(MemoryKeyStore::new(jobs.clone())),
            jobs,
            source: Arc::new(MemoryKeySource::with_page_size(page_size)),
            dispatcher: Arc::new(MemoryDispatcher::default()),
            organization: Arc::new(MemoryOrganization::default()),
            schedules: Arc::new(MemorySchedules::default()),
        };
        let app = App {
            kms: Arc::new(MemoryKmsRegistry::default()),
            connections: Arc::new(MemoryNamedStore::default()),
            job_configs: Arc::new(MemoryNamedStore::default()),
            schedules: Some(parts.schedules.clone()),
            secrets: Arc::new(MemorySecretStore::default()),
            jobs: parts.jobs.clone(),
            keys: parts.keys.clone(),
            source: parts.source.clone(),
            writer: parts.source.clone(),
            dispatcher: parts.dispatcher.clone(),
            identity: Arc::new(FixedCallerIdentity(caller_account.to_string())),
            organization: parts.organization.clone(),
            sign_in: None,
            tenancy: Tenancy::default(),
            sync: SyncSettings::default(),
            discovery: DiscoveryInput::default(),
        };
        (app, parts)
    }
}
