//! # rollcall
//!
//! A sans-IO presence engine: rooms with presence sets, JWT-authenticated
//! permissions with glob patterns. The engine owns no socket, timer or
//! clock: the host feeds it socket events and the time, and carries out the
//! [`Output`]s it answers with.
//!
//! ## The run loop
//!
//! ```
//! use rollcall::{Config, ConnectionId, Credentials, Engine, Identity, Output};
//!
//! let mut engine = Engine::new(Config::default()).expect("default config is valid");
//! let now = 1_720_865_608_496; // ms since the epoch, from the host's clock
//! let alice = ConnectionId(1);
//! let identity = Identity { client_id: Some("alice".into()), ..Identity::default() };
//! engine.handle_open(alice, Credentials::Identity(identity), now).unwrap();
//! engine.handle_frame(alice, br#"{"op":"room.join","ref":1,"room":"lobby"}"#, now);
//! engine.handle_frame(alice, br#"{"op":"presence.join","ref":2,"room":"lobby","data":{"name":"Alice"}}"#, now);
//! while let Some(output) = engine.poll_output() {
//!     match output {
//!         Output::Send(t) => { /* send t.payload to each of t.to */ }
//!         Output::Close(c) => { /* close c.connection with c.code.code(), c.reason */ }
//!         Output::Event(e) => { /* react: who joined, left, was refused */ }
//!     }
//! }
//! // Wake the engine at this time (token expiries, auth time-outs):
//! if let Some(at) = engine.poll_timeout() { let _ = at; /* engine.handle_timeout(at) */ }
//! engine.handle_close(alice, now + 1000); // broadcasts `leave` for every presence set
//! assert_eq!(engine.room_counts("lobby").members, 0);
//! ```
//!
//! After every `handle_*` call, drain [`Engine::poll_output`] and re-arm one
//! timer at [`Engine::poll_timeout`].
//!
//! Coalesced presence (`Config.presence`, off by default): rooms with a
//! flush interval hold their presence events and send each subscriber one
//! frame per interval; the flushes are deadlines like any other, so the
//! same timer drives them ([`Engine::flush`] sends every open window now).
//!
//! Liveness: tell the engine of protocol pongs with [`Engine::handle_alive`]
//! (any frame counts too); a connection silent for `idle_timeout_ms` is
//! closed with 4010 and kept in its leave grace. A socket that drops without
//! a close frame is [`Engine::handle_lost`] (its members stay, silently,
//! for `leave_grace_ms`, and a new connection may `resume` it); a clean
//! close is [`Engine::handle_close`] (its members leave at once).
//!
//! ## Errors
//!
//! A client's mistakes are never `Err`s: they become error frames with a
//! stable [`ErrorCode`] (and, if they persist, a close with
//! [`CloseCode::PolicyViolation`]). `Err` ([`Error`]) means the host erred:
//! a bad configuration or a connection id used twice.
//!
//! ## Panics
//!
//! None on any input. Every limit is in [`Limits`], with its default.

pub mod auth;
mod cache;
pub mod config;
pub mod engine;
pub mod error;
pub mod pattern;
pub mod protocol;
pub mod rate;
pub mod time;

pub use auth::{AuthError, Identity, RoomAction};
pub use config::{Algorithm, AuthConfig, ClusterConfig, Config, JwtKey, Limits, PresenceConfig, RoomFlush};
pub use engine::persist::{Change, RecordKind, RECORD_VERSION};
pub use engine::snapshot::{SnapshotError, SNAPSHOT_VERSION};
pub use engine::{
    ClientInfo, Close, ConnectionId, ConnectionStatus, Credentials, Engine, HostEvent, MemberInfo, ObjectInfo, Output,
    RoomCounts, Transmit, CONNECTION_STATUS_CHANGED,
};
pub use error::{CloseCode, ConfigError, Error, ErrorCode};
pub use rate::RateLimit;
pub use time::Millis;
