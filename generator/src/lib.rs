//! polvo-gen: OpenAPI documents and rate-limit annotations in, typed client crates out.
//!
//! The pipeline shows in the module names:
//!
//! 1. [`spec`] and [`annotations`] load the inputs (YAML or JSON, `$ref`s bundled);
//! 2. [`lower`] turns them into the plain-data [`ir`];
//! 3. [`check`] validates the IR, collecting [`Diagnostic`]s;
//! 4. [`emit`] turns the IR into tokens;
//! 5. [`render`] prints tokens as formatted source and [`write`](mod@write) puts files in place.
//!
//! [`Builder`] runs the whole pipeline, for the `polvo-gen` CLI and for build scripts.
//!
//! ```no_run
//! let generation = polvo_gen::Builder::new()
//!     .spec("specs/petstore/openapi.yaml")
//!     .annotations("specs/petstore/polvo.yaml")
//!     .generate_crate(std::path::Path::new("generated/petstore"))?;
//! println!("{} operations", generation.operations);
//! # Ok::<(), polvo_gen::Error>(())
//! ```

pub mod annotations;
mod build;
pub mod check;
mod diagnostic;
pub mod emit;
mod error;
mod init;
pub mod ir;
pub mod lower;
pub mod naming;
pub mod render;
pub mod spec;
pub mod write;

pub use build::{Builder, Generation};
pub use diagnostic::{Diagnostic, Severity};
pub use error::{Error, Location};
pub use render::RuntimeDependency;
