//! One integration test binary for the workspace; each module covers one part.

mod json;
mod pkg_client;
mod pkg_crash;
mod pkg_relations;
mod pkg_run;
mod pkg_security;
mod store;
mod store_reload;
mod store_scale;
mod store_security;
mod system;
