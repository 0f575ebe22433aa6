//! Object presence (seed 000): realms of objects, CRUD as the `per` claim
//! allows, `connectionStatus` aggregated over every live data provider
//! (`dpv`), object subscriptions and realm events.
//!
//! Costs: an event is matched once per distinct subscriber pattern, and
//! read permission is decided once per distinct permission set (equal
//! claims share one compiled set); a provider connecting scans only the
//! objects under each of its patterns' literal prefixes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::value::RawValue;

use super::realm::{self, ConnectionStatus, Object, Realm};
use super::{budget, Engine, OpResult, Refusal};
use crate::auth::permissions::{Crud, Permissions, Provides};
use crate::engine::output::{ConnectionId, HostEvent};
use crate::error::ErrorCode;
use crate::protocol::reply::{self, AckBody, ObjectFrame};
use crate::time::{iso8601, Millis};

/// The realm event the engine publishes when an object's status changes.
pub const CONNECTION_STATUS_CHANGED: &str = "connectionStatusChanged";

/// A realm subscription a connection holds, to undo it when it goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RealmSub {
    pub realm: String,
    /// `None`: an object subscription; `Some(event)`: a realm event one.
    pub event: Option<String>,
    pub pattern: String,
}

/// One object, as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectInfo {
    pub id: String,
    /// JSON text.
    pub data: Option<String>,
    pub connection_status: ConnectionStatus,
    /// How many live connections provide for it.
    pub providers: u32,
}

fn frame<'a>(id: &'a str, o: &'a Object) -> ObjectFrame<'a> {
    ObjectFrame { id, data: o.data.as_deref(), connection_status: o.status().as_str() }
}

fn forbidden(what: &str, realm: &str, id: &str) -> Refusal {
    Refusal(ErrorCode::Forbidden, format!("no {what} right on {id:?} in realm {realm:?}"))
}

impl Engine {
    pub(super) fn permissions(&self, conn: ConnectionId) -> Arc<Permissions> {
        self.connections
            .get(&conn)
            .map(|c| Arc::clone(&c.permissions))
            .unwrap_or_else(|| Arc::clone(&self.no_permissions))
    }

    /// Refuses with FORBIDDEN unless the connection holds `right` on `id`.
    fn require(&self, conn: ConnectionId, realm: &str, id: &str, right: Crud, what: &str) -> OpResult {
        if self.permissions(conn).allows(realm, id, right) {
            Ok(())
        } else {
            Err(forbidden(what, realm, id))
        }
    }

    fn object_data_ok(&self, data: Option<&RawValue>) -> OpResult {
        let max = self.config.limits.max_object_data_bytes;
        let size = data.map_or(0, |d| d.get().len());
        if size > max {
            return Err(Refusal(
                ErrorCode::ObjectDataTooLarge,
                format!("object data of {size} bytes is over the limit of {max}"),
            ));
        }
        Ok(())
    }

    /// Refuses with TOO_MANY_REALMS if `name` is new and the realm limit is reached.
    fn realm_allowed(&self, name: &str) -> OpResult {
        let max = self.config.limits.max_realms;
        if !self.realms.contains_key(name) && self.realms.len() >= max {
            return Err(Refusal(ErrorCode::TooManyRealms, format!("the engine holds {max} realms")));
        }
        Ok(())
    }

    /// The realm, created if the realm limit allows.
    fn realm_mut(&mut self, name: &str) -> Result<&mut Realm, Refusal> {
        self.realm_allowed(name)?;
        Ok(self.realms.entry(name.to_string()).or_default())
    }

    pub(super) fn drop_realm_if_empty(&mut self, name: &str) {
        if self.realms.get(name).is_some_and(Realm::is_empty) {
            self.realms.remove(name);
        }
    }

    pub(super) fn object_create(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        realm: &str,
        id: String,
        data: Option<&RawValue>,
        now: Millis,
    ) -> OpResult {
        self.require(conn, realm, &id, Crud::CREATE, "create (C)")?;
        self.object_data_ok(data)?;
        let max = self.config.limits.max_objects_per_realm;
        let providers = self.providers.count(realm, &id);
        // Checked before the realm is created: a refused frame changes nothing.
        let existing = self.realms.get(realm);
        if existing.is_some_and(|rm| rm.objects.contains_key(&id)) {
            return Err(Refusal(ErrorCode::ObjectExists, format!("{id:?} already exists in realm {realm:?}")));
        }
        if existing.map_or(0, |rm| rm.objects.len()) >= max {
            return Err(Refusal(ErrorCode::RealmFull, format!("realm {realm:?} holds {max} objects")));
        }
        let cost = budget::entry_bytes(id.len() + data.map_or(0, |d| d.get().len()));
        self.budget_allows(cost, 0)?;
        if self.config.cluster.is_some() {
            // Ordered by the store, applied on every node (cluster_objects.rs).
            self.realm_allowed(realm)?;
            self.ack(conn, r, "object.create", AckBody::default());
            self.replicate_object(realm, "create", &id, data);
            return Ok(());
        }
        let rm = self.realm_mut(realm)?;
        rm.objects.insert(id.clone(), Object { data: data.map(RawValue::to_owned), providers });
        self.dirty_object(realm, &id);
        self.charge(cost, 0);
        self.ack(conn, r, "object.create", AckBody::default());
        self.emit_object_change(realm, &id, "create", now);
        Ok(())
    }

