//! Where recipes are read from and where builds, sources and the repository go.

use std::path::PathBuf;

/// Where the recipes' packages go: the signed repository images preinstall from and
/// the guest is offered (`target/repo/<arch>/`).
pub const REPO_DIR: &str = "target/repo";

/// Where recipes are read from and everything is written; tests use temporary ones.
#[derive(Debug, Clone)]
pub struct Settings {
    pub recipes_dir: PathBuf,
    /// Build trees, logs, stamps and package trees: `<work>/<arch>/...`.
    pub work_dir: PathBuf,
    /// `<repo>/<arch>/` receives images and the signed index.
    pub repo_dir: PathBuf,
    /// The source cache, by SHA-256.
    pub sources_dir: PathBuf,
    /// Signs the index.
    pub secret_key: PathBuf,
}

impl Settings {
    /// The project's directories (`AMBER_RECIPES_DIR` overrides `recipes/`) and the
    /// given key, or the development key.
    pub fn standard(secret_key: Option<PathBuf>) -> Result<Settings, String> {
        let secret_key = match secret_key {
            // Relative to the workspace root, where xtask runs.
            Some(key) if key.is_file() => key,
            Some(key) => return Err(format!("--secret-key {}: no such file", key.display())),
            None => crate::keys::development()?.secret,
        };
        Ok(Settings {
            recipes_dir: std::env::var_os("AMBER_RECIPES_DIR")
                .map_or_else(|| PathBuf::from("recipes"), PathBuf::from),
            work_dir: PathBuf::from("target/recipes"),
            repo_dir: PathBuf::from(REPO_DIR),
            sources_dir: PathBuf::from("target/sources"),
            secret_key,
        })
    }
}
