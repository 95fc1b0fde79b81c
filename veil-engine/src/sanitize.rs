//! The sanitizer: applies an endpoint's `responseSchema` and transforms to a
//! JSON document.
//!
//! All JSONPaths of an endpoint are compiled into one [`PathSet`]; the
//! document is walked **once**, top-down. At each node the transforms whose
//! paths end there run in rule order; a removed node is not descended into.
//! For the rules people write this gives the same result as applying the
//! transforms one after another over the whole document, at the cost of one
//! traversal. Where the two could differ: filters (`[?…]`) see a container's
//! children before transforms on those children run; a transform that
//! removes or nulls a node first means transforms on its descendants never
//! run (so they cannot fail either); and an index path such as `$.list[0]`
//! selects by the position before removals.
//!
//! `applyOnlyWhen` conditions are evaluated once, on the document as it is
//! after the `responseSchema` filter and before any transform.
//!
//! Fail closed: a transform that cannot handle a value fails the whole
//! document with a [`SanitizeError`] naming endpoint, transform and path.

use foldhash::{HashMap, HashMapExt};

use serde_json::Value;

use crate::error::SanitizeError;
use crate::jsonpath::{CompiledPath, Key, PathSet, State};
use crate::pseudonym::Pseudonymizer;
use crate::schema_filter::SchemaFilter;
use crate::transform::{Outcome, Transform};

/// A transform with its rule-level settings.
#[derive(Debug)]
pub struct RuleTransform {
    pub transform: Transform,
    pub apply_only_when: Option<CompiledPath>,
    /// The JSONPaths as written (for reports).
    pub paths: Vec<String>,
}

/// What a sanitization did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Values removed or nulled by `responseSchema`.
    pub schema_changes: usize,
    /// Per transform (rule order): values its paths selected.
    pub matches: Vec<usize>,
    /// Per transform (rule order): values changed or removed.
    pub changes: Vec<usize>,
    /// Per transform: whether `applyOnlyWhen` let it run.
    pub active: Vec<bool>,
}

/// An endpoint's compiled response rules.
#[derive(Debug)]
pub struct EndpointSanitizer {
    schema: Option<SchemaFilter>,
    transforms: Vec<RuleTransform>,
    paths: PathSet,
    /// Path number → transform number.
    owners: Vec<usize>,
    /// What the streaming passes learned of this endpoint's objects.
    layouts: crate::members::Layouts,
}

/// Most values remembered per transform and document. Pages repeat a few
/// hundred addresses and ids many times; values seen once (message ids)
/// would otherwise fill the memo with the page's size.
const MEMO_MAX: usize = 1024;
/// Room a transform's memo gets once it holds more than a few values.
const MEMO_START: usize = 256;

pub(crate) struct Fail {
    pub(crate) transform: usize,
    pub(crate) reason: String,
    /// Path elements, innermost first.
    pub(crate) at: Vec<String>,
}

/// A transform's output for one string input, and its JSON text once the
/// streaming path wrote it from the memo (the next time it is copied).
struct Remembered {
    value: Value,
    json: Option<Box<[u8]>>,
}

pub(crate) struct Walk<'a> {
    p: &'a Pseudonymizer,
    active: &'a [bool],
    pub(crate) matches: Vec<usize>,
    pub(crate) changes: Vec<usize>,
    /// Per transform: outputs already computed for a string input. Pages
    /// repeat the same addresses and ids many times; keyed hashing and
    /// encryption run once per distinct value.
    memo: Vec<HashMap<String, Remembered>>,
    /// Reusable buffers, one per depth.
    bufs: Vec<(Vec<State>, Vec<u32>, Vec<usize>)>,
}

impl EndpointSanitizer {
    pub fn new(
        schema: Option<SchemaFilter>,
        transforms: Vec<RuleTransform>,
        paths: PathSet,
        owners: Vec<usize>,
    ) -> Self {
        EndpointSanitizer {
            schema,
            transforms,
            paths,
            owners,
            layouts: Default::default(),
        }
    }

