//! A bounded cache of pseudonyms across documents.
//!
//! A tenant's pages repeat the same few thousand addresses: every page of
//! a mailbox names its owner and the same colleagues, and a crawl reads
//! thousands of pages. Without this cache each document computes each
//! address's pseudonym again (address parsing, canonical form,
//! HMAC-SHA-256, base64). With it, the second and later documents look it
//! up. The sanitizer's per-document memo (`crate::sanitize`) still avoids
//! even the lookup for repeats inside one document.
//!
//! # What it holds (privacy)
//!
//! No plaintext. An entry maps a 128-bit SipHash-1-3 of the input (and of
//! the output options) to the pseudonym string Veil sends the caller
//! anyway. SipHash is a keyed pseudorandom function: its key is derived
//! from the pseudonymization salt (HKDF-SHA256, info
//! [`CACHE_KEY_INFO`]), so without the salt the entry keys cannot be
//! linked to an address, and with the salt the pseudonyms themselves can
//! be computed for any guess. A memory dump of the process therefore learns
//! nothing the salt, which the process holds anyway, does not already give.
//! Outputs that contain the input itself (`includeOriginal`) are never
//! cached.
//!
//! A lookup answers only when the entry in its key's slot has the same
//! 128-bit key: another input's pseudonym answers with a chance of 2^-128
//! per lookup, and an outsider cannot aim for a collision without the key.
//!
//! # Bounds
//!
//! [`ENTRIES`] slots of 128 bytes (2 MiB, allocated when the first entry
//! is written). The cache is direct-mapped: a key has one slot, and a new
//! entry replaces whatever held it. So a page of values never seen before
//! costs one slot write each, never an eviction sweep or a table growing.
//! A pseudonym longer than [`MAX_TEXT`] bytes is not cached (it is
//! computed each time). The cache belongs to its [`super::Pseudonymizer`]
//! (one per process, built at start from the secrets) and goes with it.
//!
//! # Readers never write
//!
//! A slot is a sequence lock made of atomics (safe code): a writer makes
//! the slot's sequence number odd, writes the key, the length and the text,
//! and makes it even again; a reader reads the sequence number, the slot
//! and the number once more, and counts the read as a miss unless the
//! number was the same even value both times. Two writers never write one
//! slot at once (the second one finds the number odd and does not cache).
//! So a lookup is only loads: the slot's cache lines stay shared by every
//! core that reads them. A lock per shard, which this replaced, wrote its
//! lock word on every lookup, and under load that line moved from core to
//! core: `get` was 3.6 % of Veil's CPU in the proxy bench (`perf`), most
//! of it on the lock's atomic instructions; it is 2.0 % now, mostly the
//! first visit to the slot's lines, and the check that the text read is
//! UTF-8 adds about 0.7 %. Both are measured on two cores; with more cores
//! contending for a lock's line the difference grows.
//!
//! # Cost
//!
//! A hit saves the address parsing, the canonical form, HMAC-SHA-256 and
//! base64: in the proxy bench (a page seen before) the CPU per request fell
//! from 0.263 to 0.203 ms. A miss adds the SipHash and two visits to a
//! slot that is usually not in the CPU's caches: on 400,000 addresses
//! never seen before (`veil sanitize --compact`, two passes) 598 ms
//! instead of 533 ms, about 80 ns per value.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

use siphasher::sip128::{Hasher128, SipHasher13};

/// Slots in the cache.
pub(crate) const ENTRIES: usize = 16_384;
/// HKDF info string for the cache key.
pub(crate) const CACHE_KEY_INFO: &[u8] = b"veil/pseudonym-cache/v1";

/// 8-byte words of text in a slot.
const TEXT_WORDS: usize = 13;
/// The longest pseudonym a slot holds, in bytes (`t~` and 43 characters
/// of hash leave 58 bytes for the domain).
pub(crate) const MAX_TEXT: usize = TEXT_WORDS * 8;

/// In a slot's `len`: the text has no quote, backslash or control
/// character (serde_json writes it between quotes as it is). Decided when
/// the text is written, so a lookup for the output need not look at it.
const JSON_PLAIN: u32 = 1 << 31;

