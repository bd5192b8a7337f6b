//! Link previews: an HTTP(S) [`LinkFetcher`] with SSRF protection, and a small pure HTML
//! parser ([`parse_preview`]: Open Graph first, then `<title>` / meta description).
//!
//! Safety rules of the fetcher:
//! - only `http` and `https` URLs on the default or an explicit port;
//! - the host is resolved by [`SafeResolver`], which drops every address that is not public
//!   ([`is_public`]), so reqwest can only connect to a vetted address (no DNS rebinding
//!   between check and connect); IP-literal hosts are checked before the request and on every
//!   redirect; proxies from the environment are ignored (they would bypass the check);
//! - at most 3 redirects, each re-checked; 3 s timeout; bodies capped at 512 KiB; only HTML.
//!
//! Results (also "no preview") are cached in the [`EphemeralStore`] for an hour.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use shoot_core::PortResult;
use shoot_core::messages::UrlPreview;
use shoot_core::ports::{EphemeralStore, LinkFetcher};

use crate::metrics::Metrics;

/// Request timeout.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// Largest body read.
pub const BODY_CAP: usize = 512 * 1024;
/// Most redirects followed.
pub const MAX_REDIRECTS: usize = 3;
/// How long results are cached.
pub const CACHE_TTL: Duration = Duration::from_secs(3600);

/// Whether `ip` is a public unicast address a server may fetch from.
///
/// Refused: unspecified, loopback, private (RFC 1918), CGNAT (100.64/10), link-local,
/// unique-local (fc00::/7), multicast, broadcast, documentation, benchmarking, reserved
/// (240/4, 0/8), and IPv6 forms embedding a refused IPv4 address (IPv4-mapped,
/// IPv4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19)))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // IPv4-compatible (deprecated) ::a.b.c.d
    if seg[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_unspecified() && !ip.is_loopback() {
        return is_public_v4(Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        ));
    }
    // NAT64 well-known prefix 64:ff9b::/96
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        ));
    }
    // 6to4 2002:AABB:CCDD::/48 embeds an IPv4 address.
    if seg[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        ));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local
        || (seg[0] & 0xffc0) == 0xfe80 // link local
        || (seg[0] & 0xffc0) == 0xfec0 // site local (deprecated)
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0])) // discard-only
}

/// DNS resolver that only returns addresses allowed by the SSRF rules.
#[derive(Debug, Clone)]
pub struct SafeResolver {
    allow_private: bool,
}

impl Resolve for SafeResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves to no permitted address").into();
                return Err(err);
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether `url` may be requested at all (scheme, host form, literal addresses).
pub fn url_allowed(url: &Url, allow_private: bool) -> bool {
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return false;
    }
    match url.host() {
        None => false,
        Some(url::Host::Ipv4(ip)) => allow_private || is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => allow_private || is_public(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            allow_private
                || !(d == "localhost"
                    || d.ends_with(".localhost")
                    || d.ends_with(".internal")
                    || d.ends_with(".local"))
        }
    }
}

