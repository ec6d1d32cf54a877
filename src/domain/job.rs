//! A synchronization job and its units. A unit is one (AWS account, region) pair; the job is `completed` when
//! every unit has ended and none failed, `failed` when one did. A canceled job ends `completed` with `abort`.

use super::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    InProgress,
    Completed,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::InProgress => "in_progress",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            JobStatus::InProgress,
            JobStatus::Completed,
            JobStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// Where one unit stands. Every state but `InProgress` is final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum UnitStatus {
    InProgress,
    Succeeded,
    Failed(String),
    Canceled,
}

impl UnitStatus {
    pub fn is_final(&self) -> bool {
        !matches!(self, UnitStatus::InProgress)
    }
}

/// The CCKM text shown in `detailed_status`.
impl fmt::Display for UnitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitStatus::InProgress => f.write_str("in_progress"),
            UnitStatus::Succeeded => f.write_str("region synchronized successfully"),
            UnitStatus::Failed(reason) => write!(f, "region synchronization failed: {reason}"),
            UnitStatus::Canceled => f.write_str("region synchronization canceled"),
        }
    }
}

/// One (account, region) pair of a job and the KMS resource whose connection reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub kms_id: Uuid,
    pub account_id: String,
    pub region: String,
}

impl Unit {
    /// `"<aws_account_id>/<region>"`: the `detailed_status` key, and the key index's partition.
    pub fn key(&self) -> String {
        unit_key(&self.account_id, &self.region)
    }
}

pub fn unit_key(account_id: &str, region: &str) -> String {
    format!("{account_id}/{region}")
}

/// The message a worker gets: one unit of one job. `marker` is where the previous invocation stopped; the
/// unit's stored progress stays the source of truth, so a stale or redelivered message is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    pub job_id: Uuid,
    pub kms_id: Uuid,
    pub account_id: String,
    pub region: String,
    #[serde(default)]
    pub marker: Option<String>,
}

impl WorkItem {
    pub fn for_unit(job_id: Uuid, unit: &Unit) -> WorkItem {
        WorkItem {
            job_id,
            kms_id: unit.kms_id,
            account_id: unit.account_id.clone(),
            region: unit.region.clone(),
            marker: None,
        }
    }

    pub fn unit_key(&self) -> String {
        unit_key(&self.account_id, &self.region)
    }
}

/// Units a job sends as their own messages when it starts; a larger job sends fan-out messages instead.
pub const DIRECT_DISPATCH_UNITS: usize = 100;
/// Units in one fan-out message: up to 105 bytes each, so that ten messages stay within one
/// SendMessageBatch's 256 KiB (about 210 KB at most).
pub const UNITS_PER_FAN_OUT: usize = 200;

/// A share of a large job's units in one message: a worker sends each unit's own message. A job of
/// thousands of units so starts with a few SQS calls, whatever its size; the API answers sooner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanOut {
    pub job_id: Uuid,
    pub fan_out: Vec<Unit>,
}

impl FanOut {
    /// The job's units in shares of `UNITS_PER_FAN_OUT`.
    pub fn shares(job: &Job) -> Vec<FanOut> {
        let units: Vec<Unit> = job.units.values().map(|entry| entry.unit.clone()).collect();
        units
            .chunks(UNITS_PER_FAN_OUT)
            .map(|share| FanOut {
                job_id: job.id,
                fan_out: share.to_vec(),
            })
            .collect()
    }

    /// The unit messages this share stands for.
    pub fn items(&self) -> Vec<WorkItem> {
        self.fan_out
            .iter()
            .map(|unit| WorkItem::for_unit(self.job_id, unit))
            .collect()
    }
}

/// A message of the work queue: a share of a job's units to send on, or one unit to sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WorkMessage {
    FanOut(FanOut),
    Unit(WorkItem),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub units_total: u64,
    pub units_done: u64,
    pub units_failed: u64,
    pub keys_synced: u64,
    pub keys_gone: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: Uuid,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub overall_status: JobStatus,
    /// Keyed by `Unit::key()`.
    pub units: BTreeMap<String, UnitEntry>,
    pub kms: Vec<String>,
    pub regions: Vec<String>,
    pub abort: bool,
    pub progress: Progress,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UnitEntry {
    pub unit: Unit,
    pub status: UnitStatus,
}

