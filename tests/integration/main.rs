//! One integration test binary for the workspace; each module covers one part.
