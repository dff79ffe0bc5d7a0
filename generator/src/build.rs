//! The library entry point: [`Builder`], used by the CLI and by `build.rs` scripts.
//!
//! In the manner of prost-build: a build script names the spec and annotations, and
//! [`Builder::generate`] writes one module file into `OUT_DIR` and tells cargo to rerun
//! when any input changes. [`Builder::generate_crate`] writes a whole crate instead.

use std::path::{Path, PathBuf};

use crate::annotations::Annotations;
use crate::diagnostic::{Diagnostic, Severity};
use crate::error::Error;
use crate::render::{File, RenderOptions, RuntimeDependency};
use crate::spec::Spec;

/// Configures and runs a generation.
///
/// # Examples
///
/// In `build.rs`:
///
/// ```no_run
/// fn main() -> Result<(), polvo_gen::Error> {
///     polvo_gen::Builder::new()
///         .spec("../../specs/petstore/openapi.yaml")
///         .annotations("../../specs/petstore/polvo.yaml")
///         .generate()?;
///     Ok(())
/// }
/// ```
///
/// and in the crate, `include!(concat!(env!("OUT_DIR"), "/petstore.rs"));` inside a
/// module.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    spec: Option<PathBuf>,
    annotations: Option<PathBuf>,
    out_dir: Option<PathBuf>,
    name: Option<String>,
    spec_label: Option<String>,
    runtime: RuntimeDependency,
    rustfmt: Option<bool>,
}

/// The result of a generation: files and what was noticed on the way.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The files (a crate), or one module file.
    pub files: Vec<File>,
    /// Warnings, sorted by pointer.
    pub diagnostics: Vec<Diagnostic>,
    /// How many operations the client has.
    pub operations: usize,
    /// How many named types it has.
    pub types: usize,
    /// The service name (module name in build.rs mode).
    pub service: String,
    /// Every file read.
    pub inputs: Vec<PathBuf>,
}

impl Builder {
    /// A builder with no inputs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The OpenAPI document (YAML or JSON).
    pub fn spec(mut self, path: impl AsRef<Path>) -> Self {
        self.spec = Some(path.as_ref().to_path_buf());
        self
    }

    /// The service's annotations file (`polvo.yaml`); optional.
    pub fn annotations(mut self, path: impl AsRef<Path>) -> Self {
        self.annotations = Some(path.as_ref().to_path_buf());
        self
    }

    /// Where [`Builder::generate`] writes; defaults to `$OUT_DIR`.
    pub fn out_dir(mut self, path: impl AsRef<Path>) -> Self {
        self.out_dir = Some(path.as_ref().to_path_buf());
        self
    }

    /// The service name when the annotations give none (default: from the title).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The spec path shown in generated headers (default: the path as given).
    pub fn spec_label(mut self, label: impl Into<String>) -> Self {
        self.spec_label = Some(label.into());
        self
    }

    /// How a generated crate depends on `polvo-runtime`.
    pub fn runtime(mut self, runtime: RuntimeDependency) -> Self {
        self.runtime = runtime;
        self
    }

    /// Whether to format with `rustfmt` (default: on for crates, off for modules).
    pub fn rustfmt(mut self, on: bool) -> Self {
        self.rustfmt = Some(on);
        self
    }

