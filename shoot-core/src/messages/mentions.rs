//! `@username` mentions in message text.

/// The distinct usernames written as `@username` in `text`, in order of first appearance,
/// lower-cased. A username is 1+ of `[A-Za-z0-9_.]` (a trailing `.` is dropped) and the `@`
/// must not follow a word character (so e-mail addresses are not mentions).
pub fn parse_mentions(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // Most messages mention nobody: one byte search instead of a walk over every char.
    if !text.contains('@') {
        return out;
    }
    let mut prev: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '@' && !prev.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '.') {
            let rest = &text[i + 1..];
            let len = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '.'))
                .unwrap_or(rest.len());
            let name = rest[..len].trim_end_matches('.').to_ascii_lowercase();
            if !name.is_empty() && !out.contains(&name) {
                out.push(name);
            }
        }
        prev = Some(c);
        if chars.peek().is_none() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: &[&str]) {
        assert_eq!(parse_mentions(text), expect, "{text:?}");
    }

    #[test]
    fn parses_mentions() {
        check("hello", &[]);
        check("@alice hi", &["alice"]);
        check("hi @Alice and @bob_2, @alice again", &["alice", "bob_2"]);
        check("mail me at x@example.com", &[]);
        check("end with @carol.", &["carol"]);
        check("@j.doe: look", &["j.doe"]);
        check("@ alone", &[]);
        check("(@dave)", &["dave"]);
        check("@@eve", &["eve"]);
    }
}
