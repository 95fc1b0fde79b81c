//! Where configuration is read from: the [`Env`] trait, with the process
//! environment ([`ProcessEnv`], [`var`]) and a fixed map ([`MapEnv`], for
//! tests and previews) as implementations. Every `from_env`/`from_lookup`
//! takes a [`Lookup`], so it can be tested without touching the process
//! environment. An empty value counts as unset.
//!
//! Reading a group of settings collects every problem ([`Problems`])
//! before failing, so an operator fixes them all in one round; each
//! problem is a [`ConfigError`] naming its setting. Start-up gathers the
//! groups into one [`Problems`] ([`Problems::absorb`]) and fails once with
//! [`ConfigErrors::report`].
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

/// Fixed variables (tests, and checking a configuration without the
/// process environment).
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

/// One configuration problem. Its message names the setting and never
/// contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// The variable (or setting) at fault.
    pub setting: String,
    message: String,
}

impl ConfigError {
    /// `<setting>: <problem>`.
    pub fn invalid(setting: &str, problem: impl std::fmt::Display) -> ConfigError {
        ConfigError {
            setting: setting.to_string(),
            message: format!("{setting}: {problem}"),
        }
    }

    /// A problem of `setting` whose `message` already names it (kept as is).
    pub fn new(setting: &str, message: impl std::fmt::Display) -> ConfigError {
        ConfigError {
            setting: setting.to_string(),
            message: message.to_string(),
        }
    }

    /// `<setting> is not set: it holds <what>`.
    pub fn missing(setting: &str, what: impl std::fmt::Display) -> ConfigError {
        ConfigError {
            setting: setting.to_string(),
            message: format!("{setting} is not set: it holds {what}"),
        }
    }
}

/// Every problem of a group of settings (at least one), one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    pub fn problems(&self) -> &[ConfigError] {
        &self.0
    }

    /// The report an operator reads when start-up fails: how many
    /// problems, then one per line.
    ///
    /// ```text
    /// 2 configuration problems:
    ///   - VEIL_A: `x` is not a number
    ///   - VEIL_C is not set: it holds the login
    /// ```
    pub fn report(&self) -> String {
        let n = self.0.len();
        let mut out = format!(
            "{n} configuration problem{}:",
            if n == 1 { "" } else { "s" }
        );
        for e in &self.0 {
            out.push_str("\n  - ");
            // A message of several lines stays inside its item.
            out.push_str(&e.to_string().replace('\n', "\n    "));
        }
        out
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![e])
    }
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigErrors> for String {
    fn from(e: ConfigErrors) -> String {
        e.to_string()
    }
}

/// Collects the problems found while reading a group of settings.
#[derive(Debug, Default)]
pub struct Problems(Vec<ConfigError>);

impl Problems {
    pub fn new() -> Problems {
        Problems::default()
    }

    /// Records a problem.
    pub fn add(&mut self, error: ConfigError) {
        self.0.push(error);
    }

    /// Whether no problem has been recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value, or `None` after recording every problem of a group.
    pub fn absorb<T>(&mut self, result: Result<T, ConfigErrors>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.0.extend(e.0);
                None
            }
        }
    }

    /// The value, or `None` after recording the problem `message` (which
    /// names `setting`); a message of several lines is several problems.
    pub fn check_message<T, E: std::fmt::Display>(
        &mut self,
        setting: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                for line in message.to_string().lines().filter(|l| !l.trim().is_empty()) {
                    self.add(ConfigError::new(setting, line));
                }
                None
            }
        }
    }

    /// The value, or `None` after recording the problem.
    pub fn check<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.add(e);
                None
            }
        }
    }

    /// `build()` when no problem was recorded (it may then unwrap what
    /// [`Problems::check`] returned), every problem otherwise.
    pub fn finish<T>(self, build: impl FnOnce() -> T) -> Result<T, ConfigErrors> {
        if self.0.is_empty() {
            Ok(build())
        } else {
            Err(ConfigErrors(self.0))
        }
    }
}

/// A [`MapEnv`] of `pairs` (tests).
#[cfg(test)]
pub(crate) fn lookup(pairs: &[(&str, &str)]) -> MapEnv {
    MapEnv::new(pairs)
}

/// Both results, or the problems of either, in order (a provider that
/// checks its settings and its AWS client reports both at once).
pub fn both<A, B, E>(a: Result<A, E>, b: Result<B, E>) -> Result<(A, B), Vec<E>> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => Err([a.err(), b.err()].into_iter().flatten().collect()),
    }
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

    #[test]
    fn problems_are_collected_and_each_names_its_setting() {
        let mut problems = Problems::new();
        let a = problems.check(Err::<u8, _>(ConfigError::invalid(
            "VEIL_A",
            "`x` is not a number",
        )));
        let b = problems.check(Ok::<u8, ConfigError>(2));
        problems.add(ConfigError::missing("VEIL_C", "the login"));
        assert_eq!((a, b), (None, Some(2)));
        let e = problems.finish(|| ()).unwrap_err();
        let settings: Vec<&str> = e.problems().iter().map(|p| p.setting.as_str()).collect();
        assert_eq!(settings, ["VEIL_A", "VEIL_C"]);
        assert_eq!(
            e.to_string(),
            "VEIL_A: `x` is not a number\nVEIL_C is not set: it holds the login"
        );
        assert_eq!(Problems::new().finish(|| 7), Ok(7));
    }

    #[test]
    fn groups_merge_and_the_report_lists_one_problem_a_line() {
        let mut group = Problems::new();
        group.add(ConfigError::invalid("VEIL_A", "`x` is not a number"));
        let group = group.finish(|| ()).unwrap_err();
        let mut all = Problems::new();
        assert!(all.is_empty());
        assert_eq!(all.absorb(Err::<(), _>(group)), None);
        assert_eq!(all.absorb(Ok::<u8, ConfigErrors>(1)), Some(1));
        let joined = Err::<(), _>("VEIL_B: one\nVEIL_B: two".to_string());
        assert_eq!(all.check_message("VEIL_B", joined), None);
        all.add(ConfigError::missing("VEIL_C", "the login"));
        let e = all.finish(|| ()).unwrap_err();
        let settings: Vec<&str> = e.problems().iter().map(|p| p.setting.as_str()).collect();
        assert_eq!(settings, ["VEIL_A", "VEIL_B", "VEIL_B", "VEIL_C"]);
        assert_eq!(
            e.report(),
            "4 configuration problems:\n  - VEIL_A: `x` is not a number\n  - VEIL_B: one\n  \
             - VEIL_B: two\n  - VEIL_C is not set: it holds the login"
        );
        let one = ConfigErrors::from(ConfigError::new("VEIL_D", "VEIL_D: bad\nsecond line"));
        assert_eq!(
            one.report(),
            "1 configuration problem:\n  - VEIL_D: bad\n    second line"
        );
    }
}
