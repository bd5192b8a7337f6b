//! STOMP 1.2 frames: a pure, allocation-light decoder and encoder.
//!
//! The decoder is incremental: [`decode`] looks at the bytes received so far and returns
//! either a complete frame and how many bytes it used, `None` when more bytes are needed, or
//! a typed [`FrameError`] as soon as the input can no longer become a valid frame within the
//! [`FrameLimits`]. It never panics on any input (it is fuzzable as is).
//!
//! Wire rules implemented (STOMP 1.2):
//! - a frame is `COMMAND EOL (header EOL)* EOL body NUL`, where EOL is `\n` or `\r\n`;
//! - bare EOLs between frames are heart-beats and are skipped ([`heartbeat_prefix`]);
//! - header names and values are UTF-8 and escaped (`\r`, `\n`, `\c` for `:`, `\\`) except in
//!   `CONNECT` and `CONNECTED` frames, which are never escaped; an undefined escape is an error;
//! - when a header is repeated, the first occurrence wins (later ones are dropped);
//! - the body is `content-length` octets followed by a NUL when that header is present,
//!   otherwise everything up to the first NUL.

use std::fmt;

use bytes::Bytes;

/// Size limits enforced while decoding; every violation is a [`FrameError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest frame, command line to NUL included (leading heart-beat EOLs excluded).
    pub max_frame_bytes: usize,
    /// Most header lines in one frame (repeated headers count).
    pub max_headers: usize,
    /// Longest command or header line, EOL excluded.
    pub max_header_line: usize,
    /// Largest body.
    pub max_body: usize,
}

impl Default for FrameLimits {
    fn default() -> FrameLimits {
        FrameLimits {
            max_frame_bytes: 64 * 1024,
            max_headers: 32,
            max_header_line: 8 * 1024,
            max_body: 64 * 1024,
        }
    }
}

/// Why bytes are not a valid STOMP frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The command line is not a STOMP command.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// A header line has no `:`.
    #[error("malformed header line")]
    MalformedHeader,
    /// A header uses an escape sequence STOMP 1.2 does not define.
    #[error("invalid escape sequence in header")]
    InvalidEscape,
    /// A command or header is not UTF-8.
    #[error("header is not valid UTF-8")]
    InvalidUtf8,
    /// `content-length` is not a decimal number.
    #[error("invalid content-length")]
    InvalidContentLength,
    /// The `content-length` octets are not followed by a NUL.
    #[error("body is not terminated by NUL")]
    MissingNul,
    /// More header lines than allowed.
    #[error("too many headers (max {max})")]
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// A command or header line is too long.
    #[error("header line too long (max {max} bytes)")]
    HeaderLineTooLong {
        /// The limit.
        max: usize,
    },
    /// The body is too large.
    #[error("body too large (max {max} bytes)")]
    BodyTooLarge {
        /// The limit.
        max: usize,
    },
    /// The frame is too large.
    #[error("frame too large (max {max} bytes)")]
    FrameTooLarge {
        /// The limit.
        max: usize,
    },
}

/// A STOMP command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Client: open a session.
    Connect,
    /// Client: open a session (1.2 synonym of CONNECT).
    Stomp,
    /// Server: session opened.
    Connected,
    /// Client: send to a destination.
    Send,
    /// Client: subscribe.
    Subscribe,
    /// Client: unsubscribe.
    Unsubscribe,
    /// Client: acknowledge.
    Ack,
    /// Client: negative acknowledgement.
    Nack,
    /// Client: begin a transaction.
    Begin,
    /// Client: commit a transaction.
    Commit,
    /// Client: abort a transaction.
    Abort,
    /// Client: close the session.
    Disconnect,
    /// Server: a message for a subscription.
    Message,
    /// Server: a receipt.
    Receipt,
    /// Server: an error.
    Error,
}

impl Command {
    /// Every command.
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Connected,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Connected => "CONNECTED",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// Parses a wire name (exact, case-sensitive as the spec requires).
    pub fn parse(s: &[u8]) -> Option<Command> {
        Command::ALL
            .into_iter()
            .find(|c| c.as_str().as_bytes() == s)
    }

