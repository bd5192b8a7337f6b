//! The link-preview HTML parser on arbitrary (lossily decoded) bytes.
//!
//! The first byte picks the page's base URL (valid, odd, or not a URL at all). Checked: no
//! panic (slicing on char boundaries, entity decoding, URL joining), and the documented bounds
//! of the result: title and site name at most 300 characters, description at most 500, no
//! empty strings, and only `http(s)` image URLs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoot_server::link_preview::{decode_entities, parse_preview};

const BASES: [&str; 4] = [
    "https://example.com/a/b?q=1",
    "http://[::1]:8080/",
    "not a url",
    "",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let html = String::from_utf8_lossy(rest);
    let base = BASES[usize::from(selector) % BASES.len()];
    let p = parse_preview(&html, base);
    assert_eq!(p.url, base);
    for (field, max) in [(&p.title, 300), (&p.site_name, 300), (&p.description, 500)] {
        if let Some(s) = field {
            assert!(!s.is_empty() && s.chars().count() <= max, "{s:?}");
        }
    }
    if let Some(image) = &p.image_url {
        assert!(
            image.starts_with("http://") || image.starts_with("https://"),
            "{image}"
        );
    }
    let _ = decode_entities(&html);
});
