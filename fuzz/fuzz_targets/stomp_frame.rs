//! The STOMP frame decoder on arbitrary bytes, as a WebSocket session feeds it.
//!
//! Properties checked on every input, with the server's real limits and with tight ones
//! (so the limit paths are reached with the fuzzer's short inputs):
//! - `decode` never panics and never claims more bytes than it was given, nor zero bytes;
//! - draining a buffer frame by frame (as `session.rs` does) terminates;
//! - round trip: a decoded frame, encoded again, decodes to the same frame using exactly the
//!   encoded bytes, and every strict prefix of that encoding is "incomplete", not an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoot_server::stomp::StompSettings;
use shoot_server::stomp::frame::{Frame, FrameLimits, decode};

/// Limits small enough for short fuzz inputs to exceed every one of them.
const TIGHT: FrameLimits = FrameLimits {
    max_frame_bytes: 96,
    max_headers: 3,
    max_header_line: 24,
    max_body: 40,
};

/// Room for re-encoded frames: escaping raw `:` in values can lengthen a header line.
const ROOMY: FrameLimits = FrameLimits {
    max_frame_bytes: 1 << 20,
    max_headers: 1 << 10,
    max_header_line: 1 << 20,
    max_body: 1 << 20,
};

fuzz_target!(|data: &[u8]| {
    let real = StompSettings::default().frame_limits;
    for limits in [real, TIGHT] {
        drain(data, &limits);
    }
});

/// Decodes frames off the front of `data` until it is exhausted, incomplete or invalid.
fn drain(mut data: &[u8], limits: &FrameLimits) {
    while let Ok(Some((frame, used))) = decode(data, limits) {
        assert!(
            used > 0 && used <= data.len(),
            "used {used} of {}",
            data.len()
        );
        round_trip(&frame);
        data = &data[used..];
    }
}

fn round_trip(frame: &Frame) {
    if !representable(frame) {
        return;
    }
    let wire = frame.encode();
    let again = decode(&wire, &ROOMY);
    assert_eq!(
        again,
        Ok(Some((frame.clone(), wire.len()))),
        "re-encoded {:?}",
        String::from_utf8_lossy(&wire)
    );
    for cut in [0, wire.len() / 3, wire.len() / 2, wire.len() - 1] {
        assert_eq!(
            decode(&wire[..cut], &ROOMY),
            Ok(None),
            "prefix of {cut} bytes"
        );
    }
}

/// Whether `Frame::encode` can represent `frame`: CONNECT and CONNECTED headers are written
/// unescaped, so (as `encode_into` documents) they cannot carry a CR, which the decoder reads
/// back as part of the line ending when it ends a value.
fn representable(frame: &Frame) -> bool {
    frame.command.escapes_headers()
        || frame
            .headers
            .iter()
            .all(|(n, v)| !n.contains('\r') && !v.contains('\r'))
}
