//! The transcoder: walks the scanner's tokens, decides each value by the
//! compiled rules and writes the sanitized output as it goes.

use super::*;

pub(super) enum Stop {
    /// Not JSON serde_json accepts (the diagnostic comes from serde_json).
    Bad,
    /// A duplicate member name: the DOM path decides.
    Dup,
    /// A transform failed.
    Fail,
    /// Writing to the sink failed (the error is in `Tx::io_error`).
    Io,
}

impl From<Bad> for Stop {
    fn from(_: Bad) -> Self {
        Stop::Bad
    }
}

/// A scalar token (its bytes are in the scanner's window).
pub(super) enum Scalar {
    Str(Str),
    Num(Num),
    Lit(&'static [u8]),
}

/// With a sink: the output is handed to it in pieces of about this size.
pub(super) const FLUSH_AT: usize = 64 * 1024;

pub(super) struct Tx<'a, 's, 'o> {
    pub(super) sc: Scanner<'a>,
    /// The output not yet handed to the sink (all of it without a sink).
    pub(super) out: Vec<u8>,
    /// Bytes handed to the sink so far.
    pub(super) flushed: usize,
    pub(super) sink: Option<&'o mut dyn Write>,
    pub(super) io_error: Option<std::io::Error>,
    /// Where top-level paging links point, when not at Graph.
    pub(super) links: Option<&'s PublicBase>,
    pub(super) san: &'s EndpointSanitizer,
    pub(super) schema: Option<&'s SchemaFilter>,
    pub(super) paths: &'s PathSet,
    pub(super) global: bool,
    pub(super) w: Walk<'s>,
    pub(super) schema_changes: usize,
    pub(super) order: Vec<usize>,
    /// The members of the last object read per place (per schema node
    /// and filter depth: a message's `from` and each element of its
    /// `toRecipients` are both recipients, one level apart), and buffers;
    /// taken from the endpoint's kept layouts, and given back at the end.
    /// (Members are boxed: taken out and put back per object, which moves
    /// a pointer.)
    pub(super) layout: Layout,
}

impl Drop for Tx<'_, '_, '_> {
    fn drop(&mut self) {
        self.san.layouts().put(std::mem::take(&mut self.layout));
    }
}

impl<'a, 's, 'o> Tx<'a, 's, 'o> {
    /// `size`: the body's size when known. Without a sink the output is
    /// collected whole, in a buffer of that size from the start: a page's
    /// output is often more than half of it (Sent Items under the shipped
    /// rules: 57 %), and a buffer grown from an eighth copied what it held
    /// three times. What is never written is never touched, so the rest
    /// costs address space, not memory.
    pub(super) fn new(
        san: &'s EndpointSanitizer,
        sc: Scanner<'a>,
        size: usize,
        p: &'s Pseudonymizer,
        active: &'s [bool],
        links: Option<&'s PublicBase>,
        sink: Option<&'o mut dyn Write>,
    ) -> Self {
        let capacity = match sink {
            Some(_) => FLUSH_AT + FLUSH_AT / 4,
            None => size,
        };
        Tx {
            sc,
            out: Vec::with_capacity(capacity),
            flushed: 0,
            sink,
            io_error: None,
            links,
            san,
            schema: san.schema(),
            paths: san.paths(),
            global: san.paths().has_global(),
            w: san.new_walk(p, active),
            schema_changes: 0,
            order: Vec::new(),
            layout: san.layouts().take(),
        }
    }

    /// The output position (bytes written, flushed or not).
    pub(super) fn mark(&self) -> usize {
        self.flushed + self.out.len()
    }

    /// Takes back the output written since `mark`. Values that may be
    /// taken back are scalars and buffered subtrees, which are never
    /// flushed in part; a mark before the flushed output would be a bug,
    /// and then the DOM path answers.
    pub(super) fn truncate(&mut self, mark: usize) -> Result<(), Stop> {
        if mark < self.flushed {
            return Err(Stop::Fail);
        }
        self.out.truncate(mark - self.flushed);
        Ok(())
    }

    /// Hands the output so far to the sink once it is large enough. Called
    /// only between the members or elements of a streamed container, where
    /// nothing written before can be taken back.
    pub(super) fn maybe_flush(&mut self) -> Result<(), Stop> {
        if self.out.len() < FLUSH_AT {
            return Ok(());
        }
        if let Some(w) = self.sink.as_mut() {
            if let Err(e) = w.write_all(&self.out) {
                self.io_error = Some(e);
                return Err(Stop::Io);
            }
            self.flushed += self.out.len();
            self.out.clear();
        }
        Ok(())
    }

