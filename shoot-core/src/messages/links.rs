//! Link detection for previews.

/// The first `http://` or `https://` URL in `text`, up to the next whitespace, without
/// trailing punctuation that usually ends a sentence (`.,;:!?)]}'"`).
pub fn first_url(text: &str) -> Option<&str> {
    let mut rest = text;
    let mut offset = 0;
    loop {
        let idx = find_scheme(rest)?;
        let start = offset + idx;
        let candidate = &text[start..];
        let end = candidate
            .find(char::is_whitespace)
            .unwrap_or(candidate.len());
        let url = candidate[..end]
            .trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '}', '\'', '"', '>']);
        let scheme_len = if url.len() >= 8 && url[..8].eq_ignore_ascii_case("https://") {
            8
        } else {
            7
        };
        let at_word_start = start == 0 || !text[..start].ends_with(|c: char| c.is_alphanumeric());
        if url.len() > scheme_len && at_word_start {
            return Some(url);
        }
        offset = start + scheme_len.min(candidate.len());
        rest = &text[offset..];
    }
}

fn find_scheme(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    match (lower.find("http://"), lower.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: Option<&str>) {
        assert_eq!(first_url(text), expect, "{text:?}");
    }

    #[test]
    fn finds_first_url() {
        check("no link here", None);
        check(
            "see https://example.com/a?b=1 now",
            Some("https://example.com/a?b=1"),
        );
        check("http://x.io", Some("http://x.io"));
        check(
            "(see https://example.com/page).",
            Some("https://example.com/page"),
        );
        check("two: http://a.com and https://b.com", Some("http://a.com"));
        check("HTTPS://Example.com", Some("HTTPS://Example.com"));
        check("https:// nothing", None);
        check("ftp://files.example.com", None);
        check(
            "xhttps://evil.com then https://ok.com",
            Some("https://ok.com"),
        );
        check(
            "링크 https://example.kr/경로 입니다",
            Some("https://example.kr/경로"),
        );
    }
}
