//! Rooms and presence sets (seed 002): joining and leaving rooms, the
//! presence set with its per-connection and per-clientId views, presence
//! subscriptions with their snapshot, and plain pub/sub of named events.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::value::RawValue;

use super::connection::JoinedRoom;
use super::room::{Member, PresenceSub, Room, Upsert};
use super::sequence::Replayed;
use super::{
    budget, unknown_connection, ClientInfo, ConnectionId, Engine, HostEvent, MemberInfo, OpResult, Output, Refusal,
    RoomCounts, Transmit,
};
use crate::auth::RoomAction;
use crate::error::{Error, ErrorCode};
use crate::protocol::reply::{self, AckBody, ClientFrame, MemberFrame, PresenceEvent};
use crate::protocol::request::{self, EventMask, PresenceKind, View};
use crate::time::{iso8601, Millis};

impl Engine {
    // ---- host queries and actions -------------------------------------

    /// Members of `room`'s presence set, one per connection, by connection id.
    pub fn members(&self, room: &str) -> Vec<MemberInfo> {
        let Some(r) = self.rooms.get(room) else { return Vec::new() };
        r.members
            .iter()
            .map(|(conn, m)| MemberInfo {
                connection: *conn,
                id: m.id.to_string(),
                client_id: m.client_id.to_string(),
                data: m.data.as_ref().map(|d| d.get().to_string()),
                in_grace: r.in_grace.contains(conn),
            })
            .collect()
    }

    /// The per-clientId view of `room`'s presence set, by clientId.
    pub fn clients(&self, room: &str) -> Vec<ClientInfo> {
        let Some(r) = self.rooms.get(room) else { return Vec::new() };
        r.clients
            .iter()
            .map(|(client_id, conns)| ClientInfo {
                client_id: client_id.to_string(),
                connections: conns.iter().copied().collect(),
            })
            .collect()
    }

    /// Counts for `room` without building member lists (zeros if unknown).
    pub fn room_counts(&self, room: &str) -> RoomCounts {
        self.rooms.get(room).map_or(RoomCounts::default(), |r| RoomCounts {
            connections: r.joined.len(),
            members: r.members.len(),
            clients: r.clients.len(),
            in_grace: r.in_grace.len(),
        })
    }

