//! A sync engine whose deliveries a test drives one by one: the production stores (in memory, or DynamoDB
//! on the emulator through the real SDK), a scripted key source that pages like AWS (positional markers,
//! live changes) and can hold one key's read at a gate, and a dispatcher that keeps what it is handed.

use super::emulator::{Stack, shared};
use super::*;
use async_trait::async_trait;
use cckm_aws_sync::adapters::memory::{MemoryDispatcher, MemoryKeySource};
use cckm_aws_sync::domain::key::{AwsParam, KeyDetails, KeyRecord};
use cckm_aws_sync::ports::{
    Connection, KeyPage, KeySource, KeySourceFactory, ListedKey, SourceError,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use uuid::Uuid;

pub const ACCOUNT: &str = "111122223333";
pub const REGION: &str = "us-east-1";
pub const UNIT: &str = "111122223333/us-east-1";

/// Which stores the engine runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stores {
    Memory,
    DynamoDb,
}

pub struct Rig {
    pub stores: Stores,
    pub entry: Entry,
    pub source: Arc<MemoryKeySource>,
    pub gate: Arc<Gate>,
    pub dispatcher: Arc<MemoryDispatcher>,
    _stack: Option<Box<Stack>>,
}

/// One rig per kind of store, with ListKeys pages of `page_size` and `tune` applied to the app.
pub async fn rigs(page_size: usize, tune: impl Fn(&mut App)) -> Vec<Rig> {
    vec![
        Rig::new(Stores::Memory, page_size, &tune).await,
        Rig::new(Stores::DynamoDb, page_size, &tune).await,
    ]
}

/// A key of the scripted account in `region`, numbered so that the listing order is the numbering.
pub fn key_in(region: &str, n: usize) -> KeyDetails {
    let key_id = format!("{n:08}-0000-4000-8000-000000000000");
    KeyDetails {
        aws_param: AwsParam {
            aws_account_id: ACCOUNT.into(),
            arn: format!("arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}"),
            key_id,
            enabled: Some(true),
            key_state: Some("Enabled".into()),
            key_usage: Some("ENCRYPT_DECRYPT".into()),
            key_manager: Some("CUSTOMER".into()),
            origin: Some("AWS_KMS".into()),
            customer_master_key_spec: Some("SYMMETRIC_DEFAULT".into()),
            alias: vec![format!("alias/k{n}")],
            ..AwsParam::default()
        },
        read_errors: Default::default(),
    }
}

/// A key of the scripted account in the rig's region.
pub fn key(n: usize) -> KeyDetails {
    key_in(REGION, n)
}

impl Rig {
    pub async fn new(stores: Stores, page_size: usize, tune: &impl Fn(&mut App)) -> Rig {
        init_tracing();
        let source = Arc::new(MemoryKeySource::with_page_size(page_size));
        let gate = Arc::new(Gate::default());
        let dispatcher = Arc::new(MemoryDispatcher::default());
        let (mut app, stack) = match stores {
            Stores::Memory => (App::in_memory(OWN_ACCOUNT, page_size).0, None),
            Stores::DynamoDb => {
                let stack = Box::new(shared().stack().await);
                (stack.entry.app.clone(), Some(stack))
            }
        };
        app.source = Arc::new(GatedSource {
            gate: gate.clone(),
            inner: source.clone(),
        });
        app.dispatcher = dispatcher.clone();
        tune(&mut app);
        let rig = Rig {
            stores,
            entry: entry_for(app),
            source,
            gate,
            dispatcher,
            _stack: stack,
        };
        register_kms(&rig.entry, "demo", ACCOUNT, &[REGION]).await;
        rig
    }

    pub fn app(&self) -> &App {
        &self.entry.app
    }

    pub fn put_keys(&self, numbers: impl IntoIterator<Item = usize>) {
        for n in numbers {
            self.source.put_key(ACCOUNT, REGION, key(n));
        }
    }

    /// Starts a job over the demo resource; its id and its queued work item.
    pub async fn start(&self) -> (Uuid, Vec<WorkItem>) {
        let id = start_job(&self.entry, json!({"kms": ["demo"]})).await;
        (
            Uuid::parse_str(&id).expect("job id"),
            self.dispatcher.drain(),
        )
    }

