//! A KMS simulator for benchmarks, not a product component. It speaks the AWS JSON protocol of the six
//! reads the sync makes (ListKeys, ListAliases, DescribeKey, ListResourceTags, GetKeyRotationStatus,
//! GetKeyPolicy), and the Resource Groups Tagging API's GetResources that Cloud Custodian reads tags
//! with (`AWS_ENDPOINT_URL_RESOURCE_GROUPS_TAGGING_API`), with real paging, a configurable answer time, and a request quota per (account, region,
//! operation): a call over the quota gets `ThrottlingException`, as KMS answers. It generates N keys per
//! account and region with a realistic mix, and counts calls and throttles per operation (`GET /stats`,
//! `POST /stats/reset`). Clients reach it through `AWS_ENDPOINT_URL_KMS`; everything else stays on moto.
//!
//! The account is the 12 digits after `AKIA`/`ASIA` in the access key id when there are 12, else
//! `--account`. The region is the one the request is signed for.

mod keys;
mod quota;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use keys::Region;
use quota::Quotas;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Settings {
    port: u16,
    keys: usize,
    latency: Duration,
    jitter: Duration,
    account: String,
    quotas: HashMap<String, f64>,
}

fn usage() -> ! {
    eprintln!(
        "usage: kms-sim [--port N] [--keys N] [--latency-ms N] [--jitter-ms N] [--account ID] \
         [--quotas current|legacy] [--quota Operation=requests_per_second]..."
    );
    std::process::exit(2)
}

fn settings() -> Settings {
    let mut settings = Settings {
        port: 4600,
        keys: 1000,
        latency: Duration::from_millis(20),
        jitter: Duration::ZERO,
        account: "111122223333".into(),
        quotas: quota::defaults(false),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        let number = || value.parse::<u64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--port" => settings.port = u16::try_from(number()).unwrap_or_else(|_| usage()),
            "--keys" => settings.keys = number() as usize,
            "--latency-ms" => settings.latency = Duration::from_millis(number()),
            "--jitter-ms" => settings.jitter = Duration::from_millis(number()),
            "--account" => settings.account = value,
            "--quotas" => settings.quotas = quota::defaults(value == "legacy"),
            "--quota" => {
                let (operation, rate) = value.split_once('=').unwrap_or_else(|| usage());
                let rate = rate.parse::<f64>().unwrap_or_else(|_| usage());
                settings.quotas.insert(operation.to_string(), rate);
            }
            _ => usage(),
        }
    }
    settings
}

struct Simulator {
    settings: Settings,
    quotas: Quotas,
    regions: Mutex<HashMap<(String, String), Arc<Region>>>,
    /// Spreads the answer times over `[latency, latency + jitter]` without a random-number crate.
    ticket: std::sync::atomic::AtomicU64,
}

impl Simulator {
    fn region(&self, account: &str, region: &str) -> Arc<Region> {
        let mut regions = self.regions.lock().unwrap_or_else(|p| p.into_inner());
        regions
            .entry((account.to_string(), region.to_string()))
            .or_insert_with(|| Arc::new(Region::generate(account, region, self.settings.keys)))
            .clone()
    }

    fn answer_time(&self) -> Duration {
        let jitter = self.settings.jitter.as_micros() as u64;
        if jitter == 0 {
            return self.settings.latency;
        }
        let n = self
            .ticket
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.settings.latency + Duration::from_micros((n >> 11) % (jitter + 1))
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/stats") => return reply(StatusCode::OK, self.quotas.stats()),
            (&Method::POST, "/stats/reset") => {
                self.quotas.reset();
                return reply(StatusCode::OK, json!({}));
            }
            _ => {}
        }
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        // `TrentService.<Operation>` for KMS, `ResourceGroupsTaggingAPI_20170126.GetResources` for tags.
        let target = header("x-amz-target");
        let operation = target
            .rsplit_once('.')
            .map_or("", |(_, operation)| operation)
            .to_string();
        let (access_key, region) = signer(&header("authorization"));
        let account = account_of(&access_key).unwrap_or_else(|| self.settings.account.clone());
        let body = match request.into_body().collect().await {
            Ok(body) => serde_json::from_slice::<Value>(&body.to_bytes()).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        tokio::time::sleep(self.answer_time()).await;
        if !self.quotas.admit(&account, &region, &operation) {
            return error("ThrottlingException", "Rate exceeded");
        }
        let keys = self.region(&account, &region);
        match keys.answer(&operation, &body) {
            Ok(answer) => reply(StatusCode::OK, answer),
            Err((code, message)) => error(code, &message),
        }
    }
}

/// The access key id and region of a SigV4 `Authorization` header.
fn signer(authorization: &str) -> (String, String) {
    let scope = authorization
        .split("Credential=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_default();
    let mut parts = scope.split('/');
    let access_key = parts.next().unwrap_or_default().to_string();
    let region = parts.nth(1).unwrap_or("us-east-1").to_string();
    (access_key, region)
}

/// `AKIA`/`ASIA` followed by a 12-digit account id, as the benchmark's credentials are made.
fn account_of(access_key: &str) -> Option<String> {
    let digits = access_key.get(4..16)?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.to_string())
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", "kms-sim")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn error(code: &str, message: &str) -> Response<Full<Bytes>> {
    reply(
        StatusCode::BAD_REQUEST,
        json!({"__type": code, "message": message}),
    )
}

#[tokio::main]
async fn main() {
    let settings = settings();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", settings.port))
        .await
        .unwrap_or_else(|err| {
            eprintln!(
                "kms-sim: cannot listen on 127.0.0.1:{}: {err}",
                settings.port
            );
            std::process::exit(1)
        });
    eprintln!(
        "kms-sim: 127.0.0.1:{} keys={} latency={:?}+{:?}",
        settings.port, settings.keys, settings.latency, settings.jitter
    );
    let simulator = Arc::new(Simulator {
        quotas: Quotas::new(settings.quotas.clone()),
        settings,
        regions: Mutex::default(),
        ticket: Default::default(),
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let simulator = simulator.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let simulator = simulator.clone();
                async move { Ok::<_, std::convert::Infallible>(simulator.handle(request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
