//! The `responseSchema` allowlist filter: a JSON-Schema-shaped description
//! of what may leave Veil. Applied before the transforms.
//!
//! - object members not declared in `properties` are removed (an object
//!   schema without `properties` keeps no member);
//! - array elements are filtered by `items` (no `items`: no element is kept);
//! - a value of the wrong type becomes null (null stays null);
//! - `$ref: '#/definitions/Name'` refers to the root's `definitions`;
//! - `anyOf`: the first alternative whose type fits the value applies;
//! - a schema without `type`, `$ref` or `anyOf` accepts any value as is.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::Value;

use crate::schema_spec::SchemaSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    Null,
}

#[derive(Debug, Default)]
struct Node {
    kind: Option<Kind>,
    /// Looked up once per member of every object Veil reads: foldhash,
    /// not the default SipHash (the keys are the rules' own names; a lookup
    /// never inserts, so the hasher has no flooding to resist).
    properties: Option<IndexMap<String, usize, foldhash::fast::RandomState>>,
    items: Option<usize>,
    any_of: Vec<usize>,
    reference: Option<usize>,
    constant: Option<String>,
}

/// A place in a compiled `responseSchema` (see [`SchemaFilter::record`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaNode(usize);

/// A compiled `responseSchema`.
#[derive(Debug)]
pub struct SchemaFilter {
    nodes: Vec<Node>,
    root: usize,
    /// Per node, per [`Shape`]: the verdict, decided once when the schema
    /// is compiled ([`SchemaFilter::verdict`]).
    verdicts: Vec<[Decided; SHAPES]>,
}

/// The number of [`Shape`]s.
const SHAPES: usize = 7;

/// Deeper than this, a value is replaced by `null` (as `filter` does).
const MAX_FILTER_DEPTH: usize = 256;

/// A node's verdict for one shape at depth 0, and the `anyOf`/`oneOf`
/// alternatives followed to reach it (each one level deeper). Packed into
/// eight bytes, so the table of a schema with a few hundred nodes stays in
/// the fastest caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decided {
    kind: DecidedKind,
    hops: u16,
    /// The node of an object, or the items of an array.
    id: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecidedKind {
    Keep,
    Null,
    TooDeep,
    Object,
    Array,
    EmptyArray,
    NeedsValue,
}

/// A `responseSchema` that cannot be used: the place in the schema
/// (`responseSchema.properties.a`, `definitions.X`) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {problem}")]
pub struct SchemaError {
    pub at: String,
    pub problem: SchemaProblem,
}

/// What is wrong at one place of a `responseSchema`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaProblem {
    #[error("`$ref` must look like `#/definitions/Name`, found `{0}`")]
    RefForm(String),
    #[error("`$ref` to undefined `#/definitions/{0}`")]
    UndefinedRef(String),
    #[error("`definitions` are only allowed at the top of responseSchema")]
    NestedDefinitions,
    #[error("unknown type `{0}`")]
    UnknownType(String),
    #[error("`properties` needs `type: object`")]
    PropertiesWithoutObject,
    #[error("`items` needs `type: array`")]
    ItemsWithoutArray,
    #[error("give `anyOf` or `oneOf`, not both")]
    AnyOfAndOneOf,
    #[error("`additionalProperties: true` is not supported: Veil passes only the properties a schema declares")]
    AdditionalProperties,
}

fn problem(at: &str, problem: SchemaProblem) -> SchemaError {
    SchemaError {
        at: at.to_string(),
        problem,
    }
}

impl SchemaFilter {
    /// Compiles a schema; errors name the place in the schema.
    pub fn compile(spec: &SchemaSpec) -> Result<SchemaFilter, SchemaError> {
        let mut c = Compiler {
            nodes: Vec::new(),
            defs: HashMap::new(),
            pending: Vec::new(),
        };
        if let Some(defs) = &spec.definitions {
            // Reserve ids first so definitions can refer to each other.
            for name in defs.keys() {
                let id = c.alloc();
                c.defs.insert(name.clone(), id);
            }
            for (name, d) in defs {
                let id = c.defs[name];
                c.fill(id, d, &format!("definitions.{name}"))?;
            }
        }
        let root = c.alloc();
        c.fill(root, spec, "responseSchema")?;
        for (node, name, at) in std::mem::take(&mut c.pending) {
            let target = *c
                .defs
                .get(&name)
                .ok_or_else(|| problem(&at, SchemaProblem::UndefinedRef(name.clone())))?;
            c.nodes[node].reference = Some(target);
        }
        let mut filter = SchemaFilter {
            nodes: c.nodes,
            root,
            verdicts: Vec::new(),
        };
        filter.verdicts = (0..filter.nodes.len())
            .map(|id| SHAPE_LIST.map(|shape| filter.decide(id, shape)))
            .collect();
        Ok(filter)
    }

