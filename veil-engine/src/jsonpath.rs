//! JSONPath selection.
//!
//! Paths are parsed by `jsonpath-rust` (RFC 9535 grammar) after normalizing
//! the Jayway spellings Psoxy rule files use (`$.['a','b']`). The parsed
//! query is compiled into [`Step`]s, and a whole rule set's paths into one
//! [`PathSet`] automaton: the sanitizer walks a document **once** and, at
//! each node, the automaton says which paths end there. Filters
//! (`[?(@.type == 'x')]`) are evaluated by `jsonpath-rust` on the container
//! whose children they select.

use foldhash::{HashMap, HashMapExt};

use jsonpath_rust::parser::model::{Filter, JpQuery, Segment, Selector};
use serde_json::Value;

/// One compiled step of a path.
#[derive(Debug, Clone)]
pub enum Step {
    /// A direct child matching the selector.
    Child(Sel),
    /// Any descendant (at any depth below) matching the selector.
    Descendant(Sel),
}

/// Which children a step selects.
#[derive(Debug, Clone)]
pub enum Sel {
    Names(Vec<String>),
    Wildcard,
    Indices(Vec<i64>),
    Slice(Option<i64>, Option<i64>, i64),
    Filter(Box<JpQuery>),
}

/// A compiled JSONPath.
#[derive(Debug, Clone)]
pub struct CompiledPath {
    /// The path as written in the rule file.
    pub source: String,
    pub steps: Vec<Step>,
    query: JpQuery,
}

impl CompiledPath {
    /// Whether the path selects anything in `doc` (used by `applyOnlyWhen`).
    pub fn matches_any(&self, doc: &Value) -> bool {
        jsonpath_rust::query::js_path_process(&self.query, doc)
            .map(|r| !r.is_empty())
            .unwrap_or(false)
    }

    /// Whether the path ends in a selection of array elements / object
    /// members by wildcard (`x[*]`).
    pub fn ends_in_wildcard(&self) -> bool {
        matches!(self.steps.last(), Some(Step::Child(Sel::Wildcard)))
    }
}

/// Rewrites Jayway-only spellings into RFC 9535: `$.[` → `$[` (any `.[`
/// that is not `..[`). Quoted names are left alone.
pub fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut quote: Option<char> = None;
    let chars: Vec<char> = path.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' {
                if let Some(&n) = chars.get(i + 1) {
                    out.push(n);
                    i += 1;
                }
            } else if c == q {
                quote = None;
            }
        } else if c == '\'' || c == '"' {
            quote = Some(c);
            out.push(c);
        } else if c == '.' && chars.get(i + 1) == Some(&'[') && (i == 0 || chars[i - 1] != '.') {
            // drop the dot
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

/// A Jayway-only filter operator (`in`, `nin`, `size`, …) outside quotes.
/// The RFC grammar would read `@.b in ['x']` as a member named `b in` and
/// silently never match, so these are refused.
fn jayway_only_operator(path: &str) -> Option<&'static str> {
    const OPS: [&str; 9] = [
        "in", "nin", "subsetof", "anyof", "noneof", "size", "empty", "=~", "contains",
    ];
    let mut outside = String::with_capacity(path.len());
    let mut quote: Option<char> = None;
    for c in path.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None => outside.push(c),
        }
    }
    if !outside.contains("[?") {
        return None;
    }
    OPS.into_iter().find(|op| {
        if *op == "=~" {
            outside.contains("=~")
        } else {
            outside
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| w == *op)
                && outside.contains(&format!(" {op} "))
        }
    })
}

/// Whether `$` occurs outside quotes after the leading root.
fn refers_to_root_inside(path: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut prev_backslash = false;
    for (i, c) in path.char_indices() {
        match quote {
            Some(q) => {
                if c == q && !prev_backslash {
                    quote = None;
                }
                prev_backslash = c == '\\' && !prev_backslash;
            }
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                } else if c == '$' && i > 0 {
                    return true;
                }
            }
        }
    }
    false
}

