//! Test harness: the real router over memory ports, called with `tower::ServiceExt::oneshot`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shoot_server::config::Config;
use shoot_server::metrics::Metrics;
use shoot_server::{AppState, app, build_engine};
use tower::ServiceExt;

pub(crate) struct TestApp {
    pub(crate) state: AppState,
    pub(crate) router: Router,
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl Reply {
    pub(crate) fn data(&self) -> &Value {
        &self.body["data"]
    }

    pub(crate) fn code(&self) -> &str {
        self.body["errorCode"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub(crate) fn expect(self, status: u16) -> Reply {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status, body: {}",
            self.body
        );
        if status < 300 {
            assert_eq!(self.body["success"], json!(true), "{}", self.body);
        } else {
            assert_eq!(self.body["success"], json!(false), "{}", self.body);
            assert!(self.body["data"].is_null(), "{}", self.body);
            assert!(self.body["message"].is_string(), "{}", self.body);
        }
        self
    }

    #[track_caller]
    pub(crate) fn expect_err(self, status: u16, code: &str) -> Reply {
        let r = self.expect(status);
        assert_eq!(r.code(), code, "{}", r.body);
        r
    }
}

pub(crate) struct Session {
    pub(crate) user_id: String,
    pub(crate) access: String,
    pub(crate) refresh: String,
}

impl TestApp {
    pub(crate) async fn new() -> TestApp {
        TestApp::with_config(Config::for_tests()).await
    }

    pub(crate) async fn with_config(config: Config) -> TestApp {
        let metrics = Arc::new(Metrics::default());
        let engine = build_engine(&config, metrics.clone())
            .await
            .expect("engine");
        engine.start().await.expect("start");
        let state = AppState::with_metrics(engine, config, metrics);
        let router = app(state.clone());
        TestApp { state, router }
    }

    pub(crate) async fn raw(&self, req: Request<Body>) -> axum::response::Response {
        self.router.clone().oneshot(req).await.expect("infallible")
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.raw(req).await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply { status, body }
    }

    pub(crate) async fn get(&self, uri: &str, token: &str) -> Reply {
        self.call(Method::GET, uri, Some(token), None).await
    }

    pub(crate) async fn post(&self, uri: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, uri, Some(token), Some(body)).await
    }

    pub(crate) async fn put(&self, uri: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PUT, uri, Some(token), Some(body)).await
    }

    pub(crate) async fn delete(&self, uri: &str, token: &str) -> Reply {
        self.call(Method::DELETE, uri, Some(token), None).await
    }

    pub(crate) async fn signup(&self, username: &str) -> Value {
        let body = json!({
            "username": username, "nickname": format!("{username} nick"),
            "email": format!("{username}@example.com"), "password": "Secret#123",
        });
        self.call(Method::POST, "/api/v1/auth/signup", None, Some(body))
            .await
            .expect(201)
            .data()
            .clone()
    }

    pub(crate) async fn login(&self, username: &str) -> Session {
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": "Secret#123"})),
            )
            .await
            .expect(200);
        Session {
            user_id: r.data()["userId"].as_str().unwrap().to_owned(),
            access: r.data()["accessToken"].as_str().unwrap().to_owned(),
            refresh: r.data()["refreshToken"].as_str().unwrap().to_owned(),
        }
    }

    pub(crate) async fn user(&self, username: &str) -> Session {
        self.signup(username).await;
        self.login(username).await
    }
}

/// Polls `f` until it returns `Some`, failing after `secs`.
pub(crate) async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not reached in {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
