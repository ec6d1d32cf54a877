//! EventBridge Scheduler: one schedule per scheduler job configuration, `<prefix>-job-<id>` in the default
//! group, targeting this function with the CCKM scheduler input and a role EventBridge Scheduler assumes.
//! A refused start is never retried (`MaximumRetryAttempts: 0`), as for the stack's own schedule.

use super::aws_error::reason;
use crate::domain::AppError;
use crate::ports::{ScheduleSpec, Schedules};
use async_trait::async_trait;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::error::ProvideErrorMetadata;
use aws_sdk_scheduler::types::{
    FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState, Target,
};
use uuid::Uuid;

pub struct EventBridgeSchedules {
    client: Client,
    prefix: String,
    target_arn: String,
    role_arn: String,
}

impl EventBridgeSchedules {
    pub fn new(client: Client, prefix: &str, target_arn: &str, role_arn: &str) -> Self {
        EventBridgeSchedules {
            client,
            prefix: prefix.to_string(),
            target_arn: target_arn.to_string(),
            role_arn: role_arn.to_string(),
        }
    }

    /// The schedule of a job configuration.
    pub fn schedule_name(prefix: &str, id: Uuid) -> String {
        format!("{prefix}-job-{id}")
    }
}

fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<T, AppError> {
    result.map_err(|e| AppError::internal("building a schedule", e))
}

fn invalid_or_internal<E, R>(
    operation: &str,
    err: &aws_sdk_scheduler::error::SdkError<E, R>,
) -> AppError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let text = reason(operation, err);
    match err.as_service_error().and_then(|e| e.code()) {
        Some("ValidationException") => AppError::InvalidParam(text),
        Some("ConflictException") => AppError::Conflict(text),
        _ => AppError::Internal(text),
    }
}

#[async_trait]
impl Schedules for EventBridgeSchedules {
    async fn put(&self, id: Uuid, spec: &ScheduleSpec, exists: bool) -> Result<(), AppError> {
        let name = Self::schedule_name(&self.prefix, id);
        let target = built(
            Target::builder()
                .arn(&self.target_arn)
                .role_arn(&self.role_arn)
                .input(spec.input.to_string())
                .retry_policy(RetryPolicy::builder().maximum_retry_attempts(0).build())
                .build(),
        )?;
        let window = built(
            FlexibleTimeWindow::builder()
                .mode(FlexibleTimeWindowMode::Off)
                .build(),
        )?;
        let state = if spec.enabled {
            ScheduleState::Enabled
        } else {
            ScheduleState::Disabled
        };
        let start = spec
            .start
            .map(|t| aws_smithy_types::DateTime::from_millis(t.timestamp_millis()));
        let end = spec
            .end
            .map(|t| aws_smithy_types::DateTime::from_millis(t.timestamp_millis()));
        // CreateSchedule and UpdateSchedule take the same settings, on builders of two types.
        macro_rules! send_with_settings {
            ($builder:expr, $operation:literal) => {
                $builder
                    .name(&name)
                    .description("cckm-aws-sync scheduler job configuration")
                    .schedule_expression(&spec.expression)
                    .schedule_expression_timezone("UTC")
                    .flexible_time_window(window)
                    .state(state)
                    .set_start_date(start)
                    .set_end_date(end)
                    .target(target)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| invalid_or_internal($operation, &e))
            };
        }
        if exists {
            send_with_settings!(self.client.update_schedule(), "scheduler UpdateSchedule")?;
        } else {
            send_with_settings!(self.client.create_schedule(), "scheduler CreateSchedule")?;
        }
        Ok(())
    }

    async fn delete(&self, id: Uuid) -> Result<(), AppError> {
        let name = Self::schedule_name(&self.prefix, id);
        match self.client.delete_schedule().name(&name).send().await {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .and_then(|e| e.code())
                    .is_some_and(|c| c == "ResourceNotFoundException") =>
            {
                Ok(())
            }
            Err(err) => Err(AppError::Internal(reason("scheduler DeleteSchedule", &err))),
        }
    }
}
