//! Id patterns: `/`-separated paths where `*` matches within one segment,
//! `**` across segments and `?` one character; everything else is literal.
//!
//! Patterns are compiled once (through globset, with `literal_separator`)
//! and shared: a [`PatternCache`] hands out the same compiled pattern for
//! the same source text.

use std::fmt;
use std::sync::Arc;

use globset::{GlobBuilder, GlobMatcher};

use crate::cache::SharedCache;

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// The pattern as given (cut to 64 characters).
    pub pattern: String,
    pub kind: PatternErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternErrorKind {
    Empty,
    TooLong {
        max: usize,
    },
    /// More wildcard characters (`*`, `?`) than allowed.
    TooComplex {
        max: usize,
    },
    Invalid(String),
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            PatternErrorKind::Empty => write!(f, "pattern is empty"),
            PatternErrorKind::TooLong { max } => {
                write!(f, "pattern {:?} is longer than {max} bytes", self.pattern)
            }
            PatternErrorKind::TooComplex { max } => {
                write!(f, "pattern {:?} has more than {max} wildcards (`*`, `?`)", self.pattern)
            }
            PatternErrorKind::Invalid(why) => write!(f, "pattern {:?} is invalid: {why}", self.pattern),
        }
    }
}

impl std::error::Error for PatternError {}

#[derive(Debug)]
enum Matcher {
    /// No wildcard: plain string equality.
    Literal,
    /// `**`: every id.
    Everything,
    /// `<literal>*`, the commonest shape (`riders/*`): the literal, then one
    /// segment's rest. Decided without a glob, which costs ~50 us to build
    /// and up to ~265 KB once matched against varied ids.
    Segment,
    /// `<literal>/**` (`riders/**`): everything under the literal.
    Under,
    Glob(GlobMatcher),
}

/// A compiled pattern.
#[derive(Debug)]
pub struct Pattern {
    source: Box<str>,
    matcher: Matcher,
}

impl Pattern {
    /// Compiles `source`; refuses empty patterns and ones longer than `max_len` bytes.
    pub fn compile(source: &str, max_len: usize) -> Result<Pattern, PatternError> {
        Pattern::compile_limited(source, max_len, usize::MAX)
    }

