//! The message status state machine: `SENDING → SENT_TO_KAFKA → PROCESSING → SAVED`, or
//! `FAILED` from any non-final step. Pure; the send pipeline and the persistence worker ask it
//! before emitting a status so that a client never sees a status go backwards.

use std::fmt;

use crate::messages::MessageStatus;

/// Something that happened to a message in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusEvent {
    /// The durable log accepted it.
    Appended,
    /// The persistence worker picked it up.
    ProcessingStarted,
    /// The message store holds it.
    Stored,
    /// It was rejected or could not be processed.
    Failed,
}

/// A transition the state machine does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidTransition {
    /// Status before.
    pub from: MessageStatus,
    /// The refused event.
    pub event: StatusEvent,
}

impl fmt::Display for InvalidTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid status transition from {} on {:?}",
            self.from.as_str(),
            self.event
        )
    }
}

/// The status of a message the server has just accepted.
pub const INITIAL: MessageStatus = MessageStatus::Sending;

/// The status after `event` happens to a message in status `current`.
pub fn next(
    current: MessageStatus,
    event: StatusEvent,
) -> Result<MessageStatus, InvalidTransition> {
    use MessageStatus as S;
    use StatusEvent as E;
    match (current, event) {
        (S::Sending, E::Appended) => Ok(S::SentToKafka),
        (S::SentToKafka, E::ProcessingStarted) => Ok(S::Processing),
        (S::Processing, E::Stored) => Ok(S::Saved),
        (S::Sending | S::SentToKafka | S::Processing, E::Failed) => Ok(S::Failed),
        (from, event) => Err(InvalidTransition { from, event }),
    }
}

/// Position of a status along the lifecycle (FAILED counts as final, after every other).
pub fn rank(status: MessageStatus) -> u8 {
    match status {
        MessageStatus::Sending => 0,
        MessageStatus::SentToKafka => 1,
        MessageStatus::Processing => 2,
        MessageStatus::Saved | MessageStatus::Failed => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageStatus as S;
    use StatusEvent as E;

    fn check(from: S, event: E, expect: Option<S>) {
        assert_eq!(next(from, event).ok(), expect, "{from:?} + {event:?}");
    }

    #[test]
    fn transitions() {
        check(S::Sending, E::Appended, Some(S::SentToKafka));
        check(S::SentToKafka, E::ProcessingStarted, Some(S::Processing));
        check(S::Processing, E::Stored, Some(S::Saved));
        check(S::Sending, E::Failed, Some(S::Failed));
        check(S::SentToKafka, E::Failed, Some(S::Failed));
        check(S::Processing, E::Failed, Some(S::Failed));
        check(S::Sending, E::Stored, None);
        check(S::Sending, E::ProcessingStarted, None);
        check(S::SentToKafka, E::Appended, None);
        check(S::Processing, E::ProcessingStarted, None);
        check(S::Saved, E::Failed, None);
        check(S::Saved, E::Stored, None);
        check(S::Failed, E::Appended, None);
        check(S::Failed, E::Failed, None);
    }

    #[test]
    fn never_goes_backwards() {
        let all = [
            S::Sending,
            S::SentToKafka,
            S::Processing,
            S::Saved,
            S::Failed,
        ];
        let events = [E::Appended, E::ProcessingStarted, E::Stored, E::Failed];
        for from in all {
            for event in events {
                if let Ok(to) = next(from, event) {
                    assert!(rank(to) > rank(from), "{from:?} -> {to:?}");
                }
            }
            assert_eq!(
                from.is_final(),
                events.iter().all(|e| next(from, *e).is_err())
            );
        }
    }
}
