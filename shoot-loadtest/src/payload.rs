//! The marker every load message carries in its text: `lt:{room}:{sender}:{seq}:{sentNs}`.
//!
//! It survives any JSON wrapping the server puts around the text (Shoot's `MessageView`,
//! RabbitMQ's verbatim body), so receivers find it by scanning the body.

/// What a load message says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// Room index in the tool (not the server's room id).
    pub room: u32,
    /// Sender index in the tool.
    pub sender: u32,
    /// Per-(room, sender) sequence, from 1.
    pub seq: u64,
    /// Send time, ns since the tool started (monotonic).
    pub sent_ns: u64,
}

impl Marker {
    /// The marker text.
    pub fn encode(&self) -> String {
        format!(
            "lt:{}:{}:{}:{}",
            self.room, self.sender, self.seq, self.sent_ns
        )
    }

    /// Finds and decodes the first marker in `body`.
    pub fn find(body: &[u8]) -> Option<Marker> {
        let mut from = 0;
        while from + 3 <= body.len() {
            let i = from + body[from..].iter().position(|&b| b == b'l')?;
            if body.get(i + 1..i + 3) == Some(b"t:")
                && let Some(m) = Marker::decode_at(&body[i + 3..])
            {
                return Some(m);
            }
            from = i + 1;
        }
        None
    }

    fn decode_at(rest: &[u8]) -> Option<Marker> {
        let mut nums = [0u64; 4];
        let mut pos = 0;
        for (k, slot) in nums.iter_mut().enumerate() {
            let start = pos;
            let mut v: u64 = 0;
            while pos < rest.len() && rest[pos].is_ascii_digit() {
                v = v
                    .checked_mul(10)?
                    .checked_add(u64::from(rest[pos] - b'0'))?;
                pos += 1;
            }
            if pos == start {
                return None;
            }
            *slot = v;
            if k < 3 {
                if rest.get(pos) != Some(&b':') {
                    return None;
                }
                pos += 1;
            }
        }
        Some(Marker {
            room: u32::try_from(nums[0]).ok()?,
            sender: u32::try_from(nums[1]).ok()?,
            seq: nums[2],
            sent_ns: nums[3],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_marker_inside_a_message_view() {
        let m = Marker {
            room: 12,
            sender: 345,
            seq: 6,
            sent_ns: 7_000_000_001,
        };
        let body = format!(
            r#"{{"id":"9","roomId":"4","tempId":"t-l-1","content":{{"text":"{}","type":"TEXT"}},"seq":3}}"#,
            m.encode()
        );
        assert_eq!(Marker::find(body.as_bytes()), Some(m));
    }

    #[test]
    fn ignores_lookalikes_and_garbage() {
        assert_eq!(Marker::find(b"{\"x\":\"lt:1:2\"}"), None);
        assert_eq!(Marker::find(b"hello lt:a:1:2:3"), None);
        assert_eq!(
            Marker::find(b"lt:99999999999:1:2:3"),
            None,
            "room overflows u32"
        );
        assert_eq!(Marker::find(b""), None);
        assert_eq!(
            Marker::find(b"lt:x lt:1:2:3:4\""),
            Some(Marker {
                room: 1,
                sender: 2,
                seq: 3,
                sent_ns: 4
            })
        );
    }
}
