//! Scheduled messages: due-time delivery, repeat, and an atomic claim so that exactly one
//! instance sends each occurrence.

use async_trait::async_trait;

use crate::error::PortResult;
use crate::ids::{RoomId, ScheduleId, UserId};
use crate::messages::MessageType;
use crate::time::Timestamp;

/// Repetition of a scheduled message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "SCREAMING_SNAKE_CASE")
)]
pub enum Repeat {
    /// Every day at the same time.
    Daily,
    /// Every week.
    Weekly,
    /// Every month on the same day (clamped to the month's last day).
    Monthly,
}

impl Repeat {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Repeat::Daily => "DAILY",
            Repeat::Weekly => "WEEKLY",
            Repeat::Monthly => "MONTHLY",
        }
    }

    /// Parses a wire name (case-insensitive).
    pub fn parse(s: &str) -> Option<Repeat> {
        match s.to_ascii_uppercase().as_str() {
            "DAILY" => Some(Repeat::Daily),
            "WEEKLY" => Some(Repeat::Weekly),
            "MONTHLY" => Some(Repeat::Monthly),
            _ => None,
        }
    }
}

/// Status of a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "SCREAMING_SNAKE_CASE")
)]
pub enum ScheduleStatus {
    /// Waiting for its time (repeating schedules stay PENDING between occurrences).
    Pending,
    /// Sent (final for non-repeating schedules).
    Sent,
    /// Cancelled by its owner.
    Canceled,
    /// Could not be sent (for example the sender left the room).
    Failed,
}

impl ScheduleStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleStatus::Pending => "PENDING",
            ScheduleStatus::Sent => "SENT",
            ScheduleStatus::Canceled => "CANCELED",
            ScheduleStatus::Failed => "FAILED",
        }
    }
}

/// A message to be sent later.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ScheduledMessage {
    /// Id.
    pub id: ScheduleId,
    /// Target room.
    pub room_id: RoomId,
    /// Sender (the owner of the schedule).
    pub sender_id: UserId,
    /// Content.
    pub text: String,
    /// Content type.
    pub message_type: MessageType,
    /// Next due time.
    pub scheduled_at: Timestamp,
    /// Repetition.
    pub repeat: Option<Repeat>,
    /// Status.
    pub status: ScheduleStatus,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Occurrences sent so far.
    pub sent_count: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Instance currently holding the claim.
    pub claimed_by: Option<String>,
    /// When that claim lapses.
    pub claim_expires_at: Option<Timestamp>,
}

/// How a claimed occurrence ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleOutcome {
    /// Sent; no further occurrence (status becomes SENT).
    Sent,
    /// Sent; the next occurrence is due at this time (stays PENDING).
    SentAndRescheduled(Timestamp),
    /// Failed permanently with this reason (status becomes FAILED).
    Failed(String),
    /// Not sent; release the claim so it is retried.
    Released,
}

/// Storage of scheduled messages.
#[async_trait]
pub trait ScheduleStore: Send + Sync + 'static {
    /// Inserts a schedule.
    async fn insert_schedule(&self, schedule: &ScheduledMessage) -> PortResult<()>;

    /// The schedule with this id.
    async fn get_schedule(&self, id: ScheduleId) -> PortResult<Option<ScheduledMessage>>;

    /// Schedules of `sender`, by `scheduled_at` ascending.
    async fn schedules_of(&self, sender: UserId) -> PortResult<Vec<ScheduledMessage>>;

    /// Replaces text, type, time, repeat, status and `updated_at` of a schedule that is still
    /// PENDING and not claimed. MUST fail with `Conflict` if it is not PENDING or is claimed,
    /// `NotFound` if absent.
    async fn update_pending_schedule(&self, schedule: &ScheduledMessage) -> PortResult<()>;

    /// Atomically claims up to `limit` PENDING schedules with `scheduled_at <= now` whose claim
    /// is absent or expired, for `owner` until `lease_until`, earliest due first. Concurrent
    /// callers (on any instance) MUST never receive the same schedule while its claim is live.
    async fn claim_due(
        &self,
        now: Timestamp,
        owner: &str,
        lease_until: Timestamp,
        limit: usize,
    ) -> PortResult<Vec<ScheduledMessage>>;

    /// Finishes the claim `owner` holds on `id`. Returns `false` (and changes nothing) when
    /// `owner` no longer holds the claim.
    async fn complete_claim(
        &self,
        id: ScheduleId,
        owner: &str,
        outcome: ScheduleOutcome,
        at: Timestamp,
    ) -> PortResult<bool>;
}
