//! [`RoomStore`] contract.

use futures::future::join_all;

use super::{expect_not_found, fresh_id, ok, wall_now};
use crate::ids::{MessageId, RoomId, Seq, UserId};
use crate::rooms::{Participant, Role, Room, RoomActivity, RoomStore, RoomType};
use crate::time::Timestamp;

fn room(kind: RoomType, by: UserId, at: Timestamp) -> Room {
    Room {
        id: RoomId(fresh_id()),
        room_type: kind,
        title: (kind == RoomType::Group).then(|| "Contract room".to_owned()),
        announcement: None,
        created_by: by,
        created_at: at,
        updated_at: at,
        last_seq: Seq::ZERO,
        last_message_id: None,
        last_activity_at: at,
    }
}

fn member(room: RoomId, user: UserId, role: Role, joined: Timestamp) -> Participant {
    Participant {
        room_id: room,
        user_id: user,
        role,
        joined_at: joined,
        last_read_seq: Seq::ZERO,
        favorite: false,
        favorited_at: None,
    }
}

/// Runs the [`RoomStore`] contract.
pub async fn room_store_contract(store: &dyn RoomStore) {
    let t = wall_now();
    let [a, b, c, d] = [(); 4].map(|_| UserId(fresh_id()));

    // Group room with participants.
    let g = room(RoomType::Group, a, t);
    let pa = member(g.id, a, Role::Owner, t);
    let pc = member(g.id, c, Role::Member, Timestamp(t.0 + 5));
    let pb = member(g.id, b, Role::Member, Timestamp(t.0 + 5));
    ok(
        store
            .create_room(&g, &[pc.clone(), pa.clone(), pb.clone()])
            .await,
        "create_room",
    );
    assert_eq!(
        ok(store.get_room(g.id).await, "get_room"),
        Some(g.clone()),
        "round trip"
    );
    assert_eq!(
        ok(store.get_room(RoomId(fresh_id())).await, "get_room"),
        None
    );
    let mut tail = vec![pb.clone(), pc.clone()];
    tail.sort_by_key(|p| p.user_id);
    let mut want = vec![pa.clone()];
    want.extend(tail);
    assert_eq!(
        ok(store.participants(g.id).await, "participants"),
        want,
        "participants ordered by joined_at then user id"
    );
    assert_eq!(
        ok(store.participant(g.id, b).await, "participant"),
        Some(pb.clone())
    );
    assert_eq!(ok(store.participant(g.id, d).await, "participant"), None);

    // update_room replaces title, announcement and updated_at only.
    let mut g2 = g.clone();
    g2.title = Some("Renamed".to_owned());
    g2.announcement = Some("Notice".to_owned());
    g2.updated_at = Timestamp(t.0 + 10);
    g2.last_seq = Seq(99);
    ok(store.update_room(&g2).await, "update_room");
    let stored = ok(store.get_room(g.id).await, "get_room").expect("room exists");
    assert_eq!(
        (
            stored.title.as_deref(),
            stored.announcement.as_deref(),
            stored.updated_at
        ),
        (Some("Renamed"), Some("Notice"), g2.updated_at),
        "update_room replaces title, announcement and updated_at"
    );
    assert_eq!(
        stored.last_seq,
        Seq::ZERO,
        "update_room does not touch last_seq"
    );
    expect_not_found(
        store.update_room(&room(RoomType::Group, a, t)).await,
        "update_room absent",
    );

    // record_activity moves forward only, in any order, several rooms and entries at once.
    let (m5, m3, m7) = (
        MessageId(fresh_id()),
        MessageId(fresh_id()),
        MessageId(fresh_id()),
    );
    let act = |room: RoomId, seq: i64, message: MessageId, at: i64| RoomActivity {
        room,
        seq: Seq(seq),
        message,
        at: Timestamp(t.0 + at),
    };
    ok(
        store.record_activity(&[act(g.id, 5, m5, 50)]).await,
        "record_activity",
    );
    ok(
        store.record_activity(&[act(g.id, 3, m3, 60)]).await,
        "record_activity",
    );
    ok(
        store.record_activity(&[act(g.id, 5, m5, 50)]).await,
        "record_activity",
    );
    ok(
        store.record_activity(&[]).await,
        "record_activity of nothing",
    );
    let r = ok(store.get_room(g.id).await, "get_room").expect("room exists");
    assert_eq!(
        (r.last_seq, r.last_message_id, r.last_activity_at),
        (Seq(5), Some(m5), Timestamp(t.0 + 50)),
        "record_activity ignores lower or equal seqs"
    );
    let other = room(RoomType::Group, a, t);
    ok(store.create_room(&other, &[]).await, "create_room");
    let (o1, o2) = (MessageId(fresh_id()), MessageId(fresh_id()));
    ok(
        store
            .record_activity(&[
                act(g.id, 7, m7, 70),
                act(other.id, 2, o2, 20),
                act(g.id, 6, m3, 60),
                act(other.id, 1, o1, 10),
                act(RoomId(fresh_id()), 9, o1, 90),
            ])
            .await,
        "record_activity of several rooms (one unknown)",
    );
    let r = ok(store.get_room(g.id).await, "get_room").expect("room exists");
    assert_eq!(
        (r.last_seq, r.last_message_id, r.last_activity_at),
        (Seq(7), Some(m7), Timestamp(t.0 + 70)),
        "the highest seq of a room's entries wins"
    );
    let r = ok(store.get_room(other.id).await, "get_room").expect("room exists");
    assert_eq!(
        (r.last_seq, r.last_message_id, r.last_activity_at),
        (Seq(2), Some(o2), Timestamp(t.0 + 20))
    );

    // add / remove participants, roles.
    let pb_again = member(g.id, b, Role::Admin, Timestamp(t.0 + 99));
    let pd = member(g.id, d, Role::Member, Timestamp(t.0 + 20));
    let added = ok(
        store.add_participants(g.id, &[pb_again, pd.clone()]).await,
        "add_participants",
    );
    assert_eq!(
        added,
        vec![d],
        "add_participants returns only the newly added"
    );
    assert_eq!(
        ok(store.participant(g.id, b).await, "participant"),
        Some(pb.clone()),
        "add_participants leaves existing participants unchanged"
    );
    ok(store.set_role(g.id, b, Role::Admin).await, "set_role");
    assert_eq!(
        ok(store.participant(g.id, b).await, "participant").map(|p| p.role),
        Some(Role::Admin)
    );
    expect_not_found(
        store.set_role(g.id, UserId(fresh_id()), Role::Admin).await,
        "set_role non-participant",
    );
    assert!(
        ok(
            store.remove_participant(g.id, d).await,
            "remove_participant"
        ),
        "d was a participant"
    );
    assert!(
        !ok(
            store.remove_participant(g.id, d).await,
            "remove_participant"
        ),
        "d already left"
    );
    assert_eq!(ok(store.participant(g.id, d).await, "participant"), None);

    // Favourites and read cursor.
    let fav_at = Timestamp(t.0 + 30);
    ok(
        store.set_favorite(g.id, c, true, fav_at).await,
        "set_favorite",
    );
    let p = ok(store.participant(g.id, c).await, "participant").expect("participant");
    assert!(
        p.favorite && p.favorited_at == Some(fav_at),
        "set_favorite(true) records the time"
    );
    ok(
        store.set_favorite(g.id, c, false, fav_at).await,
        "set_favorite",
    );
    let p = ok(store.participant(g.id, c).await, "participant").expect("participant");
    assert!(!p.favorite, "set_favorite(false) clears");
    expect_not_found(
        store.set_favorite(g.id, d, true, fav_at).await,
        "set_favorite non-participant",
    );
    assert_eq!(
        ok(store.advance_read_cursor(g.id, c, Seq(5)).await, "advance"),
        Seq(5)
    );
    assert_eq!(
        ok(store.advance_read_cursor(g.id, c, Seq(3)).await, "advance"),
        Seq(5),
        "never backwards"
    );
    assert_eq!(
        ok(store.advance_read_cursor(g.id, c, Seq(8)).await, "advance"),
        Seq(8)
    );
    assert_eq!(
        ok(store.participant(g.id, c).await, "participant").map(|p| p.last_read_seq),
        Some(Seq(8))
    );
    expect_not_found(
        store.advance_read_cursor(g.id, d, Seq(1)).await,
        "advance_read_cursor non-participant",
    );

    // Direct rooms: one per unordered pair.
    let d1 = room(RoomType::Direct, a, t);
    let (got, created) = ok(
        store
            .create_direct_room(
                &d1,
                [
                    &member(d1.id, a, Role::Member, t),
                    &member(d1.id, b, Role::Member, t),
                ],
            )
            .await,
        "create_direct_room",
    );
    assert!(
        created && got.id == d1.id,
        "first create_direct_room creates"
    );
    let d2 = room(RoomType::Direct, b, t);
    let (got, created) = ok(
        store
            .create_direct_room(
                &d2,
                [
                    &member(d2.id, b, Role::Member, t),
                    &member(d2.id, a, Role::Member, t),
                ],
            )
            .await,
        "create_direct_room",
    );
    assert!(
        !created && got.id == d1.id,
        "create_direct_room returns the pair's existing room"
    );
    assert_eq!(
        ok(store.get_room(d2.id).await, "get_room"),
        None,
        "no second direct room stored"
    );
    assert_eq!(
        ok(store.find_direct_room(b, a).await, "find_direct_room").map(|r| r.id),
        Some(d1.id)
    );
    assert_eq!(
        ok(store.find_direct_room(a, c).await, "find_direct_room"),
        None
    );
    assert_eq!(ok(store.participants(d1.id).await, "participants").len(), 2);
    let d1_people = ok(store.participants(d1.id).await, "participants");
    let mut both = d1_people.clone();
    both.extend(ok(store.participants(g.id).await, "participants"));
    assert_eq!(
        ok(
            store
                .participants_of(&[d1.id, RoomId(fresh_id()), g.id, d1.id])
                .await,
            "participants_of"
        ),
        both,
        "participants_of: rooms in the order given, each once, each ordered like participants"
    );
    assert!(
        ok(store.participants_of(&[]).await, "participants_of").is_empty(),
        "participants_of of no room"
    );
    let mut got = ok(
        store
            .memberships(&[
                (g.id, c),
                (d1.id, a),
                (d1.id, c),
                (RoomId(fresh_id()), a),
                (g.id, c),
            ])
            .await,
        "memberships",
    );
    got.sort_by_key(|p| (p.room_id, p.user_id));
    let mut want = vec![
        ok(store.participant(g.id, c).await, "participant").expect("c is in g"),
        ok(store.participant(d1.id, a).await, "participant").expect("a is in d1"),
    ];
    want.sort_by_key(|p| (p.room_id, p.user_id));
    assert_eq!(
        got, want,
        "memberships: the rows of the pairs that are participants, each once"
    );
    assert!(
        ok(store.memberships(&[]).await, "memberships").is_empty(),
        "memberships of no pair"
    );
    let mut got = ok(store.room_ids_of(&[a, c, a]).await, "room_ids_of");
    got.sort();
    let mut want: Vec<(UserId, RoomId)> = Vec::new();
    for user in [a, c] {
        for (room, _) in ok(store.rooms_of(user).await, "rooms_of") {
            want.push((user, room.id));
        }
    }
    want.sort();
    assert!(!want.is_empty(), "a and c are in rooms");
    assert_eq!(
        got, want,
        "room_ids_of: every room of each user given, each pair once"
    );
    assert!(
        ok(store.room_ids_of(&[]).await, "room_ids_of").is_empty(),
        "room_ids_of of no user"
    );

    let candidates: Vec<(Room, [Participant; 2])> = (0..6)
        .map(|_| {
            let r = room(RoomType::Direct, c, t);
            let ps = [
                member(r.id, c, Role::Member, t),
                member(r.id, d, Role::Member, t),
            ];
            (r, ps)
        })
        .collect();
    let results = join_all(
        candidates
            .iter()
            .map(|(r, [p, q])| store.create_direct_room(r, [p, q])),
    )
    .await;
    let results: Vec<(Room, bool)> = results
        .into_iter()
        .map(|r| ok(r, "concurrent create_direct_room"))
        .collect();
    assert_eq!(
        results.iter().filter(|(_, created)| *created).count(),
        1,
        "concurrent create_direct_room: exactly one MUST create"
    );
    let winner = results[0].0.id;
    assert!(
        results.iter().all(|(r, _)| r.id == winner),
        "every caller gets the same room"
    );
    let directs_of_c = ok(store.rooms_of(c).await, "rooms_of")
        .into_iter()
        .filter(|(r, _)| r.room_type == RoomType::Direct)
        .count();
    assert_eq!(directs_of_c, 1, "one direct room per pair");

    // rooms_of with the user's own row.
    let mut mine: Vec<(RoomId, UserId)> = ok(store.rooms_of(a).await, "rooms_of")
        .into_iter()
        .map(|(r, p)| (r.id, p.user_id))
        .collect();
    mine.sort();
    let mut want = vec![(g.id, a), (d1.id, a)];
    want.sort();
    assert_eq!(
        mine, want,
        "rooms_of: every room of the user with the user's participant row"
    );

    // Deletion.
    assert!(
        ok(store.delete_room(d1.id).await, "delete_room"),
        "it existed"
    );
    assert!(
        !ok(store.delete_room(d1.id).await, "delete_room"),
        "already deleted"
    );
    assert_eq!(ok(store.get_room(d1.id).await, "get_room"), None);
    assert!(
        ok(store.participants(d1.id).await, "participants").is_empty(),
        "participants deleted too"
    );
    assert_eq!(
        ok(store.find_direct_room(a, b).await, "find_direct_room"),
        None,
        "pair freed"
    );
    let rooms_of_a: Vec<RoomId> = ok(store.rooms_of(a).await, "rooms_of")
        .into_iter()
        .map(|(r, _)| r.id)
        .collect();
    assert_eq!(rooms_of_a, vec![g.id], "deleted rooms leave rooms_of");
    assert!(ok(store.delete_room(g.id).await, "delete_room"));
}
