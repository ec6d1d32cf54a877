//! The Lambda binary: read configuration, build the AWS clients once, serve every event kind.

use cckm_aws_sync::wiring;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wiring::init_tracing();
    let entry = wiring::entry_from_env().await?;
    let entry = &entry;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = wiring::deadline(&event.context);
        // Every log line of the invocation names its Lambda request id.
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        Ok::<Value, Error>(
            entry
                .handle(event.payload, &event.context.request_id, deadline)
                .instrument(span)
                .await?,
        )
    }))
    .await
}
