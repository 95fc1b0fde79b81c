//! Where configuration is read from: the [`Env`] trait, with the process
//! environment ([`ProcessEnv`], [`var`]) and a fixed map ([`MapEnv`], for
//! tests and previews) as implementations. Every `from_env`/`from_lookup`
//! takes a [`Lookup`], so it can be tested without touching the process
//! environment. An empty value counts as unset.
//!
//! This module depends on nothing else in the crate: every other module
//! may use it.

use std::collections::HashMap;

/// A source of configuration variables.
pub trait Env: Sync {
    /// The variable's value; `None` when it is unset or empty.
    fn get(&self, name: &str) -> Option<String>;
}

/// How configuration variables are read (see the module doc).
pub type Lookup<'a> = &'a dyn Env;

/// Any `Fn(&str) -> Option<String>` is a lookup (e.g. `&var`).
impl<F: Fn(&str) -> Option<String> + Sync> Env for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name).filter(|v| !v.is_empty())
    }
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        var(name)
    }
}

/// Reads a variable of the process environment; empty counts as unset.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Fixed variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapEnv(HashMap<String, String>);

impl MapEnv {
    pub fn new(pairs: &[(&str, &str)]) -> MapEnv {
        MapEnv(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl Env for MapEnv {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// A [`MapEnv`] of `pairs` (tests).
#[cfg(test)]
pub(crate) fn lookup(pairs: &[(&str, &str)]) -> MapEnv {
    MapEnv::new(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_unset_in_every_implementation() {
        let map = MapEnv::new(&[("A", "1"), ("B", "")]);
        assert_eq!(map.get("A").as_deref(), Some("1"));
        assert_eq!(map.get("B"), None);
        assert_eq!(map.get("C"), None);
        let closure = |name: &str| (name == "B").then(String::new);
        assert_eq!(Env::get(&closure, "B"), None);
        let lookup: Lookup<'_> = &map;
        assert_eq!(lookup.get("A").as_deref(), Some("1"));
        assert_eq!(ProcessEnv.get("VEIL_TEST_SURELY_UNSET_VARIABLE"), None);
    }
}
