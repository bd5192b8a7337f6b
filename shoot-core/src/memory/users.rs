//! [`MemoryUserStore`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::error::{PortError, PortResult};
use crate::identity::{RefreshToken, RefreshTokenUse, User, UserStore};
use crate::ids::UserId;

/// In-memory [`UserStore`].
#[derive(Default)]
pub struct MemoryUserStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    users: BTreeMap<UserId, User>,
    by_username: HashMap<String, UserId>,
    by_email: HashMap<String, UserId>,
    by_code: HashMap<String, UserId>,
    tokens: HashMap<String, RefreshToken>,
}

fn fold(s: &str) -> String {
    s.to_lowercase()
}

impl State {
    /// Checks the unique keys of `user` against every other user.
    fn check_unique(&self, user: &User) -> PortResult<()> {
        let clash = |map: &HashMap<String, UserId>, key: String| {
            map.get(&key).is_some_and(|owner| *owner != user.id)
        };
        if clash(&self.by_username, fold(&user.username)) {
            return Err(PortError::AlreadyExists { what: "username" });
        }
        if clash(&self.by_email, fold(&user.email)) {
            return Err(PortError::AlreadyExists { what: "email" });
        }
        if clash(&self.by_code, user.user_code.clone()) {
            return Err(PortError::AlreadyExists { what: "user_code" });
        }
        Ok(())
    }

    fn index(&mut self, user: &User) {
        self.by_username.insert(fold(&user.username), user.id);
        self.by_email.insert(fold(&user.email), user.id);
        self.by_code.insert(user.user_code.clone(), user.id);
    }

    fn unindex(&mut self, user: &User) {
        self.by_username.remove(&fold(&user.username));
        self.by_email.remove(&fold(&user.email));
        self.by_code.remove(&user.user_code);
    }
}

impl MemoryUserStore {
    /// An empty store.
    pub fn new() -> MemoryUserStore {
        MemoryUserStore::default()
    }
}

#[async_trait]
impl UserStore for MemoryUserStore {
    async fn create_user(&self, user: &User) -> PortResult<()> {
        let mut st = lock(&self.state);
        st.check_unique(user)?;
        if st.users.contains_key(&user.id) {
            return Err(PortError::AlreadyExists { what: "user_id" });
        }
        st.index(user);
        st.users.insert(user.id, user.clone());
        Ok(())
    }

    async fn get_user(&self, id: UserId) -> PortResult<Option<User>> {
        Ok(lock(&self.state).users.get(&id).cloned())
    }

    async fn get_users(&self, ids: &[UserId]) -> PortResult<Vec<User>> {
        let st = lock(&self.state);
        let mut out: Vec<User> = ids
            .iter()
            .filter_map(|id| st.users.get(id).cloned())
            .collect();
        out.sort_by_key(|u| u.id);
        out.dedup_by_key(|u| u.id);
        Ok(out)
    }

    async fn find_by_username(&self, username: &str) -> PortResult<Option<User>> {
        let st = lock(&self.state);
        Ok(st
            .by_username
            .get(&fold(username))
            .and_then(|id| st.users.get(id))
            .cloned())
    }

    async fn find_by_email(&self, email: &str) -> PortResult<Option<User>> {
        let st = lock(&self.state);
        Ok(st
            .by_email
            .get(&fold(email))
            .and_then(|id| st.users.get(id))
            .cloned())
    }

    async fn find_by_code(&self, code: &str) -> PortResult<Option<User>> {
        let st = lock(&self.state);
        Ok(st
            .by_code
            .get(code)
            .and_then(|id| st.users.get(id))
            .cloned())
    }

    async fn update_user(&self, user: &User) -> PortResult<()> {
        let mut st = lock(&self.state);
        let Some(old) = st.users.get(&user.id).cloned() else {
            return Err(PortError::NotFound);
        };
        st.check_unique(user)?;
        st.unindex(&old);
        st.index(user);
        st.users.insert(user.id, user.clone());
        Ok(())
    }

    async fn search_users(&self, query: &str, limit: usize) -> PortResult<Vec<User>> {
        let q = fold(query);
        let st = lock(&self.state);
        let mut out: Vec<User> = st
            .users
            .values()
            .filter(|u| fold(&u.username).contains(&q) || fold(&u.nickname).contains(&q))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.username.cmp(&b.username).then(a.id.cmp(&b.id)));
        out.truncate(limit);
        Ok(out)
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> PortResult<()> {
        let mut st = lock(&self.state);
        if st.tokens.contains_key(&token.token_id) {
            return Err(PortError::AlreadyExists {
                what: "refresh_token",
            });
        }
        st.tokens.insert(token.token_id.clone(), token.clone());
        Ok(())
    }

    async fn use_refresh_token(&self, token_id: &str) -> PortResult<RefreshTokenUse> {
        let mut st = lock(&self.state);
        let Some(token) = st.tokens.get_mut(token_id) else {
            return Ok(RefreshTokenUse::Unknown);
        };
        if token.used || token.revoked {
            return Ok(RefreshTokenUse::Reused(token.clone()));
        }
        token.used = true;
        Ok(RefreshTokenUse::Fresh(token.clone()))
    }

    async fn revoke_refresh_family(&self, family_id: &str) -> PortResult<()> {
        let mut st = lock(&self.state);
        for t in st.tokens.values_mut().filter(|t| t.family_id == family_id) {
            t.revoked = true;
        }
        Ok(())
    }
}