    /// One delivery of `items` (SQS receive count `attempt`) with `seconds` left of the invocation.
    pub async fn deliver(&self, items: &[WorkItem], attempt: u32, seconds: i64) -> Value {
        let deadline = chrono::Utc::now() + chrono::Duration::seconds(seconds);
        self.entry
            .handle(sqs_event(items, attempt), "worker", deadline)
            .await
            .expect("a readable event")
    }

    /// Starts a job and runs it to its end; its id.
    pub async fn run_job(&self) -> Uuid {
        let (id, items) = self.start().await;
        self.deliver(&items, 1, 900).await;
        self.run_queue().await;
        id
    }

    /// Delivers whatever is queued, with a whole invocation each time, until nothing is.
    pub async fn run_queue(&self) {
        loop {
            let items = self.dispatcher.drain();
            if items.is_empty() {
                return;
            }
            self.deliver(&items, 1, 900).await;
        }
    }

    pub async fn job(&self, id: Uuid) -> Value {
        get_job(&self.entry, &id.to_string()).await
    }

    /// The job, which must have ended `completed`, with these counters.
    pub async fn completed(&self, id: Uuid, counters: &[(&str, u64)]) -> Value {
        let job = self.job(id).await;
        let stores = self.stores;
        assert_eq!(job["overall_status"], "completed", "{stores:?}: {job}");
        for (counter, value) in counters {
            assert_eq!(
                job["progress"][counter], *value,
                "{stores:?}: {counter}: {job}"
            );
        }
        job
    }

    /// Every stored key, by the number `key` gave it.
    pub async fn keys(&self) -> BTreeMap<usize, KeyRecord> {
        self.app()
            .keys
            .list(None)
            .await
            .expect("list keys")
            .into_iter()
            .map(|k| (number_of(&k.aws_param.key_id), k))
            .collect()
    }

    pub async fn gone(&self) -> Vec<usize> {
        self.keys()
            .await
            .into_iter()
            .filter(|(_, k)| k.gone)
            .map(|(n, _)| n)
            .collect()
    }
}

fn number_of(key_id: &str) -> usize {
    key_id
        .get(..8)
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// Holds the first read of one key until the test lets it go: how a test puts a sync's writes between a
/// refresh's read and its write.
#[derive(Default)]
pub struct Gate {
    armed: Mutex<Option<String>>,
    reached: Notify,
    released: Notify,
}

impl Gate {
    /// The next read of key `n` waits at the gate.
    pub fn arm(&self, n: usize) {
        *self.armed.lock().unwrap() = Some(key(n).aws_param.key_id);
    }

    /// Waits until the armed read is held.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    pub fn release(&self) {
        self.released.notify_one();
    }

    /// True (once) when `key_id` is the armed key.
    fn holds(&self, key_id: &str) -> bool {
        let mut armed = self.armed.lock().unwrap();
        let held = armed.as_deref() == Some(key_id);
        if held {
            *armed = None;
        }
        held
    }
}

/// The scripted key source behind the gate.
struct GatedSource {
    gate: Arc<Gate>,
    inner: Arc<MemoryKeySource>,
}

struct GatedRegion {
    gate: Arc<Gate>,
    inner: Arc<dyn KeySource>,
}

#[async_trait]
impl KeySource for GatedRegion {
    async fn list_keys(&self, marker: Option<&str>) -> Result<KeyPage, SourceError> {
        self.inner.list_keys(marker).await
    }

    async fn aliases(&self) -> Result<BTreeMap<String, Vec<String>>, SourceError> {
        self.inner.aliases().await
    }

    async fn read_key(
        &self,
        key: &ListedKey,
        aliases: &[String],
    ) -> Result<Option<KeyDetails>, SourceError> {
        if self.gate.holds(&key.key_id) {
            self.gate.reached.notify_one();
            self.gate.released.notified().await;
        }
        self.inner.read_key(key, aliases).await
    }
}

#[async_trait]
impl KeySourceFactory for GatedSource {
    async fn open(
        &self,
        connection: &Connection,
        region: &str,
    ) -> Result<Arc<dyn KeySource>, SourceError> {
        Ok(Arc::new(GatedRegion {
            gate: self.gate.clone(),
            inner: self.inner.open(connection, region).await?,
        }))
    }
}
