//! The HTTP link fetcher against a local server: refused by the SSRF rules unless private
//! addresses are allowed, then parsed, redirect-capped and cached.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::response::{Html, Redirect};
use axum::routing::get;
use shoot_core::memory::{ManualClock, MemoryEphemeral};
use shoot_core::ports::{Clock, LinkFetcher};
use shoot_server::link_preview::HttpLinkFetcher;
use shoot_server::metrics::Metrics;

async fn local_site(hits: Arc<AtomicUsize>) -> String {
    let app = Router::new()
        .route(
            "/page",
            get(move || {
                hits.fetch_add(1, Ordering::SeqCst);
                async { Html(r#"<head><meta property="og:title" content="Local page"><meta property="og:image" content="/i.png"></head>"#) }
            }),
        )
        .route("/r0", get(|| async { Redirect::temporary("/r1") }))
        .route("/r1", get(|| async { Redirect::temporary("/r2") }))
        .route("/r2", get(|| async { Redirect::temporary("/r3") }))
        .route("/r3", get(|| async { Redirect::temporary("/page") }))
        .route("/one-hop", get(|| async { Redirect::temporary("/page") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn fetcher(allow_private: bool, metrics: Arc<Metrics>) -> HttpLinkFetcher {
    let clock: Arc<dyn Clock> =
        Arc::new(ManualClock::new(shoot_core::Timestamp(1_700_000_000_000)));
    HttpLinkFetcher::new(
        allow_private,
        Arc::new(MemoryEphemeral::new(clock)),
        metrics,
    )
    .unwrap()
}

#[tokio::test]
async fn private_targets_are_refused_by_default() {
    let hits = Arc::new(AtomicUsize::new(0));
    let base = local_site(hits.clone()).await;
    let metrics = Arc::new(Metrics::default());
    let f = fetcher(false, metrics.clone());
    assert_eq!(
        f.fetch_preview(&format!("{base}/page")).await.unwrap(),
        None
    );
    let localhost = base.replace("127.0.0.1", "localhost");
    assert_eq!(
        f.fetch_preview(&format!("{localhost}/page")).await.unwrap(),
        None
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the server was contacted");
    assert!(metrics.link_previews_refused.get() >= 2);
}

#[tokio::test]
async fn allowed_fetch_parses_caps_redirects_and_caches() {
    let hits = Arc::new(AtomicUsize::new(0));
    let base = local_site(hits.clone()).await;
    let f = fetcher(true, Arc::new(Metrics::default()));
    let p = f
        .fetch_preview(&format!("{base}/page"))
        .await
        .unwrap()
        .expect("preview");
    assert_eq!(p.title.as_deref(), Some("Local page"));
    assert_eq!(p.image_url, Some(format!("{base}/i.png")));
    assert_eq!(p.url, format!("{base}/page"));
    // Cached: no second request.
    f.fetch_preview(&format!("{base}/page"))
        .await
        .unwrap()
        .expect("cached preview");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // One redirect is followed; four are too many.
    assert!(
        f.fetch_preview(&format!("{base}/one-hop"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(f.fetch_preview(&format!("{base}/r0")).await.unwrap(), None);
}

/// A server that counts its requests and serves whatever `app` routes.
async fn counting_site(app: Router, hits: Arc<AtomicUsize>, bind: &str) -> Option<String> {
    let app = app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                next.run(req).await
            }
        },
    ));
    // IPv6 loopback may be missing on some machines: the caller then skips that target.
    let listener = tokio::net::TcpListener::bind(bind).await.ok()?;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Some(addr.port().to_string())
}

fn page_router() -> Router {
    Router::new().route(
        "/page",
        get(|| async { Html(r#"<head><meta property="og:title" content="Local page"></head>"#) }),
    )
}

/// Every spelling of a loopback, private, link-local or unspecified target is refused
/// without contacting anything, including IPv4 written as one number, in hex or octal, and
/// IPv4-mapped / -compatible IPv6 loopback. Where a real server listens (IPv4 and IPv6
/// loopback), it sees no request.
#[tokio::test]
async fn every_spelling_of_a_private_target_is_refused() {
    let hits = Arc::new(AtomicUsize::new(0));
    let v4 = counting_site(page_router(), hits.clone(), "127.0.0.1:0")
        .await
        .expect("IPv4 loopback");
    let v6 = counting_site(page_router(), hits.clone(), "[::1]:0").await;
    let metrics = Arc::new(Metrics::default());
    let f = fetcher(false, metrics.clone());
    let mut urls: Vec<String> = [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0x7f.0.0.1",
        "017700000001",
        "127.255.255.254",
        "0.0.0.0",
        "0",
        "localhost",
        "LOCALHOST.",
        "sub.localhost",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::1]",
        "[::]",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.0.1",
        "100.64.0.1",
        "169.254.169.254",
        "169.254.0.1",
        "[fe80::1]",
        "[fc00::1]",
        "[fd00::2]",
        "[::ffff:169.254.169.254]",
        "[::ffff:10.0.0.1]",
        "metadata.google.internal",
        "printer.local",
    ]
    .iter()
    .map(|host| format!("http://{host}:{v4}/page"))
    .collect();
    if let Some(v6) = &v6 {
        urls.push(format!("http://[::1]:{v6}/page"));
        urls.push(format!("http://[0:0:0:0:0:0:0:1]:{v6}/page"));
    }
    urls.push(format!("https://127.0.0.1:{v4}/page"));
    // Credentials in the URL and other schemes are refused too.
    urls.push(format!("http://user:pw@127.0.0.1:{v4}/page"));
    urls.push("file:///etc/passwd".to_owned());
    urls.push("gopher://127.0.0.1:70/".to_owned());
    for url in &urls {
        assert_eq!(f.fetch_preview(url).await.unwrap(), None, "{url}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a refused target was contacted"
    );
    // Each distinct target (after URL normalisation; repeats hit the cache) was refused.
    let distinct: std::collections::BTreeSet<String> = urls
        .iter()
        .map(|u| url::Url::parse(u).unwrap().to_string())
        .collect();
    assert_eq!(metrics.link_previews_refused.get(), distinct.len() as u64);
}

/// A host name that is not obviously local but resolves only to loopback (the machine's
/// own name, from /etc/hosts) is refused by the resolver, not by the URL check.
#[tokio::test]
async fn names_resolving_to_loopback_are_refused_at_resolution() {
    let hits = Arc::new(AtomicUsize::new(0));
    let port = counting_site(page_router(), hits.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let resolved: Vec<std::net::SocketAddr> =
        match tokio::net::lookup_host((host.as_str(), 0)).await {
            Ok(addrs) => addrs.collect(),
            Err(_) => Vec::new(),
        };
    if host.is_empty() || resolved.is_empty() || !resolved.iter().all(|a| a.ip().is_loopback()) {
        eprintln!("skipped: host name {host:?} does not resolve to loopback only ({resolved:?})");
        return;
    }
    let f = fetcher(false, Arc::new(Metrics::default()));
    assert_eq!(
        f.fetch_preview(&format!("http://{host}:{port}/page"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the resolver let {host} through"
    );
    // With private targets allowed, the same name works: the refusal above was the rule.
    let allowed = fetcher(true, Arc::new(Metrics::default()));
    assert!(
        allowed
            .fetch_preview(&format!("http://{host}:{port}/page"))
            .await
            .unwrap()
            .is_some()
    );
}

/// Bodies are read up to the cap only: a title past the cap is not seen, a title before
/// an endless body is, and the fetch ends without reading the rest.
#[tokio::test]
async fn oversized_and_endless_bodies_are_capped() {
    use axum::body::Body;
    use shoot_server::link_preview::BODY_CAP;
    let sent = Arc::new(AtomicUsize::new(0));
    let sent_endless = sent.clone();
    let app = Router::new()
        .route(
            "/late-title",
            get(|| async {
                let filler = " ".repeat(BODY_CAP + 1024);
                Html(format!(
                    "<html><head>{filler}<meta property=\"og:title\" content=\"Too late\"></head></html>"
                ))
            }),
        )
        .route(
            "/endless",
            get(move || {
                let sent = sent_endless.clone();
                async move {
                    let head = futures::stream::once(async {
                        Ok::<_, std::io::Error>(bytes::Bytes::from_static(
                            b"<html><head><meta property=\"og:title\" content=\"Early\">",
                        ))
                    });
                    let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
                    let tail = futures::stream::repeat_with(move || {
                        sent.fetch_add(chunk.len(), Ordering::SeqCst);
                        Ok(chunk.clone())
                    });
                    let body = Body::from_stream(futures::StreamExt::chain(head, tail));
                    ([("content-type", "text/html")], body)
                }
            }),
        );
    let port = counting_site(app, Arc::new(AtomicUsize::new(0)), "127.0.0.1:0")
        .await
        .unwrap();
    let f = fetcher(true, Arc::new(Metrics::default()));
    assert_eq!(
        f.fetch_preview(&format!("http://127.0.0.1:{port}/late-title"))
            .await
            .unwrap(),
        None,
        "a title past the body cap was read"
    );
    let p = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        f.fetch_preview(&format!("http://127.0.0.1:{port}/endless")),
    )
    .await
    .expect("an endless body does not hang the fetcher")
    .unwrap()
    .expect("preview from the first bytes");
    assert_eq!(p.title.as_deref(), Some("Early"));
    // The server produced at most the cap plus what was in flight, never "everything".
    let produced = sent.load(Ordering::SeqCst);
    assert!(
        produced < 64 * BODY_CAP,
        "read {produced} bytes of an endless body"
    );
}

/// A server that never answers, or drips its body, costs at most the fetch timeout.
#[tokio::test]
async fn slow_servers_are_abandoned_at_the_timeout() {
    use shoot_server::link_preview::TIMEOUT;
    // Accepts connections and never writes a byte.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    // Sends headers, then one byte every 200 ms forever.
    let app = Router::new().route(
        "/drip",
        get(|| async {
            let drip = futures::stream::unfold(0u32, |n| async move {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(b" ")),
                    n + 1,
                ))
            });
            let head = futures::stream::once(async {
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"<html><head>"))
            });
            (
                [("content-type", "text/html")],
                axum::body::Body::from_stream(futures::StreamExt::chain(head, drip)),
            )
        }),
    );
    let drip_port = counting_site(app, Arc::new(AtomicUsize::new(0)), "127.0.0.1:0")
        .await
        .unwrap();
    let f = fetcher(true, Arc::new(Metrics::default()));
    for url in [
        format!("http://127.0.0.1:{silent_port}/page"),
        format!("http://127.0.0.1:{drip_port}/drip"),
    ] {
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(TIMEOUT * 5, f.fetch_preview(&url))
            .await
            .unwrap_or_else(|_| panic!("{url}: the fetch outlived 5x its timeout"));
        assert_eq!(r.unwrap(), None, "{url}");
        assert!(
            started.elapsed() >= TIMEOUT / 2,
            "{url} ended before its timeout?"
        );
    }
}

/// Non-HTML answers and error statuses give no preview (and are cached as such).
#[tokio::test]
async fn non_html_and_error_answers_give_no_preview() {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/json",
            get(|| async {
                (
                    [("content-type", "application/json")],
                    r#"{"og:title":"<meta property=\"og:title\" content=\"x\">"}"#,
                )
            }),
        )
        .route(
            "/missing",
            get(|| async {
                (
                    axum::http::StatusCode::NOT_FOUND,
                    Html(r#"<meta property="og:title" content="Not found page">"#),
                )
            }),
        );
    let port = counting_site(app, hits.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let f = fetcher(true, Arc::new(Metrics::default()));
    for path in ["json", "missing", "json", "missing"] {
        assert_eq!(
            f.fetch_preview(&format!("http://127.0.0.1:{port}/{path}"))
                .await
                .unwrap(),
            None,
            "{path}"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "negative results are cached"
    );
}
