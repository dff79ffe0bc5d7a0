//! The `polvo-gen` command: generate client crates from OpenAPI documents, or check that
//! the committed ones are fresh.
//!
//! Exit codes: 0 on success, 1 when `check` finds stale files or the environment fails
//! (a file cannot be written), 2 for a problem in the input (invalid YAML or JSON, an
//! unresolvable `$ref`, an unsupported OpenAPI version, mistakes in an annotations file),
//! reported one line per problem: `error: <file>:<line>:<column>: <cause>` or
//! `error: <file>: <JSON pointer>: <cause>`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use polvo_gen::{Builder, Generation, RuntimeDependency};

/// Warnings printed per spec unless `--verbose` is given.
const WARNINGS_SHOWN: usize = 10;

/// Generates typed, rate-limit-aware Rust clients from OpenAPI 3.0 documents.
#[derive(Debug, Parser)]
#[command(
    name = "polvo-gen",
    version,
    after_help = "Examples:
  polvo-gen generate --spec specs/petstore/openapi.yaml --annotations specs/petstore/polvo.yaml \\
      --out generated/petstore
  polvo-gen generate --spec api.json --name acme --out acme-client --runtime-version 0.1
  polvo-gen generate --all      # every specs/<service>/ into generated/<service>/
  polvo-gen check               # exit 1 naming stale files under generated/
  polvo-gen init --spec specs/acme/openapi.yaml   # writes specs/acme/polvo.yaml to fill in"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a client crate from one spec, or from every spec under specs/.
    Generate(Generate),
    /// Regenerate every spec under specs/ in memory and compare with generated/.
    Check(Root),
    /// Write a starter annotations file (polvo.yaml) for a spec: names and base URL
    /// from the spec, one group per tag, a placeholder limit to fill in.
    Init(Init),
}

#[derive(Debug, Args)]
struct Init {
    /// The OpenAPI 3.0 document, YAML or JSON.
    #[arg(long)]
    spec: PathBuf,
    /// Where to write (default: polvo.yaml beside the spec); `-` prints it instead.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Service name (default: from the spec's title).
    #[arg(long)]
    name: Option<String>,
    /// Replace the file when it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct Generate {
    /// The OpenAPI 3.0 document, YAML or JSON (detected from the content).
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    spec: Option<PathBuf>,
    /// The service's annotations file (polvo.yaml).
    #[arg(long, conflicts_with = "all")]
    annotations: Option<PathBuf>,
    /// Service name when there are no annotations (default: from the spec's title).
    #[arg(long, conflicts_with = "all")]
    name: Option<String>,
    /// Output directory; replaced atomically.
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    out: Option<PathBuf>,
    /// Generate every specs/<service>/ into generated/<service>/.
    #[arg(long)]
    all: bool,
    /// Depend on polvo-runtime at this path (default: ../../runtime, right for generated/).
    #[arg(long, conflicts_with = "runtime_version")]
    runtime_path: Option<PathBuf>,
    /// Depend on this polvo-runtime version from the registry instead of a path.
    #[arg(long)]
    runtime_version: Option<String>,
    /// Do not run rustfmt on the output.
    #[arg(long)]
    no_rustfmt: bool,
    /// Print every warning.
    #[arg(long, short)]
    verbose: bool,
    #[command(flatten)]
    root: Root,
}

#[derive(Debug, Args)]
struct Root {
    /// The repository root holding specs/ and generated/.
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate(&args),
        Command::Check(root) => check(&root.root),
        Command::Init(args) => init(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => report(&error),
    }
}