    pub(super) fn object_update(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        realm: &str,
        id: String,
        data: Option<&RawValue>,
        now: Millis,
    ) -> OpResult {
        self.require(conn, realm, &id, Crud::UPDATE, "update (U)")?;
        self.object_data_ok(data)?;
        let old = self.realms.get(realm).and_then(|rm| rm.objects.get(&id)).ok_or_else(|| not_found(realm, &id))?;
        let (new_len, old_len) = (data.map_or(0, |d| d.get().len()), old.data.as_ref().map_or(0, |d| d.get().len()));
        self.budget_allows(new_len, old_len)?;
        if self.config.cluster.is_some() {
            self.ack(conn, r, "object.update", AckBody::default());
            self.replicate_object(realm, "update", &id, data);
            return Ok(());
        }
        if let Some(object) = self.realms.get_mut(realm).and_then(|rm| rm.objects.get_mut(&id)) {
            object.data = data.map(RawValue::to_owned);
        }
        self.dirty_object(realm, &id);
        self.charge(new_len, old_len);
        self.ack(conn, r, "object.update", AckBody::default());
        self.emit_object_change(realm, &id, "update", now);
        Ok(())
    }

    pub(super) fn object_delete(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        realm: &str,
        id: String,
        now: Millis,
    ) -> OpResult {
        self.require(conn, realm, &id, Crud::DELETE, "delete (D)")?;
        // Sent from the object as it was, to the subscribers who could see it.
        if !self.realms.get(realm).is_some_and(|rm| rm.objects.contains_key(&id)) {
            return Err(not_found(realm, &id));
        }
        self.ack(conn, r, "object.delete", AckBody::default());
        if self.config.cluster.is_some() {
            self.replicate_object(realm, "delete", &id, None);
            return Ok(());
        }
        self.emit_object_change(realm, &id, "delete", now);
        self.dirty_object(realm, &id);
        if let Some(object) = self.realms.get_mut(realm).and_then(|rm| rm.objects.remove(&id)) {
            self.charge(0, budget::entry_bytes(id.len() + object.data.map_or(0, |d| d.get().len())));
        }
        self.drop_realm_if_empty(realm);
        Ok(())
    }

    pub(super) fn object_get(&mut self, conn: ConnectionId, r: Option<&RawValue>, realm: &str, id: &str) -> OpResult {
        // Read right first, so that existence does not leak.
        self.require(conn, realm, id, Crud::READ, "read (R)")?;
        let object = self.realms.get(realm).and_then(|rm| rm.objects.get(id)).ok_or_else(|| not_found(realm, id))?;
        let payload = reply::ack(r, "object.get", AckBody { object: Some(frame(id, object)), ..AckBody::default() });
        self.send(vec![conn], payload);
        Ok(())
    }

    /// `object.list` and the snapshot of `object.subscribe`: every matching
    /// object the connection may read.
    fn readable_objects(&mut self, conn: ConnectionId, realm: &str, pattern: &str) -> Result<Vec<String>, Refusal> {
        let perms = self.permissions(conn);
        if !perms.allows_somewhere(realm, Crud::READ) {
            return Err(Refusal(ErrorCode::Forbidden, format!("no read (R) right in realm {realm:?}")));
        }
        let pattern = self.compile_pattern(pattern)?;
        let Some(rm) = self.realms.get(realm) else { return Ok(Vec::new()) };
        Ok(rm
            .matching(&pattern)
            .filter(|(id, _)| perms.allows(realm, id, Crud::READ))
            .map(|(id, _)| id.clone())
            .collect())
    }

    fn objects_ack(&mut self, conn: ConnectionId, r: Option<&RawValue>, op: &str, realm: &str, ids: &[String]) {
        let objects = self
            .realms
            .get(realm)
            .map_or_else(Vec::new, |rm| ids.iter().filter_map(|id| rm.objects.get(id).map(|o| frame(id, o))).collect());
        let payload = reply::ack(r, op, AckBody { objects: Some(objects), ..AckBody::default() });
        self.send(vec![conn], payload);
    }