impl Job {
    /// A new job, every unit `in_progress`. `kms` and `regions` are kept as the caller sent them.
    pub fn start(
        id: Uuid,
        now: Timestamp,
        units: Vec<Unit>,
        kms: Vec<String>,
        regions: Vec<String>,
    ) -> Job {
        let units: BTreeMap<String, UnitEntry> = units
            .into_iter()
            .map(|unit| {
                (
                    unit.key(),
                    UnitEntry {
                        unit,
                        status: UnitStatus::InProgress,
                    },
                )
            })
            .collect();
        Job {
            id,
            created_at: now,
            updated_at: now,
            completed_at: None,
            overall_status: JobStatus::InProgress,
            progress: Progress {
                units_total: units.len() as u64,
                ..Progress::default()
            },
            units,
            kms,
            regions,
            abort: false,
        }
    }

    pub fn is_running(&self) -> bool {
        self.overall_status == JobStatus::InProgress
    }

    /// The status the job ends with once every unit has ended: `failed` when a unit failed, except that a
    /// canceled job always ends `completed` (with `abort: true`), as CCKM does.
    pub fn final_status(&self) -> Option<JobStatus> {
        let progress = &self.progress;
        if progress.units_done < progress.units_total {
            None
        } else if progress.units_failed > 0 && !self.abort {
            Some(JobStatus::Failed)
        } else {
            Some(JobStatus::Completed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(total: u64, done: u64, failed: u64, abort: bool) -> Job {
        let mut job = Job::start(
            Uuid::nil(),
            crate::domain::time::now(),
            vec![],
            vec![],
            vec![],
        );
        job.progress = Progress {
            units_total: total,
            units_done: done,
            units_failed: failed,
            ..Progress::default()
        };
        job.abort = abort;
        job
    }

    #[test]
    fn a_large_job_fans_out_in_shares_that_fit_one_send_batch_and_read_back_as_fan_outs() {
        let units: Vec<Unit> = (0..450)
            .map(|n| Unit {
                kms_id: Uuid::new_v4(),
                account_id: format!("{:012}", 100_000_000_000u64 + n),
                region: "ap-southeast-2".into(),
            })
            .collect();
        let job = Job::start(
            Uuid::new_v4(),
            crate::domain::time::now(),
            units,
            vec![],
            vec![],
        );
        let shares = FanOut::shares(&job);
        assert_eq!(
            shares.iter().map(|s| s.fan_out.len()).collect::<Vec<_>>(),
            [200, 200, 50]
        );
        let items: Vec<WorkItem> = shares.iter().flat_map(FanOut::items).collect();
        assert_eq!(items.len(), 450);
        assert!(
            items
                .iter()
                .all(|item| item.job_id == job.id && item.marker.is_none())
        );
        let ten_shares = 10 * serde_json::to_string(&shares[0]).unwrap().len();
        assert!(
            ten_shares < 256 * 1024,
            "{ten_shares} bytes: more than SQS takes in one batch"
        );

        let as_sent = serde_json::to_string(&shares[2]).unwrap();
        assert_eq!(
            serde_json::from_str::<WorkMessage>(&as_sent).unwrap(),
            WorkMessage::FanOut(shares[2].clone())
        );
        let unit = serde_json::to_string(&items[0]).unwrap();
        assert_eq!(
            serde_json::from_str::<WorkMessage>(&unit).unwrap(),
            WorkMessage::Unit(items[0].clone())
        );
    }

    #[test]
    fn a_job_ends_only_when_every_unit_has_ended() {
        assert_eq!(job(3, 2, 0, false).final_status(), None);
        assert_eq!(
            job(3, 3, 0, false).final_status(),
            Some(JobStatus::Completed)
        );
        assert_eq!(job(3, 3, 1, false).final_status(), Some(JobStatus::Failed));
        assert_eq!(
            job(3, 3, 1, true).final_status(),
            Some(JobStatus::Completed),
            "a canceled job completes"
        );
    }

    #[test]
    fn unit_statuses_read_as_cckm_writes_them() {
        assert_eq!(
            UnitStatus::Succeeded.to_string(),
            "region synchronized successfully"
        );
        assert_eq!(
            UnitStatus::Failed("AccessDenied".into()).to_string(),
            "region synchronization failed: AccessDenied"
        );
        assert_eq!(
            UnitStatus::Canceled.to_string(),
            "region synchronization canceled"
        );
        assert_eq!(UnitStatus::InProgress.to_string(), "in_progress");
    }

    #[test]
    fn start_counts_units_and_keys_them_by_account_and_region() {
        let unit = Unit {
            kms_id: Uuid::nil(),
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
        };
        let job = Job::start(
            Uuid::nil(),
            crate::domain::time::now(),
            vec![unit],
            vec!["a".into()],
            vec![],
        );
        assert_eq!(job.progress.units_total, 1);
        assert!(job.units.contains_key("111122223333/eu-west-1"));
        assert!(job.is_running());
    }
}
