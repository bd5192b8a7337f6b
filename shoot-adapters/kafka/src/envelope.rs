//! The JSON event of one record: `{"type", "data", "metadata"}`.

use serde::{Deserialize, Serialize};
use shoot_core::messages::Message;

/// Event type of a record carrying a new message.
pub const EVENT_MESSAGE_CREATED: &str = "MESSAGE_CREATED";

/// One record of the message log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Event type; this log only writes (and reads) [`EVENT_MESSAGE_CREATED`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The message, with its seq.
    pub data: Message,
    /// Who produced it and when.
    pub metadata: EnvelopeMetadata,
}

/// Metadata of a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeMetadata {
    /// The producing instance.
    pub instance: String,
    /// When it was produced (ms since the Unix epoch).
    pub produced_at: i64,
    /// The message's per-room sequence number (same as `data.seq`).
    pub seq: i64,
}

impl Envelope {
    /// A `MESSAGE_CREATED` event for `message` (whose seq is set).
    pub fn message_created(message: Message, instance: &str, produced_at: i64) -> Envelope {
        let seq = message.seq.0;
        Envelope {
            kind: EVENT_MESSAGE_CREATED.to_owned(),
            data: message,
            metadata: EnvelopeMetadata {
                instance: instance.to_owned(),
                produced_at,
                seq,
            },
        }
    }

    /// Decodes a record payload into its message, or says why it cannot be processed.
    pub fn decode(payload: Option<&[u8]>) -> Result<Message, String> {
        let bytes = payload.ok_or_else(|| "record has no payload".to_owned())?;
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|e| format!("undecodable record: {e}"))?;
        if envelope.kind != EVENT_MESSAGE_CREATED {
            return Err(format!("unsupported event type {:?}", envelope.kind));
        }
        if envelope.data.seq.0 < 1 {
            return Err(format!(
                "message {} has no sequence number",
                envelope.data.id
            ));
        }
        Ok(envelope.data)
    }
}
