//! Frames the engine sends. Each builder returns the serialised text once;
//! the engine shares it between all recipients.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::ErrorCode;

/// One member of a presence set, as sent to clients.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberFrame<'a> {
    pub id: &'a str,
    pub client_id: &'a str,
    pub data: Option<&'a RawValue>,
    /// Present (true) only for a member whose connection is lost and in grace.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub in_grace: bool,
}

/// One clientId with all its present connections (the per-client view).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientFrame<'a> {
    pub client_id: &'a str,
    pub connections: Vec<MemberFrame<'a>>,
}

/// An object as sent to clients.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFrame<'a> {
    pub id: &'a str,
    pub data: Option<&'a RawValue>,
    pub connection_status: &'a str,
}

/// Optional parts of an `ack`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AckBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberFrame<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<ClientFrame<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectFrame<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<ObjectFrame<'a>>>,
    /// The presence `epoch` and `seq` a snapshot is at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// `resume`: the member id kept, and the connection's next resume token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Out<'a> {
    #[serde(rename_all = "camelCase")]
    Welcome {
        protocol: u32,
        id: &'a str,
        client_id: Option<&'a str>,
        expires_at: Option<u64>,
        epoch: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        resume_token: Option<&'a str>,
    },
    /// A fresh presence snapshot where a resume cannot replay what was missed.
    #[serde(rename_all = "camelCase")]
    Resync {
        room: &'a str,
        #[serde(flatten)]
        body: AckBody<'a>,
    },
    Ack {
        #[serde(rename = "ref")]
        reference: Option<&'a RawValue>,
        op: &'a str,
        #[serde(flatten)]
        body: AckBody<'a>,
    },
    Error {
        #[serde(rename = "ref")]
        reference: Option<&'a RawValue>,
        code: ErrorCode,
        message: &'a str,
    },
    #[serde(rename_all = "camelCase")]
    Presence {
        room: &'a str,
        event: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        view: Option<&'a str>,
        timestamp: &'a str,
        id: &'a str,
        client_id: &'a str,
        data: Option<&'a RawValue>,
        epoch: u64,
        seq: u64,
    },
    Message {
        room: &'a str,
        event: &'a str,
        timestamp: &'a str,
        from: Option<From<'a>>,
        data: Option<&'a RawValue>,
    },
    /// A change to an object, for object subscribers.
    Object {
        realm: &'a str,
        event: &'a str,
        timestamp: &'a str,
        object: ObjectFrame<'a>,
    },
    /// A realm event (`connectionStatusChanged` or a published one).
    Event {
        realm: &'a str,
        event: &'a str,
        timestamp: &'a str,
        id: Option<&'a str>,
        from: Option<From<'a>>,
        data: Option<&'a RawValue>,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct From<'a> {
    id: &'a str,
    client_id: Option<&'a str>,
}

fn to_text(out: &Out<'_>) -> String {
    // Serialising these types cannot fail: every key is a string and every
    // value is a string, number, bool, null or already-valid raw JSON.
    serde_json::to_string(out).unwrap_or_default()
}

/// The welcome: the member id, and (when resume is on) the resume token.
pub fn welcome(
    id: &str,
    client_id: Option<&str>,
    expires_at: Option<u64>,
    epoch: u64,
    resume_token: Option<&str>,
) -> String {
    to_text(&Out::Welcome { protocol: super::VERSION, id, client_id, expires_at, epoch, resume_token })
}

/// A room's presence snapshot sent unasked (after a resume that cannot replay).
pub fn resync(room: &str, body: AckBody<'_>) -> String {
    to_text(&Out::Resync { room, body })
}

pub fn ack(reference: Option<&RawValue>, op: &str, body: AckBody<'_>) -> String {
    to_text(&Out::Ack { reference, op, body })
}

/// The application ping the SDK sends (no `ref`), and the ack the engine
/// answers it with: a fixed pair, so a host may answer it without the
/// engine (a Durable Object's `setWebSocketAutoResponse`).
pub const PING: &str = r#"{"op":"ping"}"#;

pub fn ping_ack() -> String {
    ack(None, "ping", AckBody::default())
}

pub fn error(reference: Option<&RawValue>, code: ErrorCode, message: &str) -> String {
    to_text(&Out::Error { reference, code, message })
}

/// A presence event. `view` is `Some("client")` for the per-client view.
pub struct PresenceEvent<'a> {
    pub room: &'a str,
    pub event: &'a str,
    pub client_view: bool,
    pub timestamp: &'a str,
    pub id: &'a str,
    pub client_id: &'a str,
    pub data: Option<&'a RawValue>,
    pub epoch: u64,
    pub seq: u64,
}

pub fn presence(e: &PresenceEvent<'_>) -> String {
    to_text(&Out::Presence {
        room: e.room,
        event: e.event,
        view: e.client_view.then_some("client"),
        timestamp: e.timestamp,
        id: e.id,
        client_id: e.client_id,
        data: e.data,
        epoch: e.epoch,
        seq: e.seq,
    })
}

/// A room's coalesced presence events for one subscriber, in `seq` order:
/// `{"type":"batch","room":…,"events":[<presence frame>,…]}`. The events
/// are the `presence` frames' texts as built once for every recipient.
pub fn batch(room: &str, events: &[&std::sync::Arc<str>]) -> String {
    let room = serde_json::to_string(room).unwrap_or_default();
    let size = events.iter().map(|e| e.len() + 1).sum::<usize>() + room.len() + 40;
    let mut out = String::with_capacity(size);
    out.push_str(r#"{"type":"batch","room":"#);
    out.push_str(&room);
    out.push_str(r#","events":["#);
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e);
    }
    out.push_str("]}");
    out
}

/// A published event; `from` is `None` when the host published it.
pub fn message(
    room: &str,
    event: &str,
    timestamp: &str,
    from: Option<(&str, Option<&str>)>,
    data: Option<&RawValue>,
) -> String {
    to_text(&Out::Message { room, event, timestamp, from: from.map(|(id, client_id)| From { id, client_id }), data })
}

/// A change to an object: `create`, `update`, `delete` or `status`.
pub fn object(realm: &str, event: &str, timestamp: &str, object: ObjectFrame<'_>) -> String {
    to_text(&Out::Object { realm, event, timestamp, object })
}

/// A realm event; `from` is `None` for the engine's or the host's own.
pub fn realm_event(
    realm: &str,
    event: &str,
    timestamp: &str,
    id: Option<&str>,
    from: Option<(&str, Option<&str>)>,
    data: Option<&RawValue>,
) -> String {
    to_text(&Out::Event { realm, event, timestamp, id, from: from.map(|(id, client_id)| From { id, client_id }), data })
}
