//! The Lambda binary: read configuration, build the AWS clients once, serve every event kind.

use cckm_aws_sync::wiring;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wiring::init_tracing();
    let entry = wiring::entry_from_env().await?;
    let entry = &entry;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = wiring::deadline(&event.context);
        Ok::<Value, Error>(
            entry
                .handle(event.payload, &event.context.request_id, deadline)
                .await?,
        )
    }))
    .await
}
