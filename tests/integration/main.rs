//! One integration test binary for the workspace; each module covers one part.

mod json;
mod pkg_client;
