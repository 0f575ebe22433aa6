//! Parsing client frames into [`Request`]s. Every failure is an
//! [`ErrorCode`] with a message for the client; nothing here panics.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::Limits;
use crate::error::ErrorCode;

/// Which presence events a subscription receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMask(u8);

impl EventMask {
    pub const ALL: EventMask = EventMask(0b111);

    /// The raw bits (join 1, update 2, leave 4), for snapshots.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// From raw bits; unknown bits are dropped.
    pub fn from_bits(bits: u8) -> EventMask {
        EventMask(bits & 0b111)
    }

    /// The mask of one kind.
    pub fn of(kind: PresenceKind) -> EventMask {
        EventMask(kind.bit())
    }

    /// The kind of a one-kind mask.
    pub fn kind(self) -> Option<PresenceKind> {
        [PresenceKind::Join, PresenceKind::Update, PresenceKind::Leave].into_iter().find(|k| self.0 == k.bit())
    }

    pub fn contains(self, kind: PresenceKind) -> bool {
        self.0 & kind.bit() != 0
    }
}

/// The three presence events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresenceKind {
    Join,
    Update,
    Leave,
}

impl PresenceKind {
    fn bit(self) -> u8 {
        match self {
            PresenceKind::Join => 1,
            PresenceKind::Update => 2,
            PresenceKind::Leave => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PresenceKind::Join => "join",
            PresenceKind::Update => "update",
            PresenceKind::Leave => "leave",
        }
    }
}

/// How presence is seen: one member per connection, or one per clientId
/// (first device in, last device out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    #[default]
    Connection,
    Client,
}

/// A parsed client request.
#[derive(Debug)]
pub enum Request<'a> {
    Auth {
        token: String,
    },
    Ping,
    /// Take over a lost connection (see docs/PROTOCOL.md, Resume): `since`
    /// holds the last presence `seq` seen per room, in `epoch`.
    Resume {
        token: String,
        epoch: Option<u64>,
        since: std::collections::BTreeMap<String, u64>,
    },
    RoomJoin {
        room: String,
    },
    RoomLeave {
        room: String,
    },
    PresenceJoin {
        room: String,
        data: Option<&'a RawValue>,
    },
    PresenceUpdate {
        room: String,
        data: Option<&'a RawValue>,
    },
    PresenceLeave {
        room: String,
    },
    PresenceGet {
        room: String,
        view: View,
    },
    PresenceSubscribe {
        room: String,
        events: EventMask,
        view: View,
    },
    PresenceUnsubscribe {
        room: String,
    },
    Subscribe {
        room: String,
        event: String,
    },
    Unsubscribe {
        room: String,
        event: String,
    },
    Publish {
        room: String,
        event: String,
        data: Option<&'a RawValue>,
    },
    ObjectCreate {
        realm: String,
        id: String,
        data: Option<&'a RawValue>,
    },
    ObjectUpdate {
        realm: String,
        id: String,
        data: Option<&'a RawValue>,
    },
    ObjectDelete {
        realm: String,
        id: String,
    },
    ObjectGet {
        realm: String,
        id: String,
    },
    /// `pattern: None` is every id.
    ObjectList {
        realm: String,
        pattern: Option<String>,
    },
    ObjectSubscribe {
        realm: String,
        pattern: Option<String>,
    },
    ObjectUnsubscribe {
        realm: String,
        pattern: Option<String>,
    },
    RealmSubscribe {
        realm: String,
        event: String,
        pattern: Option<String>,
    },
    RealmUnsubscribe {
        realm: String,
        event: String,
        pattern: Option<String>,
    },
    RealmPublish {
        realm: String,
        event: String,
        id: Option<String>,
        data: Option<&'a RawValue>,
    },
}

impl Request<'_> {
    /// Whether a connection that has not authenticated may send it.
    pub fn allowed_before_auth(&self) -> bool {
        matches!(self, Request::Auth { .. } | Request::Ping)
    }
}

