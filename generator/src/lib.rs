//! polvo-gen: OpenAPI documents and rate-limit annotations in, typed client crates out.
