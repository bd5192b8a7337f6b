//! Friend recommendations: the async wrapper around the pure BFS of
//! [`crate::social::bfs`], with one batched `friends_of_many` per level and a cache of the
//! ranked list in the ephemeral store.

use std::collections::{HashMap, HashSet};

use tracing::{debug, warn};

use crate::engine::ChatEngine;
use crate::error::Result;
use crate::identity::User;
use crate::ids::UserId;
use crate::social::bfs::{self, Bfs, Candidate};
use crate::social::rules;

/// A recommended user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recommendation {
    /// Who.
    pub user: User,
    /// How many of the caller's friends are their friends.
    pub mutual_friends: u32,
    /// Distance in the friendship graph (2 = friend of a friend).
    pub depth: u8,
}

/// Largest page of recommendations.
const PAGE_MAX: usize = 100;

/// Cache key prefix of every cached recommendation list of `user`.
pub(crate) fn cache_prefix(user: UserId) -> String {
    format!("rec:{user}:")
}

impl ChatEngine {
    /// People the caller may know: users 2..=`max_depth` hops away in the friendship graph
    /// (default `limits.recommendation_default_depth`; 0 or above
    /// `limits.recommendation_max_depth` is `VALIDATION_FAILED`), excluding friends, users
    /// with a pending request either way and users blocking or blocked by the caller; ranked
    /// by mutual friends, then depth, then id; `skip` then at most `limit` (1–100).
    ///
    /// The ranked list is cached for `limits.recommendation_cache_ttl`; social changes
    /// invalidate it (see `invalidate_recommendations`).
    pub async fn recommendations(
        &self,
        actor: UserId,
        max_depth: Option<u8>,
        limit: usize,
        skip: usize,
    ) -> Result<Vec<Recommendation>> {
        let depth = rules::recommendation_depth(max_depth, self.limits())?;
        let ranked = self.ranked_recommendations(actor, depth).await?;
        let page: Vec<Candidate> = ranked
            .into_iter()
            .skip(skip)
            .take(limit.clamp(1, PAGE_MAX))
            .collect();
        let ids: Vec<UserId> = page.iter().map(|c| c.user).collect();
        let mut users: HashMap<UserId, User> = self
            .users(&ids)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        Ok(page
            .into_iter()
            .filter_map(|c| {
                users.remove(&c.user).map(|user| Recommendation {
                    user,
                    mutual_friends: c.mutual_friends,
                    depth: c.depth,
                })
            })
            .collect())
    }

    async fn ranked_recommendations(&self, actor: UserId, depth: u8) -> Result<Vec<Candidate>> {
        let key = format!("{}{depth}", cache_prefix(actor));
        match self.p().ephemeral.get(&key).await {
            Ok(Some(cached)) => match bfs::decode_candidates(&cached) {
                Some(c) => return Ok(c),
                None => warn!(key = %key, "malformed cached recommendations; recomputing"),
            },
            Ok(None) => {}
            Err(e) => warn!(key = %key, error = %e, "recommendation cache read failed"),
        }
        let social = &self.p().social;
        let mut excluded: HashSet<UserId> = social.blocked_by(actor).await?.into_iter().collect();
        excluded.extend(social.blockers_of(actor).await?);
        let (incoming, outgoing) = social.pending_requests_of(actor).await?;
        excluded.extend(incoming.iter().map(|r| r.from));
        excluded.extend(outgoing.iter().map(|r| r.to));

        let mut search = Bfs::new(actor, depth);
        let mut round_trips = 0;
        while !search.is_done() {
            let lists = social.friends_of_many(search.frontier()).await?;
            search.advance(lists);
            round_trips += 1;
        }
        let ranked = search.candidates(&excluded);
        debug!(user_id = %actor, depth, round_trips, found = ranked.len(), "recommendations computed");
        let ttl = self.limits().recommendation_cache_ttl;
        if let Err(e) = self
            .p()
            .ephemeral
            .set(&key, &bfs::encode_candidates(&ranked), Some(ttl))
            .await
        {
            warn!(key = %key, error = %e, "recommendation cache write failed");
        }
        Ok(ranked)
    }
}