    /// The root of the schema (see [`SchemaFilter::property`]).
    pub fn root(&self) -> SchemaNode {
        SchemaNode(self.resolve(self.root))
    }

    /// Whether the allowlist declares the member at `keys` (object member
    /// names; array levels are passed through), e.g. `["value", "from",
    /// "emailAddress", "address"]`.
    pub fn declares(&self, keys: &[&str]) -> bool {
        let mut node = self.root();
        for k in keys {
            match self.property(node, k) {
                Some(n) => node = n,
                None => return false,
            }
        }
        true
    }

    /// The schema of one record of the response: the elements of `value`
    /// for a collection (`{"value": [...]}`), otherwise the root object.
    /// `$select` and `$expand` are checked against it.
    pub fn record(&self) -> SchemaNode {
        let root = SchemaNode(self.resolve(self.root));
        match self.property(root, "value") {
            Some(v) if self.nodes[v.0].kind == Some(Kind::Array) => match self.nodes[v.0].items {
                Some(items) => SchemaNode(self.resolve(items)),
                None => v,
            },
            _ => root,
        }
    }

    /// The schema of member `name` of an object schema (OData names are
    /// compared ignoring ASCII case); for an array schema, of its elements'
    /// member. `None` when the allowlist does not declare it.
    pub fn property(&self, node: SchemaNode, name: &str) -> Option<SchemaNode> {
        self.property_at(node, name, 0)
    }