    /// Rooms with at least one connection, sorted.
    pub fn room_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.rooms.keys().cloned().collect();
        names.sort();
        names
    }

    /// Publishes `event` into `room` as the server (`from: null`). `data` is
    /// JSON text. Returns how many connections it was sent to.
    pub fn publish(&mut self, room: &str, event: &str, data: Option<&str>, now: Millis) -> Result<usize, Error> {
        let max = self.config.limits.max_name_bytes;
        request::check_name(room, "room", max).map_err(Error::InvalidName)?;
        request::check_name(event, "event", max).map_err(Error::InvalidName)?;
        if event == "*" {
            // As for clients (BAD_REQUEST): `*` means "every event" to subscribers.
            return Err(Error::InvalidName("`*` cannot be published as an event name".into()));
        }
        let data: Option<&RawValue> = match data {
            Some(text) => Some(serde_json::from_str(text).map_err(|e| Error::InvalidJson(e.to_string()))?),
            None => None,
        };
        let payload = reply::message(room, event, &iso8601(now), None, data);
        self.replicate_publish(room, event, &payload);
        let Some(r) = self.rooms.get(room) else { return Ok(0) };
        let to = self.outputs.reachable(r.event_recipients(event));
        let n = to.len();
        self.send(to, payload);
        Ok(n)
    }

    // ---- client operations --------------------------------------------

    pub(super) fn presence_get(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        room: &str,
        view: View,
    ) -> OpResult {
        self.joined(conn, room)?;
        self.flush_room(room); // the snapshot holds nothing still to be sent
        let rm = self.rooms.get(room).ok_or_else(not_joined)?;
        let payload = reply::ack(r, "presence.get", snapshot(rm, view, self.room_epoch(rm)));
        self.send(vec![conn], payload);
        Ok(())
    }

    pub(super) fn room_join(&mut self, conn: ConnectionId, r: Option<&RawValue>, room: String) -> OpResult {
        let max_rooms = self.config.limits.max_rooms_per_connection;
        let c = self.conn(conn)?;
        if !c.rooms.contains_key(&room) {
            let actions = c.grants().map(|g| g.actions_for(&room)).unwrap_or_default();
            if !actions.allows(RoomAction::Subscribe) {
                return Err(Refusal(ErrorCode::Forbidden, format!("not allowed to join room {room:?}")));
            }
            if c.rooms.len() >= max_rooms {
                return Err(Refusal(ErrorCode::TooManyRooms, format!("at most {max_rooms} rooms per connection")));
            }
            self.budget_allows_room(&room)?;
            let c = self.conn(conn)?;
            c.rooms.insert(room.clone(), JoinedRoom { actions, subscriptions: 0 });
            let flush_ms = self.flush_interval_for(&room);
            let rm = self.rooms.entry(room.clone()).or_insert_with(|| Room { flush_ms, ..Room::default() });
            let first = rm.joined.is_empty();
            rm.joined.insert(conn);
            if first && self.config.cluster.is_some() {
                self.event(HostEvent::ClusterWatch { room: room.clone() });
            }
            self.event(HostEvent::RoomJoined { connection: conn, room });
        }
        self.ack(conn, r, "room.join", AckBody::default());
        Ok(())
    }

    /// Leaves `room`: drops the connection's subscriptions there first (it
    /// does not need its own leave), then its presence, then the room.
    pub(super) fn leave_room(&mut self, conn: ConnectionId, room: &str, now: Millis) {
        let Some(r) = self.rooms.get_mut(room) else { return };
        let dropped = r.unsubscribe_all(conn);
        self.remove_presence(conn, room, now);
        if let Some(r) = self.rooms.get_mut(room) {
            r.joined.remove(&conn);
            if r.is_empty() {
                let due = self.rooms.remove(room).and_then(|r| r.window.due);
                self.forget_window(room, due);
                self.dirty_room(room);
                if self.config.cluster.is_some() {
                    self.event(HostEvent::ClusterUnwatch { room: room.to_string() });
                }
            }
        }
        if let Some(c) = self.connections.get_mut(&conn) {
            c.rooms.remove(room);
            c.subscriptions = c.subscriptions.saturating_sub(dropped);
        }
        self.event(HostEvent::RoomLeft { connection: conn, room: room.to_string() });
    }

    /// `presence.join` and `presence.update`: both upsert. Joining twice is
    /// an update; an update before a join joins.
    pub(super) fn presence_set(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        op: &str,
        room: &str,
        data: Option<&RawValue>,
        now: Millis,
    ) -> OpResult {
        let limits = &self.config.limits;
        let joined = self.joined(conn, room)?;
        if !joined.actions.allows(RoomAction::Presence) {
            return Err(Refusal(ErrorCode::Forbidden, format!("not allowed to enter the presence set of {room:?}")));
        }
        let c = self.connections.get(&conn).ok_or_else(unknown_connection)?;
        let Some(client_id) = c.client_id.clone() else {
            return Err(Refusal(ErrorCode::NoClientId, "presence needs a clientId (`sub`)".into()));
        };
        let size = data.map_or(0, |d| d.get().len());
        if size > limits.max_presence_data_bytes {
            return Err(Refusal(
                ErrorCode::PresenceDataTooLarge,
                format!("presence data of {size} bytes is over the limit of {}", limits.max_presence_data_bytes),
            ));
        }
        let max_members = limits.max_members_per_room;
        if self.config.cluster.is_some() {
            return self.cluster_presence_set(conn, r, op, room, data);
        }
        let rm = self.rooms.get(room).ok_or_else(not_joined)?;
        let old = rm.members.get(&conn).map(|m| budget::entry_bytes(m.data.as_ref().map_or(0, |d| d.get().len())));
        if old.is_none() && rm.members.len() >= max_members {
            return Err(Refusal(ErrorCode::RoomFull, format!("room {room:?} holds {max_members} members")));
        }
        let (new, old) = (budget::entry_bytes(size), old.unwrap_or(0));
        self.budget_allows(new, old)?;
        let member = Member { id: Arc::clone(&c.presence_id), client_id, data: data.map(RawValue::to_owned) };
        let rm = self.rooms.get_mut(room).ok_or_else(not_joined)?;
        let upsert = rm.upsert(conn, member);
        self.charge(new, old);
        self.ack(conn, r, op, AckBody::default());
        let (kind, client_edge) = match upsert {
            Upsert::Joined { first_of_client } => (PresenceKind::Join, first_of_client),
            Upsert::Updated => (PresenceKind::Update, true),
        };
        self.dirty_room(room);
        if self.coalesces(room) {
            if let Some(member) = self.rooms.get(room).and_then(|rm| rm.members.get(&conn)) {
                let member = member.clone();
                self.queue_presence(room, conn, member, kind, client_edge, now);
            }
            return Ok(());
        }
        let (epoch, cap) = (self.epoch, self.config.replay_events);
        if let Some(rm) = self.rooms.get_mut(room) {
            let seq = rm.log.next();
            if let Some(member) = rm.members.get(&conn) {
                let kept =
                    emit_presence(&mut self.outputs, room, rm, conn, member, kind, client_edge, now, (epoch, seq));
                rm.log.keep_all(kept, cap);
            }
        }
        Ok(())
    }

    pub(super) fn remove_presence(&mut self, conn: ConnectionId, room: &str, now: Millis) {
        if self.config.cluster.is_some() {
            if let Some(data_len) = self.replicate_leave(conn, room) {
                self.charge(0, budget::entry_bytes(data_len));
            }
            return;
        }
        let Some(rm) = self.rooms.get_mut(room) else { return };
        let Some((member, last_of_client)) = rm.remove(conn) else { return };
        let coalesced = rm.flush_ms > 0;
        if let Some(d) = self.changes.as_mut() {
            d.touch_room(room);
        }
        if coalesced {
            let bytes = budget::entry_bytes(member.data.as_ref().map_or(0, |d| d.get().len()));
            self.queue_presence(room, conn, member, PresenceKind::Leave, last_of_client, now);
            self.charge(0, bytes);
            return;
        }
        let Some(rm) = self.rooms.get_mut(room) else { return };
        let (epoch, seq, cap) = (self.epoch, rm.log.next(), self.config.replay_events);
        let leave = PresenceKind::Leave;
        let kept = emit_presence(&mut self.outputs, room, rm, conn, &member, leave, last_of_client, now, (epoch, seq));
        rm.log.keep_all(kept, cap);
        self.charge(0, budget::entry_bytes(member.data.as_ref().map_or(0, |d| d.get().len())));
    }

    pub(super) fn presence_subscribe(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        room: &str,
        events: EventMask,
        view: View,
    ) -> OpResult {
        let already = self.rooms.get(room).is_some_and(|rm| rm.presence_subs.contains_key(&conn));
        self.count_subscription(conn, room, already)?;
        self.flush_room(room); // the snapshot holds nothing still to be sent
        let rm = self.rooms.get_mut(room).ok_or_else(not_joined)?;
        rm.presence_subs.insert(conn, PresenceSub { events, view });
        // The snapshot goes out before any later change: no gap, no duplicate.
        let epoch = rm.sync.epoch.unwrap_or(self.epoch);
        let payload = reply::ack(r, "presence.subscribe", snapshot(rm, view, epoch));
        self.send(vec![conn], payload);
        Ok(())
    }

    pub(super) fn subscribe(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        room: &str,
        event: String,
    ) -> OpResult {
        let already =
            self.rooms.get(room).is_some_and(|rm| rm.event_subs.get(&event).is_some_and(|s| s.contains(&conn)));
        self.count_subscription(conn, room, already)?;
        let rm = self.rooms.get_mut(room).ok_or_else(not_joined)?;
        rm.event_subs.entry(event).or_default().insert(conn);
        self.ack(conn, r, "subscribe", AckBody::default());
        Ok(())
    }

    /// Refuses one more subscription (a room's or a realm's, with a glob
    /// pattern or not) past `maxSubscriptionsPerConnection` or the budget.
    pub(super) fn subscription_fits(&self, conn: ConnectionId, glob: bool) -> OpResult {
        let max = self.config.limits.max_subscriptions_per_connection;
        if self.connections.get(&conn).map_or(0, |c| c.subscriptions) >= max {
            let message = format!("at most {max} subscriptions per connection");
            return Err(Refusal(ErrorCode::TooManySubscriptions, message));
        }
        self.budget_allows_subscription(glob)
    }

    /// Checks the room is joined and, for a new subscription, the limit;
    /// then counts it.
    pub(super) fn count_subscription(&mut self, conn: ConnectionId, room: &str, already: bool) -> OpResult {
        self.joined(conn, room)?;
        if already {
            return Ok(());
        }
        self.subscription_fits(conn, false)?;
        let c = self.conn(conn)?;
        c.subscriptions += 1;
        if let Some(j) = c.rooms.get_mut(room) {
            j.subscriptions += 1;
        }
        Ok(())
    }

    /// Drops a presence subscription (`event: None`) or an event subscription.
    pub(super) fn unsubscribe(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        op: &str,
        room: &str,
        event: Option<&str>,
    ) -> OpResult {
        self.joined(conn, room)?;
        let rm = self.rooms.get_mut(room).ok_or_else(not_joined)?;
        let removed = match event {
            None => rm.presence_subs.remove(&conn).is_some(),
            Some(event) => {
                let removed = rm.event_subs.get_mut(event).is_some_and(|s| s.remove(&conn));
                if rm.event_subs.get(event).is_some_and(BTreeSet::is_empty) {
                    rm.event_subs.remove(event);
                }
                removed
            }
        };
        if removed {
            let c = self.conn(conn)?;
            c.subscriptions = c.subscriptions.saturating_sub(1);
            if let Some(j) = c.rooms.get_mut(room) {
                j.subscriptions = j.subscriptions.saturating_sub(1);
            }
        }
        self.ack(conn, r, op, AckBody::default());
        Ok(())
    }

    pub(super) fn publish_from(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        room: &str,
        event: &str,
        data: Option<&RawValue>,
        now: Millis,
    ) -> OpResult {
        let joined = self.joined(conn, room)?;
        if !joined.actions.allows(RoomAction::Publish) {
            return Err(Refusal(ErrorCode::Forbidden, format!("not allowed to publish in room {room:?}")));
        }
        let c = self.connections.get(&conn).ok_or_else(unknown_connection)?;
        let to = self.rooms.get(room).map(|rm| rm.event_recipients(event)).unwrap_or_default();
        let to = self.outputs.reachable(to);
        let body = AckBody { recipients: Some(to.len()), ..AckBody::default() };
        let payload = reply::message(room, event, &iso8601(now), Some((&c.presence_id, c.client_id.as_deref())), data);
        self.ack(conn, r, "publish", body);
        self.replicate_publish(room, event, &payload);
        self.send(to, payload);
        Ok(())
    }
}