/// One entry: 128 bytes, two cache lines of its own.
#[derive(Default)]
#[repr(align(64))]
struct Slot {
    /// Even: the slot is as its last writer left it; odd: being written.
    /// (It wraps after 2^31 writes; a reader would have to stall through
    /// exactly that many writes of its slot to be fooled.)
    seq: AtomicU32,
    /// The text's length in bytes (0: the slot is empty), and
    /// [`JSON_PLAIN`] when the text needs no escapes in a JSON string.
    len: AtomicU32,
    /// The entry key, low half first.
    key: [AtomicU64; 2],
    /// The pseudonym's bytes, little-endian, zero-padded.
    text: [AtomicU64; TEXT_WORDS],
}

/// See the module docs.
pub(crate) struct Cache {
    key: SipHasher13,
    slots: OnceLock<Box<[Slot]>>,
    entries: usize,
}

impl Cache {
    /// An empty cache keyed by `key` (16 secret bytes), with `entries`
    /// slots; 0 turns it off.
    pub(crate) fn new(key: [u8; 16], entries: usize) -> Cache {
        let key = u128::from_le_bytes(key);
        Cache {
            key: SipHasher13::new_with_keys(key as u64, (key >> 64) as u64),
            slots: OnceLock::new(),
            entries,
        }
    }

    /// The entry key of `value` under the options `tag`.
    pub(crate) fn key(&self, tag: u8, value: &str) -> u128 {
        let mut h = self.key;
        std::hash::Hasher::write(&mut h, &[tag]);
        std::hash::Hasher::write(&mut h, value.as_bytes());
        h.finish128().as_u128()
    }

    /// The slot of `key` (uniformly distributed, so its low bits pick it),
    /// once some entry was written.
    fn slot(&self, key: u128) -> Option<&Slot> {
        let slots = self.slots.get()?;
        slots.get(key as u64 as usize % slots.len())
    }

    /// The pseudonym remembered for `key`.
    pub(crate) fn get(&self, key: u128) -> Option<String> {
        let (text, len, _) = self.read(key)?;
        String::from_utf8(text[..len].to_vec()).ok()
    }

    /// Appends the pseudonym remembered for `key` to `out` as a JSON string
    /// (in quotes), when it is one serde_json writes without escapes (no
    /// quote, backslash or control character); else appends nothing.
    /// Returns whether it appended.
    pub(crate) fn get_json(&self, key: u128, out: &mut Vec<u8>) -> bool {
        // A read is whole (one write's bytes, a `&str` when written), so
        // the text is UTF-8 as it was then.
        let Some((text, len, true)) = self.read(key) else {
            return false;
        };
        out.reserve(len + 2);
        out.push(b'"');
        out.extend_from_slice(&text[..len]);
        out.push(b'"');
        true
    }

    /// The bytes remembered for `key`, their length and whether they are
    /// [`JSON_PLAIN`], read whole (or a miss).
    fn read(&self, key: u128) -> Option<([u8; MAX_TEXT], usize, bool)> {
        let slot = self.slot(key)?;
        let seq = slot.seq.load(Ordering::Acquire);
        if seq & 1 == 1 {
            return None;
        }
        let len = slot.len.load(Ordering::Relaxed);
        let plain = len & JSON_PLAIN != 0;
        let len = (len & !JSON_PLAIN) as usize;
        if slot.key[0].load(Ordering::Relaxed) != key as u64
            || slot.key[1].load(Ordering::Relaxed) != (key >> 64) as u64
            || len == 0
            || len > MAX_TEXT
        {
            return None;
        }
        let mut text = [0u8; MAX_TEXT];
        for (bytes, word) in text[..len].chunks_mut(8).zip(&slot.text) {
            let word = word.load(Ordering::Relaxed).to_le_bytes();
            bytes.copy_from_slice(&word[..bytes.len()]);
        }
        #[cfg(test)]
        tests::between_read_and_check();
        // What was read belongs to one write only if no writer started
        // meanwhile (the fence orders the reads above before this load).
        fence(Ordering::Acquire);
        if slot.seq.load(Ordering::Relaxed) != seq {
            return None;
        }
        Some((text, len, plain))
    }

