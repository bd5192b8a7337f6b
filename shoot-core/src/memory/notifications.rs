//! [`MemoryNotificationStore`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::error::{PortError, PortResult};
use crate::ids::{NotificationId, UserId};
use crate::notifications::{Notification, NotificationStore};

/// In-memory [`NotificationStore`].
#[derive(Default)]
pub struct MemoryNotificationStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    by_user: HashMap<UserId, BTreeMap<NotificationId, Notification>>,
    owner: HashMap<NotificationId, UserId>,
}

impl MemoryNotificationStore {
    /// An empty store.
    pub fn new() -> MemoryNotificationStore {
        MemoryNotificationStore::default()
    }
}

#[async_trait]
impl NotificationStore for MemoryNotificationStore {
    async fn insert_notifications(&self, notifications: &[Notification]) -> PortResult<()> {
        let mut st = lock(&self.state);
        let mut batch_ids = std::collections::HashSet::new();
        for n in notifications {
            if st.owner.contains_key(&n.id) || !batch_ids.insert(n.id) {
                return Err(PortError::AlreadyExists {
                    what: "notification",
                });
            }
        }
        for n in notifications {
            st.owner.insert(n.id, n.user_id);
            st.by_user
                .entry(n.user_id)
                .or_default()
                .insert(n.id, n.clone());
        }
        Ok(())
    }

    async fn notifications_of(
        &self,
        user: UserId,
        limit: usize,
        offset: usize,
    ) -> PortResult<Vec<Notification>> {
        let st = lock(&self.state);
        let mut all: Vec<&Notification> = st
            .by_user
            .get(&user)
            .map(|m| m.values().collect())
            .unwrap_or_default();
        all.sort_by_key(|n| std::cmp::Reverse((n.created_at, n.id)));
        Ok(all.into_iter().skip(offset).take(limit).cloned().collect())
    }

    async fn unread_notification_count(&self, user: UserId) -> PortResult<u64> {
        let st = lock(&self.state);
        Ok(st
            .by_user
            .get(&user)
            .map_or(0, |m| m.values().filter(|n| !n.is_read).count() as u64))
    }

    async fn mark_notification_read(&self, user: UserId, id: NotificationId) -> PortResult<bool> {
        let mut st = lock(&self.state);
        match st.by_user.get_mut(&user).and_then(|m| m.get_mut(&id)) {
            Some(n) => {
                n.is_read = true;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn mark_all_notifications_read(&self, user: UserId) -> PortResult<u64> {
        let mut st = lock(&self.state);
        let mut changed = 0;
        for n in st
            .by_user
            .get_mut(&user)
            .into_iter()
            .flat_map(|m| m.values_mut())
        {
            if !n.is_read {
                n.is_read = true;
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn delete_notification(&self, user: UserId, id: NotificationId) -> PortResult<bool> {
        let mut st = lock(&self.state);
        let removed = st
            .by_user
            .get_mut(&user)
            .is_some_and(|m| m.remove(&id).is_some());
        if removed {
            st.owner.remove(&id);
        }
        Ok(removed)
    }
}
