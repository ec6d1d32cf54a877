//! One API test, two backends: the in-memory adapters (fast) and the real AWS adapters on the emulator.
//! A test body takes a `Backend` and asks it what was stored or queued, whichever backend it is.

use super::emulator::{Stack, shared};
use cckm_aws_sync::app::MemoryParts;
use cckm_aws_sync::entry::Entry;

pub enum Backend {
    Memory {
        entry: Box<Entry>,
        parts: MemoryParts,
    },
    Emulator {
        stack: Box<Stack>,
    },
}

impl Backend {
    pub fn memory() -> Backend {
        let (entry, parts) = super::memory_entry(100);
        Backend::Memory {
            entry: Box::new(entry),
            parts,
        }
    }

    pub async fn emulator() -> Backend {
        Backend::Emulator {
            stack: Box::new(shared().stack().await),
        }
    }

    pub fn entry(&self) -> &Entry {
        match self {
            Backend::Memory { entry, .. } => entry,
            Backend::Emulator { stack } => &stack.entry,
        }
    }

    /// Work items waiting for a worker.
    pub async fn queued(&self) -> usize {
        match self {
            Backend::Memory { parts, .. } => parts.dispatcher.pending(),
            Backend::Emulator { stack } => {
                let attributes = stack
                    .sqs()
                    .get_queue_attributes()
                    .queue_url(&stack.queue_url)
                    .attribute_names(
                        aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                    )
                    .send()
                    .await
                    .expect("queue attributes");
                attributes
                    .attributes()
                    .and_then(|a| {
                        a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                    })
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            }
        }
    }

    /// Everything stored about jobs (headers, units, leases): zero means no job was written.
    pub async fn job_items(&self) -> usize {
        match self {
            Backend::Memory { entry, .. } => entry.app.jobs.count().await.expect("count jobs"),
            Backend::Emulator { stack } => stack.count_items(&stack.config.jobs_table).await,
        }
    }
}
