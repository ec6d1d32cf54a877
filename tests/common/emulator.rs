//! The AWS emulator for integration tests: one moto server per test binary on a free loopback port, started
//! from the project venv (`CCKM_VENV`, default `.venv`), tables and queue made by `scripts/local_aws.py
//! bootstrap` under a fresh name prefix per test, and the production wiring (`wiring::build_entry`) on top.
//! moto exits when this process does: it watches its stdin, which only this process holds.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use cckm_aws_sync::config::Config;
use cckm_aws_sync::entry::Entry;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub struct Emulator {
    pub endpoint: String,
    _child: Mutex<Child>,
    _stdin: Mutex<ChildStdin>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn python() -> PathBuf {
    let venv = std::env::var_os("CCKM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    let python = venv.join("bin").join("python");
    assert!(
        python.exists(),
        "{} not found: run `make venv` (or set CCKM_VENV)",
        python.display()
    );
    python
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("local address").port()
}

/// The emulator shared by every test of this binary.
pub fn shared() -> &'static Emulator {
    static EMULATOR: OnceLock<Emulator> = OnceLock::new();
    EMULATOR.get_or_init(Emulator::start)
}

impl Emulator {
    fn start() -> Emulator {
        let port = free_port();
        let mut child = Command::new(python())
            .arg(repo().join("scripts/moto_server.py"))
            .args([
                "--exit-on-stdin-eof",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the moto server");
        let stdin = child.stdin.take().expect("moto stdin");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto did not start on port {port}"
            );
            assert!(
                child.try_wait().ok().flatten().is_none(),
                "moto exited at start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Emulator {
            endpoint: format!("http://127.0.0.1:{port}"),
            _child: Mutex::new(child),
            _stdin: Mutex::new(stdin),
        }
    }

    /// AWS settings of the function under test: moto's default account, us-east-1.
    pub async fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_with(Credentials::new("testing", "testing", None, None, "tests"))
            .await
    }

    pub async fn sdk_config_with(&self, credentials: Credentials) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(credentials)
            .load()
            .await
    }

    /// Fresh tables and queue under a new prefix, and the production object graph on them.
    pub async fn stack(&self) -> Stack {
        super::init_tracing();
        let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let names = [
            ("KMS_TABLE", format!("{prefix}-kms")),
            ("JOBS_TABLE", format!("{prefix}-jobs")),
            ("KEYS_TABLE", format!("{prefix}-keys")),
            ("WORK_QUEUE_NAME", format!("{prefix}-work")),
            ("COGNITO_POOL_NAME", format!("{prefix}-users")),
        ];
        let output = Command::new(python())
            .arg(repo().join("scripts/local_aws.py"))
            .args(["bootstrap", "--endpoint", &self.endpoint])
            .envs(names.iter().map(|(k, v)| (*k, v.as_str())))
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .expect("run local_aws.py bootstrap");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "bootstrap failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let printed = |name: &str| {
            stdout
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("bootstrap prints {name}"))
                .trim()
                .to_string()
        };
        let queue_url = printed("WORK_QUEUE_URL");
        let admin = (printed("CCKM_USERNAME"), printed("CCKM_PASSWORD"));
        let mut env: Vec<(String, String)> = names
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        env.push(("WORK_QUEUE_URL".into(), queue_url.clone()));
        for name in ["COGNITO_USER_POOL_ID", "COGNITO_CLIENT_ID"] {
            env.push((name.into(), printed(name)));
        }
        env.push(("JWT_HS256_SECRET".into(), super::SECRET.into()));
        // Where the job configurations' schedules point, as the template sets it.
        env.push((
            "SCHEDULER_TARGET_ARN".into(),
            "arn:aws:lambda:us-east-1:123456789012:function:cckm-aws-sync-api".into(),
        ));
        env.push((
            "SCHEDULER_ROLE_ARN".into(),
            "arn:aws:iam::123456789012:role/cckm-aws-sync-scheduler".into(),
        ));
        env.push(("SCHEDULE_PREFIX".into(), prefix.clone()));
        env.push(("JWT_ISSUER".into(), super::ISSUER.into()));
        env.push(("JWT_AUDIENCE".into(), super::AUDIENCE.into()));
        let config =
            Config::from_lookup(|name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
                .expect("test configuration");
        let sdk = self.sdk_config().await;
        let entry = cckm_aws_sync::wiring::build_entry(&config, &sdk).expect("wiring");
        Stack {
            config,
            sdk,
            entry,
            queue_url,
            admin,
        }
    }

    /// Credentials of `account_id` through AssumeRole (moto keeps each account's keys apart).
    pub async fn account_credentials(&self, account_id: &str) -> Credentials {
        let sts = aws_sdk_sts::Client::new(&self.sdk_config().await);
        let output = sts
            .assume_role()
            .role_arn(format!("arn:aws:iam::{account_id}:role/cckm-sync"))
            .role_session_name("seed")
            .send()
            .await
            .expect("assume role in moto");
        let c = output.credentials.expect("credentials");
        Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            None,
            "seed",
        )
    }

    /// A KMS client acting in `account_id` and `region`, to seed and change keys.
    pub async fn kms_in(&self, account_id: &str, region: &str) -> aws_sdk_kms::Client {
        let sdk = self
            .sdk_config_with(self.account_credentials(account_id).await)
            .await;
        let config = aws_sdk_kms::config::Builder::from(&sdk)
            .region(aws_config::Region::new(region.to_string()))
            .build();
        aws_sdk_kms::Client::from_conf(config)
    }
}