    /// Whether header names and values of this command are escaped (all but CONNECT and
    /// CONNECTED).
    pub fn escapes_headers(self) -> bool {
        !matches!(self, Command::Connect | Command::Connected)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded (or to-be-encoded) STOMP frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Command.
    pub command: Command,
    /// Headers in wire order, unescaped, each name at most once.
    pub headers: Vec<(String, String)>,
    /// Body octets.
    pub body: Bytes,
}

impl Frame {
    /// A frame without headers or body.
    pub fn new(command: Command) -> Frame {
        Frame {
            command,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header (builder style). A name already present is kept as is, like on decode.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Frame {
        let name = name.into();
        if self.header(&name).is_none() {
            self.headers.push((name, value.into()));
        }
        self
    }

    /// Sets the body (builder style).
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Frame {
        self.body = body.into();
        self
    }

    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Encodes the frame, appending to `out`.
    ///
    /// Headers are written in order, escaped unless the command is CONNECT or CONNECTED (whose
    /// headers must not contain `\r`, `\n`, or `:` in names: they cannot be represented). A
    /// `content-length` header is added when the body contains a NUL and none is present.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len_hint());
        out.extend_from_slice(self.command.as_str().as_bytes());
        out.push(b'\n');
        let escape = self.command.escapes_headers();
        let mut has_length = false;
        for (name, value) in &self.headers {
            has_length |= name == "content-length";
            push_header_part(out, name, escape);
            out.push(b':');
            push_header_part(out, value, escape);
            out.push(b'\n');
        }
        if !has_length && memchr::memchr(0, &self.body).is_some() {
            out.extend_from_slice(b"content-length:");
            out.extend_from_slice(itoa::Buffer::new().format(self.body.len()).as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out.push(0);
    }

    /// The encoded frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encoded_len_hint(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 2)
            .sum();
        self.command.as_str().len() + headers + self.body.len() + 24
    }
}

/// Appends a header name or value, escaped per STOMP 1.2 when `escape`.
pub fn push_header_part(out: &mut Vec<u8>, s: &str, escape: bool) {
    if !escape || !s.bytes().any(needs_escape) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b':' => out.extend_from_slice(b"\\c"),
            _ => out.push(b),
        }
    }
}

/// `s` escaped for a header of an escaping command, borrowed when nothing needs escaping.
pub fn escape_header(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.bytes().any(needs_escape) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len() + 8);
    push_header_part(&mut out, s, true);
    // Only ASCII bytes were replaced by ASCII sequences, so this stays UTF-8.
    std::borrow::Cow::Owned(String::from_utf8(out).unwrap_or_default())
}

fn needs_escape(b: u8) -> bool {
    matches!(b, b'\\' | b'\r' | b'\n' | b':')
}

/// Number of heart-beat EOLs (`\n` or `\r\n`) at the start of `buf`.
pub fn heartbeat_prefix(buf: &[u8]) -> usize {
    let mut pos = 0;
    loop {
        match buf.get(pos..) {
            Some([b'\n', ..]) => pos += 1,
            Some([b'\r', b'\n', ..]) => pos += 2,
            _ => return pos,
        }
    }
}

