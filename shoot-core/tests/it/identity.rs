//! Identity use cases over the memory ports: sign-up rules, login lock-out, refresh-token
//! rotation, profiles, search and status. Also hosts the small harness the social and
//! recommendation tests share.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use shoot_core::engine::{NewUser, ProfilePatch};
use shoot_core::events::{Event, Topic};
use shoot_core::identity::password::PasswordHasherConfig;
use shoot_core::identity::{RefreshToken, RefreshTokenUse, User, UserStatus, UserStore};
use shoot_core::memory::{ManualClock, MemoryStores};
use shoot_core::ports::{Clock, EventBus, EventStream, Spawner};
use shoot_core::{
    ChatEngine, EngineConfig, ErrorCode, Limits, PortError, PortResult, Ports, Result, UserId,
};

/// Spawns engine background tasks on the test's tokio runtime.
pub(crate) struct TokioTestSpawner;

impl Spawner for TokioTestSpawner {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
}

/// An engine over fresh memory ports with a manual clock and cheap password hashing.
pub(crate) struct Env {
    pub(crate) engine: ChatEngine,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) stores: MemoryStores,
}

pub(crate) const PASSWORD: &str = "Secret#123";

impl Env {
    pub(crate) fn new() -> Env {
        Env::with_limits(Limits::default())
    }

    pub(crate) fn with_limits(limits: Limits) -> Env {
        Env::custom(limits, |_| {})
    }

    /// Like [`Env::with_limits`], letting `edit` swap ports (wrappers that count calls).
    pub(crate) fn custom(limits: Limits, edit: impl FnOnce(&mut Ports)) -> Env {
        let clock = Arc::new(ManualClock::at_2024());
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let stores = MemoryStores::new(dyn_clock.clone());
        let mut ports = stores.ports(dyn_clock, Arc::new(TokioTestSpawner));
        edit(&mut ports);
        let config = EngineConfig {
            limits,
            instance_id: "test".to_owned(),
            password: PasswordHasherConfig::fast(),
        };
        Env {
            engine: ChatEngine::new(ports, config),
            clock,
            stores,
        }
    }

    /// Signs up `name` (nickname `Name`, e-mail `name@example.com`).
    pub(crate) async fn user(&self, name: &str) -> User {
        self.engine.signup(new_user(name)).await.expect("signup")
    }

    /// Signs up several users.
    pub(crate) async fn users<const N: usize>(&self, names: [&str; N]) -> [UserId; N] {
        let mut ids = [UserId(0); N];
        for (i, name) in names.iter().enumerate() {
            ids[i] = self.user(name).await.id;
        }
        ids
    }

    /// Makes `a` and `b` friends through the engine.
    pub(crate) async fn befriend(&self, a: UserId, b: UserId) {
        let request = self.engine.send_friend_request(a, b).await.expect("send");
        self.engine
            .accept_friend_request(b, request.id)
            .await
            .expect("accept");
    }

    pub(crate) async fn subscribe(&self, topic: Topic) -> EventStream {
        self.stores.bus.subscribe(topic).await.expect("subscribe")
    }
}

pub(crate) fn new_user(name: &str) -> NewUser {
    let mut nickname = name.to_owned();
    nickname[..1].make_ascii_uppercase();
    NewUser {
        username: name.to_owned(),
        nickname,
        email: format!("{name}@example.com"),
        password: PASSWORD.to_owned(),
        bio: None,
    }
}

/// The error code of a result that must be an error.
pub(crate) fn code<T: std::fmt::Debug>(r: Result<T>) -> ErrorCode {
    r.expect_err("expected an error").code()
}

/// The next event of `stream`, waiting at most two seconds.
pub(crate) async fn next_event(stream: &mut EventStream) -> Arc<Event> {
    tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .expect("no event within 2 s")
        .expect("stream ended")
}

/// Every event already delivered to `stream` (none pending after a short poll).
pub(crate) async fn drain(stream: &mut EventStream) -> Vec<Arc<Event>> {
    let mut out = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), stream.next()).await {
        out.push(e);
    }
    out
}

