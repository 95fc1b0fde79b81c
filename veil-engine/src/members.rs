//! The member names of the object being read, and what the rules decided
//! for each (its schema node and its automaton states), kept for the next
//! object read in the same place.
//!
//! The streaming sanitizer (`crate::stream`) reads and writes these
//! tables; each endpoint's sanitizer (`crate::sanitize`) keeps the ones its
//! passes leave ([`Layouts`]). So they are a module of their own, which
//! both use.
//!
//! A page's objects of one kind repeat the same members in the same order
//! (every message of a `value[]` has the same forty names). So [`Members`]
//! keeps the last object's members, and while the next object's names match
//! them one for one, each decision is taken from there: no schema lookup,
//! no automaton step, and no duplicate check (names equal to the last
//! object's are distinct, as they were there). At the first name that
//! differs, the object goes on the slow way: the names so far are this
//! object's, and the rest is decided and checked one by one, as it comes.
//! Measured with the proxy bench (40 messages a page, 16 requests at a
//! time): Veil's CPU time per request fell 11 % (0.321 → 0.287 ms).

use std::hash::BuildHasher;
use std::ops::Range;
use std::sync::Mutex;

use foldhash::HashSet;

use crate::jsonpath::State;

/// The schema node a value is filtered by, and the filter's depth there.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sch {
    Off,
    Node(usize, usize),
}

/// The rules' decision for one member: its schema node (`None`: not
/// declared, skipped) and, when kept, the automaton states of its value.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// Where the name ends in [`Members::names`].
    end: usize,
    /// The name was written without escapes (so it holds no quote,
    /// backslash or control character): a name in the body matches it
    /// when its bytes are the same ([`Members::exact`]).
    plain: bool,
    pub child: Option<Sch>,
    next: Range<usize>,
    matched: Range<usize>,
}

/// The members of one object (see the module documentation), kept per
/// place: where the object's members are filtered by one schema node at
/// one filter depth, or at one depth when no schema node filters them.
/// (Keyed by the node alone, a message's `from`, read at one depth, and its
/// `toRecipients` elements, one deeper, took turns in one place, and each
/// found the other's members: a 40-message Sent Items page had 271 names
/// decided the slow way. Keyed by both, it has 40: the page's own and the
/// first message's.)
#[derive(Default)]
pub(crate) struct Members {
    /// The object the members belong to: its schema node and depth, and
    /// the automaton states it was read with. Decisions are reused only for
    /// an object read with the same.
    context: Option<(usize, usize)>,
    states: Vec<State>,
    /// All names, one after another.
    names: String,
    list: Vec<Member>,
    /// The members' automaton states, one after another.
    next: Vec<State>,
    matched: Vec<u32>,
    /// Hashes of the first `hashed` names, once there are many.
    hashes: HashSet<u64>,
    hashed: usize,
    hasher: foldhash::fast::RandomState,
}

/// More names than this are compared by hash, not one by one.
const LINEAR: usize = 32;

impl Members {
    /// Starts an object. Returns whether the kept members were read in the
    /// same place (then they predict this object's); if not, they are
    /// dropped.
    pub(crate) fn start(&mut self, context: Option<(usize, usize)>, states: &[State]) -> bool {
        if self.context == context && self.states == states {
            return true;
        }
        self.context = context;
        self.states.clear();
        self.states.extend_from_slice(states);
        self.truncate(0);
        false
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// The `i`-th name.
    #[inline]
    pub(crate) fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.list[i - 1].end };
        &self.names[start..self.list[i].end]
    }

    /// The `i`-th name when it may be matched byte for byte (see
    /// [`Member::plain`]).
    #[inline]
    pub(crate) fn exact(&self, i: usize) -> Option<&str> {
        self.list[i].plain.then(|| self.name(i))
    }

    /// The `i`-th member's decision.
    pub(crate) fn get(&self, i: usize) -> (&Member, &[State], &[u32]) {
        let m = &self.list[i];
        (
            m,
            &self.next[m.next.clone()],
            &self.matched[m.matched.clone()],
        )
    }

    /// Keeps the first `n` members only.
    pub(crate) fn truncate(&mut self, n: usize) {
        if n >= self.list.len() {
            return;
        }
        match n.checked_sub(1).map(|i| &self.list[i]) {
            Some(last) => {
                self.names.truncate(last.end);
                self.next.truncate(last.next.end);
                self.matched.truncate(last.matched.end);
            }
            None => {
                self.names.clear();
                self.next.clear();
                self.matched.clear();
            }
        }
        self.list.truncate(n);
        if self.hashed > n {
            self.hashes.clear();
            self.hashed = 0;
        }
    }

    /// Whether `key` is among the names.
    pub(crate) fn contains(&mut self, key: &str) -> bool {
        let n = self.list.len();
        if n < LINEAR {
            return (0..n).any(|i| self.name(i) == key);
        }
        while self.hashed < n {
            let h = self.hasher.hash_one(self.name(self.hashed).as_bytes());
            self.hashes.insert(h);
            self.hashed += 1;
        }
        self.hashes.contains(&self.hasher.hash_one(key.as_bytes()))
            && (0..n).any(|i| self.name(i) == key)
    }

    /// Adds a member and the rules' decision for it. `plain`: the name was
    /// written without escapes.
    pub(crate) fn push(
        &mut self,
        key: &str,
        plain: bool,
        child: Option<Sch>,
        next: &[State],
        matched: &[u32],
    ) {
        self.names.push_str(key);
        let n = self.next.len();
        self.next.extend_from_slice(next);
        let m = self.matched.len();
        self.matched.extend_from_slice(matched);
        self.list.push(Member {
            end: self.names.len(),
            plain,
            child,
            next: n..self.next.len(),
            matched: m..self.matched.len(),
        });
    }
}