#[allow(clippy::print_stderr, reason = "the CLI reports errors on stderr")]
fn report(error: &anyhow::Error) -> ExitCode {
    match error.downcast_ref::<polvo_gen::Error>() {
        Some(e) if e.is_user_error() => {
            for line in e.to_string().lines() {
                eprintln!("error: {line}");
            }
            ExitCode::from(2)
        }
        _ => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn generate(args: &Generate) -> anyhow::Result<ExitCode> {
    let runtime = match (&args.runtime_path, &args.runtime_version) {
        (Some(path), _) => {
            let absolute = std::path::absolute(path).context("resolving --runtime-path")?;
            RuntimeDependency::Path(absolute.display().to_string())
        }
        (None, Some(version)) => RuntimeDependency::Version(version.clone()),
        (None, None) => RuntimeDependency::default(),
    };
    let jobs = if args.all {
        services(&args.root.root)?
    } else {
        let (Some(spec), Some(out)) = (&args.spec, &args.out) else {
            anyhow::bail!("--spec and --out are required without --all");
        };
        vec![Job {
            label: spec.display().to_string(),
            spec: spec.clone(),
            annotations: args.annotations.clone(),
            out: out.clone(),
        }]
    };
    // Every crate is rendered before any is written, so a bad spec or annotations file
    // in one service leaves every service's output as it was.
    let mut rendered = Vec::with_capacity(jobs.len());
    for job in jobs {
        let started = Instant::now();
        let mut builder = job
            .builder()
            .runtime(runtime.clone())
            .rustfmt(!args.no_rustfmt);
        if let Some(name) = &args.name {
            builder = builder.name(name);
        }
        let generation = builder.render_crate()?;
        rendered.push((job, generation, started));
    }
    for (job, generation, started) in rendered {
        polvo_gen::write::write_dir(&job.out, &generation.files)?;
        summarize(&job, &generation, started, args.verbose);
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stderr, reason = "the CLI reports progress on stderr")]
fn summarize(job: &Job, generation: &Generation, started: Instant, verbose: bool) {
    let shown = if verbose { usize::MAX } else { WARNINGS_SHOWN };
    for diagnostic in generation.diagnostics.iter().take(shown) {
        eprintln!("{}: {diagnostic}", job.label);
    }
    let hidden = generation.diagnostics.len().saturating_sub(shown);
    if hidden > 0 {
        eprintln!(
            "{}: ... and {hidden} more warnings (--verbose shows all)",
            job.label
        );
    }
    eprintln!(
        "generated {}: {} operations, {} types, {} warnings in {:.2}s",
        job.out.display(),
        generation.operations,
        generation.types,
        generation.diagnostics.len(),
        started.elapsed().as_secs_f64()
    );
}

#[allow(clippy::print_stderr, reason = "the CLI reports stale files on stderr")]
fn check(root: &Path) -> anyhow::Result<ExitCode> {
    let mut stale = Vec::new();
    let jobs = services(root)?;
    for job in &jobs {
        let generation = job.builder().render_crate()?;
        stale.extend(polvo_gen::write::stale_files(&job.out, &generation.files));
    }
    if stale.is_empty() {
        eprintln!("generated/ is fresh ({} services)", jobs.len());
        return Ok(ExitCode::SUCCESS);
    }
    for path in &stale {
        eprintln!("stale: {}", path.display());
    }
    eprintln!("run `cargo run -p polvo-gen -- generate --all` to refresh generated/");
    Ok(ExitCode::from(1))
}

#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the CLI prints the starter file or where it went"
)]
fn init(args: &Init) -> anyhow::Result<ExitCode> {
    let mut builder = Builder::new().spec(&args.spec);
    if let Some(name) = &args.name {
        builder = builder.name(name);
    }
    let text = builder.init_annotations()?;
    let out = match &args.out {
        Some(path) if path.as_os_str() == "-" => {
            print!("{text}");
            return Ok(ExitCode::SUCCESS);
        }
        Some(path) => path.clone(),
        None => args.spec.with_file_name("polvo.yaml"),
    };
    if out.exists() && !args.force {
        eprintln!(
            "error: {} exists; pass --force to replace it, or --out to write elsewhere",
            out.display()
        );
        return Ok(ExitCode::from(2));
    }
    polvo_gen::write::write_file(&out, &text)?;
    eprintln!(
        "wrote {}: fill in the limits marked FIXME, then run\n  polvo-gen generate --spec {} \
         --annotations {} --out <dir>",
        out.display(),
        args.spec.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// One spec to generate.
struct Job {
    label: String,
    spec: PathBuf,
    annotations: Option<PathBuf>,
    out: PathBuf,
}

impl Job {
    fn builder(&self) -> Builder {
        let mut builder = Builder::new().spec(&self.spec).spec_label(&self.label);
        if let Some(annotations) = &self.annotations {
            builder = builder.annotations(annotations);
        }
        builder
    }
}

/// Every `specs/<service>/` with an `openapi.{yaml,yml,json}`, sorted by name.
fn services(root: &Path) -> anyhow::Result<Vec<Job>> {
    let specs = root.join("specs");
    let entries =
        std::fs::read_dir(&specs).with_context(|| format!("reading {}", specs.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut jobs = Vec::new();
    for dir in dirs {
        let Some(service) = dir.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        let Some(file) = ["openapi.yaml", "openapi.yml", "openapi.json"]
            .into_iter()
            .find(|f| dir.join(f).is_file())
        else {
            continue;
        };
        let annotations = dir.join("polvo.yaml");
        jobs.push(Job {
            label: format!("specs/{service}/{file}"),
            spec: dir.join(file),
            annotations: annotations.is_file().then_some(annotations),
            out: root.join("generated").join(&service),
        });
    }
    Ok(jobs)
}
