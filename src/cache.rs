//! A bounded map from a source (a pattern's text, a claim) to its compiled
//! form, shared through `Arc` by every connection with an equal source.
//! When full it starts over: entries still in use live on in their owners.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

#[derive(Debug)]
pub(crate) struct SharedCache<K, V> {
    capacity: usize,
    map: HashMap<K, Arc<V>>,
}

impl<K: Hash + Eq, V> SharedCache<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        SharedCache { capacity: capacity.max(1), map: HashMap::new() }
    }

    /// The compiled value for `key`, compiling it with `make` on a miss.
    pub(crate) fn get_or_try_insert<Q, E>(&mut self, key: &Q, make: impl FnOnce() -> Result<V, E>) -> Result<Arc<V>, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(v) = self.map.get(key) {
            return Ok(Arc::clone(v));
        }
        let v = Arc::new(make()?);
        if self.map.len() >= self.capacity {
            self.map.clear();
        }
        self.map.insert(key.to_owned(), Arc::clone(&v));
        Ok(v)
    }
}