    /// Points a top-level paging link written at `start` at the public
    /// base. The output there is serde_json's encoding of a string, so the
    /// text `"https://graph.microsoft.com/` begins it exactly when the link
    /// begins with Graph's base.
    pub(super) fn rewrite_link(&mut self, start: usize) {
        let Some(base) = self.links else { return };
        if start < self.flushed {
            return;
        }
        let at = start - self.flushed;
        let value = &self.out[at..];
        if value.len() > GRAPH_BASE.len() + 1
            && value[0] == b'"'
            && value[1..].starts_with(GRAPH_BASE.as_bytes())
            && value[1 + GRAPH_BASE.len()] == b'/'
        {
            self.out
                .splice(at + 1..at + 1 + GRAPH_BASE.len(), base.as_str().bytes());
        }
    }

    pub(super) fn run(&mut self) -> Result<(), Stop> {
        if !self.sc.utf8_ok() {
            return Err(Stop::Bad);
        }
        let (mut states, mut matched) = (Vec::new(), Vec::new());
        self.paths.initial(&mut states, &mut matched);
        let sch = match self.schema {
            Some(s) => Sch::Node(s.root_id(), 0),
            None => Sch::Off,
        };
        // `streams()` excludes a path `$`, so nothing ends at the root and
        // the root is always kept.
        self.value(sch, &matched, &states, 0)?;
        self.sc.end()?;
        Ok(())
    }

    /// The value at the current position. `matched`: paths that end at it;
    /// `next`: automaton states for its children; `depth`: containers
    /// around it. Writes it unless it is removed; returns whether it was
    /// kept.
    pub(super) fn value(
        &mut self,
        sch: Sch,
        matched: &[u32],
        next: &[State],
        depth: usize,
    ) -> Result<bool, Stop> {
        let c = self.sc.peek()?;
        let mut num = None;
        let shape = match c {
            b'{' => Shape::Object,
            b'[' => Shape::Array,
            b'"' => Shape::String,
            b't' | b'f' => Shape::Boolean,
            b'n' => Shape::Null,
            b'-' | b'0'..=b'9' => {
                let n = self.sc.number()?;
                num = Some(n);
                if self.sc.num_ref(n).is_integer()? {
                    Shape::Integer
                } else {
                    Shape::Float
                }
            }
            _ => return Err(Stop::Bad),
        };
        let verdict = match (sch, self.schema) {
            (Sch::Node(id, d), Some(s)) => s.verdict(id, shape, d),
            _ => Verdict::Keep,
        };
        if verdict == Verdict::NeedsValue {
            // The schema looks into the value: filter it whole. A number
            // was read already; put the scanner back to its start.
            if let Some(n) = num {
                self.sc.pos = n.start;
            }
            return self.buffered(sch, matched, next, depth);
        }
        if verdict == Verdict::Null || verdict == Verdict::TooDeep {
            if shape != Shape::Null || verdict == Verdict::TooDeep {
                self.schema_changes += 1;
            }
            if num.is_none() {
                self.sc.skip(depth)?;
            }
            return self.scalar(Scalar::Lit(b"null"), matched);
        }
        match shape {
            Shape::Object | Shape::Array => {
                if !matched.is_empty() {
                    if verdict == Verdict::Keep && self.san.removes_unseen(matched, &mut self.w) {
                        self.sc.skip(depth)?;
                        return Ok(false);
                    }
                    return self.buffered(sch, matched, next, depth);
                }
                if self.paths.needs_container(next) {
                    return self.buffered(sch, matched, next, depth);
                }
                if shape == Shape::Object {
                    self.object(verdict, next, depth)?;
                } else {
                    self.array(verdict, next, depth)?;
                }
                Ok(true)
            }
            Shape::String => {
                let s = self.sc.string()?;
                self.scalar(Scalar::Str(s), matched)
            }
            Shape::Integer | Shape::Float => match num {
                Some(n) => self.scalar(Scalar::Num(n), matched),
                None => Err(Stop::Bad),
            },
            Shape::Boolean | Shape::Null => {
                let l = self.sc.literal()?;
                self.scalar(Scalar::Lit(l), matched)
            }
        }
    }

