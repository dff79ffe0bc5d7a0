//! The CLI's contract for user errors: exit code 2 and one line naming the file and the
//! location; and atomic writes that leave previous output untouched on error.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on setup errors, as tests do"
)]

use std::path::Path;
use std::process::{Command, Output};

fn polvo_gen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polvo-gen"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `generate` on `spec` (written to a temp file) and returns exit code and stderr.
fn generate_text(name: &str, spec: &str) -> (i32, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, spec).unwrap();
    let out = dir.path().join("out");
    let output = polvo_gen(&[
        "generate",
        "--spec",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8(output.stderr).unwrap();
    (output.status.code().unwrap(), stderr, dir)
}

fn assert_one_line(stderr: &str, dir: &Path, name: &str, rest: &str) {
    let expected = format!("error: {}{rest}", dir.join(name).display());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&expected),
        "expected `{expected}`, got `{stderr}`"
    );
}

#[test]
fn invalid_yaml_gives_line_and_column() {
    let (code, stderr, dir) =
        generate_text("api.yaml", "openapi: 3.0.0\ninfo:\n  title: [unclosed\n");
    assert_eq!(code, 2);
    assert_one_line(&stderr, dir.path(), "api.yaml", ":4:1: invalid YAML: ");
}

#[test]
fn invalid_json_gives_line_and_column() {
    let (code, stderr, dir) = generate_text("api.yaml", "{\n  \"openapi\": \"3.0.0\",\n}\n");
    assert_eq!(code, 2);
    assert_one_line(
        &stderr,
        dir.path(),
        "api.yaml",
        ":3:1: invalid JSON: trailing comma",
    );
}

#[test]
fn unresolvable_ref_gives_json_pointer() {
    let spec = "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      \
                responses:\n        '200':\n          description: ok\n          content:\n            \
                application/json:\n              schema: {$ref: '#/components/schemas/Nope'}\n";
    let (code, stderr, dir) = generate_text("api.yaml", spec);
    assert_eq!(code, 2);
    assert_one_line(
        &stderr,
        dir.path(),
        "api.yaml",
        ": #/paths/~1a/get/responses/200/content/application~1json/schema: unresolvable $ref \
         `#/components/schemas/Nope`",
    );
}

#[test]
fn missing_external_file_is_a_ref_error() {
    let spec = "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: {}\ncomponents:\n  schemas:\n    \
                A: {$ref: 'common.yaml#/components/schemas/A'}\n";
    let (code, stderr, dir) = generate_text("api.yaml", spec);
    assert_eq!(code, 2);
    assert_one_line(
        &stderr,
        dir.path(),
        "api.yaml",
        ": #: unresolvable $ref `common.yaml#/components/schemas/A`: cannot read",
    );
}

#[test]
fn swagger_2_is_rejected() {
    let (code, stderr, dir) = generate_text(
        "api.json",
        "{\"swagger\": \"2.0\", \"info\": {}, \"paths\": {}}",
    );
    assert_eq!(code, 2);
    assert_one_line(
        &stderr,
        dir.path(),
        "api.json",
        ":1:2: swagger 2.0 is not supported",
    );
}

#[test]
fn openapi_3_1_is_rejected() {
    let (code, stderr, dir) = generate_text(
        "api.yaml",
        "info: {title: t, version: '1'}\nopenapi: 3.1.0\npaths: {}\n",
    );
    assert_eq!(code, 2);
    assert_one_line(
        &stderr,
        dir.path(),
        "api.yaml",
        ":2:1: openapi 3.1.0 is not supported yet",
    );
}

#[test]
fn a_failed_generation_leaves_previous_output_untouched() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let spec = root.join("specs/petstore/openapi.yaml");
    let ok = polvo_gen(&[
        "generate",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-rustfmt",
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let before = std::fs::read_to_string(out.join("src/types.rs")).unwrap();

    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "openapi: 3.0.0\npaths: {\n").unwrap();
    let failed = polvo_gen(&[
        "generate",
        "--spec",
        broken.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(failed.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(out.join("src/types.rs")).unwrap(),
        before
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn check_names_stale_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs/petstore");
    std::fs::create_dir_all(&specs).unwrap();
    for file in ["openapi.yaml", "polvo.yaml"] {
        std::fs::copy(root.join("specs/petstore").join(file), specs.join(file)).unwrap();
    }
    let root_arg = dir.path().to_str().unwrap();
    let generate = polvo_gen(&["generate", "--all", "--root", root_arg]);
    assert!(generate.status.success());
    let fresh = polvo_gen(&["check", "--root", root_arg]);
    assert_eq!(fresh.status.code(), Some(0));

    std::fs::write(
        dir.path().join("generated/petstore/src/types.rs"),
        "// edited\n",
    )
    .unwrap();
    let stale = polvo_gen(&["check", "--root", root_arg]);
    assert_eq!(stale.status.code(), Some(1));
    let stderr = String::from_utf8(stale.stderr).unwrap();
    assert!(
        stderr.contains("stale: ") && stderr.contains("types.rs"),
        "{stderr}"
    );
    assert!(stderr.contains("generate --all"), "{stderr}");
}

#[test]
fn init_writes_a_starter_that_generate_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let spec = dir.path().join("openapi.yaml");
    std::fs::copy(root.join("specs/petstore/openapi.yaml"), &spec).unwrap();
    let spec = spec.to_str().unwrap();

    let output = polvo_gen(&["init", "--spec", spec, "--name", "shop"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let starter = std::fs::read_to_string(dir.path().join("polvo.yaml")).unwrap();
    assert!(starter.contains("  name: \"shop\"\n"), "{starter}");
    assert!(starter.contains("  - match: {tag: \"pets\"}   # 7 operations\n"));
    assert!(starter.contains("  - match: {path: \"/owners*\"}   # 1 operation\n"));
    assert!(starter.contains("FIXME: the documented limit"));

    let annotations = dir.path().join("polvo.yaml");
    let out = dir.path().join("out");
    let output = polvo_gen(&[
        "generate",
        "--spec",
        spec,
        "--annotations",
        annotations.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-rustfmt",
    ]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let client = std::fs::read_to_string(out.join("src/client.rs")).unwrap();
    assert!(client.contains("pub struct ShopClient"));
    assert!(client.contains("std::time::Duration::from_secs(1), 1)?"));

    // A second init does not replace the file the user has been filling in.
    std::fs::write(&annotations, "# mine\n").unwrap();
    let output = polvo_gen(&["init", "--spec", spec]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("exists; pass --force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&annotations).unwrap(), "# mine\n");
}

#[test]
fn generate_all_writes_nothing_when_one_service_fails() {
    let root = tempfile::tempdir().unwrap();
    let petstore = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/petstore/openapi.yaml");
    for service in ["alpha", "beta"] {
        let dir = root.path().join("specs").join(service);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&petstore, dir.join("openapi.yaml")).unwrap();
    }
    // `beta` (generated second) has a mistake in its annotations.
    let beta = root.path().join("specs/beta/polvo.yaml");
    std::fs::write(
        &beta,
        "service: {name: beta, crate: polvo-beta, colour: blue}\n",
    )
    .unwrap();

    let output = polvo_gen(&["generate", "--all", "--root", root.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("unknown key \"colour\""), "{stderr}");
    assert!(
        !root.path().join("generated").exists(),
        "alpha was not written either"
    );
}
