//! Loading the service's annotations file (`polvo.yaml`).
//!
//! Only the `service` section is read for now: the service name (used for limits and
//! logs), the crate name, the client type name and base URLs. Other top-level sections
//! belong to the rate-limit annotations format and are accepted without being read, so a
//! file written for a later polvo-gen still loads. Unknown keys inside `service` are
//! rejected with their line and column, because a typo there silently changes names.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::Error;
use crate::spec::{read, yaml_error};

/// The parts of an annotations file this generator uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Annotations {
    /// The `service` section.
    #[serde(default)]
    pub service: Option<ServiceAnnotations>,
}

/// The `service` section of an annotations file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAnnotations {
    /// The service name, used for limits, logs and the module name (`petstore`).
    pub name: Option<String>,
    /// The generated crate's name (`polvo-petstore`).
    #[serde(rename = "crate")]
    pub crate_name: Option<String>,
    /// The client type's name (`PetstoreClient`).
    pub client: Option<String>,
    /// Base URLs by environment; `default` is the one the builder starts with.
    #[serde(default)]
    pub base_urls: BTreeMap<String, String>,
}

impl Annotations {
    /// Loads an annotations file.
    ///
    /// # Errors
    ///
    /// [`Error::Read`] when the file cannot be read, [`Error::Parse`] with line and column
    /// for invalid YAML or an unknown key in `service`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = read(path)?;
        Self::parse(path, &text)
    }

    /// Parses annotations from text; `path` is only used in errors.
    ///
    /// # Errors
    ///
    /// As [`Annotations::load`], minus reading.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(text).map_err(|e| yaml_error(path, &e, "invalid annotations"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_service_and_ignores_other_sections() {
        let text = "service:\n  name: petstore\n  crate: polvo-petstore\n  client: PetstoreClient\n  \
                    base_urls: {default: \"http://localhost:4010\"}\nlimits: {default: 10/s}\n";
        let annotations = Annotations::parse(Path::new("polvo.yaml"), text).unwrap();
        let service = annotations.service.unwrap();
        assert_eq!(service.name.as_deref(), Some("petstore"));
        assert_eq!(service.base_urls["default"], "http://localhost:4010");
    }

    #[test]
    fn rejects_unknown_service_keys_with_location() {
        let text = "service:\n  name: petstore\n  crate_name: x\n";
        let err = Annotations::parse(Path::new("polvo.yaml"), text).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("polvo.yaml:3:3: invalid annotations: "),
            "{message}"
        );
        assert!(message.contains("unknown field `crate_name`"), "{message}");
    }
}
