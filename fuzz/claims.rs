//! `per` and `dpv` claims of the fuzz harnesses' identity tables, and the
//! model's own answer to "does this claim provide for that object".

use std::collections::BTreeMap;

/// A `per` claim from (realm, pattern, letters) rows.
pub fn per_claim(rows: &[(&str, &str, &str)]) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut claim: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (realm, pattern, letters) in rows {
        claim.entry(realm.to_string()).or_default().insert(pattern.to_string(), letters.to_string());
    }
    claim
}

/// A `dpv` claim from (realm, pattern) rows.
pub fn dpv_claim(rows: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
    let mut claim: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (realm, pattern) in rows {
        claim.entry(realm.to_string()).or_default().push(pattern.to_string());
    }
    claim
}

/// Whether `pattern` (`**`, `*`, `<literal>*` or a literal: the forms the
/// harnesses' tables use) matches `id` as the engine's globs do (`*` never
/// crosses `/`).
pub fn dpv_matches(pattern: &str, id: &str) -> bool {
    if pattern == "**" {
        return true;
    }
    if pattern == "*" {
        return !id.contains('/');
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        assert!(!prefix.contains(['*', '?']), "harness: unsupported dpv pattern {pattern:?}");
        return id.strip_prefix(prefix).is_some_and(|rest| !rest.contains('/'));
    }
    assert!(!pattern.contains(['*', '?']), "harness: unsupported dpv pattern {pattern:?}");
    pattern == id
}

/// Whether a `dpv` claim provides for `id` in `realm`.
pub fn claim_provides(dpv: &BTreeMap<String, Vec<String>>, realm: &str, id: &str) -> bool {
    dpv.iter()
        .filter(|(key, _)| key.as_str() == "*" || key.as_str() == realm)
        .any(|(_, patterns)| patterns.iter().any(|p| dpv_matches(p, id)))
}
