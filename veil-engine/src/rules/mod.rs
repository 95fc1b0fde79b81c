//! Rule files: the model ([`model`], [`transform_spec`]), reading them
//! ([`load`], "did you mean" in [`diagnostics`]), Java-regex translation ([`java_regex`]) and compiling them
//! into a [`RuleSet`] ([`compile`]); matching a request against it
//! ([`matching`]).

pub mod builtin;
pub mod compile;
pub mod diagnostics;
pub mod java_regex;
pub mod load;
pub mod matching;
pub mod model;
pub mod transform_spec;

pub use compile::{CompiledEndpoint, RuleSet};