/// A JSONPath that cannot be compiled; each variant names the path as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPathError {
    #[error("invalid JSONPath `{path}`: it must start with `$`")]
    NoRoot { path: String },
    /// The parser's complaint, on one line.
    #[error("invalid JSONPath `{path}`: {message}")]
    Syntax { path: String, message: String },
    #[error("JSONPath `{path}`: the Jayway filter operator `{op}` is not supported; write the filter with ==, !=, <, >, &&, || or match()/search()")]
    JaywayOperator { path: String, op: &'static str },
    #[error("JSONPath `{path}`: filters that refer to the document root (`$` inside a filter) are not supported")]
    RootInFilter { path: String },
    #[error("JSONPath `{path}`: nested descendant segment")]
    NestedDescendant { path: String },
    #[error("JSONPath `{path}`: empty selector")]
    EmptySelector { path: String },
    #[error("JSONPath `{path}`: slice step 0")]
    SliceStepZero { path: String },
    #[error("JSONPath `{path}`: a bracket may not mix names, indexes, slices and filters")]
    MixedBracket { path: String },
}

/// Parses and compiles a JSONPath as rule files write it.
pub fn compile(path: &str) -> Result<CompiledPath, JsonPathError> {
    let trimmed = path.trim();
    let path_owned = || path.to_string();
    if !trimmed.starts_with('$') {
        return Err(JsonPathError::NoRoot { path: path_owned() });
    }
    let normalized = normalize(trimmed);
    let query =
        jsonpath_rust::parser::parse_json_path(&normalized).map_err(|e| JsonPathError::Syntax {
            path: path_owned(),
            message: first_line(&e.to_string()),
        })?;
    if let Some(op) = jayway_only_operator(&normalized) {
        return Err(JsonPathError::JaywayOperator {
            path: path_owned(),
            op,
        });
    }
    if refers_to_root_inside(&normalized) {
        return Err(JsonPathError::RootInFilter { path: path_owned() });
    }
    let mut steps = Vec::with_capacity(query.segments.len());
    for seg in &query.segments {
        steps.push(match seg {
            Segment::Descendant(inner) => Step::Descendant(selector_of(inner, path)?),
            other => Step::Child(selector_of(other, path)?),
        });
    }
    Ok(CompiledPath {
        source: path.to_string(),
        steps,
        query,
    })
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn selector_of(seg: &Segment, path: &str) -> Result<Sel, JsonPathError> {
    match seg {
        Segment::Selector(s) => sel(std::slice::from_ref(s), path),
        Segment::Selectors(list) => sel(list, path),
        Segment::Descendant(_) => Err(JsonPathError::NestedDescendant {
            path: path.to_string(),
        }),
    }
}

fn sel(list: &[Selector], path: &str) -> Result<Sel, JsonPathError> {
    let path = || path.to_string();
    match list {
        [] => Err(JsonPathError::EmptySelector { path: path() }),
        [Selector::Wildcard] => Ok(Sel::Wildcard),
        [Selector::Slice(a, b, c)] => {
            let step = c.unwrap_or(1);
            if step == 0 {
                return Err(JsonPathError::SliceStepZero { path: path() });
            }
            Ok(Sel::Slice(*a, *b, step))
        }
        [Selector::Filter(f)] => Ok(Sel::Filter(Box::new(filter_query(f)))),
        _ if list.iter().all(|s| matches!(s, Selector::Name(_))) => Ok(Sel::Names(
            list.iter()
                .filter_map(|s| match s {
                    Selector::Name(n) => Some(unquote(n)),
                    _ => None,
                })
                .collect(),
        )),
        _ if list.iter().all(|s| matches!(s, Selector::Index(_))) => Ok(Sel::Indices(
            list.iter()
                .filter_map(|s| match s {
                    Selector::Index(i) => Some(*i),
                    _ => None,
                })
                .collect(),
        )),
        _ => Err(JsonPathError::MixedBracket { path: path() }),
    }
}

/// jsonpath-rust keeps bracketed names with their quotes; strip them.
fn unquote(name: &str) -> String {
    let b = name.as_bytes();
    if b.len() >= 2 && (b[0] == b'\'' || b[0] == b'"') && b[b.len() - 1] == b[0] {
        let inner = &name[1..name.len() - 1];
        inner
            .replace("\\'", "'")
            .replace("\\\"", "\"")
            .replace("\\\\", "\\")
    } else {
        name.to_string()
    }
}

fn filter_query(f: &Filter) -> JpQuery {
    JpQuery::new(vec![Segment::Selector(Selector::Filter(f.clone()))])
}

/// A child's key as seen by a step.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    Name(&'a str),
    /// Index and the array's length.
    Index(usize, usize),
}

