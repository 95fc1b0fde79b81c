//! Rule files: the model ([`model`], [`transform_spec`]), reading them
//! ([`load`], "did you mean" in [`diagnostics`]), Java-regex translation ([`java_regex`]) and compiling them
//! into a [`RuleSet`] ([`compile`]); matching a request against it
//! ([`matching`]).

pub(crate) mod builtin;
pub(crate) mod compile;
pub(crate) mod diagnostics;
pub(crate) mod java_regex;
pub(crate) mod load;
pub(crate) mod matching;
pub(crate) mod model;
pub(crate) mod transform_spec;

pub use compile::{CompiledEndpoint, RuleSet};
