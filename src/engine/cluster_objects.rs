//! Objects across nodes (cluster mode): realms' objects, realm events and
//! data providers, shared through the store as rooms' presence sets are
//! (see cluster.rs).
//!
//! - **Objects** are replicated whole on every node (a node answers
//!   `object.get`, `object.list` and subscribe snapshots at once, from its
//!   copy). A local `object.create` / `update` / `delete` is checked and
//!   acked here, then ordered by the store ([`HostEvent::ClusterObject`])
//!   and applied on every node, this one included, from
//!   [`Engine::cluster_objects_apply`]: each node sends the change to its
//!   own subscribers, filtered by their read rights. The store orders each
//!   realm's changes (an epoch and a `seq`, as a room's); a gap or another
//!   epoch asks for the realm's snapshot ([`HostEvent::ClusterRealmResync`],
//!   [`Engine::cluster_realm_snapshot`]), which is applied as the creates,
//!   updates and deletes that make this copy equal to it.
//! - **Providers**: each node tells the store the union of its live
//!   connections' `dpv` patterns, per realm ([`HostEvent::ClusterProviders`],
//!   when it changes), never per-object status. Every node counts another
//!   node whose patterns match an object as one provider; so each node
//!   computes every object's `connectionStatus` alike and tells its own
//!   subscribers (`status` changes, `connectionStatusChanged`). A node that
//!   dies is removed from the providers by the reaper: its objects turn
//!   `disconnected` everywhere, once per subscriber.
//! - **Realm events** published here go to the other nodes
//!   ([`HostEvent::ClusterRealmPublish`]), whose subscribers get them with
//!   the same permission filtering; not numbered (at most once).
//!
//! Wire formats (JSON text written by the engine, or by the store's
//! scripts in the same shape):
//!
//! - object change: `{"r":realm,"e":epoch,"s":seq,"op":"create"|"update"|"delete"|"resync","t":ms,"id":id,"d":data|null}`
//!   (`op: "resync"` carries no id: re-read the realm)
//! - realm snapshot: `{"e":epoch,"s":seq,"o":[[id,data|null], ...]}`
//! - providers of a node: `{"n":node,"v":version,"p":{realm:[pattern, ...]}|null}`
//!   (a higher `v` replaces a lower; `p: null`: the node is gone)
//! - providers snapshot: `{"at":version,"p":[providers of a node, ...]}`
//!   (a node not in it whose known `v` is below `at` is gone)
//! - realm event: `{"r":realm,"n":node,"ev":event,"id":id|null,"f":frame}`

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::cluster::remote_key;
use super::realm::Object;
use super::{budget, ConnectionId, Engine, HostEvent};
use crate::auth::permissions::{self, ProviderClaim, Provides};
use crate::error::Error;
use crate::time::Millis;

/// Changes held per realm while waiting for a snapshot.
const MAX_HELD: usize = 4096;

/// The cluster state of objects and providers (empty on a single node).
#[derive(Debug, Default)]
pub(crate) struct ObjectsSync {
    realms: HashMap<String, RealmSync>,
    /// Other nodes' provider sets.
    remote: HashMap<String, RemoteProviders>,
    /// This node's own `dpv` patterns: realm key -> pattern -> live
    /// connections that hold it.
    local: BTreeMap<String, BTreeMap<String, usize>>,
}

#[derive(Debug, Default)]
struct RealmSync {
    epoch: Option<u64>,
    seq: u64,
    asked: bool,
    held: BTreeMap<u64, ObjectChange>,
}

