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
        let envelope: Envelope = match serde_json::from_slice(bytes) {
            Ok(envelope) => envelope,
            Err(e) => {
                // Name the event type when only the type is unknown to this log.
                #[derive(Deserialize)]
                struct Head {
                    #[serde(rename = "type")]
                    kind: String,
                }
                return Err(match serde_json::from_slice::<Head>(bytes) {
                    Ok(head) if head.kind != EVENT_MESSAGE_CREATED => {
                        format!("unsupported event type {:?}", head.kind)
                    }
                    _ => format!("undecodable record: {e}"),
                });
            }
        };
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

#[cfg(test)]
mod tests {

    use shoot_core::ids::{MessageId, RoomId, Seq, UserId};
    use shoot_core::messages::{Message, MessageStatus};
    use shoot_core::time::Timestamp;

    use super::Envelope;

    fn message(seq: i64) -> Message {
        Message {
            seq: Seq(seq),
            temp_id: Some("t-1".into()),
            status: MessageStatus::SentToKafka,
            ..Message::new(
                MessageId(11),
                RoomId(22),
                UserId(33),
                "hello",
                Timestamp(1_700_000_000_000),
            )
        }
    }

    #[test]
    fn event_shape_and_round_trip() {
        let envelope = Envelope::message_created(message(5), "node-a", 1234);
        let json: serde_json::Value = serde_json::to_value(&envelope).unwrap();
        assert_eq!(json["type"], "MESSAGE_CREATED");
        assert_eq!(json["metadata"]["instance"], "node-a");
        assert_eq!(json["metadata"]["producedAt"], 1234);
        assert_eq!(json["metadata"]["seq"], 5);
        assert_eq!(json["data"]["seq"], 5);
        let bytes = serde_json::to_vec(&envelope).unwrap();
        assert_eq!(Envelope::decode(Some(&bytes)), Ok(message(5)));
    }

    #[test]
    fn undecodable_records_say_why() {
        assert!(Envelope::decode(None).unwrap_err().contains("no payload"));
        assert!(
            Envelope::decode(Some(b"not json"))
                .unwrap_err()
                .contains("undecodable")
        );
        let mut other =
            serde_json::to_value(Envelope::message_created(message(1), "a", 1)).unwrap();
        other["type"] = "MESSAGE_DELETED".into();
        other["data"] = serde_json::json!({});
        let bytes = serde_json::to_vec(&other).unwrap();
        assert!(
            Envelope::decode(Some(&bytes))
                .unwrap_err()
                .contains("MESSAGE_DELETED")
        );
        let unnumbered =
            serde_json::to_vec(&Envelope::message_created(message(0), "a", 1)).unwrap();
        assert!(
            Envelope::decode(Some(&unnumbered))
                .unwrap_err()
                .contains("sequence")
        );
    }
}
