//! The wasm surface of rollcall: one `#[wasm_bindgen]` struct, one call per
//! host event, each returning its whole batch of instructions at once.
//! Ergonomics (defaults, `now`, JSON of user data) live in the JS wrapper.
//!
//! Thrown errors are the host's misuse only, and each message starts with a
//! stable code: `BAD_ARGUMENT` (a connection id or `now` that is not a safe
//! non-negative integer, a frame of the wrong type, credentials that are not
//! an object or hold both `token` and `identity`, a bad name or JSON for a
//! host call), `BAD_OPTIONS`, `DUPLICATE_CONNECTION`, `BAD_SNAPSHOT`. A call
//! that throws has changed nothing. Whatever a client or a token carries,
//! including a host-asserted identity the engine cannot use, is an output.

use rollcall::auth::jwt::Verifier;
use rollcall::pattern::Pattern;
use rollcall::protocol::reply;
use rollcall::{Close, Config, ConnectionId, Credentials, Engine, HostEvent, Identity, Limits, Output, RecordKind};
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// What one host event asks of the host: sends first, then closes. The
/// `sends` are added by hand (see `batch`), the rest through serde.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Batch {
    closes: Vec<Close>,
    events: Vec<HostEvent>,
    /// When to call `tick` next (ms since the epoch), or null. Never past
    /// 2^53 - 1 (the engine's `MAX_TIME`), so a JS number holds it exactly.
    wake_at: Option<f64>,
    /// For `publish`: how many connections the event went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    recipients: Option<usize>,
}

/// Options through JSON text, so that unknown option names are refused
/// (serde-wasm-bindgen reads only the fields it knows).
fn config_of(config: JsValue) -> Result<Config, JsError> {
    if config.is_undefined() || config.is_null() {
        return Ok(Config::default());
    }
    let text: String = js_sys::JSON::stringify(&config)
        .map_err(|_| JsError::new("BAD_OPTIONS: options are not JSON-serialisable"))?
        .into();
    serde_json::from_str(&text).map_err(|e| coded("BAD_OPTIONS", format!("invalid options: {e}")))
}

/// A thrown error whose message starts with its stable code.
fn coded(code: &str, e: impl std::fmt::Display) -> JsError {
    JsError::new(&format!("{code}: {e}"))
}

fn js_err(e: rollcall::Error) -> JsError {
    coded(e.code(), e)
}

/// Credentials as JS gives them: `{ token }`, `{ identity }` or nothing.
/// Only their shape is the host's to get right (an object, not both keys);
/// what they hold is checked by the engine, which refuses a connection
/// whose token or identity it cannot use (4001), never throws.
fn credentials_of(credentials: &JsValue) -> Result<Credentials, JsError> {
    if credentials.is_undefined() || credentials.is_null() {
        return Ok(Credentials::None);
    }
    if !credentials.is_object() {
        return Err(JsError::new("BAD_ARGUMENT: credentials are an object: { token } or { identity }"));
    }
    let field = |name: &str| {
        js_sys::Reflect::get(credentials, &JsValue::from_str(name)).ok().filter(|v| !v.is_undefined() && !v.is_null())
    };
    Ok(match (field("token"), field("identity")) {
        (Some(_), Some(_)) => {
            return Err(JsError::new("BAD_ARGUMENT: credentials take either `token` or `identity`, not both"))
        }
        (Some(token), None) => match token.as_string() {
            Some(token) => Credentials::Token(token),
            None => Credentials::Invalid("`token` is not a string".into()),
        },
        (None, Some(identity)) => match serde_wasm_bindgen::from_value::<Identity>(identity) {
            Ok(identity) => Credentials::Identity(identity),
            Err(e) => Credentials::Invalid(format!("identity: {e}")),
        },
        (None, None) => Credentials::None,
    })
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    let ser = serde_wasm_bindgen::Serializer::new().serialize_missing_as_null(true).serialize_maps_as_objects(true);
    value.serialize(&ser).map_err(|e| coded("BAD_ARGUMENT", e))
}