/// Fetches previews over HTTP(S) with the rules above, caching in the ephemeral store.
pub struct HttpLinkFetcher {
    client: reqwest::Client,
    allow_private: bool,
    cache: Arc<dyn EphemeralStore>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for HttpLinkFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpLinkFetcher")
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

impl HttpLinkFetcher {
    /// A fetcher caching in `cache`.
    pub fn new(
        allow_private: bool,
        cache: Arc<dyn EphemeralStore>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<HttpLinkFetcher> {
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if !url_allowed(attempt.url(), allow_private) {
                attempt.error("redirect target refused")
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(policy)
            .no_proxy()
            .dns_resolver(Arc::new(SafeResolver { allow_private }))
            .user_agent("ShootLinkPreview/0.1 (+https://example.invalid/shoot)")
            .build()?;
        Ok(HttpLinkFetcher {
            client,
            allow_private,
            cache,
            metrics,
        })
    }

    async fn fetch_uncached(&self, url: &Url) -> Option<UrlPreview> {
        if !url_allowed(url, self.allow_private) {
            self.metrics.link_previews_refused.inc();
            return None;
        }
        let mut response = match self
            .client
            .get(url.clone())
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(url = %url, error = %e, "link preview fetch failed");
                self.metrics.link_previews_refused.inc();
                return None;
            }
        };
        if !response.status().is_success() {
            return None;
        }
        let is_html = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("text/html") || ct.contains("application/xhtml"));
        if !is_html {
            return None;
        }
        let final_url = response.url().clone();
        let mut body: Vec<u8> = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = BODY_CAP - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= BODY_CAP {
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => return None,
            }
        }
        let html = String::from_utf8_lossy(&body);
        let mut preview = parse_preview(&html, final_url.as_str());
        preview.url = url.to_string();
        self.metrics.link_previews_fetched.inc();
        (preview.title.is_some() || preview.description.is_some() || preview.image_url.is_some())
            .then_some(preview)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    preview: Option<UrlPreview>,
}

#[async_trait]
impl LinkFetcher for HttpLinkFetcher {
    async fn fetch_preview(&self, url: &str) -> PortResult<Option<UrlPreview>> {
        let Ok(parsed) = Url::parse(url.trim()) else {
            return Ok(None);
        };
        let key = format!("preview:{parsed}");
        if let Ok(Some(hit)) = self.cache.get(&key).await
            && let Ok(c) = serde_json::from_str::<Cached>(&hit)
        {
            return Ok(c.preview);
        }
        let preview = self.fetch_uncached(&parsed).await;
        if let Ok(json) = serde_json::to_string(&Cached {
            preview: preview.clone(),
        }) {
            // A cache failure only costs a refetch later.
            let _ = self.cache.set(&key, &json, Some(CACHE_TTL)).await;
        }
        Ok(preview)
    }
}

// ---------------------------------------------------------------------------------------------
// Pure HTML parsing.

const TITLE_MAX: usize = 300;
const DESCRIPTION_MAX: usize = 500;