#[tokio::test]
async fn signup_creates_an_offline_user_with_a_code_and_an_argon2id_hash() {
    let env = Env::new();
    let mut new = new_user("alice");
    new.nickname = "  Alice  ".to_owned();
    new.bio = Some(" hello ".to_owned());
    let alice = env.engine.signup(new).await.unwrap();
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.nickname, "Alice");
    assert_eq!(alice.bio.as_deref(), Some("hello"));
    assert_eq!(alice.status, UserStatus::Offline);
    assert!(
        alice.password_hash.starts_with("$argon2id$"),
        "{}",
        alice.password_hash
    );
    assert!(!alice.password_hash.contains(PASSWORD));
    assert_eq!(alice.user_code.len(), Limits::default().user_code_len);
    assert!(
        alice
            .user_code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    assert_eq!(env.engine.user(alice.id).await.unwrap(), alice);
    let lower = format!(" {} ", alice.user_code.to_lowercase());
    let by_code = env.engine.find_user_by_code(&lower).await.unwrap();
    assert_eq!(by_code.id, alice.id);
    assert_eq!(
        code(env.engine.find_user_by_code("NOPE1234").await),
        ErrorCode::UserNotFound
    );
    assert_eq!(
        code(env.engine.user(UserId(42)).await),
        ErrorCode::UserNotFound
    );
    let bob = env.user("bob").await;
    assert_ne!(bob.user_code, alice.user_code);
}

#[tokio::test]
async fn signup_rejects_each_broken_rule_with_its_code() {
    let env = Env::new();
    env.user("taken").await;
    let check = |edit: fn(&mut NewUser), expect: ErrorCode| {
        let engine = env.engine.clone();
        async move {
            let mut new = new_user("fresh");
            edit(&mut new);
            let got = code(engine.signup(new.clone()).await);
            assert_eq!(got, expect, "{new:?}");
        }
    };
    check(|n| n.username = "ab".into(), ErrorCode::InvalidUsername).await;
    check(
        |n| n.username = "has space".into(),
        ErrorCode::InvalidUsername,
    )
    .await;
    check(|n| n.username = "x".repeat(21), ErrorCode::InvalidUsername).await;
    check(|n| n.nickname = " x ".into(), ErrorCode::InvalidNickname).await;
    check(|n| n.nickname = "n".repeat(31), ErrorCode::InvalidNickname).await;
    check(|n| n.email = "not-an-email".into(), ErrorCode::InvalidEmail).await;
    check(|n| n.email = "a@b".into(), ErrorCode::InvalidEmail).await;
    check(|n| n.bio = Some("b".repeat(201)), ErrorCode::BioTooLong).await;
    check(|n| n.password = "Short#1".into(), ErrorCode::WeakPassword).await;
    check(
        |n| n.password = "nouppercase#1".into(),
        ErrorCode::WeakPassword,
    )
    .await;
    check(
        |n| n.password = "NOLOWERCASE#1".into(),
        ErrorCode::WeakPassword,
    )
    .await;
    check(
        |n| n.password = "NoDigits#here".into(),
        ErrorCode::WeakPassword,
    )
    .await;
    check(
        |n| n.password = "NoSymbol1234".into(),
        ErrorCode::WeakPassword,
    )
    .await;
    check(|n| n.username = "TAKEN".into(), ErrorCode::UsernameTaken).await;
    check(
        |n| n.email = "Taken@Example.COM".into(),
        ErrorCode::EmailTaken,
    )
    .await;
    // Nothing above was stored.
    assert!(
        env.engine
            .authenticate("fresh", PASSWORD, None)
            .await
            .is_err()
    );
    assert!(env.engine.signup(new_user("fresh")).await.is_ok());
}

#[tokio::test]
async fn login_by_username_or_email_and_generic_failures() {
    let env = Env::new();
    let alice = env.user("alice").await;
    let ok = |login: &'static str| env.engine.authenticate(login, PASSWORD, None);
    assert_eq!(ok("alice").await.unwrap().id, alice.id);
    assert_eq!(ok("ALICE").await.unwrap().id, alice.id);
    assert_eq!(ok(" alice@example.com ").await.unwrap().id, alice.id);
    assert_eq!(ok("Alice@Example.com").await.unwrap().id, alice.id);
    let bad = env.engine.authenticate("alice", "Secret#124", None).await;
    assert_eq!(code(bad), ErrorCode::InvalidCredentials);
    let unknown = env.engine.authenticate("nobody", PASSWORD, None).await;
    assert_eq!(code(unknown), ErrorCode::InvalidCredentials);
}