/// An automaton state: path number and the index of the next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct State {
    pub path: u32,
    pub step: u32,
}

/// Precomputed filter results for one container.
#[derive(Debug, Default)]
pub struct FilterHits {
    /// (path, step) → which children (by position) pass the filter.
    hits: Vec<(State, Vec<bool>)>,
}

/// All paths of a rule set, walked together.
///
/// Paths that start with recursive descent (`$..name`, most rule paths)
/// are active at every node; they are kept out of the per-node state lists
/// and looked up by key name instead, so a node costs one hash lookup for
/// all of them.
#[derive(Debug, Clone, Default)]
pub struct PathSet {
    paths: Vec<CompiledPath>,
    /// `$..name…` paths by the name their first step selects.
    global_names: HashMap<String, Vec<u32>>,
    /// Other paths whose first step is a descendant step (`$..*`, `$..[?…]`).
    global_other: Vec<State>,
}

impl PathSet {
    pub fn new(paths: Vec<CompiledPath>) -> Self {
        let mut global_names: HashMap<String, Vec<u32>> = HashMap::new();
        let mut global_other = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            match p.steps.first() {
                Some(Step::Descendant(Sel::Names(names))) => {
                    for n in names {
                        global_names.entry(n.clone()).or_default().push(i as u32);
                    }
                }
                Some(Step::Descendant(_)) => global_other.push(State {
                    path: i as u32,
                    step: 0,
                }),
                _ => {}
            }
        }
        PathSet {
            paths,
            global_names,
            global_other,
        }
    }

    /// Whether some path can match below any node (so every container must be walked).
    pub fn has_global(&self) -> bool {
        !self.global_names.is_empty() || !self.global_other.is_empty()
    }

    fn is_global(&self, s: State) -> bool {
        s.step == 0
            && matches!(
                self.paths[s.path as usize].steps.first(),
                Some(Step::Descendant(_))
            )
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn path(&self, i: usize) -> &CompiledPath {
        &self.paths[i]
    }

    /// The states at the root, and the paths that match the root itself (`$`).
    pub fn initial(&self, states: &mut Vec<State>, matched: &mut Vec<u32>) {
        for (i, p) in self.paths.iter().enumerate() {
            if p.steps.is_empty() {
                matched.push(i as u32);
            } else if !self.is_global(State {
                path: i as u32,
                step: 0,
            }) {
                states.push(State {
                    path: i as u32,
                    step: 0,
                });
            }
        }
    }

    /// Evaluates the filters that `states` apply to the children of `container`.
    pub fn filter_hits(&self, states: &[State], container: &Value) -> Option<FilterHits> {
        let mut out: Option<FilterHits> = None;
        for s in states.iter().chain(&self.global_other) {
            let step = &self.paths[s.path as usize].steps[s.step as usize];
            let (Step::Child(Sel::Filter(q)) | Step::Descendant(Sel::Filter(q))) = step else {
                continue;
            };
            let passed: Vec<*const Value> = jsonpath_rust::query::js_path_process(q, container)
                .map(|r| r.into_iter().map(|x| x.val as *const Value).collect())
                .unwrap_or_default();
            let flags: Vec<bool> = match container {
                Value::Array(a) => a
                    .iter()
                    .map(|c| passed.contains(&(c as *const Value)))
                    .collect(),
                Value::Object(m) => m
                    .values()
                    .map(|c| passed.contains(&(c as *const Value)))
                    .collect(),
                _ => Vec::new(),
            };
            out.get_or_insert_with(FilterHits::default)
                .hits
                .push((*s, flags));
        }
        out
    }

    /// Advances `states` (of a container) to one of its children. New states
    /// go to `next`; paths that end at the child go to `matched`.
    pub fn advance(
        &self,
        states: &[State],
        key: Key<'_>,
        position: usize,
        hits: Option<&FilterHits>,
        next: &mut Vec<State>,
        matched: &mut Vec<u32>,
    ) {
        if let Key::Name(k) = key {
            if let Some(ids) = self.global_names.get(k) {
                for &id in ids {
                    self.step_hit(State { path: id, step: 0 }, next, matched);
                }
            }
        }
        for s in states.iter().chain(&self.global_other) {
            let path = &self.paths[s.path as usize];
            let (sel, descendant) = match &path.steps[s.step as usize] {
                Step::Child(sel) => (sel, false),
                Step::Descendant(sel) => (sel, true),
            };
            if descendant && !self.is_global(*s) {
                push_state(next, *s);
            }
            let hit = match sel {
                Sel::Names(names) => matches!(key, Key::Name(k) if names.iter().any(|n| n == k)),
                Sel::Wildcard => true,
                Sel::Indices(idx) => match key {
                    Key::Index(i, len) => idx.iter().any(|&x| resolve(x, len) == Some(i)),
                    Key::Name(_) => false,
                },
                Sel::Slice(a, b, st) => match key {
                    Key::Index(i, len) => in_slice(i, len, *a, *b, *st),
                    Key::Name(_) => false,
                },
                Sel::Filter(_) => hits
                    .and_then(|h| h.hits.iter().find(|(st, _)| st == s))
                    .and_then(|(_, flags)| flags.get(position).copied())
                    .unwrap_or(false),
            };
            if hit {
                self.step_hit(*s, next, matched);
            }
        }
    }

    /// State `s` selected the child: the path ends there or moves on.
    fn step_hit(&self, s: State, next: &mut Vec<State>, matched: &mut Vec<u32>) {
        let nstep = s.step + 1;
        if nstep as usize == self.paths[s.path as usize].steps.len() {
            if !matched.contains(&s.path) {
                matched.push(s.path);
            }
        } else {
            push_state(
                next,
                State {
                    path: s.path,
                    step: nstep,
                },
            );
        }
    }
}