    /// Remembers `pseudonym` for `key`, in place of what held its slot.
    pub(crate) fn put(&self, key: u128, pseudonym: &str) {
        if self.entries == 0 || pseudonym.is_empty() || pseudonym.len() > MAX_TEXT {
            return;
        }
        self.slots
            .get_or_init(|| (0..self.entries).map(|_| Slot::default()).collect());
        let Some(slot) = self.slot(key) else {
            return;
        };
        let seq = slot.seq.load(Ordering::Relaxed);
        if seq & 1 == 1
            || slot
                .seq
                .compare_exchange(
                    seq,
                    seq.wrapping_add(1),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            // Another writer has the slot: this value is not cached.
            return;
        }
        // A reader that sees any of the stores below sees the odd number
        // when it reads the sequence number again.
        fence(Ordering::Release);
        slot.key[0].store(key as u64, Ordering::Relaxed);
        slot.key[1].store((key >> 64) as u64, Ordering::Relaxed);
        let plain = !pseudonym
            .bytes()
            .any(|b| b < 0x20 || b == b'"' || b == b'\\');
        slot.len.store(
            pseudonym.len() as u32 | if plain { JSON_PLAIN } else { 0 },
            Ordering::Relaxed,
        );
        let mut words = pseudonym.as_bytes().chunks(8);
        for word in &slot.text {
            let mut bytes = [0u8; 8];
            if let Some(chunk) = words.next() {
                bytes[..chunk.len()].copy_from_slice(chunk);
            }
            word.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
        }
        slot.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// Entries alive now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.get().map_or(0, |s| {
            s.iter()
                .filter(|s| s.len.load(Ordering::Relaxed) != 0)
                .count()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// Runs once inside this thread's next `get`, after the slot was
        /// read and before the read is checked: a write that races the read.
        static RACE: RefCell<Option<Box<dyn FnOnce()>>> = RefCell::new(None);
    }

    pub(super) fn between_read_and_check() {
        if let Some(race) = RACE.with(|r| r.borrow_mut().take()) {
            race();
        }
    }

    #[test]
    fn a_write_during_a_read_makes_it_a_miss() {
        let c = std::sync::Arc::new(Cache::new([9; 16], 1));
        let (a, b) = (c.key(0, "a"), c.key(0, "b"));
        c.put(a, "t~aaaaaaaaaaaaaaaaaaaa@a.example");
        // Another key's write lands mid-read: its text may have been read
        // under `a`'s key, so the read must not answer.
        let racer = c.clone();
        RACE.with(|r| *r.borrow_mut() = Some(Box::new(move || racer.put(b, "t~bb@b.example"))));
        assert_eq!(c.get(a), None);
        // The same key written again with the same text: still a miss (the
        // read cannot tell), then a hit.
        c.put(a, "t~aaaaaaaaaaaaaaaaaaaa@a.example");
        let racer = c.clone();
        RACE.with(|r| {
            *r.borrow_mut() = Some(Box::new(move || {
                racer.put(a, "t~aaaaaaaaaaaaaaaaaaaa@a.example")
            }))
        });
        assert_eq!(c.get(a), None);
        assert_eq!(
            c.get(a).as_deref(),
            Some("t~aaaaaaaaaaaaaaaaaaaa@a.example")
        );
    }

