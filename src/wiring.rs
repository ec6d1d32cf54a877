//! Cold-start wiring: environment → `Config` → AWS clients → adapters → `Entry`. Kept out of `main.rs` so
//! the integration tests build the very same object graph against the emulator.

use crate::adapters::cognito::{CognitoSignIn, PoolSigningKeys};
use crate::adapters::dynamodb::{
    DynamoJobStore, DynamoKeyStore, DynamoKmsRegistry, DynamoNamedStore,
};
use crate::adapters::kms::AwsKeySourceFactory;
use crate::adapters::organizations::AwsOrganization;
use crate::adapters::scheduler::EventBridgeSchedules;
use crate::adapters::secrets::SecretsManagerStore;
use crate::adapters::sqs::SqsDispatcher;
use crate::adapters::sts::StsCallerIdentity;
use crate::api::auth::{Authenticator, PoolTokens};
use crate::app::App;
use crate::config::{Config, ConfigError};
use crate::domain::time::Timestamp;
use crate::entry::Entry;
use crate::ports::{Schedules, SecretStore, SignIn};
use aws_config::SdkConfig;
use std::sync::Arc;

pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .init();
}

pub async fn entry_from_env() -> Result<Entry, ConfigError> {
    let config = Config::from_env()?;
    if !config.auth.verifies_tokens() {
        tracing::warn!(
            "neither JWT_HS256_SECRET nor JWT_JWKS is set: the API refuses every bearer token and accepts only \
             claims verified by an API Gateway JWT authorizer"
        );
    }
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    build_entry(&config, &sdk)
}

/// The whole object graph for one configuration and one set of AWS settings.
pub fn build_entry(config: &Config, sdk: &SdkConfig) -> Result<Entry, ConfigError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let secrets: Arc<dyn SecretStore> = Arc::new(SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(sdk),
        &config.secrets_prefix,
    ));
    let source = Arc::new(AwsKeySourceFactory::new(
        sdk.clone(),
        config.sync.rate_share,
        config.sync.quotas,
        secrets.clone(),
    ));
    let roles = source.roles();
    let app = App {
        kms: Arc::new(DynamoKmsRegistry::new(dynamodb.clone(), &config.kms_table)),
        job_configs: Arc::new(DynamoNamedStore::new(dynamodb.clone(), &config.kms_table)),
        schedules: config.scheduler.as_ref().map(|scheduler| {
            Arc::new(EventBridgeSchedules::new(
                aws_sdk_scheduler::Client::new(sdk),
                &scheduler.prefix,
                &scheduler.target_arn,
                &scheduler.role_arn,
            )) as Arc<dyn Schedules>
        }),
        connections: Arc::new(DynamoNamedStore::new(dynamodb.clone(), &config.kms_table)),
        secrets: secrets.clone(),
        jobs: Arc::new(DynamoJobStore::new(
            dynamodb.clone(),
            &config.jobs_table,
            config.sync.job_retention,
        )),
        keys: Arc::new(DynamoKeyStore::new(
            dynamodb,
            &config.keys_table,
            &config.jobs_table,
        )),
        source: source.clone(),
        writer: source,
        dispatcher: Arc::new(SqsDispatcher::new(
            aws_sdk_sqs::Client::new(sdk),
            &config.work_queue_url,
        )),
        identity: Arc::new(StsCallerIdentity::new(
            aws_sdk_sts::Client::new(sdk),
            roles.clone(),
        )),
        organization: Arc::new(AwsOrganization::new(sdk.clone(), roles.clone())),
        sign_in: config.auth.cognito.as_ref().map(|pool| {
            Arc::new(CognitoSignIn::new(
                aws_sdk_cognitoidentityprovider::Client::new(sdk),
                &pool.client_id,
            )) as Arc<dyn SignIn>
        }),
        tenancy: config.tenancy.clone(),
        sync: config.sync.clone(),
        discovery: config.discovery.clone(),
    };
    let mut auth = Authenticator::new(&config.auth)?;
    if let Some(pool) = &config.auth.cognito {
        let endpoint = std::env::var("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER")
            .ok()
            .or_else(|| sdk.endpoint_url().map(str::to_string));
        let keys = PoolSigningKeys::new(endpoint.as_deref(), pool.region(), &pool.user_pool_id);
        auth = auth.with_pool(PoolTokens::new(pool, Arc::new(keys)));
    }
    Ok(Entry::new(app, auth))
}

/// The invocation's deadline; without one (a local run), 15 minutes from now, Lambda's longest.
pub fn deadline(context: &lambda_runtime::Context) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(context.deadline as i64)
        .filter(|d| context.deadline > 0 && *d > chrono::Utc::now())
        .unwrap_or_else(|| chrono::Utc::now() + chrono::Duration::minutes(15))
}
