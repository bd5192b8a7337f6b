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
