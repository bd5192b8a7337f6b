//! Shoot set-up over REST: users (signup + login, in parallel) and group rooms.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde_json::{Value, json};

/// A logged-in load user.
#[derive(Clone, Debug)]
pub struct User {
    /// Server user id.
    pub id: String,
    /// Access token.
    pub token: String,
}

/// REST client for one server.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    base: String,
}

const PASSWORD: &str = "Load-test-1!";

fn data(v: Value) -> Result<Value> {
    if v.get("success").and_then(Value::as_bool) == Some(true) {
        Ok(v.get("data").cloned().unwrap_or(Value::Null))
    } else {
        bail!("request failed: {v}")
    }
}

fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Rest {
    /// A client for `http://{addr}`.
    pub fn new(addr: std::net::SocketAddr, concurrency: usize) -> Result<Rest> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()?;
        Ok(Rest {
            http,
            base: format!("http://{addr}/api/v1"),
        })
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Result<(u16, Value)> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.with_context(|| format!("POST {path}"))?;
        let status = resp.status().as_u16();
        let v: Value = resp
            .json()
            .await
            .with_context(|| format!("POST {path}: body"))?;
        Ok((status, v))
    }

    /// Signs up (an existing user is fine) and logs in `username`.
    pub async fn user(&self, username: &str) -> Result<User> {
        let (status, v) = self
            .post(
                "/auth/signup",
                None,
                json!({"username": username, "nickname": username, "email": format!("{username}@load.test"), "password": PASSWORD}),
            )
            .await?;
        if status != 201 && status != 409 {
            bail!("signup {username}: HTTP {status} {v}");
        }
        let (status, v) = self
            .post(
                "/auth/login",
                None,
                json!({"username": username, "password": PASSWORD}),
            )
            .await?;
        if status != 200 {
            bail!("login {username}: HTTP {status} {v}");
        }
        let d = data(v)?;
        Ok(User {
            id: d.get("userId").and_then(id_of).context("login: userId")?,
            token: d
                .get("accessToken")
                .and_then(Value::as_str)
                .context("login: accessToken")?
                .to_owned(),
        })
    }

    /// Creates (or logs in) `n` users `{prefix}{i}`, `concurrency` at a time, in index order.
    pub async fn users(&self, prefix: &str, n: usize, concurrency: usize) -> Result<Vec<User>> {
        let started = std::time::Instant::now();
        let mut out: Vec<Option<User>> = vec![None; n];
        let mut s = futures::stream::iter(0..n)
            .map(|i| {
                let name = format!("{prefix}{i}");
                async move { (i, self.user(&name).await) }
            })
            .buffer_unordered(concurrency.max(1));
        let mut done = 0;
        while let Some((i, r)) = s.next().await {
            out[i] = Some(r?);
            done += 1;
            if done % 1000 == 0 {
                println!(
                    "  users: {done}/{n} ({:.1}s)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        println!(
            "  users: {n} ready in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Ok(out.into_iter().flatten().collect())
    }

    /// Creates a GROUP room owned by `owner` with `members` (ids), adding members beyond the
    /// first 99 in batches of 500; returns the room id.
    pub async fn group_room(
        &self,
        owner: &User,
        title: &str,
        members: &[String],
    ) -> Result<String> {
        let first: Vec<&String> = members
            .iter()
            .filter(|m| **m != owner.id)
            .take(99)
            .collect();
        let (status, v) = self
            .post(
                "/chatrooms",
                Some(&owner.token),
                json!({"type": "GROUP", "title": title, "participantIds": first}),
            )
            .await?;
        if status != 201 && status != 200 {
            bail!("create room: HTTP {status} {v}");
        }
        let room = data(v)?.get("id").and_then(id_of).context("room id")?;
        let rest: Vec<&String> = members
            .iter()
            .filter(|m| **m != owner.id)
            .skip(99)
            .collect();
        for chunk in rest.chunks(500) {
            let (status, v) = self
                .post(
                    &format!("/chatrooms/{room}/participants"),
                    Some(&owner.token),
                    json!({"participantIds": chunk}),
                )
                .await?;
            if !(200..300).contains(&status) {
                bail!("add participants: HTTP {status} {v}");
            }
        }
        Ok(room)
    }

    /// Creates rooms of `size` consecutive users each (`users.len() / size` rooms; the first
    /// member owns it); returns the room ids in order.
    pub async fn rooms_of(
        &self,
        users: &[User],
        size: usize,
        concurrency: usize,
    ) -> Result<Vec<String>> {
        let started = std::time::Instant::now();
        let n = users.len() / size.max(1);
        let mut out: Vec<Option<String>> = vec![None; n];
        let mut s = futures::stream::iter(0..n)
            .map(|r| {
                let members: Vec<String> = users[r * size..(r + 1) * size]
                    .iter()
                    .map(|u| u.id.clone())
                    .collect();
                let owner = users[r * size].clone();
                async move {
                    (
                        r,
                        self.group_room(&owner, &format!("load {r}"), &members)
                            .await,
                    )
                }
            })
            .buffer_unordered(concurrency.max(1));
        while let Some((r, id)) = s.next().await {
            out[r] = Some(id?);
        }
        println!(
            "  rooms: {n} of {size} ready in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Ok(out.into_iter().flatten().collect())
    }
}