    /// A scalar: written as is, or through the transforms that end at it.
    pub(super) fn scalar(&mut self, s: Scalar, matched: &[u32]) -> Result<bool, Stop> {
        if matched.is_empty() {
            match s {
                Scalar::Str(s) => self.sc.str_ref(s).write(&mut self.out)?,
                Scalar::Num(n) => self.sc.num_ref(n).write(&mut self.out)?,
                Scalar::Lit(l) => self.out.extend_from_slice(l),
            }
            return Ok(true);
        }
        if let Scalar::Str(s) = s {
            if let Some(text) = self.sc.str_ref(s).plain() {
                if self
                    .san
                    .write_remembered(text, matched, &mut self.w, &mut self.out)
                {
                    return Ok(true);
                }
            }
        }
        let mut v = match s {
            Scalar::Str(s) => Value::String(self.sc.str_ref(s).text()?.into_owned()),
            Scalar::Num(n) => Value::Number(self.sc.num_ref(n).number()?),
            Scalar::Lit(b"true") => Value::Bool(true),
            Scalar::Lit(b"false") => Value::Bool(false),
            Scalar::Lit(_) => Value::Null,
        };
        if self
            .san
            .apply_matched(&mut v, matched, &mut self.order, &mut self.w)
            .map_err(|_| Stop::Fail)?
        {
            return Ok(false);
        }
        serde_json::to_writer(&mut self.out, &v).map_err(|_| Stop::Bad)?;
        Ok(true)
    }

    /// A subtree the rules need whole: parsed, filtered, transformed and
    /// walked by the DOM code, then written.
    pub(super) fn buffered(
        &mut self,
        sch: Sch,
        matched: &[u32],
        next: &[State],
        depth: usize,
    ) -> Result<bool, Stop> {
        let (start, end) = self.sc.skip_raw(depth)?;
        let mut v: Value =
            serde_json::from_slice(self.sc.raw(start, end)).map_err(|_| Stop::Bad)?;
        if let (Sch::Node(id, d), Some(s)) = (sch, self.schema) {
            self.schema_changes += s.apply_at(id, &mut v, d);
        }
        if self
            .san
            .apply_matched(&mut v, matched, &mut self.order, &mut self.w)
            .map_err(|_| Stop::Fail)?
        {
            return Ok(false);
        }
        if (v.is_object() || v.is_array()) && (!next.is_empty() || self.global) {
            self.san
                .walk(&mut v, next, 0, &mut self.w)
                .map_err(|_| Stop::Fail)?;
        }
        serde_json::to_writer(&mut self.out, &v).map_err(|_| Stop::Bad)?;
        Ok(true)
    }

    /// Opens a container at `depth` (refused past the scanner's nesting
    /// limit), writing its opening byte; `true` when it is empty (then
    /// closed as well).
    fn open(&mut self, open: u8, close: u8, depth: usize) -> Result<bool, Stop> {
        self.sc.deeper(depth)?;
        self.sc.expect(open)?;
        self.out.push(open);
        if self.sc.empty(close)? {
            self.out.push(close);
            return Ok(true);
        }
        Ok(false)
    }

    pub(super) fn object(
        &mut self,
        verdict: Verdict,
        states: &[State],
        depth: usize,
    ) -> Result<(), Stop> {
        if self.open(b'{', b'}', depth)? {
            return Ok(());
        }
        let context = match verdict {
            Verdict::Object { id, depth: d } => Some((id, d)),
            _ => None,
        };
        // Empty when an object of the same place encloses this one.
        let mut members = self.slot(context, depth).take().unwrap_or_default();
        let predicted = members.start(context, states);
        let r = self.members(verdict, states, depth, (&mut members, predicted));
        *self.slot(context, depth) = Some(members);
        r?;
        self.out.push(b'}');
        Ok(())
    }

    /// Where the members of an object read in `context` (its schema node
    /// and filter depth), or at `depth` without one, are kept.
    fn slot(&mut self, context: Option<(usize, usize)>, depth: usize) -> &mut Option<Box<Members>> {
        let l = &mut self.layout;
        let (slots, i) = match context {
            Some((id, d)) => {
                if l.by_node.len() <= id {
                    l.by_node.resize_with(id + 1, Vec::new);
                }
                (&mut l.by_node[id], d)
            }
            None => (&mut l.by_depth, depth),
        };
        if slots.len() <= i {
            slots.resize_with(i + 1, Default::default);
        }
        &mut slots[i]
    }

