//! The browser client: static assets compiled into the binary (no build step, no CDN), served
//! at `/` (the page) and `/assets/{file}` (scripts and styles), each with its content type and
//! a strict Content-Security-Policy so that no inline script, foreign script or foreign
//! connection can run in the page.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The policy of every web-client response: only this origin's scripts, styles and
/// connections (plus WebSocket), images also from the web (link previews) and `data:`.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: https: http:";

const INDEX: &[u8] = include_bytes!("../web/index.html");

/// `(file name under /assets/, content type, bytes)`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/app.js"),
    ),
    (
        "stomp.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/stomp.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/app.css"),
    ),
];

/// `GET /`, `GET /index.html` and `GET /assets/{file}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/{file}", get(asset))
}

fn respond(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn index() -> Response {
    respond("text/html; charset=utf-8", INDEX)
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => respond(content_type, body),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    async fn get_path(path: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let response = routes::<()>()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, body.to_vec())
    }

    #[tokio::test]
    async fn the_page_is_html_with_a_strict_policy() {
        let (status, headers, body) = get_path("/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let html = String::from_utf8(body).unwrap();
        assert!(html.contains(r#"<script type="module" src="/assets/app.js">"#));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }

    #[tokio::test]
    async fn assets_have_their_content_types() {
        for (path, content_type) in [
            ("/assets/app.js", "text/javascript; charset=utf-8"),
            ("/assets/stomp.js", "text/javascript; charset=utf-8"),
            ("/assets/app.css", "text/css; charset=utf-8"),
        ] {
            let (status, headers, body) = get_path(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
            assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
            assert!(!body.is_empty());
        }
    }

    #[tokio::test]
    async fn unknown_assets_are_not_found() {
        for path in ["/assets/nope.js", "/assets/..%2Fsrc%2Fweb.rs"] {
            let (status, _, _) = get_path(path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[test]
    fn scripts_never_use_inner_html() {
        for (name, _, body) in ASSETS {
            let text = std::str::from_utf8(body).unwrap();
            assert!(!text.contains("innerHTML"), "{name} uses innerHTML");
            assert!(!text.contains("insertAdjacentHTML"), "{name}");
            assert!(!text.contains("document.write"), "{name}");
        }
    }
}