/// The preview metadata of `html` fetched from `base_url`: Open Graph (`og:title`,
/// `og:description`, `og:image`, `og:site_name`), falling back to `twitter:*`, `<title>` and
/// `<meta name="description">`. Relative image URLs are resolved against `base_url` (or
/// `og:url`); only `http(s)` image URLs are kept. Never panics on any input.
pub fn parse_preview(html: &str, base_url: &str) -> UrlPreview {
    let mut og_title = None;
    let mut og_description = None;
    let mut og_image = None;
    let mut site_name = None;
    let mut tw_title = None;
    let mut tw_description = None;
    let mut tw_image = None;
    let mut meta_description = None;
    let mut title = None;

    let lower = html.to_ascii_lowercase();
    let mut pos = 0;
    while let Some(rel) = lower[pos..].find('<') {
        let start = pos + rel;
        let rest = &lower[start..];
        if rest.starts_with("<!--") {
            pos = lower[start..]
                .find("-->")
                .map_or(lower.len(), |e| start + e + 3);
            continue;
        }
        let Some(end_rel) = rest.find('>') else { break };
        let end = start + end_rel;
        let tag_lower = &lower[start + 1..end];
        let tag_orig = &html[start + 1..end];
        if tag_lower.starts_with("meta")
            && tag_lower[4..].starts_with(|c: char| c.is_ascii_whitespace() || c == '/')
        {
            let attrs = parse_attributes(&tag_orig[4..]);
            let key = attrs
                .iter()
                .find(|(k, _)| k == "property" || k == "name")
                .map(|(_, v)| v.to_ascii_lowercase());
            let content = attrs
                .iter()
                .find(|(k, _)| k == "content")
                .map(|(_, v)| v.clone());
            if let (Some(key), Some(content)) = (key, content) {
                let slot = match key.as_str() {
                    "og:title" => &mut og_title,
                    "og:description" => &mut og_description,
                    "og:image" | "og:image:url" | "og:image:secure_url" => &mut og_image,
                    "og:site_name" => &mut site_name,
                    "twitter:title" => &mut tw_title,
                    "twitter:description" => &mut tw_description,
                    "twitter:image" | "twitter:image:src" => &mut tw_image,
                    "description" => &mut meta_description,
                    _ => {
                        pos = end + 1;
                        continue;
                    }
                };
                if slot.is_none() {
                    *slot = Some(content);
                }
            }
        } else if title.is_none()
            && tag_lower.starts_with("title")
            && tag_lower[5..].trim().is_empty()
        {
            if let Some(close) = lower[end + 1..].find("</title") {
                title = Some(html[end + 1..end + 1 + close].to_owned());
            }
        } else if tag_lower.starts_with("/head") || tag_lower.starts_with("body") {
            break;
        } else if tag_lower.starts_with("script") || tag_lower.starts_with("style") {
            let closing = if tag_lower.starts_with("script") {
                "</script"
            } else {
                "</style"
            };
            pos = lower[end..].find(closing).map_or(lower.len(), |e| end + e);
            continue;
        }
        pos = end + 1;
    }

    let clean = |s: Option<String>, max: usize| {
        s.map(|s| truncate(&collapse_whitespace(&decode_entities(&s)), max))
            .filter(|s| !s.is_empty())
    };
    let base = Url::parse(base_url).ok();
    let image = og_image.or(tw_image).and_then(|raw| {
        let raw = decode_entities(raw.trim());
        let resolved = match &base {
            Some(b) => b.join(&raw).ok(),
            None => Url::parse(&raw).ok(),
        }?;
        matches!(resolved.scheme(), "http" | "https").then(|| resolved.to_string())
    });
    UrlPreview {
        url: base_url.to_owned(),
        title: clean(og_title.or(tw_title).or(title), TITLE_MAX),
        description: clean(
            og_description.or(tw_description).or(meta_description),
            DESCRIPTION_MAX,
        ),
        image_url: image,
        site_name: clean(site_name, TITLE_MAX),
    }
}