/// A rejected frame: the code, a message, and the `ref` to echo if one
/// could be read.
#[derive(Debug)]
pub struct Rejection<'a> {
    pub reference: Option<&'a RawValue>,
    pub code: ErrorCode,
    pub message: String,
}

/// A frame read far enough to know its `ref` and `op`.
#[derive(Debug)]
pub struct Frame<'a> {
    pub reference: Option<&'a RawValue>,
    pub op: String,
    pub request: Request<'a>,
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(borrow, default)]
    op: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "ref")]
    reference: Option<&'a RawValue>,
    #[serde(borrow, default)]
    room: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    events: Option<&'a RawValue>,
    #[serde(borrow, default)]
    view: Option<&'a RawValue>,
    #[serde(borrow, default)]
    token: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    realm: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pattern: Option<&'a RawValue>,
    #[serde(borrow, default)]
    epoch: Option<&'a RawValue>,
    #[serde(borrow, default)]
    since: Option<&'a RawValue>,
}

const MAX_REF_BYTES: usize = 64;

/// Parses one frame. Size and depth are checked before any JSON parsing.
pub fn parse<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Frame<'a>, Rejection<'a>> {
    let reject = |code, message: String| Rejection { reference: None, code, message };
    if bytes.len() > limits.max_frame_bytes {
        return Err(reject(
            ErrorCode::FrameTooLarge,
            format!("frame of {} bytes is over the limit of {}", bytes.len(), limits.max_frame_bytes),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| reject(ErrorCode::BadFrame, "frame is not UTF-8".into()))?;
    if exceeds_depth(text, limits.max_json_depth) {
        return Err(reject(ErrorCode::TooDeep, format!("frame nests deeper than {} levels", limits.max_json_depth)));
    }
    // serde's derived struct would also accept a JSON array (fields by
    // position): a frame must be an object.
    if !text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
        return Err(reject(ErrorCode::BadFrame, "frame is not a JSON object".into()));
    }
    let raw: RawFrame<'a> = serde_json::from_str(text)
        .map_err(|e| reject(ErrorCode::BadFrame, format!("frame is not a JSON object: {e}")))?;
    let reference = raw.reference.filter(|r| valid_ref(r));
    let bad = |message: String| Rejection { reference, code: ErrorCode::BadRequest, message };
    if raw.reference.is_some() && reference.is_none() {
        return Err(bad(format!("`ref` must be a string of at most {MAX_REF_BYTES} bytes or an integer")));
    }
    let op: String = match raw.op {
        Some(op) => field(op, "op").map_err(bad)?,
        None => return Err(bad("missing field `op`".into())),
    };
    let fields = Fields { raw: &raw, limits };
    let request = match op.as_str() {
        "auth" => Request::Auth { token: fields.required(raw.token, "token").map_err(bad)? },
        "ping" => Request::Ping,
        "resume" => Request::Resume {
            token: fields.required(raw.token, "token").map_err(bad)?,
            epoch: raw.epoch.map(|v| field(v, "epoch")).transpose().map_err(bad)?,
            since: fields.since().map_err(bad)?,
        },
        "room.join" => Request::RoomJoin { room: fields.room().map_err(bad)? },
        "room.leave" => Request::RoomLeave { room: fields.room().map_err(bad)? },
        "presence.join" => Request::PresenceJoin { room: fields.room().map_err(bad)?, data: raw.data },
        "presence.update" => Request::PresenceUpdate { room: fields.room().map_err(bad)?, data: raw.data },
        "presence.leave" => Request::PresenceLeave { room: fields.room().map_err(bad)? },
        "presence.get" => Request::PresenceGet { room: fields.room().map_err(bad)?, view: fields.view().map_err(bad)? },
        "presence.subscribe" => Request::PresenceSubscribe {
            room: fields.room().map_err(bad)?,
            events: fields.events().map_err(bad)?,
            view: fields.view().map_err(bad)?,
        },
        "presence.unsubscribe" => Request::PresenceUnsubscribe { room: fields.room().map_err(bad)? },
        "subscribe" => {
            Request::Subscribe { room: fields.room().map_err(bad)?, event: fields.event(true).map_err(bad)? }
        }
        "unsubscribe" => {
            Request::Unsubscribe { room: fields.room().map_err(bad)?, event: fields.event(true).map_err(bad)? }
        }
        "publish" => Request::Publish {
            room: fields.room().map_err(bad)?,
            event: fields.event(false).map_err(bad)?,
            data: raw.data,
        },
        "object.create" => {
            Request::ObjectCreate { realm: fields.realm().map_err(bad)?, id: fields.id().map_err(bad)?, data: raw.data }
        }
        "object.update" => {
            Request::ObjectUpdate { realm: fields.realm().map_err(bad)?, id: fields.id().map_err(bad)?, data: raw.data }
        }
        "object.delete" => Request::ObjectDelete { realm: fields.realm().map_err(bad)?, id: fields.id().map_err(bad)? },
        "object.get" => Request::ObjectGet { realm: fields.realm().map_err(bad)?, id: fields.id().map_err(bad)? },
        "object.list" => {
            Request::ObjectList { realm: fields.realm().map_err(bad)?, pattern: fields.pattern().map_err(bad)? }
        }
        "object.subscribe" => {
            Request::ObjectSubscribe { realm: fields.realm().map_err(bad)?, pattern: fields.pattern().map_err(bad)? }
        }
        "object.unsubscribe" => {
            Request::ObjectUnsubscribe { realm: fields.realm().map_err(bad)?, pattern: fields.pattern().map_err(bad)? }
        }
        "realm.subscribe" => Request::RealmSubscribe {
            realm: fields.realm().map_err(bad)?,
            event: fields.event(true).map_err(bad)?,
            pattern: fields.pattern().map_err(bad)?,
        },
        "realm.unsubscribe" => Request::RealmUnsubscribe {
            realm: fields.realm().map_err(bad)?,
            event: fields.event(true).map_err(bad)?,
            pattern: fields.pattern().map_err(bad)?,
        },
        "realm.publish" => Request::RealmPublish {
            realm: fields.realm().map_err(bad)?,
            event: fields.event(false).map_err(bad)?,
            id: match raw.id {
                Some(_) => Some(fields.id().map_err(bad)?),
                None => None,
            },
            data: raw.data,
        },
        _ => {
            return Err(Rejection {
                reference,
                code: ErrorCode::UnknownOp,
                message: format!("unknown op {:?}", truncate(&op, 64)),
            })
        }
    };
    Ok(Frame { reference, op, request })
}

struct Fields<'r, 'a> {
    raw: &'r RawFrame<'a>,
    limits: &'r Limits,
}

impl Fields<'_, '_> {
    fn required<T: DeserializeOwned>(&self, v: Option<&RawValue>, name: &str) -> Result<T, String> {
        match v {
            Some(v) => field(v, name),
            None => Err(format!("missing field `{name}`")),
        }
    }

    fn room(&self) -> Result<String, String> {
        let room: String = self.required(self.raw.room, "room")?;
        check_name(&room, "room", self.limits.max_name_bytes)?;
        Ok(room)
    }

    fn realm(&self) -> Result<String, String> {
        let realm: String = self.required(self.raw.realm, "realm")?;
        check_name(&realm, "realm", self.limits.max_name_bytes)?;
        if realm == "*" {
            return Err("`*` is not a realm name (it means every realm in claims)".into());
        }
        Ok(realm)
    }

    fn id(&self) -> Result<String, String> {
        let id: String = self.required(self.raw.id, "id")?;
        check_name(&id, "object id", self.limits.max_name_bytes)?;
        Ok(id)
    }

    /// An optional id pattern; checked for length here, compiled by the engine.
    fn pattern(&self) -> Result<Option<String>, String> {
        let Some(v) = self.raw.pattern else { return Ok(None) };
        let pattern: String = field(v, "pattern")?;
        check_name(&pattern, "pattern", self.limits.max_name_bytes)?;
        Ok(Some(pattern))
    }

    /// An event name; `*` (all events) only where `wildcard` allows it.
    fn event(&self, wildcard: bool) -> Result<String, String> {
        let event: String = self.required(self.raw.event, "event")?;
        check_name(&event, "event", self.limits.max_name_bytes)?;
        if event == "*" && !wildcard {
            return Err("`*` cannot be published as an event name".into());
        }
        Ok(event)
    }

    /// `since`: room name -> last seq seen; at most `max_rooms_per_connection` rooms.
    fn since(&self) -> Result<std::collections::BTreeMap<String, u64>, String> {
        let Some(v) = self.raw.since else { return Ok(Default::default()) };
        let since: std::collections::BTreeMap<String, u64> = field(v, "since")?;
        if since.len() > self.limits.max_rooms_per_connection {
            return Err(format!("`since` names more than {} rooms", self.limits.max_rooms_per_connection));
        }
        Ok(since)
    }

    fn view(&self) -> Result<View, String> {
        match self.raw.view {
            None => Ok(View::Connection),
            Some(v) => match field::<String>(v, "view")?.as_str() {
                "connection" => Ok(View::Connection),
                "client" => Ok(View::Client),
                other => Err(format!("`view` must be \"connection\" or \"client\", not {:?}", truncate(other, 32))),
            },
        }
    }

    fn events(&self) -> Result<EventMask, String> {
        let Some(v) = self.raw.events else { return Ok(EventMask::ALL) };
        let names: Vec<String> = field(v, "events")?;
        if names.is_empty() {
            return Err("`events` must name at least one of join, update, leave".into());
        }
        let mut mask = 0;
        for name in &names {
            mask |= match name.as_str() {
                "join" => PresenceKind::Join.bit(),
                "update" => PresenceKind::Update.bit(),
                "leave" => PresenceKind::Leave.bit(),
                other => return Err(format!("unknown presence event {:?} (join, update, leave)", truncate(other, 32))),
            };
        }
        Ok(EventMask(mask))
    }
}

fn field<T: DeserializeOwned>(v: &RawValue, name: &str) -> Result<T, String> {
    serde_json::from_str(v.get()).map_err(|_| format!("field `{name}` has the wrong type"))
}

/// Room and event names: non-empty, bounded, no control characters.
pub fn check_name(name: &str, what: &str, max: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name is empty"));
    }
    if name.len() > max {
        return Err(format!("{what} name is longer than {max} bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{what} name contains control characters"));
    }
    Ok(())
}

fn valid_ref(r: &RawValue) -> bool {
    let s = r.get();
    if s.starts_with('"') {
        s.len() <= MAX_REF_BYTES + 2
    } else {
        s.len() <= 20 && s.bytes().enumerate().all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'))
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Whether arrays and objects in `text` nest deeper than `max`. A linear
/// scan that skips strings, so that serde never recurses deeply.
pub fn exceeds_depth(text: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_scan_ignores_brackets_in_strings() {
        assert!(!exceeds_depth(r#"{"a":"[[[[[[[[[["}"#, 2));
        assert!(exceeds_depth(r#"{"a":[[1]]}"#, 2));
        assert!(!exceeds_depth(r#"{"a":"\"[[[","b":[1]}"#, 2));
    }

    #[test]
    fn ref_is_echoed_in_rejections() {
        let limits = Limits::default();
        let err = parse(br#"{"op":"nope","ref":7}"#, &limits).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnknownOp);
        assert_eq!(err.reference.unwrap().get(), "7");
        let err = parse(br#"{"op":"room.join","ref":"a","room":5}"#, &limits).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadRequest);
        assert_eq!(err.reference.unwrap().get(), "\"a\"");
    }
}
