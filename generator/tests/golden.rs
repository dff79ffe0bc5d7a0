//! The committed `generated/petstore` crate must match a fresh generation byte for byte.
//!
//! Run with `POLVO_BLESS=1` to refresh it after a deliberate change.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on setup errors, as tests do"
)]

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn petstore_is_fresh() {
    let root = root();
    let builder = polvo_gen::Builder::new()
        .spec(root.join("specs/petstore/openapi.yaml"))
        .annotations(root.join("specs/petstore/polvo.yaml"))
        .spec_label("specs/petstore/openapi.yaml");
    let out = root.join("generated/petstore");
    if std::env::var_os("POLVO_BLESS").is_some_and(|v| v == "1") {
        builder.generate_crate(&out).unwrap();
        return;
    }

    let scratch = tempfile::tempdir().unwrap();
    let fresh = scratch.path().join("petstore");
    let generation = builder.generate_crate(&fresh).unwrap();
    assert!(
        generation.diagnostics.is_empty(),
        "{:?}",
        generation.diagnostics
    );
    let stale = polvo_gen::write::stale_files(&out, &generation.files);
    assert!(
        stale.is_empty(),
        "generated/petstore is stale: {stale:?}\nrefresh it with \
         `POLVO_BLESS=1 cargo test -p polvo-gen --test golden` \
         (or `cargo run -p polvo-gen -- generate --all`)"
    );
}

#[test]
fn generation_is_deterministic() {
    let root = root();
    let render = || {
        polvo_gen::Builder::new()
            .spec(root.join("specs/petstore/openapi.yaml"))
            .spec_label("x")
            .rustfmt(false)
            .render_crate()
            .unwrap()
            .files
    };
    assert_eq!(render(), render());
}
