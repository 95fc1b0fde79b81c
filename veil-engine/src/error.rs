//! Error types of the rules layer.
//!
//! - [`RuleError`]: a rule file that cannot be used. Names the file, the
//!   line/column where the parser knows them, the place in the file
//!   (`endpoints[2].transforms[0]`) and what is wrong.
//! - [`SanitizeError`]: a transform could not do its job on a value at run
//!   time. The response must then fail as a whole (fail closed). Names the
//!   endpoint, the transform and the JSON path — never the value.

use std::fmt;

/// Where in a rule file something is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleLocation {
    /// The file name (or `<stdin>`, `<builtin:NAME>`).
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The place in the document, e.g. `endpoints[2].transforms[0].jsonPaths[1]`.
    pub context: String,
}

impl fmt::Display for RuleLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if !self.context.is_empty() {
            write!(f, ": {}", self.context)?;
        }
        Ok(())
    }
}

/// A rule file that cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub location: RuleLocation,
    pub message: String,
}

impl RuleError {
    pub fn new(file: &str, context: impl Into<String>, message: impl Into<String>) -> Self {
        RuleError {
            location: RuleLocation {
                file: file.to_string(),
                line: None,
                column: None,
                context: context.into(),
            },
            message: message.into(),
        }
    }

    pub fn at(mut self, line: Option<usize>, column: Option<usize>) -> Self {
        self.location.line = line;
        self.location.column = column;
        self
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for RuleError {}

/// A transform that could not be applied; the whole response fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanitizeError {
    /// The endpoint's path template or regex.
    pub endpoint: String,
    /// Index of the transform in the endpoint's list.
    pub transform_index: usize,
    /// The transform's name, e.g. `pseudonymize`.
    pub transform: &'static str,
    /// The concrete JSON path of the value, e.g. `$.value[3].from`.
    pub json_path: String,
    /// Why, without the value.
    pub reason: String,
}

impl fmt::Display for SanitizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "endpoint '{}', transform #{} ({}) at {}: {}",
            self.endpoint, self.transform_index, self.transform, self.json_path, self.reason
        )
    }
}

impl std::error::Error for SanitizeError {}