#[tokio::test]
async fn account_locks_after_max_failures_until_the_lockout_ends() {
    let env = Env::new();
    env.user("alice").await;
    let e = &env.engine;
    for i in 0..5 {
        assert_eq!(
            code(e.authenticate("alice", "wrong", None).await),
            ErrorCode::InvalidCredentials,
            "{i}"
        );
    }
    // Locked, even with the right password, and whatever the login form.
    assert_eq!(
        code(e.authenticate("alice", PASSWORD, None).await),
        ErrorCode::AccountLocked
    );
    assert_eq!(
        code(e.authenticate("alice@example.com", PASSWORD, None).await),
        ErrorCode::AccountLocked
    );
    env.clock.advance(Duration::from_secs(299));
    assert_eq!(
        code(e.authenticate("alice", PASSWORD, None).await),
        ErrorCode::AccountLocked
    );
    env.clock.advance(Duration::from_secs(2));
    assert!(e.authenticate("alice", PASSWORD, None).await.is_ok());
}

#[tokio::test]
async fn a_success_resets_the_account_count() {
    let env = Env::new();
    env.user("alice").await;
    let e = &env.engine;
    for _ in 0..4 {
        assert!(e.authenticate("alice", "wrong", None).await.is_err());
    }
    assert!(e.authenticate("alice", PASSWORD, None).await.is_ok());
    for _ in 0..4 {
        assert!(e.authenticate("alice", "wrong", None).await.is_err());
    }
    assert!(e.authenticate("alice", PASSWORD, None).await.is_ok());
}

#[tokio::test]
async fn an_address_locks_across_accounts() {
    let mut limits = Limits::default();
    limits.login_max_failures = 3;
    let env = Env::with_limits(limits);
    env.users(["alice", "bob", "carol"]).await;
    let e = &env.engine;
    let addr = Some("203.0.113.9");
    assert!(e.authenticate("alice", "wrong", addr).await.is_err());
    assert!(e.authenticate("bob", "wrong", addr).await.is_err());
    assert!(e.authenticate("ghost", "wrong", addr).await.is_err());
    assert_eq!(
        code(e.authenticate("carol", PASSWORD, addr).await),
        ErrorCode::AccountLocked
    );
    // Other addresses and the accounts themselves are not locked.
    assert!(
        e.authenticate("carol", PASSWORD, Some("198.51.100.1"))
            .await
            .is_ok()
    );
    assert!(e.authenticate("alice", PASSWORD, None).await.is_ok());
    env.clock.advance(Limits::default().login_lockout);
    assert!(e.authenticate("carol", PASSWORD, addr).await.is_ok());
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let env = Env::new();
    let alice = env.user("alice").await;
    let e = &env.engine;
    let first = e.issue_refresh_token(alice.id, None).await.unwrap();
    assert_eq!(first.user_id, alice.id);
    assert_eq!(
        first.expires_at,
        env.clock.now().plus(Limits::default().refresh_token_ttl)
    );
    let second = e.rotate_refresh_token(&first.token_id).await.unwrap();
    assert_eq!(second.family_id, first.family_id);
    assert_ne!(second.token_id, first.token_id);
    // A second login is another family.
    let other = e.issue_refresh_token(alice.id, None).await.unwrap();
    assert_ne!(other.family_id, first.family_id);
    // Replaying the first token: reuse detected, the whole family revoked.
    assert_eq!(
        code(e.rotate_refresh_token(&first.token_id).await),
        ErrorCode::TokenReused
    );
    assert_eq!(
        code(e.rotate_refresh_token(&second.token_id).await),
        ErrorCode::InvalidToken
    );
    assert_eq!(
        code(e.rotate_refresh_token(&first.token_id).await),
        ErrorCode::InvalidToken
    );
    // The other family is untouched.
    assert!(e.rotate_refresh_token(&other.token_id).await.is_ok());
    assert_eq!(
        code(e.rotate_refresh_token("no-such-token").await),
        ErrorCode::InvalidToken
    );
    assert_eq!(
        code(e.issue_refresh_token(UserId(9), None).await),
        ErrorCode::UserNotFound
    );
}

#[tokio::test]
async fn refresh_tokens_expire_and_logout_revokes() {
    let env = Env::new();
    let alice = env.user("alice").await;
    let e = &env.engine;
    let t = e.issue_refresh_token(alice.id, None).await.unwrap();
    env.clock.advance(Limits::default().refresh_token_ttl);
    assert_eq!(
        code(e.rotate_refresh_token(&t.token_id).await),
        ErrorCode::TokenExpired
    );

    let t = e.issue_refresh_token(alice.id, None).await.unwrap();
    let next = e.rotate_refresh_token(&t.token_id).await.unwrap();
    e.revoke_refresh_token_family(&next.token_id).await.unwrap();
    assert_eq!(
        code(e.rotate_refresh_token(&next.token_id).await),
        ErrorCode::InvalidToken
    );
    assert_eq!(
        code(e.revoke_refresh_token_family("nope").await),
        ErrorCode::InvalidToken
    );
}