    pub(super) fn object_list(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        realm: &str,
        pattern: Option<&str>,
    ) -> OpResult {
        let ids = self.readable_objects(conn, realm, pattern.unwrap_or("**"))?;
        self.objects_ack(conn, r, "object.list", realm, &ids);
        Ok(())
    }

    fn compile_pattern(&mut self, pattern: &str) -> Result<Arc<crate::pattern::Pattern>, Refusal> {
        self.patterns.get(pattern).map_err(|e| {
            let code = match e.kind {
                crate::pattern::PatternErrorKind::TooComplex { .. } => ErrorCode::PatternTooComplex,
                _ => ErrorCode::BadRequest,
            };
            Refusal(code, e.to_string())
        })
    }

    /// Object subscriptions (`event: None`) and realm event subscriptions.
    /// The ack of an object subscription carries the matching objects;
    /// every later change follows it, in order.
    pub(super) fn realm_subscribe(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        realm: &str,
        event: Option<String>,
        pattern: Option<String>,
    ) -> OpResult {
        let pattern = pattern.unwrap_or_else(|| "**".into());
        let snapshot = match event {
            None => Some(self.readable_objects(conn, realm, &pattern)?),
            Some(_) => {
                if !self.permissions(conn).allows_somewhere(realm, Crud::READ) {
                    return Err(Refusal(ErrorCode::Forbidden, format!("no read (R) right in realm {realm:?}")));
                }
                None
            }
        };
        self.add_realm_sub(conn, RealmSub { realm: realm.to_string(), event, pattern })?;
        match snapshot {
            Some(ids) => self.objects_ack(conn, r, "object.subscribe", realm, &ids),
            None => self.ack(conn, r, "realm.subscribe", AckBody::default()),
        }
        Ok(())
    }

    /// Adds a realm subscription the connection may hold (its read right
    /// was checked), within the budget and the subscription limit; one it
    /// holds already is a no-op.
    pub(super) fn add_realm_sub(&mut self, conn: ConnectionId, sub: RealmSub) -> OpResult {
        let compiled = self.compile_pattern(&sub.pattern)?;
        if self.connections.get(&conn).is_some_and(|c| c.realm_subs.contains(&sub)) {
            return Ok(());
        }
        let glob = crate::pattern::is_glob(&sub.pattern);
        self.subscription_fits(conn, glob)?;
        let rm = self.realm_mut(&sub.realm)?;
        let groups = match &sub.event {
            None => &mut rm.object_subs,
            Some(e) => rm.event_subs.entry(e.clone()).or_default(),
        };
        realm::watch(groups, compiled, conn);
        if let Some(c) = self.connections.get_mut(&conn) {
            c.subscriptions += 1;
            c.glob_subscriptions += usize::from(glob);
            c.realm_subs.insert(sub);
        }
        Ok(())
    }

    pub(super) fn realm_unsubscribe(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        realm: &str,
        event: Option<String>,
        pattern: Option<String>,
    ) -> OpResult {
        let op = if event.is_none() { "object.unsubscribe" } else { "realm.unsubscribe" };
        let sub = RealmSub { realm: realm.to_string(), event, pattern: pattern.unwrap_or_else(|| "**".into()) };
        self.drop_realm_sub(conn, &sub);
        self.ack(conn, r, op, AckBody::default());
        Ok(())
    }

    fn drop_realm_sub(&mut self, conn: ConnectionId, sub: &RealmSub) {
        let Some(c) = self.connections.get_mut(&conn) else { return };
        if !c.realm_subs.remove(sub) {
            return;
        }
        c.glob_subscriptions = c.glob_subscriptions.saturating_sub(usize::from(crate::pattern::is_glob(&sub.pattern)));
        c.subscriptions = c.subscriptions.saturating_sub(1);
        if let Some(rm) = self.realms.get_mut(&sub.realm) {
            match &sub.event {
                None => {
                    realm::unwatch(&mut rm.object_subs, &sub.pattern, conn);
                }
                Some(event) => {
                    if let Some(groups) = rm.event_subs.get_mut(event) {
                        realm::unwatch(groups, &sub.pattern, conn);
                        if groups.is_empty() {
                            rm.event_subs.remove(event);
                        }
                    }
                }
            }
        }
        self.drop_realm_if_empty(&sub.realm);
    }

