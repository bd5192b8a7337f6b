//! STOMP 1.2 frames: building client frames and decoding what a server sends.
//!
//! One WebSocket message may hold heart-beats (bare EOLs) and any number of frames; each
//! frame is `COMMAND EOL (header EOL)* EOL body NUL`, the body length given by
//! `content-length` when present, otherwise up to the first NUL.

use std::borrow::Cow;

/// Why a server frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The buffer ends inside a frame.
    #[error("truncated frame")]
    Truncated,
    /// A header line without `:`.
    #[error("malformed header line")]
    BadHeader,
    /// `content-length` is not a number or the body is not followed by NUL.
    #[error("bad content-length")]
    BadContentLength,
    /// Command or header is not UTF-8.
    #[error("frame is not UTF-8")]
    NotUtf8,
}

/// A decoded frame borrowing the received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// `CONNECTED`, `MESSAGE`, `RECEIPT`, `ERROR`, …
    pub command: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    /// The body (without the trailing NUL).
    pub body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The first value of header `name` (STOMP 1.2: the first occurrence wins), unescaped
    /// (except in CONNECTED frames, whose headers are never escaped).
    pub fn header(&self, name: &str) -> Option<Cow<'a, str>> {
        let raw = self
            .headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)?;
        if self.command == "CONNECTED" || !raw.contains('\\') {
            return Some(Cow::Borrowed(raw));
        }
        Some(Cow::Owned(unescape(raw)))
    }
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('c') => out.push(':'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn escape(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', ':', '\n', '\r']) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ':' => out.push_str("\\c"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn line(buf: &[u8], from: usize) -> Result<(&[u8], usize), FrameError> {
    let rel = buf[from..]
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(FrameError::Truncated)?;
    let mut end = from + rel;
    let next = end + 1;
    if end > from && buf[end - 1] == b'\r' {
        end -= 1;
    }
    Ok((&buf[from..end], next))
}

fn utf8(bytes: &[u8]) -> Result<&str, FrameError> {
    std::str::from_utf8(bytes).map_err(|_| FrameError::NotUtf8)
}

/// Decodes every frame of one WebSocket message (heart-beats are skipped).
pub fn parse_frames(buf: &[u8]) -> Result<Vec<Frame<'_>>, FrameError> {
    let mut frames = Vec::with_capacity(1);
    let mut pos = 0;
    loop {
        while pos < buf.len() && (buf[pos] == b'\n' || buf[pos] == b'\r') {
            pos += 1;
        }
        if pos >= buf.len() {
            return Ok(frames);
        }
        let (cmd, mut at) = line(buf, pos)?;
        let command = utf8(cmd)?;
        let mut headers = Vec::with_capacity(8);
        loop {
            let (l, next) = line(buf, at)?;
            at = next;
            if l.is_empty() {
                break;
            }
            let l = utf8(l)?;
            let (k, v) = l.split_once(':').ok_or(FrameError::BadHeader)?;
            headers.push((k, v));
        }
        let length = headers
            .iter()
            .find(|(k, _)| *k == "content-length")
            .map(|(_, v)| *v);
        let body_end = match length {
            Some(n) => {
                let n: usize = n.trim().parse().map_err(|_| FrameError::BadContentLength)?;
                let end = at.checked_add(n).ok_or(FrameError::BadContentLength)?;
                if end >= buf.len() {
                    return Err(FrameError::Truncated);
                }
                if buf[end] != 0 {
                    return Err(FrameError::BadContentLength);
                }
                end
            }
            None => {
                at + buf[at..]
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(FrameError::Truncated)?
            }
        };
        frames.push(Frame {
            command,
            headers,
            body: &buf[at..body_end],
        });
        pos = body_end + 1;
    }
}

/// Builds one client frame as text (STOMP over a WebSocket text message).
#[derive(Debug, Clone)]
pub struct FrameBuilder {
    text: String,
    escape: bool,
}