    /// What the streaming passes learned of this endpoint's objects.
    pub(crate) fn layouts(&self) -> &crate::members::Layouts {
        &self.layouts
    }

    pub fn transforms(&self) -> &[RuleTransform] {
        &self.transforms
    }

    pub fn transform_names(&self) -> Vec<&'static str> {
        self.transforms.iter().map(|t| t.transform.name()).collect()
    }

    pub fn has_schema(&self) -> bool {
        self.schema.is_some()
    }

    /// The compiled `responseSchema`, if the endpoint has one.
    pub fn schema(&self) -> Option<&SchemaFilter> {
        self.schema.as_ref()
    }

    pub(crate) fn paths(&self) -> &PathSet {
        &self.paths
    }

    /// Whether [`crate::stream`] can sanitize this endpoint's responses
    /// without the whole document: not when a rule looks at the whole
    /// document (`applyOnlyWhen`, a path `$`, or `$..[?…]`/`$..[0]`, which
    /// need every container whole). Decided from the rules alone.
    pub fn streams(&self) -> bool {
        !self.transforms.iter().any(|t| t.apply_only_when.is_some())
            && !self.paths.has_root_path()
            && !self.paths.global_needs_containers()
    }

    /// A walk with every transform active (no `applyOnlyWhen`).
    pub(crate) fn new_walk<'a>(&self, p: &'a Pseudonymizer, active: &'a [bool]) -> Walk<'a> {
        Walk {
            p,
            active,
            matches: vec![0; self.transforms.len()],
            changes: vec![0; self.transforms.len()],
            memo: (0..self.transforms.len()).map(|_| HashMap::new()).collect(),
            bufs: Vec::new(),
        }
    }

    /// The first transform (in rule order) that the `matched` paths run,
    /// if it is `redact`: the node is removed without being looked at.
    pub(crate) fn removes_unseen(&self, matched: &[u32], w: &mut Walk<'_>) -> bool {
        let first = matched
            .iter()
            .map(|&m| self.owners[m as usize])
            .filter(|&t| w.active[t])
            .min();
        match first {
            Some(t) if matches!(self.transforms[t].transform, Transform::Redact) => {
                w.matches[t] += 1;
                w.changes[t] += 1;
                true
            }
            _ => false,
        }
    }

    /// The error for a failed transform.
    pub(crate) fn error(&self, f: Fail, endpoint: &str) -> SanitizeError {
        let mut json_path = String::from("$");
        for el in f.at.iter().rev() {
            json_path.push_str(el);
        }
        SanitizeError {
            endpoint: endpoint.to_string(),
            transform_index: f.transform,
            transform: self.transforms[f.transform].transform.name(),
            json_path,
            reason: f.reason,
        }
    }

    /// Sanitizes `doc` in place. `endpoint` names the endpoint in errors.
    pub fn sanitize(
        &self,
        doc: &mut Value,
        p: &Pseudonymizer,
        endpoint: &str,
    ) -> Result<Report, SanitizeError> {
        let schema_changes = self.schema.as_ref().map(|s| s.apply(doc)).unwrap_or(0);
        let active: Vec<bool> = self
            .transforms
            .iter()
            .map(|t| {
                t.apply_only_when
                    .as_ref()
                    .is_none_or(|c| c.matches_any(doc))
            })
            .collect();
        let mut w = self.new_walk(p, &active);
        let (mut states, mut matched) = (Vec::new(), Vec::new());
        self.paths.initial(&mut states, &mut matched);
        let result = (|| {
            let mut order = Vec::new();
            if self.apply_matched(doc, &matched, &mut order, &mut w)? {
                *doc = Value::Object(Default::default());
                return Ok(());
            }
            if !states.is_empty() || self.paths.has_global() {
                self.walk(doc, &states, 0, &mut w)?;
            }
            Ok(())
        })();
        result.map_err(|f: Fail| self.error(f, endpoint))?;
        Ok(Report {
            schema_changes,
            matches: w.matches,
            changes: w.changes,
            active,
        })
    }

    /// The streaming fast path for a string a transform has seen before:
    /// when the `matched` paths belong to one active transform whose output
    /// depends only on the string, and either the transform's memo holds
    /// `s` (computed earlier in this document) or the pseudonymizer's cache
    /// holds its pseudonym (a `pseudonymize` without options that need the
    /// value itself, seen in any request), writes the output to `out`
    /// (counted as [`Self::apply_matched`] counts it) and returns true.
    /// Otherwise writes nothing and returns false.
    ///
    /// A cache hit builds no `Value` and fills no memo: under `veil serve`
    /// a page's addresses and message ids were mostly pseudonymized in
    /// earlier requests, so the memo stays small and its lookups cheap.
    pub(crate) fn write_remembered(
        &self,
        s: &str,
        matched: &[u32],
        w: &mut Walk<'_>,
        out: &mut Vec<u8>,
    ) -> bool {
        let mut owners = matched.iter().map(|&m| self.owners[m as usize]);
        let Some(t) = owners.next() else {
            return false;
        };
        if owners.any(|o| o != t)
            || !w.active[t]
            || !self.transforms[t].transform.is_deterministic_on_strings()
        {
            return false;
        }
        let Some(remembered) = w.memo[t].get_mut(s) else {
            let Some(changed) = self.transforms[t].transform.write_cached(s, w.p, out) else {
                return false;
            };
            w.matches[t] += 1;
            w.changes[t] += usize::from(changed);
            return true;
        };
        let json = match &mut remembered.json {
            Some(json) => json,
            empty => match serde_json::to_vec(&remembered.value) {
                Ok(json) => empty.insert(json.into_boxed_slice()),
                Err(_) => return false,
            },
        };
        out.extend_from_slice(json);
        w.matches[t] += 1;
        if !matches!(&remembered.value, Value::String(r) if r == s) {
            w.changes[t] += 1;
        }
        true
    }

    /// Applies the transforms of the `matched` paths to `v` in rule order.
    /// Returns true when `v` must be removed.
    pub(crate) fn apply_matched(
        &self,
        v: &mut Value,
        matched: &[u32],
        order: &mut Vec<usize>,
        w: &mut Walk<'_>,
    ) -> Result<bool, Fail> {
        if matched.is_empty() {
            return Ok(false);
        }
        order.clear();
        order.extend(
            matched
                .iter()
                .map(|&m| self.owners[m as usize])
                .filter(|&t| w.active[t]),
        );
        order.sort_unstable();
        order.dedup();
        for &t in order.iter() {
            w.matches[t] += 1;
            let transform = &self.transforms[t].transform;
            let memo_key = match v {
                Value::String(s) if transform.is_deterministic_on_strings() => {
                    if let Some(Remembered { value: out, .. }) = w.memo[t].get(s.as_str()) {
                        if out != v {
                            *v = out.clone();
                            w.changes[t] += 1;
                        }
                        continue;
                    }
                    (w.memo[t].len() < MEMO_MAX).then(|| s.clone())
                }
                _ => None,
            };
            let result = transform.apply(v, w.p);
            if let (Some(key), Ok(Outcome::Unchanged | Outcome::Changed)) = (memo_key, &result) {
                let memo = &mut w.memo[t];
                if memo.len() >= 3 && memo.len() == memo.capacity() && memo.len() < MEMO_START {
                    // A memo past a handful of values grows once to a
                    // page's worth, not by doubling (and rehashing) its way
                    // there on every page.
                    memo.reserve(MEMO_START - memo.len());
                }
                memo.insert(
                    key,
                    Remembered {
                        value: v.clone(),
                        json: None,
                    },
                );
            }
            match result {
                Ok(Outcome::Unchanged) => {}
                Ok(Outcome::Changed) => w.changes[t] += 1,
                Ok(Outcome::Remove) => {
                    w.changes[t] += 1;
                    return Ok(true);
                }
                Err(e) => {
                    return Err(Fail {
                        transform: t,
                        reason: e.0,
                        at: Vec::new(),
                    })
                }
            }
        }
        Ok(false)
    }

    pub(crate) fn walk(
        &self,
        v: &mut Value,
        states: &[State],
        depth: usize,
        w: &mut Walk<'_>,
    ) -> Result<(), Fail> {
        let hits = self.paths.filter_hits(states, v);
        if w.bufs.len() <= depth {
            w.bufs.resize_with(depth + 1, Default::default);
        }
        let (mut next, mut matched, mut order) = std::mem::take(&mut w.bufs[depth]);
        let mut removed: Vec<usize> = Vec::new();
        let result = (|| {
            let mut bufs = (&mut next, &mut matched, &mut order, &mut removed);
            match v {
                Value::Object(map) => {
                    for (pos, (k, child)) in map.iter_mut().enumerate() {
                        self.visit(
                            child,
                            Key::Name(k),
                            pos,
                            states,
                            hits.as_ref(),
                            depth,
                            w,
                            &mut bufs,
                        )
                        .map_err(|mut f| {
                            f.at.push(name_element(k));
                            f
                        })?;
                    }
                }
                Value::Array(items) => {
                    let len = items.len();
                    for (pos, child) in items.iter_mut().enumerate() {
                        self.visit(
                            child,
                            Key::Index(pos, len),
                            pos,
                            states,
                            hits.as_ref(),
                            depth,
                            w,
                            &mut bufs,
                        )
                        .map_err(|mut f| {
                            f.at.push(format!("[{pos}]"));
                            f
                        })?;
                    }
                }
                _ => {}
            }
            Ok(())
        })();
        w.bufs[depth] = (next, matched, order);
        result?;
        if !removed.is_empty() {
            let mut pos = 0;
            let mut r = removed.iter().peekable();
            let mut keep = |_: &mut Value| {
                let drop = r.peek().is_some_and(|&&x| x == pos);
                if drop {
                    r.next();
                }
                pos += 1;
                !drop
            };
            match v {
                Value::Object(map) => map.retain(|_, val| keep(val)),
                Value::Array(items) => items.retain_mut(|val| keep(val)),
                _ => {}
            }
        }
        Ok(())
    }
}