#[tokio::test]
async fn search_hides_the_caller_and_blocks_both_ways() {
    let env = Env::new();
    let [alice, ann, anna, andy] = env.users(["alice", "ann", "anna", "andy"]).await;
    let e = &env.engine;
    let found = |q: &'static str| async move {
        let users = e.search_users(alice, q, 10).await.unwrap();
        users.into_iter().map(|u| u.username).collect::<Vec<_>>()
    };
    assert_eq!(found("an").await, ["andy", "ann", "anna"]);
    env.engine.block_user(alice, ann).await.unwrap();
    env.engine.block_user(andy, alice).await.unwrap();
    assert_eq!(found("AN").await, ["anna"]);
    assert_eq!(found("  ").await, Vec::<String>::new());
    let one = env.engine.search_users(anna, "a", 1).await.unwrap();
    assert_eq!(one.len(), 1);
}

#[tokio::test]
async fn profiles_update_and_validate() {
    let env = Env::new();
    let alice = env.user("alice").await;
    let e = &env.engine;
    let patch = ProfilePatch {
        nickname: Some(" Ally ".into()),
        bio: Some(Some("likes tea".into())),
        profile_image_url: Some(Some("https://img.example.com/a.png".into())),
    };
    let updated = e.update_profile(alice.id, patch).await.unwrap();
    assert_eq!(updated.nickname, "Ally");
    assert_eq!(updated.bio.as_deref(), Some("likes tea"));
    assert_eq!(
        updated.profile_image_url.as_deref(),
        Some("https://img.example.com/a.png")
    );
    assert_eq!(e.user(alice.id).await.unwrap(), updated);
    // Untouched fields stay; Some(None) clears.
    let cleared = e.update_profile(
        alice.id,
        ProfilePatch {
            bio: Some(None),
            ..ProfilePatch::default()
        },
    );
    let cleared = cleared.await.unwrap();
    assert_eq!(cleared.bio, None);
    assert_eq!(cleared.nickname, "Ally");
    let check = |patch: ProfilePatch, expect: ErrorCode| async move {
        assert_eq!(
            code(e.update_profile(alice.id, patch.clone()).await),
            expect,
            "{patch:?}"
        );
    };
    check(
        ProfilePatch {
            nickname: Some("x".into()),
            ..Default::default()
        },
        ErrorCode::InvalidNickname,
    )
    .await;
    check(
        ProfilePatch {
            bio: Some(Some("b".repeat(201))),
            ..Default::default()
        },
        ErrorCode::BioTooLong,
    )
    .await;
    check(
        ProfilePatch {
            profile_image_url: Some(Some("bad url".into())),
            ..Default::default()
        },
        ErrorCode::ValidationFailed,
    )
    .await;
    assert_eq!(
        code(e.update_profile(UserId(7), ProfilePatch::default()).await),
        ErrorCode::UserNotFound
    );
}

#[tokio::test]
async fn status_changes_reach_the_user_and_friends_only() {
    let env = Env::new();
    let [alice, bob, carol] = env.users(["alice", "bob", "carol"]).await;
    env.befriend(alice, bob).await;
    let mut to_alice = env.subscribe(Topic::User(alice)).await;
    let mut to_bob = env.subscribe(Topic::User(bob)).await;
    let mut to_carol = env.subscribe(Topic::User(carol)).await;
    let user = env
        .engine
        .set_status(alice, UserStatus::Busy)
        .await
        .unwrap();
    assert_eq!(user.status, UserStatus::Busy);
    let expect = Event::UserStatusChanged {
        user_id: alice,
        status: UserStatus::Busy,
        last_seen_at: None,
    };
    assert_eq!(*next_event(&mut to_alice).await, expect);
    assert_eq!(*next_event(&mut to_bob).await, expect);
    assert!(drain(&mut to_carol).await.is_empty());
    let off = env
        .engine
        .set_status(alice, UserStatus::Offline)
        .await
        .unwrap();
    assert_eq!(off.last_seen_at, Some(env.clock.now()));
    let Event::UserStatusChanged { last_seen_at, .. } = &*next_event(&mut to_bob).await else {
        panic!("expected a status change");
    };
    assert_eq!(*last_seen_at, Some(env.clock.now()));
}