pub struct Stack {
    pub config: Config,
    pub sdk: SdkConfig,
    pub entry: Entry,
    pub queue_url: String,
    /// The user pool's admin user and its password, as `make up` writes them to `.local/env`.
    pub admin: (String, String),
}

impl Stack {
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    /// Number of items in a table (to prove that a refused request wrote nothing).
    pub async fn count_items(&self, table: &str) -> usize {
        let output = self
            .dynamodb()
            .scan()
            .table_name(table)
            .send()
            .await
            .expect("scan");
        output.items.unwrap_or_default().len()
    }

    /// Receives what is on the work queue and hands it to the function as SQS batches, as Lambda's event
    /// source mapping does, until the queue stays empty; returns how many messages were handled.
    pub async fn drain_queue(&self) -> usize {
        let mut handled = 0;
        let mut empty_polls = 0;
        while empty_polls < 2 {
            match self.process_batch(10).await {
                0 => empty_polls += 1,
                n => {
                    empty_polls = 0;
                    handled += n;
                }
            }
        }
        handled
    }

    /// One receive of at most `max` messages, handed to the function; the ones it did not report failed
    /// are deleted. Returns how many were received.
    pub async fn process_batch(&self, max: i32) -> usize {
        let sqs = self.sqs();
        let received = sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .visibility_timeout(30)
            .send()
            .await
            .expect("receive");
        let messages = received.messages.unwrap_or_default();
        let records: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| {
                let count = m
                    .attributes()
                    .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount))
                    .cloned()
                    .unwrap_or_else(|| "1".into());
                serde_json::json!({
                    "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                    "attributes": {"ApproximateReceiveCount": count}, "messageAttributes": {},
                    "md5OfBody": m.md5_of_body(), "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:work", "awsRegion": "us-east-1"
                })
            })
            .collect();
        if records.is_empty() {
            return 0;
        }
        let deadline = chrono::Utc::now() + chrono::Duration::minutes(15);
        let response = self
            .entry
            .handle(serde_json::json!({"Records": records}), "worker", deadline)
            .await
            .expect("a readable event");
        let failed: Vec<&str> = response["batchItemFailures"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|x| x["itemIdentifier"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        for message in &messages {
            if !failed.contains(&message.message_id().unwrap_or_default()) {
                sqs.delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
        messages.len()
    }
}

/// Schedules a key's deletion with the shortest window AWS allows (7 days).
pub async fn schedule_deletion(kms: &aws_sdk_kms::Client, key_id: &str) {
    kms.schedule_key_deletion()
        .key_id(key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule key deletion");
}