/// A non-negative integer that JS numbers hold exactly.
fn integer(value: f64, what: &str) -> Result<u64, JsError> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= rollcall::time::MAX_TIME as f64 {
        Ok(value as u64)
    } else {
        Err(JsError::new(&format!("BAD_ARGUMENT: {what} must be a non-negative integer up to 2^53 - 1, not {value}")))
    }
}

fn conn(id: f64) -> Result<ConnectionId, JsError> {
    integer(id, "connection id").map(ConnectionId)
}

/// A connection id, or `None` for a key of another node's member (cluster
/// mode), which is past 2^53 and no connection of this host.
fn local(conn: ConnectionId) -> Option<u64> {
    (!rollcall::engine::is_remote(conn)).then_some(conn.0)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsMember {
    connection: Option<u64>,
    id: String,
    client_id: String,
    data: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    in_grace: bool,
}

impl From<rollcall::MemberInfo> for JsMember {
    fn from(m: rollcall::MemberInfo) -> Self {
        JsMember {
            connection: local(m.connection),
            id: m.id,
            client_id: m.client_id,
            data: m.data,
            in_grace: m.in_grace,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsClient {
    client_id: String,
    connections: Vec<Option<u64>>,
}

#[wasm_bindgen]
pub struct WasmEngine {
    engine: Engine,
    /// For `verifyToken`: built from the engine's `auth` options on first use.
    verifier: Option<Verifier>,
}

/// How many of `ids` the id pattern `pattern` matches, with the engine's
/// pattern rules (`*` within a `/` segment, `**` across, `?` one character).
/// Throws for an empty, too long (over the default `maxNameBytes`) or
/// invalid pattern. One call for many ids, so the JS-wasm crossing is paid once.
#[wasm_bindgen(js_name = matchCount)]
pub fn match_count(pattern: &str, ids: Vec<String>) -> Result<u32, JsError> {
    let pattern = Pattern::compile(pattern, Limits::default().max_name_bytes).map_err(|e| coded("BAD_PATTERN", e))?;
    Ok(ids.iter().filter(|id| pattern.matches(id)).count() as u32)
}

#[wasm_bindgen]
impl WasmEngine {
    /// `config`: the engine's configuration in camelCase (see the Rust
    /// `Config`), or undefined for the defaults.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Result<WasmEngine, JsError> {
        Ok(WasmEngine { engine: Engine::new(config_of(config)?).map_err(js_err)?, verifier: None })
    }

    /// An engine rebuilt from `snapshot()` bytes (see the Rust docs).
    pub fn restore(config: JsValue, bytes: &[u8]) -> Result<WasmEngine, JsError> {
        let engine = Engine::restore(config_of(config)?, bytes).map_err(js_err)?;
        // Native hosts may use any u64; this host's ids are JS numbers.
        if let Some(id) = engine.connection_ids().into_iter().find(|c| c.0 > rollcall::time::MAX_TIME) {
            return Err(JsError::new(&format!("BAD_SNAPSHOT: connection id {id} is past 2^53 - 1")));
        }
        Ok(WasmEngine { engine, verifier: None })
    }

    /// An engine rebuilt from change records (an array of Uint8Array, in
    /// any order), with change tracking on (see the Rust `persist` docs).
    pub fn import(config: JsValue, records: js_sys::Array) -> Result<WasmEngine, JsError> {
        let mut bytes: Vec<Vec<u8>> = Vec::with_capacity(records.length() as usize);
        for record in records.iter() {
            if !record.is_instance_of::<js_sys::Uint8Array>() {
                return Err(JsError::new("BAD_ARGUMENT: records are Uint8Arrays"));
            }
            bytes.push(js_sys::Uint8Array::new(&record).to_vec());
        }
        let engine = Engine::import(config_of(config)?, bytes.iter().map(Vec::as_slice)).map_err(js_err)?;
        if let Some(id) = engine.connection_ids().into_iter().find(|c| c.0 > rollcall::time::MAX_TIME) {
            return Err(JsError::new(&format!("BAD_SNAPSHOT: connection id {id} is past 2^53 - 1")));
        }
        Ok(WasmEngine { engine, verifier: None })
    }

    /// From now on every batch carries `changes`: the records it touched
    /// (the first one: every record).
    #[wasm_bindgen(js_name = trackChanges)]
    pub fn track_changes(&mut self) {
        self.engine.track_changes();
    }

    /// The application ping frame the SDK sends and the engine's exact
    /// answer to it: `[request, response]`.
    #[wasm_bindgen(js_name = pingFrames)]
    pub fn ping_frames() -> Vec<String> {
        vec![reply::PING.to_string(), reply::ping_ack()]
    }

    /// The whole state, versioned and compact.
    pub fn snapshot(&self) -> Vec<u8> {
        self.engine.snapshot()
    }

    #[wasm_bindgen(js_name = connectionIds)]
    pub fn connection_ids(&self) -> Vec<f64> {
        self.engine.connection_ids().into_iter().map(|c| c.0 as f64).collect()
    }

    /// The verified identity of a connection (`{clientId, rooms, expiresAt, per, dpv}`), or null.
    pub fn identity(&self, id: f64) -> Result<JsValue, JsError> {
        to_js(&self.engine.identity(conn(id)?))
    }

    /// Verifies a JWT with the configured keys at `now` (signature, `exp`,
    /// `nbf`, `iss`, `aud`) without opening a connection, and returns the
    /// identity it proves (`{clientId, rooms, expiresAt, per, dpv}`). Throws
    /// an Error whose message is the AuthError name (`EXPIRED`,
    /// `BAD_SIGNATURE`, ...). The claims' grant patterns are compiled only
    /// when a connection opens with the token.
    #[wasm_bindgen(js_name = verifyToken)]
    pub fn verify_token(&mut self, token: &str, now: f64) -> Result<JsValue, JsError> {
        let now = integer(now, "now")?;
        if self.verifier.is_none() {
            self.verifier =
                Some(Verifier::new(&self.engine.config().auth).map_err(|e| js_err(rollcall::Error::Config(e)))?);
        }
        let verifier = self.verifier.as_ref().expect("set above");
        to_js(&verifier.verify(token, now).map_err(|e| JsError::new(&e.to_string()))?)
    }

    /// Opens a connection. Throws (changing nothing) only for host misuse:
    /// a bad id or `now`, a duplicate id, credentials that are not
    /// `{ token }` / `{ identity }`. Anything wrong inside them refuses the
    /// connection: an `authRefused` event and a 4001 close in the batch.
    pub fn open(&mut self, id: f64, credentials: JsValue, now: f64) -> Result<JsValue, JsError> {
        let (id, now) = (conn(id)?, integer(now, "now")?);
        let credentials = credentials_of(&credentials)?;
        self.engine.handle_open(id, credentials, now).map_err(js_err)?;
        Ok(self.batch(None))
    }

    /// A frame: a string, a Uint8Array (Node's Buffer) or an ArrayBuffer.
    pub fn message(&mut self, id: f64, frame: JsValue, now: f64) -> Result<JsValue, JsError> {
        let (id, now) = (conn(id)?, integer(now, "now")?);
        if let Some(text) = frame.as_string() {
            self.engine.handle_frame(id, text.as_bytes(), now);
        } else if frame.is_instance_of::<js_sys::Uint8Array>() || frame.is_instance_of::<js_sys::ArrayBuffer>() {
            self.engine.handle_frame(id, &js_sys::Uint8Array::new(&frame).to_vec(), now);
        } else {
            return Err(JsError::new("BAD_ARGUMENT: a frame is a string, a Uint8Array or an ArrayBuffer"));
        }
        Ok(self.batch(None))
    }

    pub fn close(&mut self, id: f64, now: f64) -> Result<JsValue, JsError> {
        self.engine.handle_close(conn(id)?, integer(now, "now")?);
        Ok(self.batch(None))
    }

    /// The socket dropped without a clean close (1006, an error, a
    /// terminate): the connection enters its leave grace (see the Rust docs).
    pub fn lost(&mut self, id: f64, now: f64) -> Result<JsValue, JsError> {
        self.engine.handle_lost(conn(id)?, integer(now, "now")?);
        Ok(self.batch(None))
    }

    /// A sign of life other than a frame (a protocol pong). Never produces
    /// instructions, so it returns none.
    pub fn alive(&mut self, id: f64, now: f64) -> Result<(), JsError> {
        self.engine.handle_alive(conn(id)?, integer(now, "now")?);
        Ok(())
    }

    pub fn tick(&mut self, now: f64) -> Result<JsValue, JsError> {
        self.engine.handle_timeout(integer(now, "now")?);
        Ok(self.batch(None))
    }

    /// Sends every open presence window now (`presence.flushIntervalMs`).
    pub fn flush(&mut self) -> JsValue {
        self.engine.flush();
        self.batch(None)
    }

    /// Bytes charged against `limits.maxStoredBytes` now.
    #[wasm_bindgen(js_name = storedBytes)]
    pub fn stored_bytes(&self) -> f64 {
        self.engine.stored_bytes() as f64
    }

    /// Publishes as the server; `data` is JSON text or undefined.
    pub fn publish(&mut self, room: &str, event: &str, data: Option<String>, now: f64) -> Result<JsValue, JsError> {
        let n = self.engine.publish(room, event, data.as_deref(), integer(now, "now")?).map_err(js_err)?;
        Ok(self.batch(Some(n)))
    }

    /// Cluster mode: a change of `room` the store ordered (its text as the
    /// engine wrote it; see the Rust `Engine::cluster_apply`).
    #[wasm_bindgen(js_name = clusterApply)]
    pub fn cluster_apply(&mut self, room: &str, change: &str, now: f64) -> Result<JsValue, JsError> {
        self.engine.cluster_apply(room, change, integer(now, "now")?).map_err(js_err)?;
        Ok(self.batch(None))
    }

    /// Cluster mode: the store's whole set of `room` (`Engine::cluster_snapshot`).
    #[wasm_bindgen(js_name = clusterSnapshot)]
    pub fn cluster_snapshot(&mut self, room: &str, snapshot: &str, now: f64) -> Result<JsValue, JsError> {
        self.engine.cluster_snapshot(room, snapshot, integer(now, "now")?).map_err(js_err)?;
        Ok(self.batch(None))
    }

    /// Cluster mode: hands over the connection whose resume token is
    /// `token` (`Engine::cluster_handover`): a batch whose `state` is the
    /// text for `clusterResume` on the claiming node, or null.
    #[wasm_bindgen(js_name = clusterHandover)]
    pub fn cluster_handover(&mut self, token: &str, now: f64) -> Result<JsValue, JsError> {
        let state = self.engine.cluster_handover(token, integer(now, "now")?);
        let out = self.batch(None);
        let state = state.map_or(JsValue::NULL, |s| JsValue::from_str(&s));
        let _ = js_sys::Reflect::set(&out, &JsValue::from_str("state"), &state);
        Ok(out)
    }

    /// Cluster mode: the claimed state for a pending `resume` on `id`, or
    /// null when the claim failed (`Engine::cluster_resume`).
    #[wasm_bindgen(js_name = clusterResume)]
    pub fn cluster_resume(&mut self, id: f64, state: Option<String>, now: f64) -> Result<JsValue, JsError> {
        let (id, now) = (conn(id)?, integer(now, "now")?);
        self.engine.cluster_resume(id, state.as_deref(), now).map_err(js_err)?;
        Ok(self.batch(None))
    }

    /// Cluster mode: this engine's own members of `room`, as stored.
    #[wasm_bindgen(js_name = clusterLocalMembers)]
    pub fn cluster_local_members(&self, room: &str) -> Vec<String> {
        self.engine.cluster_local_members(room)
    }

    /// Cluster mode: a message of the store's objects channel (an ordered
    /// object change, a node's providers, a realm event; see the Rust
    /// `Engine::cluster_objects_apply`).
    #[wasm_bindgen(js_name = clusterObjectsApply)]
    pub fn cluster_objects_apply(&mut self, message: &str, now: f64) -> Result<JsValue, JsError> {
        self.engine.cluster_objects_apply(message, integer(now, "now")?).map_err(js_err)?;
        Ok(self.batch(None))
    }

    /// Cluster mode: the store's whole `realm` (`Engine::cluster_realm_snapshot`).
    #[wasm_bindgen(js_name = clusterRealmSnapshot)]
    pub fn cluster_realm_snapshot(&mut self, realm: &str, snapshot: &str, now: f64) -> Result<JsValue, JsError> {
        self.engine.cluster_realm_snapshot(realm, snapshot, integer(now, "now")?).map_err(js_err)?;
        Ok(self.batch(None))
    }

    /// Cluster mode: every node's providers (`Engine::cluster_providers_snapshot`).
    #[wasm_bindgen(js_name = clusterProvidersSnapshot)]
    pub fn cluster_providers_snapshot(&mut self, snapshot: &str, now: f64) -> Result<JsValue, JsError> {
        self.engine.cluster_providers_snapshot(snapshot, integer(now, "now")?).map_err(js_err)?;
        Ok(self.batch(None))
    }

    /// Cluster mode: this node's provider set, as stored.
    #[wasm_bindgen(js_name = clusterLocalProviders)]
    pub fn cluster_local_providers(&self) -> String {
        self.engine.cluster_local_providers()
    }

    /// Cluster mode: the store's epoch of `realm` as last applied here, or undefined.
    #[wasm_bindgen(js_name = clusterRealmEpoch)]
    pub fn cluster_realm_epoch(&self, realm: &str) -> Option<f64> {
        self.engine.cluster_realm_epoch(realm).map(|e| e as f64)
    }

    /// Cluster mode: realms holding objects here.
    #[wasm_bindgen(js_name = clusterRealms)]
    pub fn cluster_realms(&self) -> Vec<String> {
        self.engine.cluster_realms()
    }

    /// Cluster mode: the objects of `realm` here, as pairs id, data text.
    #[wasm_bindgen(js_name = clusterRealmObjects)]
    pub fn cluster_realm_objects(&self, realm: &str) -> Vec<String> {
        self.engine.cluster_realm_objects(realm)
    }

    /// Members; one of another node (cluster mode) has `connection: null`.
    pub fn members(&self, room: &str) -> Result<JsValue, JsError> {
        let members: Vec<JsMember> = self.engine.members(room).into_iter().map(JsMember::from).collect();
        to_js(&members)
    }

    /// Clients; connections of other nodes (cluster mode) are `null`.
    pub fn clients(&self, room: &str) -> Result<JsValue, JsError> {
        let clients: Vec<JsClient> = self
            .engine
            .clients(room)
            .into_iter()
            .map(|c| JsClient { client_id: c.client_id, connections: c.connections.into_iter().map(local).collect() })
            .collect();
        to_js(&clients)
    }

    #[wasm_bindgen(js_name = roomCounts)]
    pub fn room_counts(&self, room: &str) -> Result<JsValue, JsError> {
        to_js(&self.engine.room_counts(room))
    }

    #[wasm_bindgen(js_name = connectionCount)]
    pub fn connection_count(&self) -> usize {
        self.engine.connection_count()
    }

    #[wasm_bindgen(js_name = roomNames)]
    pub fn room_names(&self) -> Vec<String> {
        self.engine.room_names()
    }

    /// One object `{ id, data (JSON text), connectionStatus, providers }`, or null.
    pub fn object(&self, realm: &str, id: &str) -> Result<JsValue, JsError> {
        to_js(&self.engine.object(realm, id))
    }

    /// Objects of `realm` matching `pattern`, sorted by id.
    pub fn objects(&mut self, realm: &str, pattern: &str) -> Result<JsValue, JsError> {
        to_js(&self.engine.objects(realm, pattern).map_err(js_err)?)
    }

    #[wasm_bindgen(js_name = realmNames)]
    pub fn realm_names(&self) -> Vec<String> {
        self.engine.realm_names()
    }

    #[wasm_bindgen(js_name = nextWake)]
    pub fn next_wake(&self) -> Option<f64> {
        self.engine.poll_timeout().map(|t| t as f64)
    }

    /// Drains the engine into one JS object. Each send's recipients cross as
    /// one Float64Array (a single copy) rather than a JS array built number
    /// by number: fan-out to thousands costs one memcpy, not thousands of calls.
    ///
    /// Infallible, since it runs after the engine changed: setting a key on
    /// a fresh plain object cannot fail, and the serialised parts hold only
    /// strings and numbers the engine keeps within 2^53 - 1 (connection ids
    /// checked by `conn`, times clamped to `MAX_TIME`, snapshots refused
    /// otherwise), which serde-wasm-bindgen always converts.
    fn batch(&mut self, recipients: Option<usize>) -> JsValue {
        let mut batch = Batch { recipients, ..Batch::default() };
        let sends = js_sys::Array::new();
        let (to_key, payload_key) = (JsValue::from_str("to"), JsValue::from_str("payload"));
        let mut ids: Vec<f64> = Vec::new();
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Send(t) => {
                    ids.clear();
                    ids.extend(t.to.iter().map(|c| c.0 as f64));
                    let send = js_sys::Object::new();
                    let _ = js_sys::Reflect::set(&send, &to_key, &js_sys::Float64Array::from(&ids[..]));
                    let _ = js_sys::Reflect::set(&send, &payload_key, &JsValue::from_str(&t.payload));
                    sends.push(&send);
                }
                Output::Close(c) => batch.closes.push(c),
                Output::Event(e) => batch.events.push(e),
            }
        }
        batch.wake_at = self.engine.poll_timeout().map(|t| t as f64);
        let out = to_js(&batch).unwrap_or_else(|_| js_sys::Object::new().into());
        let _ = js_sys::Reflect::set(&out, &JsValue::from_str("sends"), &sends);
        if self.engine.is_tracking_changes() {
            let _ = js_sys::Reflect::set(&out, &JsValue::from_str("changes"), &self.changes());
        }
        out
    }

    /// `[{ key, kind, connection?, lost?, value: Uint8Array | null }]`.
    fn changes(&mut self) -> js_sys::Array {
        let out = js_sys::Array::new();
        for change in self.engine.take_changes() {
            let c = js_sys::Object::new();
            let set = |k: &str, v: &JsValue| {
                let _ = js_sys::Reflect::set(&c, &JsValue::from_str(k), v);
            };
            set("key", &JsValue::from_str(&change.key));
            let kind = match change.kind {
                RecordKind::Meta => "meta",
                RecordKind::Connection { id, lost } => {
                    set("connection", &JsValue::from_f64(id.0 as f64));
                    set("lost", &JsValue::from_bool(lost));
                    "connection"
                }
                RecordKind::Room => "room",
                RecordKind::Object => "object",
            };
            set("kind", &JsValue::from_str(kind));
            let value = change.value.map_or(JsValue::NULL, |v| js_sys::Uint8Array::from(&v[..]).into());
            set("value", &value);
            out.push(&c);
        }
        out
    }
}