pub(super) fn not_joined() -> Refusal {
    Refusal(ErrorCode::RoomNotJoined, "join the room first (`room.join`)".into())
}

/// The presence set as an ack body, in the subscriber's view, at the
/// room's current `seq`. Members in grace are marked `inGrace`.
pub(super) fn snapshot(room: &Room, view: View, epoch: u64) -> AckBody<'_> {
    fn member<'a>(room: &'a Room, conn: &ConnectionId, m: &'a Member) -> MemberFrame<'a> {
        MemberFrame {
            id: &m.id,
            client_id: &m.client_id,
            data: m.data.as_deref(),
            in_grace: room.in_grace.contains(conn),
        }
    }
    let frame = |(conn, m)| member(room, conn, m);
    let (epoch, seq) = (Some(epoch), Some(room.log.seq));
    match view {
        View::Connection => {
            AckBody { members: Some(room.members.iter().map(frame).collect()), epoch, seq, ..AckBody::default() }
        }
        View::Client => AckBody {
            clients: Some(
                room.clients
                    .iter()
                    .map(|(client_id, conns)| ClientFrame {
                        client_id,
                        connections: conns.iter().filter_map(|c| room.members.get_key_value(c)).map(frame).collect(),
                    })
                    .collect(),
            ),
            epoch,
            seq,
            ..AckBody::default()
        },
    }
}

