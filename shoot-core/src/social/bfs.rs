//! Friend recommendations: a pure, level-by-level breadth-first search over the friendship
//! graph (SPEC §5 "Recommendations").
//!
//! The search never touches a port. [`Bfs`] is a small state machine: the caller asks for the
//! [`frontier`](Bfs::frontier), looks up the friends of every user in it in ONE batched call
//! (`SocialStore::friends_of_many`), and feeds the lists back with [`advance`](Bfs::advance).
//! So a search of depth `d` costs exactly `d` round trips whatever the graph, and the
//! algorithm can be tested with plain closures ([`recommend`]).
//!
//! Definitions:
//! - the *depth* of a user is their shortest-path distance from the start in the friendship
//!   graph (exclusions filter candidates; they do not cut paths);
//! - *candidates* are users at depth `2..=max_depth` not in the exclusion set (depth 0 is the
//!   start, depth 1 are existing friends);
//! - the *mutual-friend count* of a candidate is the number of the start's friends adjacent
//!   to it (non-zero only at depth 2);
//! - ranking: mutual count descending, then depth ascending, then user id ascending.

use std::collections::{HashMap, HashSet};

use crate::ids::UserId;

/// One recommended user, before profile look-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// Who.
    pub user: UserId,
    /// Friends of the start who are friends of this user.
    pub mutual_friends: u32,
    /// Distance from the start (≥ 2).
    pub depth: u8,
}

/// A level-by-level BFS from one user, bounded by `max_depth`.
#[derive(Clone, Debug)]
pub struct Bfs {
    max_depth: u8,
    /// Depth of the users in `frontier`.
    level: u8,
    frontier: Vec<UserId>,
    depth: HashMap<UserId, u8>,
    mutual: HashMap<UserId, u32>,
}

impl Bfs {
    /// A search from `start` reaching users up to `max_depth` hops away.
    pub fn new(start: UserId, max_depth: u8) -> Bfs {
        Bfs {
            max_depth,
            level: 0,
            frontier: if max_depth == 0 {
                Vec::new()
            } else {
                vec![start]
            },
            depth: HashMap::from([(start, 0)]),
            mutual: HashMap::new(),
        }
    }

    /// The users whose friend lists are needed next; empty once the search is complete.
    pub fn frontier(&self) -> &[UserId] {
        &self.frontier
    }

    /// Whether the search is complete.
    pub fn is_done(&self) -> bool {
        self.frontier.is_empty()
    }

    /// Feeds the friend lists of the current frontier: one list per frontier user, in
    /// frontier order (what `friends_of_many(frontier())` returns). Missing trailing lists
    /// count as empty; extra lists are ignored.
    pub fn advance(&mut self, neighbours: Vec<Vec<UserId>>) {
        if self.frontier.is_empty() {
            return;
        }
        let next_level = self.level + 1;
        let from_friends = self.level == 1;
        let mut next = Vec::new();
        for list in neighbours.into_iter().take(self.frontier.len()) {
            for n in list {
                if from_friends {
                    // Adjacent to one of the start's friends: one more mutual friend (the
                    // start itself is adjacent to every friend and is never a candidate).
                    *self.mutual.entry(n).or_insert(0) += 1;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = self.depth.entry(n) {
                    e.insert(next_level);
                    next.push(n);
                }
            }
        }
        self.level = next_level;
        self.frontier = if next_level < self.max_depth {
            next
        } else {
            Vec::new()
        };
    }

    /// The ranked candidates found so far (all of them once [`is_done`](Self::is_done)),
    /// leaving out `excluded` users.
    pub fn candidates(&self, excluded: &HashSet<UserId>) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = self
            .depth
            .iter()
            .filter(|(user, depth)| **depth >= 2 && !excluded.contains(user))
            .map(|(&user, &depth)| Candidate {
                user,
                depth,
                mutual_friends: self.mutual.get(&user).copied().unwrap_or(0),
            })
            .collect();
        rank(&mut out);
        out
    }
}

/// Sorts candidates by mutual count descending, then depth ascending, then id ascending.
pub fn rank(candidates: &mut [Candidate]) {
    candidates.sort_unstable_by(|a, b| {
        b.mutual_friends
            .cmp(&a.mutual_friends)
            .then(a.depth.cmp(&b.depth))
            .then(a.user.cmp(&b.user))
    });
}