    fn property_at(&self, node: SchemaNode, name: &str, depth: usize) -> Option<SchemaNode> {
        if depth > 16 {
            return None;
        }
        let mut id = self.resolve(node.0);
        if self.nodes[id].kind == Some(Kind::Array) {
            id = self.resolve(self.nodes[id].items?);
        }
        if self.nodes[id].properties.is_none() {
            // `anyOf`/`oneOf`: the first alternative that declares it.
            return self.nodes[id]
                .any_of
                .iter()
                .find_map(|&alt| self.property_at(SchemaNode(self.resolve(alt)), name, depth + 1));
        }
        let props = self.nodes[id].properties.as_ref()?;
        props
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, &child)| SchemaNode(self.resolve(child)))
    }

    /// The member names an object schema declares (for messages).
    pub fn property_names(&self, node: SchemaNode) -> Vec<&str> {
        let mut id = self.resolve(node.0);
        if self.nodes[id].kind == Some(Kind::Array) {
            match self.nodes[id].items {
                Some(items) => id = self.resolve(items),
                None => return Vec::new(),
            }
        }
        self.nodes[id]
            .properties
            .as_ref()
            .map(|p| {
                p.keys()
                    .map(String::as_str)
                    .filter(|k| !k.starts_with('@'))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Filters `value` in place; returns how many values were removed or nulled.
    pub fn apply(&self, value: &mut Value) -> usize {
        self.filter(self.root, value, 0)
    }

    fn resolve(&self, mut id: usize) -> usize {
        // `$ref` chains are followed; a cycle of pure refs stops after a bound.
        for _ in 0..64 {
            match self.nodes[id].reference {
                Some(r) => id = r,
                None => break,
            }
        }
        id
    }

    /// Whether an `anyOf`/`oneOf` alternative fits a value: its type fits
    /// (no type fits anything), its own `const` equals the value, and every
    /// member it declares with a `const` is present with that value.
    fn alternative_fits(&self, alt: usize, value: &Value) -> bool {
        let node = &self.nodes[self.resolve(alt)];
        if !node.kind.is_none_or(|k| fits(k, value)) {
            return false;
        }
        if let Some(c) = &node.constant {
            return value.as_str() == Some(c.as_str());
        }
        match (node.properties.as_ref(), value) {
            (Some(props), Value::Object(map)) => {
                props.iter().all(
                    |(k, &child)| match &self.nodes[self.resolve(child)].constant {
                        Some(c) => map.get(k).and_then(Value::as_str) == Some(c.as_str()),
                        None => true,
                    },
                )
            }
            _ => true,
        }
    }

    fn filter(&self, id: usize, value: &mut Value, depth: usize) -> usize {
        let id = self.resolve(id);
        let node = &self.nodes[id];
        if depth > MAX_FILTER_DEPTH {
            *value = Value::Null;
            return 1;
        }
        if !node.any_of.is_empty() {
            let fit = node
                .any_of
                .iter()
                .copied()
                .find(|&alt| self.alternative_fits(alt, value));
            return match fit {
                Some(alt) => self.filter(alt, value, depth + 1),
                None => null_out(value),
            };
        }
        if let Some(c) = &node.constant {
            return match value {
                Value::Null => 0,
                Value::String(v) if v == c => 0,
                _ => null_out(value),
            };
        }
        let Some(kind) = node.kind else { return 0 };
        if value.is_null() {
            return 0;
        }
        if !fits(kind, value) {
            return null_out(value);
        }
        match value {
            Value::Object(map) => {
                let mut changed = 0;
                let props = node.properties.as_ref();
                let before = map.len();
                map.retain(|k, _| props.is_some_and(|p| p.contains_key(k)));
                changed += before - map.len();
                if let Some(props) = props {
                    for (k, v) in map.iter_mut() {
                        if let Some(&child) = props.get(k) {
                            changed += self.filter(child, v, depth + 1);
                        }
                    }
                }
                changed
            }
            Value::Array(items) => match node.items {
                Some(child) => items
                    .iter_mut()
                    .map(|v| self.filter(child, v, depth + 1))
                    .sum(),
                None => {
                    let n = items.len();
                    items.clear();
                    n
                }
            },
            _ => 0,
        }
    }
}

fn null_out(value: &mut Value) -> usize {
    if value.is_null() {
        0
    } else {
        *value = Value::Null;
        1
    }
}

fn fits(kind: Kind, v: &Value) -> bool {
    match kind {
        Kind::Object => v.is_object(),
        Kind::Array => v.is_array(),
        Kind::String => v.is_string(),
        Kind::Integer => v.is_i64() || v.is_u64(),
        Kind::Number => v.is_number(),
        Kind::Boolean => v.is_boolean(),
        Kind::Null => v.is_null(),
    }
}

/// The shape of a JSON value as the schema sees it (for the streaming
/// sanitizer, which decides before the value is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Object = 0,
    Array,
    String,
    /// A number serde_json reads as `i64`/`u64`.
    Integer,
    /// Any other number.
    Float,
    Boolean,
    Null,
}

/// Every [`Shape`], in order.
const SHAPE_LIST: [Shape; SHAPES] = [
    Shape::Object,
    Shape::Array,
    Shape::String,
    Shape::Integer,
    Shape::Float,
    Shape::Boolean,
    Shape::Null,
];

/// What [`SchemaFilter`] does with one value, decided from its shape alone;
/// exactly the choice `filter` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Kept as is with everything inside (no `type`, or a scalar that fits,
    /// or `null`).
    Keep,
    /// Replaced by `null` (counts as one change unless it was `null`).
    Null,
    /// Replaced by `null` at the depth bound (counts as one change even if
    /// it was `null`, as `filter` does).
    TooDeep,
    /// An object filtered by node `id`; members are filtered at `depth`.
    Object { id: usize, depth: usize },
    /// An array; `items` filters each element at `depth`, `None` empties it.
    Array { items: Option<usize>, depth: usize },
    /// The decision depends on the value's content (a `const`, or an
    /// `anyOf`/`oneOf` alternative told apart by a member's `const`): the
    /// value must be filtered whole, by [`SchemaFilter::apply_at`].
    NeedsValue,
}

impl SchemaFilter {
    /// The node the whole document is filtered by (at depth 0).
    pub(crate) fn root_id(&self) -> usize {
        self.root
    }

    /// Filters `value` as node `id` at `depth` would inside a larger
    /// document; returns the number of changes.
    pub(crate) fn apply_at(&self, id: usize, value: &mut Value, depth: usize) -> usize {
        self.filter(id, value, depth)
    }

