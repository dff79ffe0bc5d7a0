//! Generates the pet store client into `OUT_DIR` on every build where the spec or the
//! annotations changed.

fn main() -> Result<(), polvo_gen::Error> {
    polvo_gen::Builder::new()
        .spec("../../specs/petstore/openapi.yaml")
        .annotations("../../specs/petstore/polvo.yaml")
        .generate()?;
    Ok(())
}
