//! Every store contract against PostgreSQL, each test in a fresh schema.

use shoot_core::testkit;

use crate::support::postgres;

macro_rules! contract {
    ($name:ident, $contract:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(pg) = postgres().await else { return };
            $contract(&pg.store).await;
            pg.finish().await;
        }
    };
}

contract!(user_store_contract, testkit::user_store_contract);
contract!(social_store_contract, testkit::social_store_contract);
contract!(room_store_contract, testkit::room_store_contract);
contract!(message_store_contract, testkit::message_store_contract);
contract!(bookmark_store_contract, testkit::bookmark_store_contract);
contract!(schedule_store_contract, testkit::schedule_store_contract);
contract!(
    notification_store_contract,
    testkit::notification_store_contract
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_violations_name_their_key() {
    use shoot_core::PortError;
    use shoot_core::identity::UserStore;
    use shoot_core::testkit::{base36, fresh_id};

    let Some(pg) = postgres().await else { return };
    let mk = |name: &str, email: &str, code: &str| shoot_core::identity::User {
        id: shoot_core::UserId(fresh_id()),
        username: name.to_owned(),
        nickname: "nick".to_owned(),
        email: email.to_owned(),
        password_hash: "x".to_owned(),
        status: shoot_core::identity::UserStatus::Offline,
        bio: None,
        profile_image_url: None,
        user_code: code.to_owned(),
        last_seen_at: None,
        created_at: shoot_core::Timestamp(1),
        updated_at: shoot_core::Timestamp(1),
    };
    let n = base36(fresh_id());
    pg.store
        .create_user(&mk(&format!("u{n}"), &format!("{n}@x.io"), &n))
        .await
        .expect("create");
    let clash = pg
        .store
        .create_user(&mk(&format!("v{n}"), &format!("{n}@x.io"), "OTHER"))
        .await;
    assert!(
        matches!(clash, Err(PortError::AlreadyExists { what: "email" })),
        "{clash:?}"
    );
    let clash = pg
        .store
        .create_user(&mk(&format!("w{n}"), &format!("w{n}@x.io"), &n))
        .await;
    assert!(
        matches!(clash, Err(PortError::AlreadyExists { what: "user_code" })),
        "{clash:?}"
    );
    pg.finish().await;
}

/// Bulk insert through the persistence hot path; prints the rate (informational only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_insert_messages() {
    let Some(pg) = postgres().await else { return };
    crate::support::bulk_insert(&pg.store, "postgres").await;
    pg.finish().await;
}