#[tokio::test]
async fn users_keeps_input_order_and_skips_unknown_ids() {
    let env = Env::new();
    let [a, b, c] = env.users(["alice", "bob", "carol"]).await;
    let got = env.engine.users(&[c, UserId(1), a, c, b]).await.unwrap();
    assert_eq!(got.iter().map(|u| u.id).collect::<Vec<_>>(), [c, a, b]);
    assert!(env.engine.users(&[]).await.unwrap().is_empty());
}

/// Delegates to the memory store but first fails `create_user` with the scripted unique-key
/// clashes, recording the user codes tried.
struct ClashingUsers {
    inner: Arc<shoot_core::memory::MemoryUserStore>,
    script: std::sync::Mutex<Vec<&'static str>>,
    codes_tried: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl UserStore for ClashingUsers {
    async fn create_user(&self, user: &User) -> PortResult<()> {
        self.codes_tried
            .lock()
            .unwrap()
            .push(user.user_code.clone());
        let next = self.script.lock().unwrap().pop();
        match next {
            Some(what) => Err(PortError::AlreadyExists { what }),
            None => self.inner.create_user(user).await,
        }
    }
    async fn get_user(&self, id: UserId) -> PortResult<Option<User>> {
        self.inner.get_user(id).await
    }
    async fn get_users(&self, ids: &[UserId]) -> PortResult<Vec<User>> {
        self.inner.get_users(ids).await
    }
    async fn find_by_username(&self, username: &str) -> PortResult<Option<User>> {
        self.inner.find_by_username(username).await
    }
    async fn find_by_email(&self, email: &str) -> PortResult<Option<User>> {
        self.inner.find_by_email(email).await
    }
    async fn find_by_code(&self, code: &str) -> PortResult<Option<User>> {
        self.inner.find_by_code(code).await
    }
    async fn update_user(&self, user: &User) -> PortResult<()> {
        self.inner.update_user(user).await
    }
    async fn search_users(&self, query: &str, limit: usize) -> PortResult<Vec<User>> {
        self.inner.search_users(query, limit).await
    }
    async fn insert_refresh_token(&self, token: &RefreshToken) -> PortResult<()> {
        self.inner.insert_refresh_token(token).await
    }
    async fn use_refresh_token(&self, token_id: &str) -> PortResult<RefreshTokenUse> {
        self.inner.use_refresh_token(token_id).await
    }
    async fn revoke_refresh_family(&self, family_id: &str) -> PortResult<()> {
        self.inner.revoke_refresh_family(family_id).await
    }
}

fn clashing_env(script: Vec<&'static str>) -> (Env, Arc<ClashingUsers>) {
    let slot: Arc<std::sync::Mutex<Option<Arc<ClashingUsers>>>> = Arc::default();
    let env = Env::custom(Limits::default(), |ports| {
        let users = Arc::new(ClashingUsers {
            inner: Arc::new(shoot_core::memory::MemoryUserStore::new()),
            script: std::sync::Mutex::new(script),
            codes_tried: std::sync::Mutex::default(),
        });
        *slot.lock().unwrap() = Some(users.clone());
        ports.users = users;
    });
    let users = slot.lock().unwrap().clone().unwrap();
    (env, users)
}

#[tokio::test]
async fn signup_retries_user_code_clashes_with_fresh_codes() {
    let (env, users) = clashing_env(vec!["user_code", "user_code"]);
    let alice = env.user("alice").await;
    let tried = users.codes_tried.lock().unwrap().clone();
    assert_eq!(tried.len(), 3);
    assert_eq!(
        tried.iter().collect::<std::collections::HashSet<_>>().len(),
        3,
        "{tried:?}"
    );
    assert_eq!(alice.user_code, tried[2]);

    let (env, _) = clashing_env(vec!["user_code"; 8]);
    assert_eq!(
        code(env.engine.signup(new_user("bob")).await),
        ErrorCode::InternalError
    );
}

#[tokio::test]
async fn unique_key_races_at_insert_map_to_taken_codes() {
    let (env, _) = clashing_env(vec!["username"]);
    assert_eq!(
        code(env.engine.signup(new_user("alice")).await),
        ErrorCode::UsernameTaken
    );
    let (env, _) = clashing_env(vec!["email"]);
    assert_eq!(
        code(env.engine.signup(new_user("alice")).await),
        ErrorCode::EmailTaken
    );
}