    /// Writes `<service>.rs` into the output directory and prints
    /// `cargo:rerun-if-changed` for every input. Returns the file's path.
    ///
    /// # Errors
    ///
    /// Any [`Error`] from loading, checking or writing; [`Error::Config`] when neither
    /// [`Builder::out_dir`] nor `OUT_DIR` is set.
    #[allow(
        clippy::print_stdout,
        reason = "cargo reads build-script instructions from stdout"
    )]
    pub fn generate(&self) -> Result<PathBuf, Error> {
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or_else(|| Error::Config("OUT_DIR is not set; call out_dir()".into()))?,
        };
        let generation = self.render(true)?;
        for input in &generation.inputs {
            println!("cargo:rerun-if-changed={}", input.display());
        }
        let path = out_dir.join(format!("{}.rs", generation.service));
        let contents = generation.files.first().map_or("", |f| f.contents.as_str());
        crate::write::write_file(&path, contents)?;
        Ok(path)
    }

    /// Writes a whole crate into `out`, atomically.
    ///
    /// # Errors
    ///
    /// Any [`Error`]; `out` is untouched unless the whole generation succeeded.
    pub fn generate_crate(&self, out: &Path) -> Result<Generation, Error> {
        let generation = self.render_crate()?;
        crate::write::write_dir(out, &generation.files)?;
        Ok(generation)
    }

    /// Generates a crate in memory.
    ///
    /// # Errors
    ///
    /// Any [`Error`] from loading, checking or rendering.
    pub fn render_crate(&self) -> Result<Generation, Error> {
        self.render(false)
    }

    /// A starter annotations file for the spec, as text: service names and base URL
    /// from the spec, a `default` bucket with a placeholder limit, one group per tag,
    /// and comments on what to fill in. It is valid as written.
    ///
    /// # Errors
    ///
    /// Any [`Error`] from loading the spec.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let text = polvo_gen::Builder::new().spec("openapi.yaml").init_annotations()?;
    /// std::fs::write("polvo.yaml", text)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn init_annotations(&self) -> Result<String, Error> {
        let spec_path = self
            .spec
            .as_deref()
            .ok_or_else(|| Error::Config("no spec given; call spec()".into()))?;
        let spec = Spec::load(spec_path)?;
        let (api, _) = crate::lower::lower(&spec, &Annotations::default(), self.name.as_deref());
        let label = self
            .spec_label
            .clone()
            .unwrap_or_else(|| spec_path.display().to_string());
        Ok(crate::init::starter(&api, &label))
    }

    fn render(&self, module: bool) -> Result<Generation, Error> {
        let spec_path = self
            .spec
            .as_deref()
            .ok_or_else(|| Error::Config("no spec given; call spec()".into()))?;
        let spec = Spec::load(spec_path)?;
        let (annotations, mut problems) = match &self.annotations {
            Some(path) => Annotations::parse_lenient(path, &crate::spec::read(path)?)?,
            None => (Annotations::default(), Vec::new()),
        };
        let (api, mut diagnostics) = crate::lower::lower(&spec, &annotations, self.name.as_deref());
        if let Some(file) = annotations.file() {
            problems.extend(crate::check::annotations(&api, &annotations));
            problems.sort();
            problems.dedup();
            if !problems.is_empty() {
                return Err(Error::Annotations {
                    file: file.to_path_buf(),
                    problems,
                });
            }
        }
        diagnostics.extend(crate::check::check(&api));
        diagnostics.sort();
        let errors: Vec<String> = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| format!("{}: {}", d.pointer, d.message))
            .collect();
        if !errors.is_empty() {
            let file = match (
                &self.annotations,
                errors.iter().all(|e| e.starts_with("service.")),
            ) {
                (Some(path), true) => path.clone(),
                _ => spec_path.to_path_buf(),
            };
            return Err(Error::Invalid {
                file,
                messages: errors,
            });
        }
        for d in &diagnostics {
            tracing::debug!(pointer = %d.pointer, "{}", d.message);
        }

        let emitted = crate::emit::emit(&api);
        let options = RenderOptions {
            spec_label: self
                .spec_label
                .clone()
                .unwrap_or_else(|| spec_path.display().to_string()),
            runtime: self.runtime.clone(),
            rustfmt: self.rustfmt.unwrap_or(!module),
        };
        let files = if module {
            vec![File {
                path: format!("{}.rs", api.service.name).into(),
                contents: crate::render::render_module(&emitted, &options)?,
            }]
        } else {
            crate::render::render_crate(&api, &emitted, &options)?
        };
        let mut inputs = spec.files.clone();
        inputs.extend(self.annotations.clone());
        Ok(Generation {
            files,
            diagnostics,
            operations: api.operations.len(),
            types: api.types.len(),
            service: api.service.name.clone(),
            inputs,
        })
    }
}