    /// The decision `filter(id, value, depth)` makes for a value of `shape`:
    /// looked up in the table [`Self::decide`] filled at compile time (a
    /// value's verdict was 2 % of Veil's CPU time in the proxy bench when
    /// it was worked out each time).
    #[inline]
    pub(crate) fn verdict(&self, id: usize, shape: Shape, depth: usize) -> Verdict {
        let d = self.verdicts[id][shape as usize];
        // `filter` checks the bound at each alternative it follows, one
        // level deeper each time: the last one is the deepest.
        let at = depth + usize::from(d.hops);
        if at > MAX_FILTER_DEPTH {
            return Verdict::TooDeep;
        }
        let id = d.id as usize;
        match d.kind {
            DecidedKind::Keep => Verdict::Keep,
            DecidedKind::Null => Verdict::Null,
            DecidedKind::TooDeep => Verdict::TooDeep,
            DecidedKind::NeedsValue => Verdict::NeedsValue,
            DecidedKind::Object => Verdict::Object { id, depth: at + 1 },
            DecidedKind::Array => Verdict::Array {
                items: Some(id),
                depth: at + 1,
            },
            DecidedKind::EmptyArray => Verdict::Array {
                items: None,
                depth: at + 1,
            },
        }
    }

    /// The decision for a value of `shape` at node `id` at depth 0, as
    /// `filter` makes it: `anyOf`/`oneOf` alternatives are followed (one
    /// level deeper each) to the first that fits the shape.
    fn decide(&self, mut id: usize, shape: Shape) -> Decided {
        let mut hops: usize = 0;
        let at = |kind, hops: usize, id: usize| Decided {
            kind,
            // A chain longer than the bound is cut below (`TooDeep`).
            hops: hops as u16,
            id: id as u32,
        };
        loop {
            let resolved = self.resolve(id);
            let node = &self.nodes[resolved];
            if hops > MAX_FILTER_DEPTH {
                return at(DecidedKind::TooDeep, hops, 0);
            }
            if !node.any_of.is_empty() {
                let mut next = None;
                for &alt in &node.any_of {
                    match self.alternative_fits_shape(alt, shape) {
                        Some(true) => {
                            next = Some(alt);
                            break;
                        }
                        Some(false) => {}
                        None => return at(DecidedKind::NeedsValue, hops, 0),
                    }
                }
                match next {
                    Some(alt) => {
                        id = alt;
                        hops += 1;
                        continue;
                    }
                    None => return at(DecidedKind::Null, hops, 0),
                }
            }
            if node.constant.is_some() {
                let kind = match shape {
                    Shape::Null => DecidedKind::Keep,
                    Shape::String => DecidedKind::NeedsValue,
                    _ => DecidedKind::Null,
                };
                return at(kind, hops, 0);
            }
            let Some(kind) = node.kind else {
                return at(DecidedKind::Keep, hops, 0);
            };
            if shape == Shape::Null {
                return at(DecidedKind::Keep, hops, 0);
            }
            if !fits_shape(kind, shape) {
                return at(DecidedKind::Null, hops, 0);
            }
            return match shape {
                Shape::Object => at(DecidedKind::Object, hops, resolved),
                Shape::Array => match node.items {
                    Some(items) => at(DecidedKind::Array, hops, items),
                    None => at(DecidedKind::EmptyArray, hops, 0),
                },
                _ => at(DecidedKind::Keep, hops, 0),
            };
        }
    }

    /// `alternative_fits` from the shape alone; `None` when it depends on
    /// the value's content.
    fn alternative_fits_shape(&self, alt: usize, shape: Shape) -> Option<bool> {
        let node = &self.nodes[self.resolve(alt)];
        if !node.kind.is_none_or(|k| fits_shape(k, shape)) {
            return Some(false);
        }
        if node.constant.is_some() {
            return if shape == Shape::String {
                None
            } else {
                Some(false)
            };
        }
        match (&node.properties, shape) {
            (Some(props), Shape::Object)
                if props
                    .values()
                    .any(|&c| self.nodes[self.resolve(c)].constant.is_some()) =>
            {
                None
            }
            _ => Some(true),
        }
    }

    /// The schema node of member `key` of an object filtered by node `id`
    /// (as returned in [`Verdict::Object`]), exactly as `filter` looks it
    /// up; `None`: the member is removed.
    pub(crate) fn member_id(&self, id: usize, key: &str) -> Option<usize> {
        self.nodes[id].properties.as_ref()?.get(key).copied()
    }
}