/// Decodes the first frame of `buf`.
///
/// Returns the frame and the number of bytes it used (leading heart-beat EOLs included), or
/// `None` if `buf` holds only heart-beats or an incomplete frame that can still become valid.
pub fn decode(buf: &[u8], limits: &FrameLimits) -> Result<Option<(Frame, usize)>, FrameError> {
    let start = heartbeat_prefix(buf);
    let frame_buf = &buf[start..];
    if frame_buf.is_empty() || frame_buf == b"\r" {
        return Ok(None);
    }
    let too_large = FrameError::FrameTooLarge {
        max: limits.max_frame_bytes,
    };
    let mut lines = Lines {
        buf: frame_buf,
        pos: 0,
        max_line: limits.max_header_line,
    };

    // Command line.
    let Some(line) = lines.next_line()? else {
        return incomplete(frame_buf.len(), limits);
    };
    let command = Command::parse(line).ok_or_else(|| {
        FrameError::UnknownCommand(String::from_utf8_lossy(&line[..line.len().min(64)]).into())
    })?;

    // Headers.
    let escape = command.escapes_headers();
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut header_lines = 0usize;
    loop {
        let Some(line) = lines.next_line()? else {
            return incomplete(frame_buf.len(), limits);
        };
        if line.is_empty() {
            break;
        }
        header_lines += 1;
        if header_lines > limits.max_headers {
            return Err(FrameError::TooManyHeaders {
                max: limits.max_headers,
            });
        }
        let colon = memchr::memchr(b':', line).ok_or(FrameError::MalformedHeader)?;
        let name = unescape(&line[..colon], escape)?;
        if headers.iter().any(|(n, _)| *n == name) {
            // First occurrence wins; still validate the value's encoding.
            unescape(&line[colon + 1..], escape)?;
            continue;
        }
        let value = unescape(&line[colon + 1..], escape)?;
        headers.push((name, value));
    }
    let body_start = lines.pos;
    if body_start > limits.max_frame_bytes {
        return Err(too_large);
    }

    // Body.
    let content_length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v);
    let body_end = match content_length {
        Some(v) => {
            let len = parse_content_length(v)?;
            if len > limits.max_body {
                return Err(FrameError::BodyTooLarge {
                    max: limits.max_body,
                });
            }
            let end = body_start
                .checked_add(len)
                .ok_or(FrameError::InvalidContentLength)?;
            if end + 1 > limits.max_frame_bytes {
                return Err(too_large);
            }
            match frame_buf.get(end) {
                None => return Ok(None),
                Some(0) => end,
                Some(_) => return Err(FrameError::MissingNul),
            }
        }
        None => match memchr::memchr(0, &frame_buf[body_start..]) {
            Some(len) => {
                if len > limits.max_body {
                    return Err(FrameError::BodyTooLarge {
                        max: limits.max_body,
                    });
                }
                if body_start + len + 1 > limits.max_frame_bytes {
                    return Err(too_large);
                }
                body_start + len
            }
            None => {
                let have = frame_buf.len() - body_start;
                if have > limits.max_body {
                    return Err(FrameError::BodyTooLarge {
                        max: limits.max_body,
                    });
                }
                return incomplete(frame_buf.len(), limits);
            }
        },
    };
    let body = Bytes::copy_from_slice(&frame_buf[body_start..body_end]);
    Ok(Some((
        Frame {
            command,
            headers,
            body,
        },
        start + body_end + 1,
    )))
}

fn incomplete<T>(have: usize, limits: &FrameLimits) -> Result<Option<T>, FrameError> {
    if have > limits.max_frame_bytes {
        Err(FrameError::FrameTooLarge {
            max: limits.max_frame_bytes,
        })
    } else {
        Ok(None)
    }
}

fn parse_content_length(v: &str) -> Result<usize, FrameError> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FrameError::InvalidContentLength);
    }
    v.parse::<usize>()
        .map_err(|_| FrameError::InvalidContentLength)
}

/// Line splitter over the header section.
struct Lines<'a> {
    buf: &'a [u8],
    pos: usize,
    max_line: usize,
}

impl<'a> Lines<'a> {
    /// The next line without its EOL, `None` if no complete line is buffered yet.
    fn next_line(&mut self) -> Result<Option<&'a [u8]>, FrameError> {
        let rest = &self.buf[self.pos..];
        let window = &rest[..rest.len().min(self.max_line + 2)];
        match memchr::memchr(b'\n', window) {
            Some(nl) => {
                let line = &rest[..nl];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.len() > self.max_line {
                    return Err(FrameError::HeaderLineTooLong { max: self.max_line });
                }
                self.pos += nl + 1;
                Ok(Some(line))
            }
            None if rest.len() > self.max_line + 1 => {
                Err(FrameError::HeaderLineTooLong { max: self.max_line })
            }
            None => Ok(None),
        }
    }
}