/// What the streaming sanitizer needs to know about a [`PathSet`].
impl PathSet {
    /// Whether choosing the children of a container that has `states` needs
    /// the whole container: a filter, index or slice selector is live (a
    /// filter looks at the children, a negative index at the length).
    pub fn needs_container(&self, states: &[State]) -> bool {
        states
            .iter()
            .chain(&self.global_other)
            .any(|s| self.positional(*s))
    }

    fn positional(&self, s: State) -> bool {
        let (Step::Child(sel) | Step::Descendant(sel)) =
            &self.paths[s.path as usize].steps[s.step as usize];
        matches!(sel, Sel::Filter(_) | Sel::Indices(_) | Sel::Slice(..))
    }

    /// Whether some path selects the document itself (`$`).
    pub fn has_root_path(&self) -> bool {
        self.paths.iter().any(|p| p.steps.is_empty())
    }

    /// Whether a recursive-descent path needs every container whole
    /// (`$..[0]`, `$..[?…]`): then nothing can be streamed.
    pub fn global_needs_containers(&self) -> bool {
        self.global_other.iter().any(|s| self.positional(*s))
    }
}

fn push_state(v: &mut Vec<State>, s: State) {
    if !v.contains(&s) {
        v.push(s);
    }
}

fn resolve(i: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let r = if i < 0 { len + i } else { i };
    (0..len).contains(&r).then_some(r as usize)
}