#[derive(Debug)]
struct RemoteProviders {
    key: ConnectionId,
    version: u64,
    provides: Option<Arc<Provides>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Create,
    Update,
    Delete,
    Resync,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectChange {
    r: String,
    e: u64,
    s: u64,
    op: Op,
    #[serde(default)]
    t: Option<Millis>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    d: Option<Box<RawValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeProviders {
    n: String,
    v: u64,
    #[serde(default)]
    p: Option<ProviderClaim>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvidersSnapshot {
    at: u64,
    p: Vec<NodeProviders>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RealmEvent<'a> {
    #[serde(borrow)]
    r: Cow<'a, str>,
    #[serde(borrow)]
    n: Cow<'a, str>,
    #[serde(borrow)]
    ev: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    f: &'a RawValue,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RealmSnapshot {
    e: u64,
    s: u64,
    o: Vec<(String, Option<Box<RawValue>>)>,
}

fn bad(what: &str, e: impl std::fmt::Display) -> Error {
    Error::InvalidJson(format!("cluster {what}: {e}"))
}

fn data_text(d: Option<&RawValue>) -> Option<String> {
    d.map(|d| d.get().to_string())
}

impl Engine {
    fn require_cluster(&self, call: &str) -> Result<(), Error> {
        match self.config.cluster {
            Some(_) => Ok(()),
            None => Err(Error::InvalidName(format!("{call} needs the `cluster` option"))),
        }
    }

    /// A local object change for the store to order.
    pub(super) fn replicate_object(&mut self, realm: &str, op: &'static str, id: &str, data: Option<&RawValue>) {
        let (realm, id, data_text) = (realm.to_string(), id.to_string(), data_text(data));
        self.event(HostEvent::ClusterObject { realm, op, id, data_text });
    }

    /// A realm event sent here goes to the other nodes too.
    pub(super) fn replicate_realm_event(&mut self, realm: &str, event: &str, id: Option<&str>, frame: &str) {
        let Some(node) = self.cluster_node() else { return };
        // The frame is the engine's own JSON: it parses.
        let Ok(f) = serde_json::from_str::<&RawValue>(frame) else { return };
        let Ok(message) = serde_json::to_string(&RealmEvent {
            r: realm.into(),
            n: node.into(),
            ev: event.into(),
            id: id.map(Cow::from),
            f,
        }) else {
            return;
        };
        self.event(HostEvent::ClusterRealmPublish { realm: realm.to_string(), message });
    }

    /// Counts a local connection's provider patterns in or out of this
    /// node's set, and tells the store the set if a pattern came or went
    /// (most connections share patterns: then nothing is said).
    pub(super) fn count_local_provides(&mut self, old: Option<&Provides>, new: Option<&Provides>) {
        if self.config.cluster.is_none() {
            return;
        }
        let local = &mut self.objects_sync.local;
        let mut changed = false;
        // The new ones first: a pattern both hold never drops to zero.
        for (key, pattern) in new.into_iter().flat_map(Provides::entries) {
            let n = local.entry(key.to_string()).or_default().entry(pattern.as_str().to_string()).or_default();
            changed |= *n == 0;
            *n += 1;
        }
        for (key, pattern) in old.into_iter().flat_map(Provides::entries) {
            let Some(patterns) = local.get_mut(key) else { continue };
            if let Some(n) = patterns.get_mut(pattern.as_str()) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    patterns.remove(pattern.as_str());
                    changed = true;
                }
            }
            if patterns.is_empty() {
                local.remove(key);
            }
        }
        if changed {
            let providers = self.cluster_local_providers();
            self.event(HostEvent::ClusterProviders { providers });
        }
    }

    /// This node's provider set, as the store holds it: `{realm: [pattern, ...]}`.
    pub fn cluster_local_providers(&self) -> String {
        let set: BTreeMap<&str, Vec<&str>> = self
            .objects_sync
            .local
            .iter()
            .map(|(realm, patterns)| (realm.as_str(), patterns.keys().map(String::as_str).collect()))
            .collect();
        // Strings only: serialising cannot fail.
        serde_json::to_string(&set).unwrap_or_else(|_| "{}".into())
    }

    /// The objects this node holds in `realm`, as pairs `id, data` (data
    /// as JSON text, empty for none), for a host that re-asserts them
    /// after the store lost its state.
    pub fn cluster_realm_objects(&self, realm: &str) -> Vec<String> {
        let Some(rm) = self.realms.get(realm) else { return Vec::new() };
        rm.objects
            .iter()
            .flat_map(|(id, o)| [id.clone(), o.data.as_ref().map_or_else(String::new, |d| d.get().to_string())])
            .collect()
    }

    /// The store's epoch of `realm` as this node last applied it (to
    /// re-assert only a realm the store lost), or `None`.
    pub fn cluster_realm_epoch(&self, realm: &str) -> Option<u64> {
        self.objects_sync.realms.get(realm).and_then(|s| s.epoch)
    }

    /// Realms that hold objects here (to re-assert them), sorted.
    pub fn cluster_realms(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.realms.iter().filter(|(_, rm)| !rm.objects.is_empty()).map(|(k, _)| k.clone()).collect();
        names.sort();
        names
    }

    /// A message of the store's objects channel (wire formats in the module
    /// docs): an object change the store ordered (from any node, this one
    /// included), another node's provider set, or a realm event another
    /// node published. `Err` only for text that is none of these (nothing
    /// changed).
    pub fn cluster_objects_apply(&mut self, message: &str, now: Millis) -> Result<(), Error> {
        self.require_cluster("cluster_objects_apply")?;
        // Three shapes with distinct required fields: the first that parses.
        match serde_json::from_str::<ObjectChange>(message) {
            Ok(change) => self.apply_object_message(change, now),
            Err(e) => {
                if let Ok(p) = serde_json::from_str::<NodeProviders>(message) {
                    return self.apply_providers(p, now);
                }
                let ev = serde_json::from_str::<RealmEvent<'_>>(message).map_err(|_| bad("objects message", e))?;
                self.apply_realm_event(&ev);
            }
        }
        Ok(())
    }

    fn apply_realm_event(&mut self, ev: &RealmEvent<'_>) {
        if self.cluster_node() == Some(&*ev.n) {
            return; // sent here already
        }
        let to = self.outputs.reachable(self.event_readers(&ev.r, &ev.ev, ev.id.as_deref()));
        self.send(to, ev.f.get().to_string());
    }

    fn apply_object_message(&mut self, change: ObjectChange, now: Millis) {
        let realm = change.r.clone();
        if change.op == Op::Resync {
            self.ask_realm_resync(&realm);
            return;
        }
        let sync = self.objects_sync.realms.entry(realm.clone()).or_default();
        let next = match sync.epoch {
            Some(e) if e == change.e && change.s <= sync.seq => return,
            Some(e) => e == change.e && change.s == sync.seq.saturating_add(1),
            // A realm first heard of by its first change: nothing came before.
            None => change.s == 1,
        };
        if !next {
            if sync.held.len() < MAX_HELD {
                sync.held.insert(change.s, change);
            }
            return self.ask_realm_resync(&realm);
        }
        sync.epoch = Some(change.e);
        self.apply_object_change(change, now);
        self.apply_held_objects(&realm, now);
    }

    fn ask_realm_resync(&mut self, realm: &str) {
        let sync = self.objects_sync.realms.entry(realm.to_string()).or_default();
        if !sync.asked {
            sync.asked = true;
            self.event(HostEvent::ClusterRealmResync { realm: realm.to_string() });
        }
    }

    fn apply_held_objects(&mut self, realm: &str, now: Millis) {
        loop {
            let Some(sync) = self.objects_sync.realms.get_mut(realm) else { return };
            let next = sync.seq.saturating_add(1);
            sync.held.retain(|s, _| *s >= next);
            let Some(first) = sync.held.keys().next().copied() else { return };
            if first != next {
                return self.ask_realm_resync(realm);
            }
            let Some(change) = sync.held.remove(&first) else { return };
            if Some(change.e) != sync.epoch {
                return self.ask_realm_resync(realm);
            }
            self.apply_object_change(change, now);
        }
    }

    /// Applies one change that is next in the realm's order.
    fn apply_object_change(&mut self, change: ObjectChange, now: Millis) {
        if let Some(sync) = self.objects_sync.realms.get_mut(&change.r) {
            sync.seq = change.s;
        }
        let Some(id) = change.id else { return };
        let at = change.t.unwrap_or(now);
        match change.op {
            Op::Create | Op::Update => self.put_object(&change.r, &id, change.d, at),
            Op::Delete => self.remove_object(&change.r, &id, at),
            Op::Resync => {}
        }
    }

    /// Creates or updates an object in this node's copy, with its event.
    fn put_object(&mut self, realm: &str, id: &str, data: Option<Box<RawValue>>, at: Millis) {
        let new_len = data.as_ref().map_or(0, |d| d.get().len());
        let existing = self.realms.get_mut(realm).and_then(|rm| rm.objects.get_mut(id));
        let event = match existing {
            Some(object) => {
                if object.data.as_deref().map(RawValue::get) == data.as_deref().map(RawValue::get) {
                    return;
                }
                let old_len = object.data.as_ref().map_or(0, |d| d.get().len());
                object.data = data;
                self.charge(new_len, old_len);
                "update"
            }
            None => {
                let providers = self.providers.count(realm, id);
                // Ordered by the store: not refused by this node's limits.
                let rm = self.realms.entry(realm.to_string()).or_default();
                rm.objects.insert(id.to_string(), Object { data, providers });
                self.charge(budget::entry_bytes(id.len() + new_len), 0);
                "create"
            }
        };
        self.dirty_object(realm, id);
        self.emit_object_change(realm, id, event, at);
    }

    fn remove_object(&mut self, realm: &str, id: &str, at: Millis) {
        if !self.realms.get(realm).is_some_and(|rm| rm.objects.contains_key(id)) {
            return;
        }
        self.emit_object_change(realm, id, "delete", at);
        self.dirty_object(realm, id);
        if let Some(object) = self.realms.get_mut(realm).and_then(|rm| rm.objects.remove(id)) {
            self.charge(0, budget::entry_bytes(id.len() + object.data.map_or(0, |d| d.get().len())));
        }
        self.drop_realm_if_empty(realm);
    }

    /// The store's whole realm (wire format in the module docs): this
    /// node's copy is made equal to it, each difference sent to the
    /// realm's subscribers as the create, update or delete it is. Then
    /// held changes after it apply. An older snapshot (same epoch, lower
    /// seq) is ignored. `Err` only for text that is not a snapshot.
    pub fn cluster_realm_snapshot(&mut self, realm: &str, snapshot: &str, now: Millis) -> Result<(), Error> {
        self.require_cluster("cluster_realm_snapshot")?;
        let snap: RealmSnapshot = serde_json::from_str(snapshot).map_err(|e| bad("realm snapshot", e))?;
        let sync = self.objects_sync.realms.entry(realm.to_string()).or_default();
        sync.asked = false;
        if sync.epoch == Some(snap.e) && snap.s < sync.seq {
            self.apply_held_objects(realm, now);
            return Ok(());
        }
        sync.epoch = Some(snap.e);
        sync.seq = snap.s;
        sync.held.retain(|s, c| *s > snap.s && c.e == snap.e);
        let wanted: BTreeMap<String, Option<Box<RawValue>>> = snap.o.into_iter().collect();
        let gone: Vec<String> = self
            .realms
            .get(realm)
            .map_or_else(Vec::new, |rm| rm.objects.keys().filter(|id| !wanted.contains_key(*id)).cloned().collect());
        for id in gone {
            self.remove_object(realm, &id, now);
        }
        for (id, data) in wanted {
            self.put_object(realm, &id, data, now);
        }
        self.apply_held_objects(realm, now);
        Ok(())
    }

    fn apply_providers(&mut self, p: NodeProviders, now: Millis) -> Result<(), Error> {
        let provides = self.compile_node_providers(&p)?;
        self.set_remote_providers(p.n, p.v, provides, now);
        Ok(())
    }

    /// A node's claim, compiled (`None`: it provides nothing, or is gone).
    fn compile_node_providers(&mut self, p: &NodeProviders) -> Result<Option<Arc<Provides>>, Error> {
        match &p.p {
            Some(claim) if !claim.is_empty() => {
                let compiled = permissions::compile_provides(claim, &mut self.provides_cache, &mut self.patterns);
                compiled.map(Some).map_err(|e| bad("providers", e))
            }
            _ => Ok(None),
        }
    }

    /// Another node's provider set, if newer than the one known.
    fn set_remote_providers(&mut self, node: String, version: u64, provides: Option<Arc<Provides>>, now: Millis) {
        if self.cluster_node() == Some(node.as_str()) {
            return;
        }
        if self.objects_sync.remote.get(&node).is_some_and(|known| known.version >= version) {
            return;
        }
        let next_key = &mut self.remote_keys;
        let entry = self.objects_sync.remote.entry(node).or_insert_with(|| RemoteProviders {
            key: remote_key(next_key),
            version: 0,
            provides: None,
        });
        entry.version = version;
        let key = entry.key;
        let old = std::mem::replace(&mut entry.provides, provides.clone());
        self.replace_provider(key, old.as_deref(), provides.as_deref(), now);
    }

    /// Every node's provider set as the store holds it (wire format in the
    /// module docs): each replaces what this node knew of that node if it
    /// is newer; a node missing from it is gone. `Err` only for text that
    /// is not a providers snapshot, or holds a claim that does not compile
    /// (nothing changed).
    pub fn cluster_providers_snapshot(&mut self, snapshot: &str, now: Millis) -> Result<(), Error> {
        self.require_cluster("cluster_providers_snapshot")?;
        let snap: ProvidersSnapshot = serde_json::from_str(snapshot).map_err(|e| bad("providers snapshot", e))?;
        // Every claim compiles before anything changes.
        let mut listed = Vec::with_capacity(snap.p.len());
        for p in &snap.p {
            listed.push(self.compile_node_providers(p)?);
        }
        let names: BTreeSet<&str> = snap.p.iter().map(|p| p.n.as_str()).collect();
        let gone: Vec<String> = self
            .objects_sync
            .remote
            .iter()
            .filter(|(node, known)| {
                !names.contains(node.as_str()) && known.version < snap.at && known.provides.is_some()
            })
            .map(|(node, _)| node.clone())
            .collect();
        for n in gone {
            self.set_remote_providers(n, snap.at, None, now);
        }
        for (p, provides) in snap.p.into_iter().zip(listed) {
            self.set_remote_providers(p.n, p.v, provides, now);
        }
        Ok(())
    }
}