/// Attributes of a tag body (`name="v" other='w' bare=x flag`), names lower-cased.
fn parse_attributes(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() || c == '/' {
            chars.next();
            continue;
        }
        // name
        let name_start = i;
        let mut name_end = s.len();
        while let Some(&(j, c)) = chars.peek() {
            if c.is_whitespace() || c == '=' || c == '/' {
                name_end = j;
                break;
            }
            chars.next();
        }
        let name = s[name_start..name_end].to_ascii_lowercase();
        while chars.peek().is_some_and(|&(_, c)| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek().is_some_and(|&(_, c)| c == '=') {
            chars.next();
            while chars.peek().is_some_and(|&(_, c)| c.is_whitespace()) {
                chars.next();
            }
            match chars.peek().copied() {
                Some((j, q)) if q == '"' || q == '\'' => {
                    chars.next();
                    let vstart = j + 1;
                    let mut vend = s.len();
                    for (k, c) in chars.by_ref() {
                        if c == q {
                            vend = k;
                            break;
                        }
                    }
                    value = s[vstart..vend].to_owned();
                }
                Some((j, _)) => {
                    let mut vend = s.len();
                    while let Some(&(k, c)) = chars.peek() {
                        if c.is_whitespace() {
                            vend = k;
                            break;
                        }
                        chars.next();
                    }
                    value = s[j..vend].to_owned();
                }
                None => {}
            }
        }
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

/// Decodes the common named entities and numeric character references.
pub fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest
            .char_indices()
            .take(12)
            .find(|(_, c)| *c == ';')
            .map(|(i, _)| i)
        else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ip: &str, public: bool) {
        let parsed: IpAddr = ip.parse().unwrap();
        assert_eq!(is_public(parsed), public, "{ip}");
    }

    #[test]
    fn address_classification() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "192.0.0.8",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::10.0.0.1",
            "2002:c0a8:0101::1",
            "::127.0.0.1",
            "fec0::1",
        ] {
            check(ip, false);
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            check(ip, true);
        }
    }

    fn allowed(url: &str, allow_private: bool) -> bool {
        url_allowed(&Url::parse(url).unwrap(), allow_private)
    }

    #[test]
    fn url_rules() {
        assert!(allowed("https://example.com/a", false));
        assert!(allowed("http://93.184.216.34/", false));
        assert!(!allowed("http://127.0.0.1:8080/", false));
        assert!(!allowed("http://[::1]/", false));
        assert!(!allowed("http://[::ffff:7f00:1]/", false));
        assert!(!allowed("http://localhost/", false));
        assert!(!allowed("http://metadata.internal/", false));
        assert!(!allowed("ftp://example.com/", false));
        assert!(!allowed("file:///etc/passwd", false));
        assert!(!allowed("http://user:pw@example.com/", false));
        assert!(allowed("http://127.0.0.1:8080/", true));
        assert!(allowed("http://localhost/", true));
    }

    #[test]
    fn open_graph_wins() {
        let html = r#"<html><head>
            <title>Plain title</title>
            <meta name="description" content="plain description">
            <meta property="og:title" content="OG &amp; title">
            <meta property='og:description' content='OG description'>
            <meta property="og:image" content="/img/a.png">
            <meta property="og:site_name" content="Site">
            </head><body><meta property="og:title" content="ignored"></body></html>"#;
        let p = parse_preview(html, "https://example.com/page");
        assert_eq!(p.title.as_deref(), Some("OG & title"));
        assert_eq!(p.description.as_deref(), Some("OG description"));
        assert_eq!(
            p.image_url.as_deref(),
            Some("https://example.com/img/a.png")
        );
        assert_eq!(p.site_name.as_deref(), Some("Site"));
        assert_eq!(p.url, "https://example.com/page");
    }

    #[test]
    fn falls_back_to_title_and_description() {
        let html = "<HTML><HEAD><TITLE>\n  Hello\n  World &#8212; x </TITLE><META NAME=description CONTENT=\"Desc &lt;b&gt;\"></HEAD>";
        let p = parse_preview(html, "http://example.com");
        assert_eq!(p.title.as_deref(), Some("Hello World — x"));
        assert_eq!(p.description.as_deref(), Some("Desc <b>"));
        assert_eq!(p.image_url, None);
    }

    #[test]
    fn ignores_scripts_comments_and_bad_images() {
        let html = r#"<head><!-- <meta property="og:title" content="commented"> -->
            <script>var s = '<meta property="og:title" content="scripted">';</script>
            <meta property="og:image" content="javascript:alert(1)">
            <title>Real</title></head>"#;
        let p = parse_preview(html, "https://example.com/");
        assert_eq!(p.title.as_deref(), Some("Real"));
        assert_eq!(p.image_url, None);
    }

    #[test]
    fn never_panics_on_garbage() {
        for html in [
            "",
            "<",
            "<meta",
            "<meta property=",
            "<meta property=\"og:title\" content=\"é",
            "<title>unterminated",
            "&#xFFFFFFFF; &#99999999; &",
            "<<<>>>",
            "<!--",
            "<script>",
            "<meta\u{0}>",
            "<titleé>",
            "<meta content=x property=og:image>",
            "\u{feff}<title>bom</title>",
        ] {
            let _ = parse_preview(html, "https://example.com/");
            let _ = parse_preview(html, "not a url");
        }
        let long = "a".repeat(10_000);
        let p = parse_preview(&format!("<title>{long}</title>"), "https://x.example/");
        assert_eq!(p.title.unwrap().chars().count(), TITLE_MAX);
    }

    #[test]
    fn entities() {
        assert_eq!(
            decode_entities("a &amp; b &lt;&gt; &quot;&#39;&#x41;&#66; &bogus; &"),
            "a & b <> \"'AB &bogus; &"
        );
    }
}