type Bufs<'b> = (
    &'b mut Vec<State>,
    &'b mut Vec<u32>,
    &'b mut Vec<usize>,
    &'b mut Vec<usize>,
);

impl EndpointSanitizer {
    /// One child of a container: apply the transforms whose paths end at
    /// it, then walk into it if some path may continue below.
    #[allow(clippy::too_many_arguments)]
    fn visit(
        &self,
        child: &mut Value,
        key: Key<'_>,
        pos: usize,
        states: &[State],
        hits: Option<&crate::jsonpath::FilterHits>,
        depth: usize,
        w: &mut Walk<'_>,
        bufs: &mut Bufs<'_>,
    ) -> Result<(), Fail> {
        let (next, matched, order, removed) = bufs;
        next.clear();
        matched.clear();
        self.paths.advance(states, key, pos, hits, next, matched);
        if self.apply_matched(child, matched, order, w)? {
            removed.push(pos);
            return Ok(());
        }
        if (child.is_object() || child.is_array()) && (!next.is_empty() || self.paths.has_global())
        {
            self.walk(child, next, depth + 1, w)?;
        }
        Ok(())
    }
}

pub(crate) fn name_element(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_') {
        format!(".{k}")
    } else {
        format!("['{}']", k.replace('\'', "\\'"))
    }
}