fn unescape(raw: &[u8], escape: bool) -> Result<String, FrameError> {
    if !escape || memchr::memchr(b'\\', raw).is_none() {
        return std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| FrameError::InvalidUtf8);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b'c') => out.push(b':'),
            Some(b'\\') => out.push(b'\\'),
            _ => return Err(FrameError::InvalidEscape),
        }
    }
    String::from_utf8(out).map_err(|_| FrameError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> FrameLimits {
        FrameLimits::default()
    }

    /// Decodes `input` fully and renders the result compactly:
    /// `COMMAND[name=value,...](body)+consumed` or `None` or `Err(...)`.
    fn render(input: &[u8], limits: &FrameLimits) -> String {
        match decode(input, limits) {
            Ok(None) => "None".to_owned(),
            Ok(Some((f, used))) => {
                let hs: Vec<String> = f.headers.iter().map(|(n, v)| format!("{n}={v}")).collect();
                format!(
                    "{}[{}]({})+{used}",
                    f.command,
                    hs.join(","),
                    String::from_utf8_lossy(&f.body)
                )
            }
            Err(e) => format!("Err({e:?})"),
        }
    }

    fn check(input: &[u8], expect: &str) {
        assert_eq!(
            render(input, &limits()),
            expect,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }

    fn check_with(input: &[u8], limits: FrameLimits, expect: &str) {
        assert_eq!(
            render(input, &limits),
            expect,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }

    #[test]
    fn decodes_valid_frames() {
        check(
            b"CONNECT\naccept-version:1.2\nhost:x\n\n\0",
            "CONNECT[accept-version=1.2,host=x]()+36",
        );
        check(
            b"SEND\ndestination:/app/chat\n\nhello\0",
            "SEND[destination=/app/chat](hello)+34",
        );
        check(
            b"SEND\r\ndestination:/a\r\n\r\nhi\0",
            "SEND[destination=/a](hi)+27",
        );
        check(
            b"DISCONNECT\nreceipt:77\n\n\0",
            "DISCONNECT[receipt=77]()+24",
        );
        check(b"STOMP\n\n\0", "STOMP[]()+8");
        check(b"ACK\nid:1\n\n\0", "ACK[id=1]()+11");
        // Heart-beats before a frame are consumed with it.
        check(b"\n\r\n\nSEND\n\n\0", "SEND[]()+11");
        // Trailing bytes (EOLs, the next frame) are left for the next call.
        check(b"SEND\n\na\0\n\nSEND\n\n\0", "SEND[](a)+8");
        // Empty value, value with raw colons (lenient), empty name.
        check(b"SEND\na:\nb:x:y\n:z\n\n\0", "SEND[a=,b=x:y,=z]()+19");
    }

    #[test]
    fn content_length_bodies() {
        check(
            b"SEND\ncontent-length:3\n\na\0b\0",
            "SEND[content-length=3](a\0b)+27",
        );
        check(
            b"SEND\ncontent-length:0\n\n\0",
            "SEND[content-length=0]()+24",
        );
        check(
            b"SEND\ncontent-length: 2 \n\nab\0",
            "SEND[content-length= 2 ](ab)+28",
        );
        check(b"SEND\ncontent-length:3\n\nab", "None");
        check(b"SEND\ncontent-length:2\n\nabc\0", "Err(MissingNul)");
        check(b"SEND\ncontent-length:x\n\n\0", "Err(InvalidContentLength)");
        check(
            b"SEND\ncontent-length:-1\n\n\0",
            "Err(InvalidContentLength)",
        );
        check(b"SEND\ncontent-length:\n\n\0", "Err(InvalidContentLength)");
        check(
            b"SEND\ncontent-length:99999999999999999999999\n\n\0",
            "Err(InvalidContentLength)",
        );
    }

    #[test]
    fn escaping_rules() {
        check(
            b"SEND\na\\cb:c\\nd\\re\\\\f\n\n\0",
            "SEND[a:b=c\nd\re\\f]()+23",
        );
        check(b"SEND\na:\\t\n\n\0", "Err(InvalidEscape)");
        check(b"SEND\na:x\\\n\n\0", "Err(InvalidEscape)");
        // CONNECT and CONNECTED are never unescaped.
        check(
            b"CONNECT\npasscode:a\\cb\n\n\0",
            "CONNECT[passcode=a\\cb]()+24",
        );
        check(b"CONNECTED\nx:a\\tb\n\n\0", "CONNECTED[x=a\\tb]()+19");
    }

    #[test]
    fn first_repeated_header_wins() {
        check(b"SEND\nfoo:1\nfoo:2\nbar:3\n\n\0", "SEND[foo=1,bar=3]()+25");
        // The first content-length decides the body.
        check(
            b"SEND\ncontent-length:1\ncontent-length:5\n\nx\0",
            "SEND[content-length=1](x)+42",
        );
    }

    #[test]
    fn incomplete_input_waits() {
        for input in [
            &b""[..],
            b"\n",
            b"\r",
            b"\r\n\n",
            b"SEN",
            b"SEND",
            b"SEND\n",
            b"SEND\ndest",
            b"SEND\ndestination:/a\n",
            b"SEND\ndestination:/a\n\n",
            b"SEND\n\nbody without nul",
            b"SEND\r",
        ] {
            check(input, "None");
        }
    }

    #[test]
    fn malformed_input_fails() {
        check(b"FOO\n\n\0", "Err(UnknownCommand(\"FOO\"))");
        check(b"send\n\n\0", "Err(UnknownCommand(\"send\"))");
        check(b"\rSEND\n\n\0", "Err(UnknownCommand(\"\\rSEND\"))");
        check(b"SEND\nno colon here\n\n\0", "Err(MalformedHeader)");
        check(b"SEND\na:\xff\xfe\n\n\0", "Err(InvalidUtf8)");
        check(b"\xc3\x28\n\n\0", "Err(UnknownCommand(\"\u{fffd}(\"))");
    }

    #[test]
    fn limits_are_enforced() {
        let small = FrameLimits {
            max_frame_bytes: 40,
            max_headers: 2,
            max_header_line: 20,
            max_body: 8,
        };
        check_with(
            b"SEND\na:1\nb:2\nc:3\n\n\0",
            small,
            "Err(TooManyHeaders { max: 2 })",
        );
        check_with(b"SEND\na:1\nb:2\n\n\0", small, "SEND[a=1,b=2]()+15");
        check_with(
            b"SEND\nabcdefghijklmnopqrstu:1\n\n\0",
            small,
            "Err(HeaderLineTooLong { max: 20 })",
        );
        // Detected before the EOL arrives.
        check_with(
            b"SEND\nabcdefghijklmnopqrstuvwxyz",
            small,
            "Err(HeaderLineTooLong { max: 20 })",
        );
        check_with(
            b"SENDSENDSENDSENDSENDSEND",
            small,
            "Err(HeaderLineTooLong { max: 20 })",
        );
        check_with(
            b"SEND\n\n123456789\0",
            small,
            "Err(BodyTooLarge { max: 8 })",
        );
        check_with(b"SEND\n\n123456789", small, "Err(BodyTooLarge { max: 8 })");
        check_with(
            b"SEND\ncontent-length:9\n\n",
            small,
            "Err(BodyTooLarge { max: 8 })",
        );
        check_with(b"SEND\n\n12345678\0", small, "SEND[](12345678)+15");
        let tight = FrameLimits {
            max_frame_bytes: 13,
            ..small
        };
        check_with(
            b"SEND\na:1\n\n12345\0",
            tight,
            "Err(FrameTooLarge { max: 13 })",
        );
        check_with(
            b"SEND\na:1\n\n1234",
            tight,
            "Err(FrameTooLarge { max: 13 })",
        );
        check_with(b"SEND\na:1\n\n12\0", tight, "SEND[a=1](12)+13");
        check_with(b"\n\n\nSEND\na:1\n\n12\0", tight, "SEND[a=1](12)+16");
    }

    #[test]
    fn every_prefix_of_a_frame_is_incomplete() {
        let wire = b"SEND\ndestination:/app/chat\ncontent-type:application/json\n\n{\"a\":1}\0";
        for cut in 0..wire.len() {
            check(&wire[..cut], "None");
        }
        assert!(decode(wire, &limits()).unwrap().is_some());
    }

    #[test]
    fn heartbeat_prefix_counts_eols() {
        assert_eq!(heartbeat_prefix(b""), 0);
        assert_eq!(heartbeat_prefix(b"\n\n"), 2);
        assert_eq!(heartbeat_prefix(b"\r\n\nX"), 3);
        assert_eq!(heartbeat_prefix(b"\r"), 0);
        assert_eq!(heartbeat_prefix(b"SEND"), 0);
    }

    #[test]
    fn encodes_and_escapes() {
        let f = Frame::new(Command::Message)
            .with_header("destination", "/topic/a:b")
            .with_header("x", "l1\nl2\\")
            .with_body("hi");
        assert_eq!(
            f.encode(),
            b"MESSAGE\ndestination:/topic/a\\cb\nx:l1\\nl2\\\\\n\nhi\0"
        );
        let c = Frame::new(Command::Connected)
            .with_header("version", "1.2")
            .with_header("k", "a:b");
        assert_eq!(c.encode(), b"CONNECTED\nversion:1.2\nk:a:b\n\n\0");
        // A NUL in the body forces a content-length.
        let n = Frame::new(Command::Message).with_body(&b"a\0b"[..]);
        assert_eq!(n.encode(), b"MESSAGE\ncontent-length:3\n\na\0b\0");
        assert_eq!(escape_header("plain"), "plain");
        assert_eq!(escape_header("a:b\\"), "a\\cb\\\\");
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        let command = proptest::sample::select(Command::ALL.to_vec());
        let any_text = "\\PC{0,12}|[\\\\:\r\n a-z]{0,8}";
        (
            command,
            proptest::collection::vec((any_text, any_text), 0..6),
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<bool>(),
        )
            .prop_map(|(command, raw_headers, body, explicit_length)| {
                let mut f = Frame::new(command);
                for (mut name, mut value) in raw_headers {
                    if !command.escapes_headers() {
                        // Unescaped frames cannot carry these characters.
                        name.retain(|c| !matches!(c, '\r' | '\n' | ':'));
                        value.retain(|c| !matches!(c, '\r' | '\n'));
                    }
                    if name == "content-length" {
                        continue;
                    }
                    f = f.with_header(name, value);
                }
                if explicit_length || body.contains(&0) {
                    f = f.with_header("content-length", body.len().to_string());
                }
                f.with_body(body)
            })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(frame in arb_frame(), heartbeats in 0usize..3) {
            let mut wire = b"\r\n".repeat(heartbeats);
            frame.encode_into(&mut wire);
            let total = wire.len();
            wire.extend_from_slice(b"\nSEND\n\n\0");
            let (decoded, used) = decode(&wire, &limits()).unwrap().unwrap();
            prop_assert_eq!(decoded, frame);
            prop_assert_eq!(used, total);
        }

        #[test]
        fn decode_never_panics(input in proptest::collection::vec(any::<u8>(), 0..256)) {
            let small = FrameLimits { max_frame_bytes: 100, max_headers: 4, max_header_line: 30, max_body: 50 };
            if let Ok(Some((_, used))) = decode(&input, &small) {
                prop_assert!(used <= input.len());
            }
        }

        #[test]
        fn split_input_decodes_the_same(frame in arb_frame(), cut in 0usize..200) {
            let wire = frame.encode();
            let cut = cut.min(wire.len());
            if cut < wire.len() {
                prop_assert!(decode(&wire[..cut], &limits()).unwrap().is_none());
            }
            prop_assert_eq!(decode(&wire, &limits()).unwrap().map(|(f, _)| f), Some(frame));
        }
    }
}
