//! [`MemoryScheduleStore`].

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::error::{PortError, PortResult};
use crate::ids::{ScheduleId, UserId};
use crate::schedule::{ScheduleOutcome, ScheduleStatus, ScheduleStore, ScheduledMessage};
use crate::time::Timestamp;

/// In-memory [`ScheduleStore`].
#[derive(Default)]
pub struct MemoryScheduleStore {
    state: Mutex<BTreeMap<ScheduleId, ScheduledMessage>>,
}

impl MemoryScheduleStore {
    /// An empty store.
    pub fn new() -> MemoryScheduleStore {
        MemoryScheduleStore::default()
    }
}

fn claim_live(s: &ScheduledMessage, now: Timestamp) -> bool {
    s.claimed_by.is_some() && s.claim_expires_at.is_none_or(|t| t > now)
}

#[async_trait]
impl ScheduleStore for MemoryScheduleStore {
    async fn insert_schedule(&self, schedule: &ScheduledMessage) -> PortResult<()> {
        let mut st = lock(&self.state);
        if st.contains_key(&schedule.id) {
            return Err(PortError::AlreadyExists { what: "schedule" });
        }
        st.insert(schedule.id, schedule.clone());
        Ok(())
    }

    async fn get_schedule(&self, id: ScheduleId) -> PortResult<Option<ScheduledMessage>> {
        Ok(lock(&self.state).get(&id).cloned())
    }

    async fn schedules_of(&self, sender: UserId) -> PortResult<Vec<ScheduledMessage>> {
        let st = lock(&self.state);
        let mut out: Vec<ScheduledMessage> = st
            .values()
            .filter(|s| s.sender_id == sender)
            .cloned()
            .collect();
        out.sort_by_key(|s| (s.scheduled_at, s.id));
        Ok(out)
    }

    async fn update_pending_schedule(&self, schedule: &ScheduledMessage) -> PortResult<()> {
        let mut st = lock(&self.state);
        let stored = st.get_mut(&schedule.id).ok_or(PortError::NotFound)?;
        if stored.status != ScheduleStatus::Pending {
            return Err(PortError::Conflict(format!(
                "schedule {} is {}",
                schedule.id,
                stored.status.as_str()
            )));
        }
        // The write time (`updated_at`) decides whether a claim is still live.
        if claim_live(stored, schedule.updated_at) {
            return Err(PortError::Conflict(format!(
                "schedule {} is being sent",
                schedule.id
            )));
        }
        stored.text = schedule.text.clone();
        stored.message_type = schedule.message_type;
        stored.scheduled_at = schedule.scheduled_at;
        stored.repeat = schedule.repeat;
        stored.status = schedule.status;
        stored.updated_at = schedule.updated_at;
        Ok(())
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        owner: &str,
        lease_until: Timestamp,
        limit: usize,
    ) -> PortResult<Vec<ScheduledMessage>> {
        let mut st = lock(&self.state);
        let mut due: Vec<(Timestamp, ScheduleId)> = st
            .values()
            .filter(|s| {
                s.status == ScheduleStatus::Pending && s.scheduled_at <= now && !claim_live(s, now)
            })
            .map(|s| (s.scheduled_at, s.id))
            .collect();
        due.sort();
        due.truncate(limit);
        let mut out = Vec::with_capacity(due.len());
        for (_, id) in due {
            if let Some(s) = st.get_mut(&id) {
                s.claimed_by = Some(owner.to_owned());
                s.claim_expires_at = Some(lease_until);
                out.push(s.clone());
            }
        }
        Ok(out)
    }

    async fn complete_claim(
        &self,
        id: ScheduleId,
        owner: &str,
        outcome: ScheduleOutcome,
        at: Timestamp,
    ) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let Some(s) = st.get_mut(&id) else {
            return Ok(false);
        };
        if s.claimed_by.as_deref() != Some(owner) {
            return Ok(false);
        }
        match outcome {
            ScheduleOutcome::Sent => {
                s.status = ScheduleStatus::Sent;
                s.sent_count += 1;
                s.last_error = None;
            }
            ScheduleOutcome::SentAndRescheduled(next) => {
                s.scheduled_at = next;
                s.sent_count += 1;
                s.last_error = None;
            }
            ScheduleOutcome::Failed(reason) => {
                s.status = ScheduleStatus::Failed;
                s.last_error = Some(reason);
            }
            ScheduleOutcome::Released => {}
        }
        s.claimed_by = None;
        s.claim_expires_at = None;
        s.updated_at = at;
        Ok(true)
    }
}
