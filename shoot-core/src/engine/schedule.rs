//! Scheduled messages: create, list, edit and cancel while PENDING. Delivery is the
//! scheduler worker's job (see `workers.rs`).

use chrono::{Days, Months};

use crate::engine::ChatEngine;
use crate::error::{Error, ErrorCode, PortError, Result, fail};
use crate::ids::{RoomId, ScheduleId, UserId};
use crate::messages::{MessageType, rules};
use crate::schedule::{Repeat, ScheduleStatus, ScheduledMessage};
use crate::time::Timestamp;

/// A message to send later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSchedule {
    /// Target room (the caller must be a participant).
    pub room_id: RoomId,
    /// Content.
    pub text: String,
    /// Content type (not SYSTEM).
    pub message_type: MessageType,
    /// When (must be in the future).
    pub scheduled_at: Timestamp,
    /// Optional repetition.
    pub repeat: Option<Repeat>,
}

/// Changes to a PENDING schedule; `None` keeps a field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulePatch {
    /// New content.
    pub text: Option<String>,
    /// New time (must be in the future).
    pub scheduled_at: Option<Timestamp>,
    /// New repetition (`Some(None)` removes it).
    pub repeat: Option<Option<Repeat>>,
}

/// The occurrence after `at` for `repeat`, in UTC: +1 day, +7 days, or +1 month on the same
/// day clamped to the month's last day (Jan 31 → Feb 28/29).
pub fn next_occurrence(at: Timestamp, repeat: Repeat) -> Timestamp {
    let dt = at.to_datetime();
    let next = match repeat {
        Repeat::Daily => dt.checked_add_days(Days::new(1)),
        Repeat::Weekly => dt.checked_add_days(Days::new(7)),
        Repeat::Monthly => dt.checked_add_months(Months::new(1)),
    };
    match next {
        Some(n) => Timestamp::from_datetime(n),
        // Beyond chrono's range: never again.
        None => Timestamp(i64::MAX),
    }
}

fn not_found() -> Error {
    Error::new(ErrorCode::ScheduleNotFound, "scheduled message not found")
}

impl ChatEngine {
    /// Schedules a message: in the future, by a participant, with valid content.
    pub async fn schedule_message(
        &self,
        actor: UserId,
        new: NewSchedule,
    ) -> Result<ScheduledMessage> {
        rules::validate_client_type(new.message_type)?;
        let text = rules::validate_content(&new.text, self.limits())?;
        let now = self.now();
        if new.scheduled_at <= now {
            return fail(
                ErrorCode::ScheduleInPast,
                "the scheduled time must be in the future",
            );
        }
        self.require_participant(actor, new.room_id).await?;
        let schedule = ScheduledMessage {
            id: ScheduleId(self.next_id()),
            room_id: new.room_id,
            sender_id: actor,
            text,
            message_type: new.message_type,
            scheduled_at: new.scheduled_at,
            repeat: new.repeat,
            status: ScheduleStatus::Pending,
            created_at: now,
            updated_at: now,
            sent_count: 0,
            last_error: None,
            claimed_by: None,
            claim_expires_at: None,
        };
        self.p().schedules.insert_schedule(&schedule).await?;
        Ok(schedule)
    }

    /// The caller's schedules, earliest first.
    pub async fn scheduled_messages(&self, actor: UserId) -> Result<Vec<ScheduledMessage>> {
        Ok(self.p().schedules.schedules_of(actor).await?)
    }

    async fn own_schedule(&self, actor: UserId, id: ScheduleId) -> Result<ScheduledMessage> {
        match self.p().schedules.get_schedule(id).await? {
            Some(s) if s.sender_id == actor => Ok(s),
            _ => Err(not_found()),
        }
    }

    async fn save_pending(&self, schedule: ScheduledMessage) -> Result<ScheduledMessage> {
        match self.p().schedules.update_pending_schedule(&schedule).await {
            Ok(()) => Ok(schedule),
            Err(PortError::Conflict(_)) => fail(
                ErrorCode::ScheduleNotPending,
                "the scheduled message is no longer pending",
            ),
            Err(PortError::NotFound) => Err(not_found()),
            Err(e) => Err(e.into()),
        }
    }

    /// Edits a PENDING schedule of the caller.
    pub async fn update_schedule(
        &self,
        actor: UserId,
        id: ScheduleId,
        patch: SchedulePatch,
    ) -> Result<ScheduledMessage> {
        let mut s = self.own_schedule(actor, id).await?;
        if s.status != ScheduleStatus::Pending {
            return fail(
                ErrorCode::ScheduleNotPending,
                "the scheduled message is no longer pending",
            );
        }
        let now = self.now();
        if let Some(text) = patch.text {
            s.text = rules::validate_content(&text, self.limits())?;
        }
        if let Some(at) = patch.scheduled_at {
            if at <= now {
                return fail(
                    ErrorCode::ScheduleInPast,
                    "the scheduled time must be in the future",
                );
            }
            s.scheduled_at = at;
        }
        if let Some(repeat) = patch.repeat {
            s.repeat = repeat;
        }
        s.updated_at = now;
        self.save_pending(s).await
    }

    /// Cancels a PENDING schedule of the caller.
    pub async fn cancel_schedule(&self, actor: UserId, id: ScheduleId) -> Result<ScheduledMessage> {
        let mut s = self.own_schedule(actor, id).await?;
        if s.status != ScheduleStatus::Pending {
            return fail(
                ErrorCode::ScheduleNotPending,
                "the scheduled message is no longer pending",
            );
        }
        s.status = ScheduleStatus::Canceled;
        s.updated_at = self.now();
        self.save_pending(s).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ts(y: i32, m: u32, d: u32, h: u32) -> Timestamp {
        Timestamp::from_datetime(
            Utc.with_ymd_and_hms(y, m, d, h, 30, 0)
                .single()
                .expect("valid"),
        )
    }

    fn check(from: Timestamp, repeat: Repeat, expect: Timestamp) {
        assert_eq!(next_occurrence(from, repeat), expect, "{from} {repeat:?}");
    }

    #[test]
    fn occurrences() {
        check(ts(2024, 1, 1, 9), Repeat::Daily, ts(2024, 1, 2, 9));
        check(ts(2024, 12, 31, 9), Repeat::Daily, ts(2025, 1, 1, 9));
        check(ts(2024, 1, 1, 9), Repeat::Weekly, ts(2024, 1, 8, 9));
        check(ts(2024, 2, 26, 9), Repeat::Weekly, ts(2024, 3, 4, 9));
        check(ts(2024, 1, 15, 9), Repeat::Monthly, ts(2024, 2, 15, 9));
        check(ts(2024, 1, 31, 9), Repeat::Monthly, ts(2024, 2, 29, 9));
        check(ts(2023, 1, 31, 9), Repeat::Monthly, ts(2023, 2, 28, 9));
        check(ts(2024, 3, 31, 9), Repeat::Monthly, ts(2024, 4, 30, 9));
        check(ts(2024, 12, 15, 9), Repeat::Monthly, ts(2025, 1, 15, 9));
    }
}
