//! [`UserStore`] contract.

use futures::future::join_all;

use super::{base36, expect_already_exists, expect_not_found, fresh_id, ok, wall_now};
use crate::identity::{RefreshToken, RefreshTokenUse, User, UserStatus, UserStore};
use crate::ids::UserId;
use crate::time::Timestamp;

fn user(id: i64, username: &str) -> User {
    let now = wall_now();
    User {
        id: UserId(id),
        username: username.to_owned(),
        nickname: format!("nick {username}"),
        email: format!("{username}@example.com"),
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".to_owned(),
        status: UserStatus::Offline,
        bio: None,
        profile_image_url: None,
        user_code: base36(id),
        last_seen_at: None,
        created_at: now,
        updated_at: now,
    }
}

fn token(id: &str, family: &str, user: UserId) -> RefreshToken {
    let now = wall_now();
    RefreshToken {
        token_id: id.to_owned(),
        family_id: family.to_owned(),
        user_id: user,
        expires_at: Timestamp(now.0 + 86_400_000),
        created_at: now,
        used: false,
        revoked: false,
    }
}

/// Runs the [`UserStore`] contract.
pub async fn user_store_contract(store: &dyn UserStore) {
    let m = base36(fresh_id()).to_lowercase();
    let (ida, idb, idc) = (fresh_id(), fresh_id(), fresh_id());
    let a = user(ida, &format!("a{m}"));
    let b = user(idb, &format!("b{m}"));
    let mut c = user(idc, &format!("c{m}x"));
    c.nickname = format!("Zed {m}");

    for u in [&a, &b, &c] {
        ok(store.create_user(u).await, "create_user");
    }
    assert_eq!(
        ok(store.get_user(a.id).await, "get_user"),
        Some(a.clone()),
        "get_user round trip"
    );
    assert_eq!(
        ok(store.get_user(UserId(fresh_id())).await, "get_user"),
        None,
        "get_user absent"
    );

    // Case-insensitive look-ups.
    let found = ok(
        store.find_by_username(&a.username.to_uppercase()).await,
        "find_by_username",
    );
    assert_eq!(
        found.map(|u| u.id),
        Some(a.id),
        "find_by_username MUST ignore case"
    );
    let found = ok(
        store.find_by_email(&b.email.to_uppercase()).await,
        "find_by_email",
    );
    assert_eq!(
        found.map(|u| u.id),
        Some(b.id),
        "find_by_email MUST ignore case"
    );
    let found = ok(store.find_by_code(&a.user_code).await, "find_by_code");
    assert_eq!(found.map(|u| u.id), Some(a.id), "find_by_code");
    let found = ok(
        store.find_by_code(&a.user_code.to_lowercase()).await,
        "find_by_code",
    );
    assert_eq!(found, None, "find_by_code is exact (case-sensitive)");
    assert_eq!(
        ok(store.find_by_username(&format!("zz{m}")).await, "find"),
        None
    );

    // get_users: the existing ones, any order.
    let mut got: Vec<UserId> = ok(
        store.get_users(&[c.id, UserId(fresh_id()), a.id]).await,
        "get_users",
    )
    .into_iter()
    .map(|u| u.id)
    .collect();
    got.sort();
    let mut want = vec![a.id, c.id];
    want.sort();
    assert_eq!(got, want, "get_users returns exactly the existing users");

    // Unique keys, case-insensitive.
    let mut dup = user(fresh_id(), &a.username.to_uppercase());
    expect_already_exists(
        store.create_user(&dup).await,
        "username",
        "create_user duplicate username",
    );
    dup = user(fresh_id(), &format!("d{m}"));
    dup.email = b.email.to_uppercase();
    expect_already_exists(
        store.create_user(&dup).await,
        "email",
        "create_user duplicate email",
    );
    dup = user(fresh_id(), &format!("e{m}"));
    dup.user_code = c.user_code.clone();
    expect_already_exists(
        store.create_user(&dup).await,
        "user_code",
        "create_user duplicate code",
    );

    // Concurrent creations with one username: exactly one wins.
    let racers: Vec<User> = (0..6)
        .map(|i| {
            let mut u = user(fresh_id(), &format!("r{m}"));
            u.email = format!("r{i}{m}@example.com");
            u
        })
        .collect();
    let results = join_all(racers.iter().map(|u| store.create_user(u))).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        wins, 1,
        "concurrent create_user with one username: exactly one MUST succeed"
    );
    for r in results.into_iter().filter(|r| r.is_err()) {
        expect_already_exists(r, "username", "concurrent create_user loser");
    }

    // update_user.
    let mut a2 = a.clone();
    a2.username = a.username.to_uppercase();
    a2.nickname = "Renamed".to_owned();
    a2.bio = Some("bio".to_owned());
    a2.status = UserStatus::Busy;
    a2.updated_at = Timestamp(a.updated_at.0 + 1);
    ok(
        store.update_user(&a2).await,
        "update_user to a case variant of its own username",
    );
    assert_eq!(
        ok(store.get_user(a.id).await, "get_user"),
        Some(a2.clone()),
        "update_user replaces"
    );
    // set_last_seen: only last_seen_at changes, the latest time wins, unknown users are skipped.
    let seen = Timestamp(a2.updated_at.0 + 100);
    ok(
        store
            .set_last_seen(&[
                (a.id, seen),
                (UserId(fresh_id()), seen),
                (a.id, Timestamp(seen.0 - 50)),
            ])
            .await,
        "set_last_seen",
    );
    ok(
        store.set_last_seen(&[(a.id, Timestamp(seen.0 - 10))]).await,
        "set_last_seen earlier",
    );
    a2.last_seen_at = Some(seen);
    assert_eq!(
        ok(store.get_user(a.id).await, "get_user"),
        Some(a2.clone()),
        "set_last_seen keeps the latest time and changes nothing else"
    );
    let mut a3 = a2.clone();
    a3.username = format!("n{m}");
    ok(store.update_user(&a3).await, "update_user rename");
    assert_eq!(
        ok(store.find_by_username(&a.username).await, "find"),
        None,
        "old username freed"
    );
    let found = ok(store.find_by_username(&a3.username).await, "find");
    assert_eq!(found.map(|u| u.id), Some(a.id), "new username found");
    let mut clash = a3.clone();
    clash.username = b.username.to_uppercase();
    expect_already_exists(
        store.update_user(&clash).await,
        "username",
        "update_user username clash",
    );
    clash = a3.clone();
    clash.email = b.email.clone();
    expect_already_exists(
        store.update_user(&clash).await,
        "email",
        "update_user email clash",
    );
    clash = a3.clone();
    clash.user_code = b.user_code.clone();
    expect_already_exists(
        store.update_user(&clash).await,
        "user_code",
        "update_user code clash",
    );
    expect_not_found(
        store.update_user(&user(fresh_id(), &format!("g{m}"))).await,
        "update_user absent",
    );
    // A freed username can be taken again.
    let mut reuse = user(fresh_id(), &a.username);
    reuse.email = format!("reuse{m}@example.com");
    ok(
        store.create_user(&reuse).await,
        "create_user with a freed username",
    );

    // search_users: username or nickname contains, case-insensitive, by username, limited.
    let names = |v: Vec<User>| v.into_iter().map(|u| u.username).collect::<Vec<_>>();
    let hits = names(ok(
        store.search_users(&m.to_uppercase(), 100).await,
        "search_users",
    ));
    let mut expected: Vec<String> = vec![
        a.username.clone(),
        b.username.clone(),
        c.username.clone(),
        a3.username.clone(),
        format!("r{m}"),
    ];
    expected.sort();
    assert_eq!(
        hits, expected,
        "search_users: every username/nickname containing the query, by username"
    );
    let hits = names(ok(
        store.search_users(&format!("zed {m}"), 100).await,
        "search_users",
    ));
    assert_eq!(
        hits,
        vec![c.username.clone()],
        "search_users matches nicknames"
    );
    let hits = names(ok(store.search_users(&m, 2).await, "search_users"));
    assert_eq!(hits, expected[..2].to_vec(), "search_users honours limit");
    let wildcard = format!("_{}", &m[1..]);
    let hits = ok(store.search_users(&wildcard, 100).await, "search_users");
    assert!(
        hits.is_empty(),
        "search_users treats '_' literally, got {:?}",
        names(hits)
    );
    let hits = ok(
        store.search_users(&format!("{m}%"), 100).await,
        "search_users",
    );
    assert!(
        hits.is_empty(),
        "search_users treats '%' literally, got {:?}",
        names(hits)
    );

    // Refresh tokens.
    let fam = format!("fam-{m}");
    let t1 = token(&format!("t1-{m}"), &fam, a.id);
    let t2 = token(&format!("t2-{m}"), &fam, a.id);
    ok(
        store.insert_refresh_token(&t1).await,
        "insert_refresh_token",
    );
    ok(
        store.insert_refresh_token(&t2).await,
        "insert_refresh_token",
    );
    let r = store
        .insert_refresh_token(&token(&t1.token_id, "other", b.id))
        .await;
    assert!(
        matches!(r, Err(crate::PortError::AlreadyExists { .. })),
        "insert_refresh_token duplicate id MUST fail with AlreadyExists, got {r:?}"
    );
    match ok(
        store.use_refresh_token(&t1.token_id).await,
        "use_refresh_token",
    ) {
        RefreshTokenUse::Fresh(t) => {
            assert_eq!(
                (&t.token_id, &t.family_id, t.user_id),
                (&t1.token_id, &fam, a.id)
            );
            assert_eq!(
                t.expires_at, t1.expires_at,
                "Fresh carries the stored expiry"
            );
            assert!(!t.revoked);
        }
        other => panic!("first use of a token MUST be Fresh, got {other:?}"),
    }
    match ok(
        store.use_refresh_token(&t1.token_id).await,
        "use_refresh_token",
    ) {
        RefreshTokenUse::Reused(t) => assert!(t.used, "a reused token is reported as used"),
        other => panic!("second use of a token MUST be Reused, got {other:?}"),
    }
    assert_eq!(
        ok(
            store.use_refresh_token(&format!("none-{m}")).await,
            "use_refresh_token"
        ),
        RefreshTokenUse::Unknown,
        "unknown token"
    );
    ok(
        store.revoke_refresh_family(&fam).await,
        "revoke_refresh_family",
    );
    ok(
        store.revoke_refresh_family(&fam).await,
        "revoke_refresh_family is idempotent",
    );
    match ok(
        store.use_refresh_token(&t2.token_id).await,
        "use_refresh_token",
    ) {
        RefreshTokenUse::Reused(t) => assert!(t.revoked, "a revoked family's token is revoked"),
        other => panic!("a token of a revoked family MUST be Reused, got {other:?}"),
    }
    // Other families are untouched.
    let t3 = token(&format!("t3-{m}"), &format!("fam2-{m}"), b.id);
    ok(
        store.insert_refresh_token(&t3).await,
        "insert_refresh_token",
    );
    let uses = join_all((0..8).map(|_| store.use_refresh_token(&t3.token_id))).await;
    let fresh = uses
        .iter()
        .filter(|r| matches!(r, Ok(RefreshTokenUse::Fresh(_))))
        .count();
    let reused = uses
        .iter()
        .filter(|r| matches!(r, Ok(RefreshTokenUse::Reused(_))))
        .count();
    assert_eq!(
        (fresh, reused),
        (1, 7),
        "concurrent use_refresh_token: exactly one MUST be Fresh"
    );
}