fn fits_shape(kind: Kind, shape: Shape) -> bool {
    match kind {
        Kind::Object => shape == Shape::Object,
        Kind::Array => shape == Shape::Array,
        Kind::String => shape == Shape::String,
        Kind::Integer => shape == Shape::Integer,
        Kind::Number => matches!(shape, Shape::Integer | Shape::Float),
        Kind::Boolean => shape == Shape::Boolean,
        Kind::Null => shape == Shape::Null,
    }
}

struct Compiler {
    nodes: Vec<Node>,
    defs: HashMap<String, usize>,
    pending: Vec<(usize, String, String)>,
}

impl Compiler {
    fn alloc(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    fn fill(&mut self, id: usize, s: &SchemaSpec, at: &str) -> Result<(), SchemaError> {
        if let Some(r) = &s.reference {
            let name = r
                .strip_prefix("#/definitions/")
                .ok_or_else(|| problem(at, SchemaProblem::RefForm(r.clone())))?;
            self.pending.push((id, name.to_string(), at.to_string()));
        }
        if s.definitions.is_some() && at != "responseSchema" {
            return Err(problem(at, SchemaProblem::NestedDefinitions));
        }
        let kind = match s.kind.as_deref() {
            None => None,
            Some("object") => Some(Kind::Object),
            Some("array") => Some(Kind::Array),
            Some("string") => Some(Kind::String),
            Some("integer") => Some(Kind::Integer),
            Some("number") => Some(Kind::Number),
            Some("boolean") => Some(Kind::Boolean),
            Some("null") => Some(Kind::Null),
            Some(other) => return Err(problem(at, SchemaProblem::UnknownType(other.to_string()))),
        };
        if s.properties.is_some() && kind != Some(Kind::Object) {
            return Err(problem(at, SchemaProblem::PropertiesWithoutObject));
        }
        if s.items.is_some() && kind != Some(Kind::Array) {
            return Err(problem(at, SchemaProblem::ItemsWithoutArray));
        }
        let mut node = Node {
            kind,
            ..Node::default()
        };
        if let Some(props) = &s.properties {
            let mut map = IndexMap::with_hasher(foldhash::fast::RandomState::default());
            for (k, child) in props {
                let cid = self.alloc();
                self.fill(cid, child, &format!("{at}.properties.{k}"))?;
                map.insert(k.clone(), cid);
            }
            node.properties = Some(map);
        }
        if let Some(items) = &s.items {
            let cid = self.alloc();
            self.fill(cid, items, &format!("{at}.items"))?;
            node.items = Some(cid);
        }
        if s.any_of.is_some() && s.one_of.is_some() {
            return Err(problem(at, SchemaProblem::AnyOfAndOneOf));
        }
        for (key, alts) in [("anyOf", &s.any_of), ("oneOf", &s.one_of)] {
            for (i, alt) in alts.iter().flatten().enumerate() {
                let cid = self.alloc();
                self.fill(cid, alt, &format!("{at}.{key}[{i}]"))?;
                node.any_of.push(cid);
            }
        }
        if s.additional_properties == Some(true) {
            return Err(problem(at, SchemaProblem::AdditionalProperties));
        }
        node.constant = s.constant.clone();
        let pending_ref = self.nodes[id].reference;
        node.reference = pending_ref;
        self.nodes[id] = node;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(y: &str) -> SchemaFilter {
        let spec: SchemaSpec = serde_yaml_ng::from_str(y).unwrap();
        SchemaFilter::compile(&spec).unwrap()
    }

    #[test]
    fn undeclared_removed_wrong_type_nulled() {
        let f = schema(
            "type: object\nproperties:\n  value:\n    type: array\n    items:\n      $ref: '#/definitions/User'\ndefinitions:\n  User:\n    type: object\n    properties:\n      id: {type: string}\n      accountEnabled: {type: boolean}\n      manager: {$ref: '#/definitions/User'}\n",
        );
        let mut doc = json!({"value":[{"id":"1","displayName":"Ann","accountEnabled":"yes","manager":{"id":"2","mail":"m@x"}}],"@odata.context":"c"});
        let n = f.apply(&mut doc);
        assert_eq!(
            doc,
            json!({"value":[{"id":"1","accountEnabled":null,"manager":{"id":"2"}}]})
        );
        assert_eq!(n, 4);
    }

    #[test]
    fn any_of_picks_fitting_alternative() {
        let f = schema("anyOf:\n  - type: string\n  - type: object\n    properties:\n      a: {type: integer}\n");
        let mut v = json!({"a": 1, "b": 2});
        f.apply(&mut v);
        assert_eq!(v, json!({"a": 1}));
        let mut s = json!("x");
        f.apply(&mut s);
        assert_eq!(s, json!("x"));
        let mut n = json!(3);
        f.apply(&mut n);
        assert_eq!(n, json!(null));
    }

    /// The verdict worked out each time, following `filter` step by step:
    /// the reference for the table.
    fn verdict_each_time(f: &SchemaFilter, id: usize, shape: Shape, depth: usize) -> Verdict {
        let id = f.resolve(id);
        let node = &f.nodes[id];
        if depth > MAX_FILTER_DEPTH {
            return Verdict::TooDeep;
        }
        if !node.any_of.is_empty() {
            for &alt in &node.any_of {
                match f.alternative_fits_shape(alt, shape) {
                    Some(true) => return verdict_each_time(f, alt, shape, depth + 1),
                    Some(false) => {}
                    None => return Verdict::NeedsValue,
                }
            }
            return Verdict::Null;
        }
        match (&node.constant, node.kind, shape) {
            (Some(_), _, Shape::Null) | (None, None, _) | (None, Some(_), Shape::Null) => {
                Verdict::Keep
            }
            (Some(_), _, Shape::String) => Verdict::NeedsValue,
            (Some(_), _, _) => Verdict::Null,
            (None, Some(kind), _) if !fits_shape(kind, shape) => Verdict::Null,
            (None, Some(_), Shape::Object) => Verdict::Object {
                id,
                depth: depth + 1,
            },
            (None, Some(_), Shape::Array) => Verdict::Array {
                items: node.items,
                depth: depth + 1,
            },
            _ => Verdict::Keep,
        }
    }

    #[test]
    fn verdicts_from_the_table_are_filters_at_every_depth() {
        // Alternatives nested three deep, `const` discriminators, `$ref`
        // chains, arrays with and without items, and an `anyOf` that
        // refers back to itself (cut at the depth bound).
        let f = schema(
            "type: object\nproperties:\n  a:\n    anyOf:\n      - anyOf:\n          - anyOf:\n              - {type: integer}\n              - {$ref: '#/definitions/O'}\n          - {type: array, items: {type: string}}\n      - {type: string}\n  b: {$ref: '#/definitions/R'}\n  c: {const: x}\n  d: {type: array}\n  e:\n    oneOf:\n      - type: object\n        properties:\n          t: {const: x}\n      - {type: boolean}\n  f: {$ref: '#/definitions/Loop'}\n  g: {}\n  h: {type: number}\ndefinitions:\n  O:\n    type: object\n    properties:\n      o: {$ref: '#/definitions/O'}\n  R: {$ref: '#/definitions/O'}\n  Loop:\n    anyOf:\n      - {$ref: '#/definitions/Loop'}\n",
        );
        let depths = (0..8).chain(MAX_FILTER_DEPTH - 6..MAX_FILTER_DEPTH + 6);
        let mut kinds = std::collections::HashSet::new();
        for depth in depths {
            for id in 0..f.nodes.len() {
                for shape in SHAPE_LIST {
                    let want = verdict_each_time(&f, id, shape, depth);
                    assert_eq!(
                        f.verdict(id, shape, depth),
                        want,
                        "node {id} {shape:?} at {depth}"
                    );
                    kinds.insert(std::mem::discriminant(&want));
                }
            }
        }
        // Every kind of verdict was met.
        assert_eq!(kinds.len(), 6);
    }

    #[test]
    fn arrays_without_items_are_emptied() {
        let f = schema("type: object\nproperties:\n  tags: {type: array}\n");
        let mut v = json!({"tags": ["a", "b"]});
        f.apply(&mut v);
        assert_eq!(v, json!({"tags": []}));
    }

    #[test]
    fn bad_schemas_are_errors() {
        for y in [
            "type: objekt",
            "$ref: '#/definitions/Nope'",
            "$ref: 'other.json'",
            "type: string\nproperties: {a: {}}",
        ] {
            let spec: SchemaSpec = serde_yaml_ng::from_str(y).unwrap();
            assert!(SchemaFilter::compile(&spec).is_err(), "{y}");
        }
    }
}