    /// Drops every realm subscription of a connection that is going.
    pub(super) fn drop_all_realm_subs(&mut self, conn: ConnectionId) {
        let subs: Vec<RealmSub> =
            self.connections.get(&conn).map(|c| c.realm_subs.iter().cloned().collect()).unwrap_or_default();
        for sub in subs {
            self.drop_realm_sub(conn, &sub);
        }
    }

    // The request's fields, as the dispatcher took them apart.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn realm_publish(
        &mut self,
        conn: ConnectionId,
        r: Option<&RawValue>,
        realm: &str,
        event: &str,
        id: Option<&str>,
        data: Option<&RawValue>,
        now: Millis,
    ) -> OpResult {
        if event == CONNECTION_STATUS_CHANGED {
            return Err(Refusal(
                ErrorCode::Forbidden,
                format!("{CONNECTION_STATUS_CHANGED} is published by the engine only"),
            ));
        }
        let perms = self.permissions(conn);
        let allowed = match id {
            Some(id) => perms.allows(realm, id, Crud::UPDATE),
            None => perms.allows_somewhere(realm, Crud::UPDATE),
        };
        if !allowed {
            return Err(Refusal(ErrorCode::Forbidden, format!("no update (U) right to publish in realm {realm:?}")));
        }
        let Some(c) = self.connections.get(&conn) else { return Ok(()) };
        let from = (Arc::clone(&c.presence_id), c.client_id.clone());
        let payload = reply::realm_event(realm, event, &iso8601(now), id, Some((&from.0, from.1.as_deref())), data);
        let to = self.outputs.reachable(self.event_readers(realm, event, id));
        let body = AckBody { recipients: Some(to.len()), ..AckBody::default() };
        self.ack(conn, r, "realm.publish", body);
        self.replicate_realm_event(realm, event, id, &payload);
        self.send(to, payload);
        Ok(())
    }

    /// Subscribers of realm `event` (by name or `*`) whose pattern matches
    /// `id` and who may read it.
    pub(super) fn event_readers(&self, realm: &str, event: &str, id: Option<&str>) -> Vec<ConnectionId> {
        let Some(rm) = self.realms.get(realm) else { return Vec::new() };
        let mut candidates = Vec::new();
        for name in [event, "*"] {
            if let Some(groups) = rm.event_subs.get(name) {
                realm::watchers_of(groups, id, &mut candidates);
            }
        }
        self.readers(realm, id, realm::sorted_unique(candidates))
    }

    /// Keeps the candidates that may read `id` (or, with no id, read
    /// anything in the realm), deciding once per distinct permission set.
    fn readers(&self, realm: &str, id: Option<&str>, candidates: Vec<ConnectionId>) -> Vec<ConnectionId> {
        let mut decided: HashMap<*const Permissions, bool> = HashMap::new();
        // Neighbours often share a permission set: check the last one first.
        let mut last: Option<(*const Permissions, bool)> = None;
        let mut out = candidates;
        out.retain(|conn| {
            let Some(c) = self.connections.get(conn) else { return false };
            let ptr = Arc::as_ptr(&c.permissions);
            if let Some((p, verdict)) = last {
                if p == ptr {
                    return verdict;
                }
            }
            let verdict = *decided.entry(ptr).or_insert_with(|| match id {
                Some(id) => c.permissions.allows(realm, id, Crud::READ),
                None => c.permissions.allows_somewhere(realm, Crud::READ),
            });
            last = Some((ptr, verdict));
            verdict
        });
        out
    }

    /// Sends an object's change to its readers among the object subscribers.
    pub(super) fn emit_object_change(&mut self, realm: &str, id: &str, event: &str, now: Millis) {
        let Some(rm) = self.realms.get(realm) else { return };
        let Some(object) = rm.objects.get(id) else { return };
        let mut candidates = Vec::new();
        realm::watchers_of(&rm.object_subs, Some(id), &mut candidates);
        let to = self.readers(realm, Some(id), realm::sorted_unique(candidates));
        if !to.is_empty() {
            let payload = reply::object(realm, event, &iso8601(now), frame(id, object));
            self.send(to, payload);
        }
    }

    /// Replaces what a connection provides for (`None` when it goes), and
    /// turns the objects whose last provider went `disconnected`, and those
    /// that gained their first `connected`, publishing each change.
    pub(super) fn set_provides(&mut self, conn: ConnectionId, provides: Option<Arc<Provides>>, now: Millis) {
        let Some(c) = self.connections.get_mut(&conn) else { return };
        let old = std::mem::replace(&mut c.provides, provides.clone());
        if let (Some(a), Some(b)) = (&old, &provides) {
            if Arc::ptr_eq(a, b) {
                return;
            }
        }
        self.count_local_provides(old.as_deref(), provides.as_deref());
        self.replace_provider(conn, old.as_deref(), provides.as_deref(), now);
    }

    /// Replaces what provider `key` (a local connection, or another node in
    /// cluster mode) provides for, publishing each object's status change.
    pub(super) fn replace_provider(
        &mut self,
        key: ConnectionId,
        old: Option<&Provides>,
        provides: Option<&Provides>,
        now: Millis,
    ) {
        let before = old.map(|p| self.provided(p)).unwrap_or_default();
        let after = provides.map(|p| self.provided(p)).unwrap_or_default();
        if let Some(p) = old {
            self.providers.remove(key, p);
        }
        if let Some(p) = provides {
            self.providers.insert(key, p);
        }
        let mut changed = Vec::new();
        for (key, delta) in
            before.difference(&after).map(|k| (k, -1i64)).chain(after.difference(&before).map(|k| (k, 1)))
        {
            let (realm, id) = key;
            let Some(object) = self.realms.get_mut(realm).and_then(|rm| rm.objects.get_mut(id)) else { continue };
            if let Some(d) = self.changes.as_mut() {
                d.touch_object(realm, id);
            }
            let was = object.status();
            object.providers =
                if delta > 0 { object.providers.saturating_add(1) } else { object.providers.saturating_sub(1) };
            if object.status() != was {
                changed.push(key.clone());
            }
        }
        for (realm, id) in changed {
            self.emit_status_change(&realm, &id, now);
        }
    }

    /// Every existing object a provider set covers, by (realm, id).
    fn provided(&self, provides: &Provides) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        let (named, any) = provides.realms();
        let realms: Vec<&String> = if any {
            self.realms.keys().collect()
        } else {
            named.iter().filter_map(|n| self.realms.get_key_value(*n).map(|(k, _)| k)).collect()
        };
        for realm in realms {
            let rm = &self.realms[realm];
            for pattern in provides.patterns_in(realm) {
                out.extend(rm.matching(pattern).map(|(id, _)| (realm.clone(), id.clone())));
            }
        }
        out
    }

    /// An object's status changed: object subscribers get a `status`
    /// change, `connectionStatusChanged` subscribers the realm event, the
    /// host an event; each only where the receiver may read the object.
    fn emit_status_change(&mut self, realm: &str, id: &str, now: Millis) {
        self.emit_object_change(realm, id, "status", now);
        let Some(status) = self.realms.get(realm).and_then(|rm| rm.objects.get(id)).map(Object::status) else { return };
        let to = self.event_readers(realm, CONNECTION_STATUS_CHANGED, Some(id));
        if !to.is_empty() {
            let data = format!(r#"{{"connectionStatus":"{}"}}"#, status.as_str());
            // The text above is valid JSON by construction.
            let data: Option<&RawValue> = serde_json::from_str(&data).ok();
            let payload = reply::realm_event(realm, CONNECTION_STATUS_CHANGED, &iso8601(now), Some(id), None, data);
            self.send(to, payload);
        }
        self.event(HostEvent::ObjectStatusChanged { realm: realm.to_string(), id: id.to_string(), status });
    }

    // ---- host queries -------------------------------------------------

    /// One object, or `None`.
    pub fn object(&self, realm: &str, id: &str) -> Option<ObjectInfo> {
        let o = self.realms.get(realm)?.objects.get(id)?;
        Some(ObjectInfo {
            id: id.to_string(),
            data: o.data.as_ref().map(|d| d.get().to_string()),
            connection_status: o.status(),
            providers: o.providers,
        })
    }

    /// Objects of `realm` matching `pattern` (all with `**`), sorted by id.
    pub fn objects(&mut self, realm: &str, pattern: &str) -> Result<Vec<ObjectInfo>, crate::Error> {
        let pattern = self.patterns.get(pattern).map_err(|e| crate::Error::InvalidName(e.to_string()))?;
        let Some(rm) = self.realms.get(realm) else { return Ok(Vec::new()) };
        Ok(rm
            .matching(&pattern)
            .map(|(id, o)| ObjectInfo {
                id: id.clone(),
                data: o.data.as_ref().map(|d| d.get().to_string()),
                connection_status: o.status(),
                providers: o.providers,
            })
            .collect())
    }

    /// Realms that hold objects or subscriptions, sorted.
    pub fn realm_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.realms.keys().cloned().collect();
        names.sort();
        names
    }
}

fn not_found(realm: &str, id: &str) -> Refusal {
    Refusal(ErrorCode::ObjectNotFound, format!("no object {id:?} in realm {realm:?}"))
}