/// What one pass learned of its endpoint's objects (the member tables per
/// place), and its buffers per depth.
#[derive(Default)]
pub(crate) struct Layout {
    /// Per schema node, per filter depth.
    pub by_node: Vec<Vec<Option<Box<Members>>>>,
    /// Per depth, where no schema node filters the members.
    pub by_depth: Vec<Option<Box<Members>>>,
    /// Per depth of an array: the automaton states and matched paths of
    /// its elements.
    pub bufs: Vec<(Vec<State>, Vec<u32>)>,
    /// A member's automaton states and matched paths, as they are decided.
    pub scratch: (Vec<State>, Vec<u32>),
}

impl Layout {
    /// The names the tables hold, counted in bytes and members.
    fn size(&self) -> (usize, usize) {
        let all = self.by_node.iter().flatten().chain(&self.by_depth);
        all.flatten()
            .fold((0, 0), |(b, n), m| (b + m.names.len(), n + m.list.len()))
    }
}

/// The layouts of an endpoint's passes that ended, for the next passes
/// over the same endpoint's responses.
///
/// Every page of an endpoint has objects of the same kinds, so the next
/// page's first message is decided from the last page's, and the tables
/// and buffers are not allocated again. Each pass takes a layout and gives
/// it back when it ends, so passes running at once never share one. The
/// decisions are the rules' for this endpoint alone (its schema nodes and
/// automaton states), and each is reused only for an object read with the
/// same ones ([`Members::start`]).
///
/// What is kept: member names and the rules' decisions, never a value.
/// Bounded: at most [`KEPT`] layouts, each only while its names are under
/// [`KEPT_NAMES`] members and [`KEPT_BYTES`] bytes (a response with
/// thousands of distinct names is not remembered).
///
/// Measured with `callgrind` on `veil sanitize` of the proxy bench's
/// 40-message page, whose second pass takes the first pass's layout: that
/// pass's instructions fell 2 % (1.976M → 1.935M), and a pass allocates no
/// tables.
#[derive(Default)]
pub(crate) struct Layouts(Mutex<Vec<Layout>>);

/// Layouts kept per endpoint: more than the passes that run at once on a
/// host with a few cores.
const KEPT: usize = 16;
/// Most member names a kept layout holds ...
const KEPT_NAMES: usize = 4096;
/// ... and most bytes of names.
const KEPT_BYTES: usize = 64 * 1024;

impl std::fmt::Debug for Layouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|v| v.len()).unwrap_or(0);
        write!(f, "Layouts({n} kept)")
    }
}

impl Layouts {
    /// A layout left by an earlier pass, or an empty one.
    pub(crate) fn take(&self) -> Layout {
        let kept = self.0.lock().ok().and_then(|mut v| v.pop());
        kept.unwrap_or_default()
    }

    /// Keeps a layout for a later pass, within the bounds.
    pub(crate) fn put(&self, layout: Layout) {
        let (bytes, names) = layout.size();
        if bytes > KEPT_BYTES || names > KEPT_NAMES {
            return;
        }
        if let Ok(mut v) = self.0.lock() {
            if v.len() < KEPT {
                v.push(layout);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(names: usize, len: usize) -> Layout {
        let mut m = Members::default();
        for i in 0..names {
            m.push(&format!("{i:0len$}"), true, None, &[], &[]);
        }
        Layout {
            by_depth: vec![None, Some(Box::new(m))],
            ..Layout::default()
        }
    }

    fn kept(l: &Layouts) -> usize {
        l.0.lock().unwrap().len()
    }

    #[test]
    fn layouts_are_kept_within_bounds() {
        let l = Layouts::default();
        // Within bounds: kept, and the next pass gets it back.
        l.put(layout(3, 4));
        assert_eq!(kept(&l), 1);
        let back = l.take();
        assert_eq!(back.size(), (12, 3));
        assert_eq!(kept(&l), 0);
        // Nothing kept: an empty layout.
        assert_eq!(l.take().size(), (0, 0));
        // Too many names, or too many bytes of names: not kept.
        l.put(layout(KEPT_NAMES + 1, 1));
        l.put(layout(2, KEPT_BYTES / 2 + 1));
        assert_eq!(kept(&l), 0);
        l.put(layout(KEPT_NAMES, 1));
        l.put(layout(2, KEPT_BYTES / 2));
        assert_eq!(kept(&l), 2);
        // At most KEPT layouts.
        for _ in 0..KEPT * 2 {
            l.put(Layout::default());
        }
        assert_eq!(kept(&l), KEPT);
    }
}