    /// Like [`Pattern::compile`], and also refuses a glob with more than
    /// `max_wildcards` wildcard characters (`*` and `?`; `**` counts two).
    /// `**` alone and literal patterns run no glob and always pass. The
    /// count bounds a glob's matching cost: a `*` followed by n `?` (as in
    /// `*a???…`) makes globset's lazy DFA hold up to 2^n states, and past
    /// its cache it falls back to a search ~1,000× slower per id.
    pub fn compile_limited(source: &str, max_len: usize, max_wildcards: usize) -> Result<Pattern, PatternError> {
        let err = |kind| PatternError { pattern: source.chars().take(64).collect(), kind };
        if source.is_empty() {
            return Err(err(PatternErrorKind::Empty));
        }
        if source.len() > max_len {
            return Err(err(PatternErrorKind::TooLong { max: max_len }));
        }
        let matcher = if source == "**" {
            Matcher::Everything
        } else if !source.contains(['*', '?']) {
            Matcher::Literal
        } else if source.chars().filter(|c| matches!(c, '*' | '?')).count() > max_wildcards {
            return Err(err(PatternErrorKind::TooComplex { max: max_wildcards }));
        } else if source.strip_suffix('*').is_some_and(|prefix| !prefix.contains(['*', '?'])) {
            Matcher::Segment
        } else if source.strip_suffix("/**").is_some_and(|prefix| !prefix.contains(['*', '?'])) {
            Matcher::Under
        } else {
            let glob = GlobBuilder::new(&escape_literals(source))
                .literal_separator(true)
                .backslash_escape(false)
                .build()
                .map_err(|e| err(PatternErrorKind::Invalid(e.kind().to_string())))?;
            Matcher::Glob(glob.compile_matcher())
        };
        Ok(Pattern { source: source.into(), matcher })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The part before the first wildcard: every id the pattern matches
    /// starts with it (used to scan sorted ids by range).
    pub fn literal_prefix(&self) -> &str {
        match &self.matcher {
            Matcher::Everything => "",
            _ => self.source.split(['*', '?']).next().unwrap_or(""),
        }
    }

    /// Whether the pattern has no wildcard at all.
    pub fn is_literal(&self) -> bool {
        matches!(self.matcher, Matcher::Literal)
    }

    pub fn matches(&self, id: &str) -> bool {
        match &self.matcher {
            Matcher::Literal => *self.source == *id,
            Matcher::Everything => true,
            Matcher::Segment => {
                let prefix = &self.source[..self.source.len() - 1];
                id.strip_prefix(prefix).is_some_and(|rest| !rest.contains('/'))
            }
            Matcher::Under => id.starts_with(&self.source[..self.source.len() - 2]),
            Matcher::Glob(g) => g.is_match(id),
        }
    }
}

/// Whether `source` compiles to a glob (a regex with its caches) rather
/// than `**`, a literal or `<literal>*`, which match without one.
pub(crate) fn is_glob(source: &str) -> bool {
    let literal = |prefix: &str| !prefix.contains(['*', '?']);
    source != "**"
        && source.contains(['*', '?'])
        && !source.strip_suffix('*').is_some_and(literal)
        && !source.strip_suffix("/**").is_some_and(literal)
}

/// Keeps `*` and `?` as wildcards and makes every other glob meta-character
/// (`[`, `]`, `{`, `}`) literal.
fn escape_literals(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + 8);
    for c in source.chars() {
        match c {
            '[' | ']' | '{' | '}' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// Hands out one shared compiled [`Pattern`] per source text (bounded).
#[derive(Debug)]
pub struct PatternCache {
    max_len: usize,
    max_wildcards: usize,
    patterns: SharedCache<String, Pattern>,
}

impl PatternCache {
    pub fn new(max_len: usize, capacity: usize) -> Self {
        PatternCache { max_len, max_wildcards: usize::MAX, patterns: SharedCache::new(capacity) }
    }

    /// Refuse globs with more than `max` wildcards (see [`Pattern::compile_limited`]).
    pub fn with_max_wildcards(mut self, max: usize) -> Self {
        self.max_wildcards = max;
        self
    }

    pub fn get(&mut self, source: &str) -> Result<Arc<Pattern>, PatternError> {
        let (max_len, max_wildcards) = (self.max_len, self.max_wildcards);
        self.patterns.get_or_try_insert(source, || Pattern::compile_limited(source, max_len, max_wildcards))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, id: &str) -> bool {
        Pattern::compile(p, 256).unwrap().matches(id)
    }

    #[test]
    fn star_stays_within_a_segment() {
        assert!(m("deliveryRiders/*", "deliveryRiders/john"));
        assert!(!m("deliveryRiders/*", "deliveryRiders/cyclists/john"));
        assert!(!m("deliveryRiders/*", "deliveryRiders"));
    }

    #[test]
    fn trailing_stars_decide_as_the_glob_does() {
        let glob = |p: &str| {
            GlobBuilder::new(&escape_literals(p)).literal_separator(true).backslash_escape(false).build().unwrap()
        };
        for p in ["*", "a/*", "a*", "a/b*", "[x]/*", "a/", "a/**", "a/b/**", "/**", "[x]/**"] {
            let (fast, slow) = (Pattern::compile(p, 256).unwrap(), glob(p).compile_matcher());
            for id in ["", "a", "a/", "a/b", "a/b/c", "ab", "a/bc", "b", "[x]/y", "[x]/y/z", "x/y", "/", "a//", "/a"] {
                assert_eq!(fast.matches(id), slow.is_match(id), "{p:?} on {id:?}");
            }
        }
    }

    #[test]
    fn globs_decide_as_globset_does() {
        for p in ["a/**/c", "**/x", "a/**", "room-?", "*a??", "a*b*c", "[x]/?*", "{a,b}/*?", "a/*/c"] {
            let theirs = GlobBuilder::new(&escape_literals(p))
                .literal_separator(true)
                .backslash_escape(false)
                .build()
                .unwrap()
                .compile_matcher();
            let ours = Pattern::compile(p, 256).unwrap();
            for id in
                ["a/c", "a/b/c", "a/b/b/c", "x", "a/x", "room-1", "room-", "zab", "abc", "aXbYc", "[x]/yz", "{a,b}/q"]
            {
                assert_eq!(ours.matches(id), theirs.is_match(id), "{p:?} on {id:?}");
            }
        }
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(m("deliveryRiders/**", "deliveryRiders/cyclists/john"));
        assert!(m("**", "anything/at/all"));
        assert!(m("a/**/z", "a/b/c/z"));
    }

    #[test]
    fn question_mark_is_one_character_and_brackets_are_literal() {
        assert!(m("room-?", "room-1"));
        assert!(!m("room-?", "room-12"));
        assert!(m("a[1]/*", "a[1]/x"));
        assert!(!m("a[1]/*", "a1/x"));
        assert!(m("{a,b}*", "{a,b}c"));
        assert!(m("lit\\eral", "lit\\eral"));
    }

    #[test]
    fn refuses_empty_and_long_patterns() {
        assert_eq!(Pattern::compile("", 8).unwrap_err().kind, PatternErrorKind::Empty);
        assert!(matches!(Pattern::compile("123456789", 8).unwrap_err().kind, PatternErrorKind::TooLong { max: 8 }));
    }

    #[test]
    fn refuses_globs_with_too_many_wildcards() {
        assert!(Pattern::compile_limited("a/*?", 256, 2).is_ok());
        assert_eq!(
            Pattern::compile_limited("a/**?", 256, 2).unwrap_err().kind,
            PatternErrorKind::TooComplex { max: 2 }
        );
        // `**` alone and literals run no glob.
        assert!(Pattern::compile_limited("**", 256, 0).is_ok());
        assert!(Pattern::compile_limited("a/b", 256, 0).is_ok());
        let mut c = PatternCache::new(64, 4).with_max_wildcards(1);
        assert!(c.get("x/*").is_ok());
        assert!(c.get("x/*?").is_err());
    }

    #[test]
    fn cache_shares_compiled_patterns() {
        let mut c = PatternCache::new(64, 4);
        let a = c.get("x/*").unwrap();
        let b = c.get("x/*").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
