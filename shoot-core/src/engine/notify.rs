//! Notification use cases, and the crate-internal [`ChatEngine::notify`] every other use case
//! calls to store and push notifications.

use tracing::warn;

use crate::engine::ChatEngine;
use crate::error::{ErrorCode, Result, fail};
use crate::events::{Event, Topic};
use crate::ids::{MessageId, NotificationId, RoomId, UserId};
use crate::notifications::{Notification, NotificationType};

impl ChatEngine {
    /// A new unread notification for `user`, stamped now with a fresh id.
    pub(crate) fn new_notification(
        &self,
        user: UserId,
        kind: NotificationType,
        actor: Option<UserId>,
        room: Option<RoomId>,
        message: Option<MessageId>,
        text: impl Into<String>,
    ) -> Notification {
        Notification {
            id: NotificationId(self.next_id()),
            user_id: user,
            kind,
            actor_id: actor,
            room_id: room,
            message_id: message,
            text: text.into(),
            is_read: false,
            created_at: self.now(),
        }
    }

    /// Stores `notifications` in one batch, then publishes each as [`Event::Notification`] on
    /// its recipient's user topic.
    ///
    /// Notifications are a side effect of a use case that already succeeded, so a store
    /// failure is logged and swallowed rather than failing the caller (nothing is published
    /// then: a pushed notification that cannot be listed later would confuse clients).
    pub(crate) async fn notify(&self, notifications: Vec<Notification>) {
        if notifications.is_empty() {
            return;
        }
        if let Err(e) = self
            .p()
            .notifications
            .insert_notifications(&notifications)
            .await
        {
            warn!(count = notifications.len(), error = %e, "storing notifications failed");
            return;
        }
        for n in notifications {
            let topic = Topic::User(n.user_id);
            self.publish(topic, Event::Notification(n)).await;
        }
    }

    /// The caller's notifications, newest first.
    pub async fn notifications(
        &self,
        actor: UserId,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Notification>> {
        Ok(self
            .p()
            .notifications
            .notifications_of(actor, limit, offset)
            .await?)
    }

    /// How many of the caller's notifications are unread.
    pub async fn unread_notification_count(&self, actor: UserId) -> Result<u64> {
        Ok(self
            .p()
            .notifications
            .unread_notification_count(actor)
            .await?)
    }

    /// Marks one of the caller's notifications read (`NOTIFICATION_NOT_FOUND` if not theirs).
    pub async fn mark_notification_read(&self, actor: UserId, id: NotificationId) -> Result<()> {
        if self
            .p()
            .notifications
            .mark_notification_read(actor, id)
            .await?
        {
            Ok(())
        } else {
            fail(ErrorCode::NotificationNotFound, "notification not found")
        }
    }

    /// Marks every notification of the caller read; returns how many changed.
    pub async fn mark_all_notifications_read(&self, actor: UserId) -> Result<u64> {
        Ok(self
            .p()
            .notifications
            .mark_all_notifications_read(actor)
            .await?)
    }

    /// Deletes one of the caller's notifications (`NOTIFICATION_NOT_FOUND` if not theirs).
    pub async fn delete_notification(&self, actor: UserId, id: NotificationId) -> Result<()> {
        if self
            .p()
            .notifications
            .delete_notification(actor, id)
            .await?
        {
            Ok(())
        } else {
            fail(ErrorCode::NotificationNotFound, "notification not found")
        }
    }
}