fn in_slice(i: usize, len: usize, a: Option<i64>, b: Option<i64>, step: i64) -> bool {
    let len = len as i64;
    let i = i as i64;
    let norm = |x: i64| if x < 0 { (len + x).max(-1) } else { x.min(len) };
    if step > 0 {
        let lo = norm(a.unwrap_or(0)).max(0);
        let hi = norm(b.unwrap_or(len)).min(len);
        i >= lo && i < hi && (i - lo) % step == 0
    } else {
        let hi = norm(a.unwrap_or(len - 1)).min(len - 1);
        let lo = b.map(norm).unwrap_or(-1);
        i <= hi && i > lo && (hi - i) % (-step) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Collects the concrete paths a PathSet matches, by walking the document.
    fn walk(set: &PathSet, doc: &Value) -> Vec<(u32, String)> {
        fn rec(
            set: &PathSet,
            v: &Value,
            states: &[State],
            at: String,
            out: &mut Vec<(u32, String)>,
        ) {
            let hits = set.filter_hits(states, v);
            let mut visit = |key: Key<'_>, pos: usize, child: &Value, at: String| {
                let (mut next, mut m) = (Vec::new(), Vec::new());
                set.advance(states, key, pos, hits.as_ref(), &mut next, &mut m);
                for p in m {
                    out.push((p, at.clone()));
                }
                if !next.is_empty() || set.has_global() {
                    rec(set, child, &next, at, out);
                }
            };
            match v {
                Value::Object(m) => {
                    for (pos, (k, c)) in m.iter().enumerate() {
                        visit(Key::Name(k), pos, c, format!("{at}.{k}"));
                    }
                }
                Value::Array(a) => {
                    for (pos, c) in a.iter().enumerate() {
                        visit(Key::Index(pos, a.len()), pos, c, format!("{at}[{pos}]"));
                    }
                }
                _ => {}
            }
        }
        let (mut s, mut m) = (Vec::new(), Vec::new());
        set.initial(&mut s, &mut m);
        let mut out: Vec<(u32, String)> = m.into_iter().map(|p| (p, "$".to_string())).collect();
        if !s.is_empty() || set.has_global() {
            rec(set, doc, &s, "$".into(), &mut out);
        }
        out.sort();
        out
    }

    fn one(path: &str, doc: &Value) -> Vec<String> {
        let set = PathSet::new(vec![compile(path).unwrap()]);
        walk(&set, doc).into_iter().map(|(_, p)| p).collect()
    }

    #[test]
    fn jayway_bracket_after_root_is_normalized() {
        assert_eq!(
            normalize("$.['@odata.nextLink','@odata.prevLink']"),
            "$['@odata.nextLink','@odata.prevLink']"
        );
        assert_eq!(normalize("$..['a']"), "$..['a']");
        assert_eq!(normalize("$['a.[b']"), "$['a.[b']");
        let doc = json!({"@odata.nextLink": "x", "@odata.prevLink": "y", "other": 1});
        assert_eq!(
            one("$.['@odata.nextLink','@odata.prevLink']", &doc),
            ["$.@odata.nextLink", "$.@odata.prevLink"]
        );
    }

    #[test]
    fn recursive_descent_and_chains() {
        let doc = json!({"value":[{"from":{"emailAddress":{"address":"a","name":"n"}}},{"toRecipients":[{"emailAddress":{"address":"b"}}]}]});
        assert_eq!(
            one("$..address", &doc),
            [
                "$.value[0].from.emailAddress.address",
                "$.value[1].toRecipients[0].emailAddress.address"
            ]
        );
        assert_eq!(
            one("$..emailAddress.name", &doc),
            ["$.value[0].from.emailAddress.name"]
        );
        assert_eq!(
            one("$..toRecipients[*]", &doc),
            ["$.value[1].toRecipients[0]"]
        );
        assert_eq!(one("$.value[0].from", &doc), ["$.value[0].from"]);
        assert_eq!(one("$.value[-1]", &doc), ["$.value[1]"]);
        assert_eq!(one("$.value[0:1]", &doc), ["$.value[0]"]);
    }

    #[test]
    fn nested_descendants_match_at_every_depth() {
        let doc = json!({"a":{"a":{"a":1}}});
        assert_eq!(one("$..a", &doc), ["$.a", "$.a.a", "$.a.a.a"]);
    }

    #[test]
    fn identities_path() {
        let doc = json!({"identities":[{"issuerAssignedId":"x","signInType":"y"},{"issuerAssignedId":null}]});
        assert_eq!(
            one("$..identities[*].issuerAssignedId", &doc),
            [
                "$.identities[0].issuerAssignedId",
                "$.identities[1].issuerAssignedId"
            ]
        );
    }

    #[test]
    fn filters_select_children() {
        let doc = json!({"value":[{"type":"x","v":1},{"type":"y","v":2},{"type":"x","v":3}]});
        assert_eq!(
            one("$..value[?(@.type == 'x')]", &doc),
            ["$.value[0]", "$.value[2]"]
        );
        assert_eq!(
            one("$..value[?(@.type == 'x')].v", &doc),
            ["$.value[0].v", "$.value[2].v"]
        );
    }

    #[test]
    fn apply_only_when() {
        let p = compile("$..value[?(@.type == 'x')]").unwrap();
        assert!(p.matches_any(&json!({"value":[{"type":"x"}]})));
        assert!(!p.matches_any(&json!({"value":[{"type":"z"}]})));
    }

    #[test]
    fn bad_paths_are_errors() {
        for p in [
            "users",
            "$..",
            "$[",
            "$.a[?(@.b == $.c)]",
            "$.a[?(@.b in ['x'])]",
            "$.a[?(@.b =~ /x/)]",
        ] {
            assert!(compile(p).is_err(), "{p}");
        }
    }
}