impl FrameBuilder {
    /// A frame with `command`; CONNECT/STOMP headers are written unescaped.
    pub fn new(command: &str) -> FrameBuilder {
        let mut text = String::with_capacity(128);
        text.push_str(command);
        text.push('\n');
        FrameBuilder {
            text,
            escape: command != "CONNECT" && command != "STOMP",
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> FrameBuilder {
        if self.escape {
            self.text.push_str(&escape(name));
            self.text.push(':');
            self.text.push_str(&escape(value));
        } else {
            self.text.push_str(name);
            self.text.push(':');
            self.text.push_str(value);
        }
        self.text.push('\n');
        self
    }

    /// Finishes the frame with `body` (a `content-length` header is added for a non-empty body).
    pub fn body(mut self, body: &str) -> String {
        if !body.is_empty() {
            self = self.header("content-length", &body.len().to_string());
        }
        self.text.push('\n');
        self.text.push_str(body);
        self.text.push('\0');
        self.text
    }

    /// Finishes the frame without a body.
    pub fn finish(self) -> String {
        self.body("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_message_with_content_length_and_nul_in_body() {
        let raw =
            b"MESSAGE\ndestination:/topic/messages/7\ncontent-length:5\nsubscription:1\n\na\0b{}\0";
        let frames = parse_frames(raw).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].command, "MESSAGE");
        assert_eq!(
            frames[0].header("destination").as_deref(),
            Some("/topic/messages/7")
        );
        assert_eq!(frames[0].body, b"a\0b{}");
    }

    #[test]
    fn parses_heartbeats_crlf_and_several_frames() {
        let raw = b"\n\r\nRECEIPT\r\nreceipt-id:r1\r\n\r\n\0\nERROR\nmessage:bad\\cthing\nmessage:second\n\noops\0\n";
        let frames = parse_frames(raw).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].command, "RECEIPT");
        assert_eq!(frames[0].header("receipt-id").as_deref(), Some("r1"));
        assert_eq!(
            frames[1].header("message").as_deref(),
            Some("bad:thing"),
            "first wins, unescaped"
        );
        assert_eq!(frames[1].body, b"oops");
        assert!(parse_frames(b"\n\n").unwrap().is_empty());
    }

    #[test]
    fn connected_headers_are_not_unescaped() {
        let frames = parse_frames(b"CONNECTED\nversion:1.2\nx:a\\cb\n\n\0").unwrap();
        assert_eq!(frames[0].header("x").as_deref(), Some("a\\cb"));
        assert_eq!(frames[0].header("missing"), None);
    }

    #[test]
    fn rejects_truncated_and_malformed_frames() {
        assert_eq!(
            parse_frames(b"MESSAGE\nid:1\n\nbody"),
            Err(FrameError::Truncated)
        );
        assert_eq!(parse_frames(b"MESSAGE\nid:1"), Err(FrameError::Truncated));
        assert_eq!(
            parse_frames(b"MESSAGE\nnocolon\n\n\0"),
            Err(FrameError::BadHeader)
        );
        assert_eq!(
            parse_frames(b"MESSAGE\ncontent-length:x\n\n\0"),
            Err(FrameError::BadContentLength)
        );
        assert_eq!(
            parse_frames(b"MESSAGE\ncontent-length:2\n\nabc\0"),
            Err(FrameError::BadContentLength)
        );
        assert_eq!(
            parse_frames(b"MESSAGE\ncontent-length:9\n\nabc\0"),
            Err(FrameError::Truncated)
        );
    }

    #[test]
    fn builder_round_trips_through_the_parser() {
        let text = FrameBuilder::new("SEND")
            .header("destination", "/app/chat")
            .header("receipt", "r:1\n")
            .body("{\"a\":1}");
        let frames = parse_frames(text.as_bytes()).unwrap();
        assert_eq!(frames[0].command, "SEND");
        assert_eq!(frames[0].header("receipt").as_deref(), Some("r:1\n"));
        assert_eq!(frames[0].header("content-length").as_deref(), Some("7"));
        assert_eq!(frames[0].body, b"{\"a\":1}");
        let connect = FrameBuilder::new("CONNECT")
            .header("passcode", "a:b")
            .finish();
        assert_eq!(connect, "CONNECT\npasscode:a:b\n\n\0");
    }
}