/// Sends one presence change (numbered `seq` in `epoch`) to its
/// subscribers, once per view, and tells the host. `client_edge`: the
/// change is also one for the per-client view (first connection of a
/// clientId in, last out, or any update). Returns the frames sent, for the
/// room's replay buffer.
#[allow(clippy::too_many_arguments)]
fn emit_presence(
    outputs: &mut super::output::OutputQueue,
    room_name: &str,
    room: &Room,
    conn: ConnectionId,
    member: &Member,
    kind: PresenceKind,
    client_edge: bool,
    now: Millis,
    numbered: (u64, u64),
) -> [Option<Replayed>; 2] {
    let kept = emit_frames(outputs, room_name, room, member, kind, client_edge, now, numbered);
    outputs.push_back(Output::Event(host_event(room_name, conn, member, kind)));
    kept
}

/// The frames of one presence change, to the room's subscribers in each
/// view it applies to (see `emit_presence`); returns them for replay.
#[allow(clippy::too_many_arguments)]
pub(super) fn emit_frames(
    outputs: &mut super::output::OutputQueue,
    room_name: &str,
    room: &Room,
    member: &Member,
    kind: PresenceKind,
    client_edge: bool,
    now: Millis,
    (epoch, seq): (u64, u64),
) -> [Option<Replayed>; 2] {
    let timestamp = iso8601(now);
    let mut kept = [None, None];
    for (i, (view, applies)) in [(View::Connection, true), (View::Client, client_edge)].into_iter().enumerate() {
        if !applies {
            continue;
        }
        let to = room.presence_recipients(kind, view);
        if to.is_empty() {
            continue;
        }
        let payload = reply::presence(&PresenceEvent {
            room: room_name,
            event: kind.as_str(),
            client_view: view == View::Client,
            timestamp: &timestamp,
            id: &member.id,
            client_id: &member.client_id,
            data: member.data.as_deref(),
            epoch,
            seq,
        });
        let payload: Arc<str> = payload.into();
        kept[i] = Some(Replayed { seq, kind, view, payload: Arc::clone(&payload) });
        outputs.push_back(Output::Send(Transmit { to, payload }));
    }
    kept
}

/// The host's event for one presence change.
pub(super) fn host_event(room: &str, conn: ConnectionId, member: &Member, kind: PresenceKind) -> HostEvent {
    let (room, client_id) = (room.to_string(), member.client_id.to_string());
    let data = member.data.as_ref().map(|d| d.get().to_string());
    match kind {
        PresenceKind::Join => HostEvent::PresenceJoined { room, connection: conn, client_id, data },
        PresenceKind::Update => HostEvent::PresenceUpdated { room, connection: conn, client_id, data },
        PresenceKind::Leave => HostEvent::PresenceLeft { room, connection: conn, client_id },
    }
}
