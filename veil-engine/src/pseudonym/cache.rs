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
//! Two inputs share an entry only if their 128-bit keys collide: with at
//! most [`ENTRIES`] entries alive, the chance per lookup is about
//! 2^-114, and an outsider cannot aim for one without the key.
//!
//! # Bounds
//!
//! [`ENTRIES`] entries in all (about 1.5 MB when full), in [`SHARDS`]
//! shards behind their own locks, so threads seldom wait for each other. A
//! full shard is emptied and starts again. The cache belongs to its
//! [`super::Pseudonymizer`] (one per process, built at start from the
//! secrets) and goes with it.

use std::collections::HashMap;
use std::sync::Mutex;

use siphasher::sip128::{Hasher128, SipHasher13};

/// Most entries in the cache (all shards together).
pub(crate) const ENTRIES: usize = 16_384;
/// Independently locked parts of the cache; a power of two.
pub(crate) const SHARDS: usize = 16;
/// HKDF info string for the cache key.
pub(crate) const CACHE_KEY_INFO: &[u8] = b"veil/pseudonym-cache/v1";

type Shard = HashMap<u128, Box<str>, foldhash::fast::FixedState>;

/// A shard's lock on cache lines of its own, so that two threads using
/// two shards do not contend for one line.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// See the module docs.
pub(crate) struct Cache {
    key: SipHasher13,
    shards: Box<[Padded]>,
    per_shard: usize,
}

impl Cache {
    /// An empty cache keyed by `key` (16 secret bytes), holding at most
    /// `entries` pseudonyms (rounded down to a multiple of [`SHARDS`]);
    /// 0 turns it off.
    pub(crate) fn new(key: [u8; 16], entries: usize) -> Cache {
        let (k0, k1) = key.split_at(8);
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        let per_shard = entries / SHARDS;
        Cache {
            key: SipHasher13::new_with_keys(word(k0), word(k1)),
            shards: (0..if per_shard == 0 { 0 } else { SHARDS })
                .map(|_| Padded(Mutex::new(Shard::default())))
                .collect(),
            per_shard,
        }
    }

    /// The entry key of `value` under the options `tag`.
    pub(crate) fn key(&self, tag: u8, value: &str) -> u128 {
        let mut h = self.key;
        std::hash::Hasher::write(&mut h, &[tag]);
        std::hash::Hasher::write(&mut h, value.as_bytes());
        h.finish128().as_u128()
    }

    fn shard(&self, key: u128) -> Option<&Mutex<Shard>> {
        // The key is uniformly distributed: its top bits pick the shard,
        // its low bits the bucket inside it.
        let i = (key >> 64) as usize % SHARDS.max(1);
        self.shards.get(i).map(|p| &p.0)
    }

    /// The pseudonym remembered for `key`.
    pub(crate) fn get(&self, key: u128) -> Option<String> {
        // A poisoned lock (a panic while it was held) counts as a miss: the
        // value is then computed again, never taken from a broken map.
        let shard = self.shard(key)?.lock().ok()?;
        shard.get(&key).map(|s| String::from(&**s))
    }

    /// Remembers `pseudonym` for `key`, emptying the shard first when full.
    pub(crate) fn put(&self, key: u128, pseudonym: &str) {
        let Some(Ok(mut shard)) = self.shard(key).map(Mutex::lock) else {
            return;
        };
        if shard.len() >= self.per_shard {
            shard.clear();
        }
        shard.insert(key, pseudonym.into());
    }

    /// Entries alive now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.lock().map_or(0, |s| s.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn zero_entries_turns_it_off() {
        let c = Cache::new([4; 16], 0);
        let k = c.key(0, "carol");
        c.put(k, "t~carol");
        assert_eq!(c.get(k), None);
        assert_eq!(c.len(), 0);
    }
}