    #[test]
    fn a_slot_being_written_is_neither_read_nor_written_again() {
        let c = Cache::new([10; 16], 1);
        let a = c.key(0, "a");
        c.put(a, "t~a@a.example");
        let slot = c.slot(a).unwrap();
        // As if a writer were between its two updates of the number.
        slot.seq.fetch_add(1, Ordering::Relaxed);
        assert_eq!(c.get(a), None, "a slot being written is a miss");
        c.put(c.key(0, "b"), "t~b@b.example");
        slot.seq.fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            c.get(a).as_deref(),
            Some("t~a@a.example"),
            "the second writer kept off"
        );
    }

    #[test]
    fn remembers_by_tag_and_value() {
        let c = Cache::new([7; 16], ENTRIES);
        let a = c.key(0, "alice@contoso.example");
        assert_ne!(a, c.key(1, "alice@contoso.example"), "the tag is keyed");
        assert_ne!(a, c.key(0, "alice@contoso.example "));
        assert_eq!(a, c.key(0, "alice@contoso.example"));
        assert_eq!(c.get(a), None);
        c.put(a, "t~abc@contoso.example");
        assert_eq!(c.get(a).as_deref(), Some("t~abc@contoso.example"));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn get_json_writes_only_what_needs_no_escapes() {
        let c = Cache::new([8; 16], ENTRIES);
        let mut out = b"[".to_vec();
        let a = c.key(0, "a");
        assert!(!c.get_json(a, &mut out), "a miss");
        c.put(a, "t~abc@contoso.example");
        assert!(c.get_json(a, &mut out));
        assert_eq!(out, br#"["t~abc@contoso.example""#);
        for text in ["{\"h\":1}", "a\\b", "a\u{1f}b", "a\nb"] {
            let k = c.key(0, text);
            c.put(k, text);
            assert_eq!(c.get(k).as_deref(), Some(text));
            assert!(!c.get_json(k, &mut out), "{text:?} needs escapes");
        }
        c.put(c.key(0, "é"), "p~é");
        assert!(c.get_json(c.key(0, "é"), &mut out));
        assert_eq!(out, r#"["t~abc@contoso.example""p~é""#.as_bytes());
    }

    #[test]
    fn the_key_depends_on_the_secret() {
        let (a, b) = (Cache::new([1; 16], ENTRIES), Cache::new([2; 16], ENTRIES));
        assert_ne!(a.key(0, "bob"), b.key(0, "bob"));
    }

    #[test]
    fn never_holds_more_than_its_bound() {
        let c = Cache::new([3; 16], 64);
        for i in 0..10_000 {
            let k = c.key(0, &i.to_string());
            c.put(k, "x");
            assert!(c.len() <= 64, "{} entries after {i}", c.len());
        }
        // The last value put is always there.
        assert_eq!(c.get(c.key(0, "9999")).as_deref(), Some("x"));
    }

    #[test]
    fn a_replaced_entry_is_gone_never_mistaken() {
        // One slot: every key has it.
        let c = Cache::new([5; 16], 1);
        let first = c.key(0, "value-0");
        let same_slot = c.key(0, "value-1");
        c.put(first, "t~first");
        c.put(same_slot, "t~second");
        assert_eq!(
            c.get(first),
            None,
            "another key's pseudonym must not answer"
        );
        assert_eq!(c.get(same_slot).as_deref(), Some("t~second"));
        c.put(first, "t~first-again");
        assert_eq!(c.get(first).as_deref(), Some("t~first-again"));
        assert_eq!(c.get(same_slot), None);
    }

    #[test]
    fn zero_entries_turns_it_off() {
        let c = Cache::new([4; 16], 0);
        let k = c.key(0, "carol");
        c.put(k, "t~carol");
        assert_eq!(c.get(k), None);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn the_longest_pseudonym_a_slot_holds_and_no_longer() {
        let c = Cache::new([6; 16], ENTRIES);
        let fits = "t~".to_string() + &"a".repeat(MAX_TEXT - 2);
        let (k1, k2) = (c.key(0, "fits"), c.key(0, "too long"));
        c.put(k1, &fits);
        c.put(k2, &(fits.clone() + "b"));
        assert_eq!(c.get(k1).as_deref(), Some(fits.as_str()));
        assert_eq!(c.get(k2), None, "longer than a slot: not cached");
        // Lengths that end inside a word are read back whole.
        for n in 1..=MAX_TEXT {
            let k = c.key(1, &n.to_string());
            let text = "é".repeat(n / 2) + &"x".repeat(n % 2);
            c.put(k, &text);
            assert_eq!(c.get(k).as_deref(), Some(text.as_str()), "length {n}");
        }
    }

    /// Writers racing for one slot, a reader reading it all the while: a
    /// hit is always the pseudonym put for that very key, never a mix of
    /// two writes. (Real races seldom tear a read here, the slot's two
    /// lines travel between cores together; the tests above force one.)
    #[test]
    fn a_read_racing_writes_is_whole_or_a_miss() {
        let c = Cache::new([8; 16], 1);
        let values: Vec<(u128, String)> = (0..3)
            .map(|i: usize| {
                let text = i.to_string().repeat(MAX_TEXT - i * 9);
                (c.key(0, &i.to_string()), text)
            })
            .collect();
        let hits = AtomicU64::new(0);
        let writing = AtomicU32::new(values.len() as u32);
        std::thread::scope(|s| {
            for (k, text) in &values {
                let (c, writing) = (&c, &writing);
                s.spawn(move || {
                    for _ in 0..200_000 {
                        c.put(*k, text);
                    }
                    writing.fetch_sub(1, Ordering::Relaxed);
                });
            }
            s.spawn(|| {
                let mut round = 0;
                // Until the writers are done, and at least one hit (after
                // them, the last value written answers).
                while writing.load(Ordering::Relaxed) > 0 || hits.load(Ordering::Relaxed) == 0 {
                    let (k, text) = &values[round % values.len()];
                    if let Some(hit) = c.get(*k) {
                        assert_eq!(&hit, text, "a torn or foreign entry answered");
                        hits.fetch_add(1, Ordering::Relaxed);
                    }
                    round += 1;
                }
            });
        });
        // The last value written answers.
        let answered = values.iter().filter(|(k, _)| c.get(*k).is_some()).count();
        assert_eq!(answered, 1);
    }
}