/// Runs a whole search with a synchronous batched neighbour look-up: `fetch(users)` returns
/// the friend lists of `users`, one per user, in order. Called once per level.
pub fn recommend(
    start: UserId,
    max_depth: u8,
    excluded: &HashSet<UserId>,
    mut fetch: impl FnMut(&[UserId]) -> Vec<Vec<UserId>>,
) -> Vec<Candidate> {
    let mut bfs = Bfs::new(start, max_depth);
    while !bfs.is_done() {
        let lists = fetch(bfs.frontier());
        bfs.advance(lists);
    }
    bfs.candidates(excluded)
}

/// Encodes ranked candidates for the recommendation cache: `user:mutual:depth` entries
/// separated by commas (empty string for none).
pub fn encode_candidates(candidates: &[Candidate]) -> String {
    let parts: Vec<String> = candidates
        .iter()
        .map(|c| format!("{}:{}:{}", c.user.0, c.mutual_friends, c.depth))
        .collect();
    parts.join(",")
}

/// Decodes [`encode_candidates`] output; `None` if malformed (the caller recomputes).
pub fn decode_candidates(s: &str) -> Option<Vec<Candidate>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(',')
        .map(|entry| {
            let mut it = entry.split(':');
            let user = UserId(it.next()?.parse().ok()?);
            let mutual_friends = it.next()?.parse().ok()?;
            let depth = it.next()?.parse().ok()?;
            if it.next().is_some() {
                return None;
            }
            Some(Candidate {
                user,
                mutual_friends,
                depth,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, VecDeque};

    use proptest::prelude::*;

    use super::*;

    type Graph = BTreeMap<i64, BTreeSet<i64>>;

    fn graph(edges: &[(i64, i64)]) -> Graph {
        let mut g = Graph::new();
        for &(a, b) in edges {
            if a != b {
                g.entry(a).or_default().insert(b);
                g.entry(b).or_default().insert(a);
            }
        }
        g
    }

    fn run(g: &Graph, start: i64, depth: u8, excluded: &[i64]) -> (Vec<(i64, u32, u8)>, usize) {
        let excluded: HashSet<UserId> = excluded.iter().map(|&u| UserId(u)).collect();
        let mut calls = 0;
        let got = recommend(UserId(start), depth, &excluded, |users| {
            calls += 1;
            users
                .iter()
                .map(|u| {
                    g.get(&u.0)
                        .into_iter()
                        .flatten()
                        .map(|&v| UserId(v))
                        .collect()
                })
                .collect()
        });
        (
            got.into_iter()
                .map(|c| (c.user.0, c.mutual_friends, c.depth))
                .collect(),
            calls,
        )
    }

    #[test]
    fn ranks_by_mutual_then_depth_then_id() {
        // 1's friends: 2, 3, 4. 5 is a friend of 2 and 3; 6 of 4; 7 of 2; 8 behind 5; 9 behind 8.
        let g = graph(&[
            (1, 2),
            (1, 3),
            (1, 4),
            (2, 5),
            (3, 5),
            (4, 6),
            (2, 7),
            (5, 8),
            (8, 9),
        ]);
        let check = |depth: u8, excluded: &[i64], expect: &[(i64, u32, u8)]| {
            assert_eq!(
                run(&g, 1, depth, excluded).0,
                expect,
                "depth {depth} excl {excluded:?}"
            );
        };
        check(1, &[], &[]);
        check(2, &[], &[(5, 2, 2), (6, 1, 2), (7, 1, 2)]);
        check(3, &[], &[(5, 2, 2), (6, 1, 2), (7, 1, 2), (8, 0, 3)]);
        check(3, &[5], &[(6, 1, 2), (7, 1, 2), (8, 0, 3)]);
        check(3, &[6, 8], &[(5, 2, 2), (7, 1, 2)]);
        // Exclusions filter candidates but do not cut paths: 8 is still reached through 5.
        check(3, &[5, 6, 7], &[(8, 0, 3)]);
    }

    #[test]
    fn one_batched_fetch_per_level() {
        let g = graph(&[(1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]);
        assert_eq!(run(&g, 1, 1, &[]).1, 1);
        assert_eq!(run(&g, 1, 2, &[]).1, 2);
        assert_eq!(run(&g, 1, 3, &[]).1, 3);
        assert_eq!(run(&g, 1, 3, &[]).0, vec![(3, 1, 2), (4, 0, 3)]);
        // A user without friends needs one call and has no candidates.
        assert_eq!(run(&g, 99, 3, &[]), (vec![], 1));
        assert_eq!(run(&g, 1, 0, &[]), (vec![], 0));
    }

    #[test]
    fn friends_and_self_are_never_candidates_even_in_cycles() {
        // Triangle 1-2-3 plus 2-4 and 3-4: 4 has two mutual friends; 2 and 3 are friends.
        let g = graph(&[(1, 2), (1, 3), (2, 3), (2, 4), (3, 4)]);
        assert_eq!(run(&g, 1, 3, &[]).0, vec![(4, 2, 2)]);
    }

    #[test]
    fn cache_encoding_round_trips() {
        let c = vec![
            Candidate {
                user: UserId(5),
                mutual_friends: 2,
                depth: 2,
            },
            Candidate {
                user: UserId(123_456_789_012),
                mutual_friends: 0,
                depth: 3,
            },
        ];
        let s = encode_candidates(&c);
        assert_eq!(s, "5:2:2,123456789012:0:3");
        assert_eq!(decode_candidates(&s), Some(c));
        assert_eq!(decode_candidates(""), Some(vec![]));
        assert_eq!(decode_candidates("5:2"), None);
        assert_eq!(decode_candidates("5:2:2:1"), None);
        assert_eq!(decode_candidates("x:1:2"), None);
    }

    /// Brute force: distances by a plain queue BFS over the whole graph, mutual counts by
    /// intersecting friend sets.
    fn brute_force(
        g: &Graph,
        start: i64,
        max_depth: u8,
        excluded: &BTreeSet<i64>,
    ) -> Vec<(i64, u32, u8)> {
        let mut dist: BTreeMap<i64, u8> = BTreeMap::from([(start, 0)]);
        let mut queue = VecDeque::from([start]);
        while let Some(u) = queue.pop_front() {
            let d = dist[&u];
            for &v in g.get(&u).into_iter().flatten() {
                if let std::collections::btree_map::Entry::Vacant(e) = dist.entry(v) {
                    e.insert(d + 1);
                    queue.push_back(v);
                }
            }
        }
        let empty = BTreeSet::new();
        let friends = g.get(&start).unwrap_or(&empty);
        let mut out: Vec<Candidate> = dist
            .iter()
            .filter(|&(u, &d)| (2..=max_depth).contains(&d) && !excluded.contains(u))
            .map(|(&u, &d)| {
                let theirs = g.get(&u).unwrap_or(&empty);
                Candidate {
                    user: UserId(u),
                    depth: d,
                    mutual_friends: friends.intersection(theirs).count() as u32,
                }
            })
            .collect();
        rank(&mut out);
        out.into_iter()
            .map(|c| (c.user.0, c.mutual_friends, c.depth))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The level-by-level search equals brute force on random graphs, with random
        /// exclusions standing for blocks (either way) and pending requests (either way).
        #[test]
        fn equals_brute_force(
            edges in proptest::collection::vec((0i64..24, 0i64..24), 0..70),
            blocks in proptest::collection::vec((0i64..24, 0i64..24), 0..6),
            pending in proptest::collection::vec((0i64..24, 0i64..24), 0..6),
            start in 0i64..24,
            depth in 1u8..=3,
        ) {
            // The engine removes friendships on block and never has a pending request between
            // friends; the exclusion set is everyone blocking/blocked by/pending with start.
            let blocked_pairs: BTreeSet<(i64, i64)> = blocks
                .iter()
                .flat_map(|&(a, b)| [(a, b), (b, a)])
                .collect();
            let edges: Vec<(i64, i64)> =
                edges.into_iter().filter(|e| !blocked_pairs.contains(e)).collect();
            let g = graph(&edges);
            let excluded: BTreeSet<i64> = blocks
                .iter()
                .chain(pending.iter())
                .filter_map(|&(a, b)| match (a == start, b == start) {
                    (true, false) => Some(b),
                    (false, true) => Some(a),
                    _ => None,
                })
                .collect();
            let excl: Vec<i64> = excluded.iter().copied().collect();
            let (got, calls) = run(&g, start, depth, &excl);
            prop_assert_eq!(got, brute_force(&g, start, depth, &excluded));
            prop_assert!(calls <= usize::from(depth));
        }
    }
}