    /// The members of an object, after its `{`. `members`: the last object's
    /// read in the same place, and whether they may predict this one's
    /// (see [`Members`]); they are this object's when it ends.
    pub(super) fn members(
        &mut self,
        verdict: Verdict,
        states: &[State],
        depth: usize,
        (members, mut predicted): (&mut Members, bool),
    ) -> Result<(), Stop> {
        let mut pos = 0;
        let mut first = true;
        let mut i = 0;
        loop {
            // The name as the last object had it at this place, byte for
            // byte: its decision holds, and it is no duplicate.
            let name = if predicted && i < members.len() {
                members.exact(i)
            } else {
                None
            };
            let exact = match name {
                Some(name) => self.sc.exact_string(name.as_bytes())?,
                None => None,
            };
            let k = match exact {
                Some(k) => k,
                None => {
                    predicted = false;
                    self.sc.string()?
                }
            };
            if !predicted {
                members.truncate(i);
                let token = self.sc.str_ref(k);
                let key = token.text()?;
                if members.contains(&key) {
                    return Err(Stop::Dup);
                }
                let child = match verdict {
                    Verdict::Object { id, depth: d } => self
                        .schema
                        .and_then(|s| s.member_id(id, &key))
                        .map(|cid| Sch::Node(cid, d)),
                    _ => Some(Sch::Off),
                };
                // The decision goes straight into the member table: one
                // pair of buffers serves every object.
                let (next, matched) = &mut self.layout.scratch;
                next.clear();
                matched.clear();
                if child.is_some() {
                    self.paths
                        .advance(states, Key::Name(&key), pos, None, next, matched);
                }
                members.push(&key, !k.escaped, child, next, matched);
            }
            let (member, next, matched) = members.get(i);
            i += 1;
            match member.child {
                None => {
                    self.sc.expect(b':')?;
                    self.schema_changes += 1;
                    self.sc.skip(depth + 1)?;
                }
                Some(child) => {
                    pos += 1;
                    self.maybe_flush()?;
                    let mark = self.mark();
                    if !first {
                        self.out.push(b',');
                    }
                    match self.sc.name_and_colon(k) {
                        Some(raw) => self.out.extend_from_slice(raw),
                        None => {
                            self.sc.str_ref(k).write(&mut self.out)?;
                            self.sc.expect(b':')?;
                            self.out.push(b':');
                        }
                    }
                    let start = self.mark();
                    let kept = self.value(child, matched, next, depth + 1)?;
                    if kept {
                        first = false;
                        if depth == 0
                            && self.links.is_some()
                            && PAGING_LINKS.contains(&members.name(i - 1))
                        {
                            self.rewrite_link(start);
                        }
                    } else {
                        self.truncate(mark)?;
                    }
                }
            }
            if !self.sc.next_or_close(b'}')? {
                members.truncate(i);
                return Ok(());
            }
        }
    }

    pub(super) fn array(
        &mut self,
        verdict: Verdict,
        states: &[State],
        depth: usize,
    ) -> Result<(), Stop> {
        if self.open(b'[', b']', depth)? {
            return Ok(());
        }
        let child = match verdict {
            Verdict::Array {
                items: Some(cid),
                depth: d,
            } => Sch::Node(cid, d),
            Verdict::Array { items: None, .. } => {
                // No `items`: every element is removed.
                loop {
                    self.sc.skip(depth + 1)?;
                    self.schema_changes += 1;
                    if !self.sc.next_or_close(b']')? {
                        break;
                    }
                }
                self.out.push(b']');
                return Ok(());
            }
            _ => Sch::Off,
        };
        if self.layout.bufs.len() <= depth {
            self.layout.bufs.resize_with(depth + 1, Default::default);
        }
        let (mut next, mut matched) = std::mem::take(&mut self.layout.bufs[depth]);
        let r = self.elements(child, states, depth, &mut next, &mut matched);
        self.layout.bufs[depth] = (next, matched);
        r?;
        self.out.push(b']');
        Ok(())
    }

    pub(super) fn elements(
        &mut self,
        child: Sch,
        states: &[State],
        depth: usize,
        next: &mut Vec<State>,
        matched: &mut Vec<u32>,
    ) -> Result<(), Stop> {
        let mut first = true;
        // An array is streamed only when no live selector looks at the
        // position or the length (`value` buffers it otherwise:
        // `needs_container`), so every element gets the first one's states.
        debug_assert!(!self.paths.needs_container(states));
        next.clear();
        matched.clear();
        self.paths
            .advance(states, Key::Index(0, usize::MAX), 0, None, next, matched);
        loop {
            self.maybe_flush()?;
            let mark = self.mark();
            if !first {
                self.out.push(b',');
            }
            let kept = self.value(child, matched, next, depth + 1)?;
            if kept {
                first = false;
            } else {
                self.truncate(mark)?;
            }
            if !self.sc.next_or_close(b']')? {
                return Ok(());
            }
        }
    }
}
