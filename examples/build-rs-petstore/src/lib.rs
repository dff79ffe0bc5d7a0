//! A pet store client generated at build time with `polvo_gen::Builder` in `build.rs`,
//! the way prost-build and tonic-build are used: the generated module lives in
//! `OUT_DIR` and is included here, so nothing generated is committed.
//!
//! ```no_run
//! # async fn run() -> Result<(), polvo_runtime::Error> {
//! use build_rs_petstore::petstore::PetstoreClient;
//!
//! let client = PetstoreClient::builder().rate_limit(5).build()?;
//! let pet = client.pets().get(7).await?;
//! println!("{} is {:?}", pet.name, pet.status);
//! # Ok(())
//! # }
//! ```

/// The generated client: `petstore::PetstoreClient`, `petstore::types`, ...
pub mod petstore {
    #![allow(
        missing_docs,
        reason = "generated from a spec whose fields are not all documented"
    )]
    include!(concat!(env!("OUT_DIR"), "/petstore.rs"));
}

#[cfg(test)]
mod tests {
    use super::petstore::PetstoreClient;
    use super::petstore::types::{Kind, PetStatus};

    #[test]
    fn the_generated_module_is_usable() {
        assert_eq!(PetstoreClient::SERVICE, "petstore");
        assert_eq!(PetstoreClient::DEFAULT_BASE_URL, "http://localhost:4010");
        let client = PetstoreClient::builder().rate_limit(5).build().unwrap();
        let _pets = client.pets();

        let kind: Kind = serde_json::from_str(r#"{"type": "cat", "indoor": true}"#).unwrap();
        assert!(matches!(kind, Kind::Cat(cat) if cat.indoor == Some(true)));
        assert_eq!(PetStatus::Adopted.to_string(), "adopted");
    }
}
