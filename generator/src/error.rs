//! The one error type of the library: every variant says where the problem is.
//!
//! Errors are for input the generator cannot use at all (unreadable files, invalid YAML or
//! JSON, a `$ref` that points nowhere, an unsupported OpenAPI version). Anything that can
//! be carried by a fallback type is a [`crate::Diagnostic`] instead, never an error.

use std::fmt;
use std::path::PathBuf;

/// Where in an input file a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A line and column, both starting at 1.
    LineColumn {
        /// The line.
        line: usize,
        /// The column.
        column: usize,
    },
    /// A JSON pointer into the document (`#/paths/~1pets/get`).
    Pointer(String),
    /// The whole file.
    File,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LineColumn { line, column } => write!(f, ":{line}:{column}"),
            Self::Pointer(pointer) => write!(f, ": {pointer}"),
            Self::File => Ok(()),
        }
    }
}

/// Everything that stops a generation run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input file could not be read.
    #[error("{}: cannot read file: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// An input file is not valid YAML or JSON, or does not have the expected shape.
    #[error("{}{location}: {message}", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// Where in the file.
        location: Location,
        /// What is wrong, in lowercase.
        message: String,
    },
    /// A `$ref` does not resolve.
    #[error("{}: {pointer}: unresolvable $ref `{reference}`: {reason}", file.display())]
    Ref {
        /// The file holding the `$ref`.
        file: PathBuf,
        /// Where the `$ref` is.
        pointer: String,
        /// The reference as written.
        reference: String,
        /// Why it does not resolve.
        reason: String,
    },
    /// The document is not OpenAPI 3.0.
    #[error("{}{location}: {message}", file.display())]
    Version {
        /// The file.
        file: PathBuf,
        /// Where the version field is.
        location: Location,
        /// What was found and what is supported.
        message: String,
    },
    /// Checks on the intermediate representation found errors.
    #[error("{}: {}", file.display(), messages.join("; "))]
    Invalid {
        /// The spec file.
        file: PathBuf,
        /// One message per problem, each starting with a JSON pointer.
        messages: Vec<String>,
    },
    /// The annotations file has problems: every one found, in file order.
    #[error("{}", render_problems(file, problems))]
    Annotations {
        /// The annotations file.
        file: PathBuf,
        /// Each problem with its line and column.
        problems: Vec<Problem>,
    },
    /// The generator produced code that does not parse: a bug in polvo-gen.
    #[error("internal error: generated {file} does not parse: {message}")]
    Internal {
        /// The generated file.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// Output could not be written.
    #[error("{}: cannot write output: {source}", path.display())]
    Write {
        /// The path being written.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A required setting is missing (for example `OUT_DIR` outside a build script).
    #[error("missing setting: {0}")]
    Config(String),
}

impl Error {
    /// Whether the error is about the user's input (exit code 2 in the CLI) rather than
    /// the environment or a bug.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Self::Read { .. }
                | Self::Parse { .. }
                | Self::Ref { .. }
                | Self::Version { .. }
                | Self::Invalid { .. }
                | Self::Annotations { .. }
                | Self::Config(_)
        )
    }
}

/// One problem in an annotations file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
    /// What is wrong, in lowercase, naming the bad value.
    pub message: String,
}

/// One `file:line:column: message` line per problem.
fn render_problems(file: &std::path::Path, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| format!("{}:{}:{}: {}", file.display(), p.line, p.column, p.message))
        .collect();
    lines.join("\n")
}
