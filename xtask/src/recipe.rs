//! Recipes are data: `recipes/<name>/recipe.toml` parsed strictly, then checked into
//! [`Recipe`].
//!
//! The raw structs mirror the file and reject unknown keys; [`check`] turns them into
//! the type the builder (`recipes/`) uses, so a recipe that reaches the builder is
//! consistent: a valid name equal to its directory, a version with its revision, one
//! kind of source per `[[source]]` with the hash it needs, only the build keys its
//! kind uses, and dependencies in DESIGN §3 syntax. Errors are one line; the caller
//! prefixes the file.

use amber_core::version::{is_valid_name, Dependency, Version};
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};

/// The file that makes a directory of `recipes/` a recipe.
pub const RECIPE_FILE: &str = "recipe.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipe {
    name: String,
    version: String,
    revision: u32,
    description: String,
    license: String,
    #[serde(default)]
    source: Vec<RawSource>,
    #[serde(default)]
    patches: Vec<String>,
    build: RawBuild,
    #[serde(default)]
    package: RawPackage,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    url: Option<String>,
    sha256: Option<String>,
    debian: Option<String>,
    #[serde(rename = "crate")]
    crate_name: Option<String>,
    version: Option<String>,
    path: Option<String>,
    /// Patches written below a `[[source]]` table belong to it in TOML; they are
    /// applied in that source's directory.
    #[serde(default)]
    patches: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBuild {
    kind: String,
    script: Option<String>,
    configure_args: Option<Vec<String>>,
    make_args: Option<Vec<String>>,
    cargo_args: Option<Vec<String>>,
    bins: Option<Vec<String>>,
    #[serde(default)]
    deps: Vec<String>,
    #[serde(default)]
    allow_dynamic: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPackage {
    #[serde(default)]
    deps: Vec<String>,
    #[serde(default)]
    provides: Vec<String>,
    #[serde(default)]
    files: Vec<String>,
}

/// A checked recipe.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub name: String,
    /// The upstream version, without the revision.
    pub version: String,
    pub revision: u32,
    pub description: String,
    pub license: String,
    pub sources: Vec<Source>,
    /// Patches applied in `$SRC` (paths relative to the recipe directory), in order.
    pub patches: Vec<String>,
    pub build: Build,
    /// Build dependencies: built first, their package trees merged into `$DEPS`.
    pub build_deps: Vec<Dependency>,
    pub allow_dynamic: bool,
    /// Runtime dependencies, as `pkg pack --dep` takes them.
    pub deps: Vec<String>,
    pub provides: Vec<String>,
    /// Globs relative to `$OUT`; empty means everything.
    pub files: Vec<String>,
}

impl Recipe {
    /// The package version: `{version}-r{revision}`.
    pub fn full_version(&self) -> String {
        format!("{}-r{}", self.version, self.revision)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An upstream URL and/or a Debian source package whose orig tarball is the same
    /// file (tried when the URL fails, or alone).
    Url {
        url: Option<String>,
        debian: Option<String>,
    },
    /// A crate from the registry at an exact version (its `.crate` file is hashed).
    Crate { name: String, version: String },
    /// A file or directory in the recipe directory.
    Path(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub origin: Origin,
    /// Lowercase hex; required for URLs and crates, optional for path sources (then
    /// the content is hashed into the identity as it is).
    pub sha256: Option<String>,
    /// Patches to apply in this source's directory.
    pub patches: Vec<String>,
}

impl Source {
    /// A short name for messages: the file name of a URL, `crate@version`, or the path.
    pub fn label(&self) -> String {
        match &self.origin {
            Origin::Url { url: Some(url), .. } => url_file_name(url).to_owned(),
            Origin::Url { debian, .. } => {
                format!("debian:{}", debian.as_deref().unwrap_or_default())
            }
            Origin::Crate { name, version } => format!("{name}-{version}.crate"),
            Origin::Path(path) => path.clone(),
        }
    }
}

/// The last segment of a URL, without query or fragment.
pub fn url_file_name(url: &str) -> &str {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    url.rsplit('/').next().unwrap_or(url)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Build {
    Script {
        script: String,
    },
    ConfigureMake {
        configure_args: Vec<String>,
        make_args: Vec<String>,
    },
    Make {
        make_args: Vec<String>,
    },
    Cargo {
        cargo_args: Vec<String>,
        bins: Vec<String>,
    },
}

impl Build {
    pub fn kind(&self) -> &'static str {
        match self {
            Build::Script { .. } => "script",
            Build::ConfigureMake { .. } => "configure-make",
            Build::Make { .. } => "make",
            Build::Cargo { .. } => "cargo",
        }
    }
}

/// Parse and check a recipe file's text; `directory` is the name of the recipe's
/// directory, which must equal its `name`.
pub fn parse(directory: &str, text: &str) -> Result<Recipe, String> {
    let raw: RawRecipe = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
    check(directory, raw)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check(directory: &str, raw: RawRecipe) -> Result<Recipe, String> {
    if !is_valid_name(&raw.name) {
        return Err(format!(
            "name `{}` is not a package name ([a-z0-9][a-z0-9+._-]*, never -<digit>)",
            raw.name
        ));
    }
    if raw.name != directory {
        return Err(format!(
            "name `{}` differs from its directory `{directory}`",
            raw.name
        ));
    }
    let full = format!("{}-r{}", raw.version, raw.revision);
    if raw.version.is_empty() || raw.version.contains("-r") {
        return Err(format!(
            "version `{}`: the upstream version only; the revision goes in `revision`",
            raw.version
        ));
    }
    Version::parse(&full).map_err(|e| format!("version `{}`: {e}", raw.version))?;
    for (key, text) in [("description", &raw.description), ("license", &raw.license)] {
        if text.trim().is_empty() || text.chars().any(char::is_control) {
            return Err(format!("{key} must be one non-empty line"));
        }
    }
    let mut sources = Vec::new();
    for (index, source) in raw.source.into_iter().enumerate() {
        let n = index + 1;
        sources.push(check_source(source).map_err(|e| format!("source {n}: {e}"))?);
    }
    for patch in raw
        .patches
        .iter()
        .chain(sources.iter().flat_map(|s| &s.patches))
    {
        check_relative(patch).map_err(|e| format!("patch `{patch}`: {e}"))?;
    }
    let build = check_build(&raw.build)?;
    let build_deps = raw
        .build
        .deps
        .iter()
        .map(|dep| Dependency::parse(dep).map_err(|e| format!("build.deps: `{dep}`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if build_deps.iter().any(|dep| dep.name == raw.name) {
        return Err(format!("build.deps: `{}` depends on itself", raw.name));
    }
    for dep in &raw.package.deps {
        Dependency::parse(dep).map_err(|e| format!("package.deps: `{dep}`: {e}"))?;
    }
    for name in &raw.package.provides {
        if !is_valid_name(name) {
            return Err(format!("package.provides: `{name}` is not a package name"));
        }
    }
    for glob in &raw.package.files {
        check_relative(glob).map_err(|e| format!("package.files: `{glob}`: {e}"))?;
    }
    Ok(Recipe {
        name: raw.name,
        version: raw.version,
        revision: raw.revision,
        description: raw.description,
        license: raw.license,
        sources,
        patches: raw.patches,
        build,
        build_deps,
        allow_dynamic: raw.build.allow_dynamic,
        deps: raw.package.deps,
        provides: raw.package.provides,
        files: raw.package.files,
    })
}

fn check_source(raw: RawSource) -> Result<Source, String> {
    let sha256 = match raw.sha256 {
        Some(hash) => {
            if amber_core::hash::parse_hex32(&hash).is_err() {
                return Err(format!("sha256 `{hash}` is not 64 lowercase hex digits"));
            }
            Some(hash)
        }
        None => None,
    };
    let origin = match (raw.url, raw.crate_name, raw.path) {
        (url, None, None) if url.is_some() || raw.debian.is_some() => {
            if raw.version.is_some() {
                return Err("`version` belongs to crate sources".into());
            }
            if let Some(url) = &url {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(format!("url `{url}` is not http(s)"));
                }
                let file = url_file_name(url);
                if file.is_empty() || file == "." || file == ".." {
                    return Err(format!("url `{url}` names no file"));
                }
            }
            if sha256.is_none() {
                return Err(match &url {
                    Some(url) => format!("url `{url}` needs a sha256"),
                    None => "a debian source needs a sha256".to_owned(),
                });
            }
            if let Some(package) = &raw.debian {
                let valid = package.len() >= 2
                    && package.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b)
                    });
                if !valid {
                    return Err(format!("debian `{package}` is not a Debian package name"));
                }
            }
            Origin::Url {
                url,
                debian: raw.debian,
            }
        }
        (None, Some(name), None) => {
            let version = raw
                .version
                .ok_or_else(|| format!("crate `{name}` needs a version"))?;
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid_name {
                return Err(format!("crate `{name}` is not a crate name"));
            }
            let exact = !version.is_empty()
                && version
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-+".contains(&b))
                && version.bytes().next().is_some_and(|b| b.is_ascii_digit());
            if !exact {
                return Err(format!(
                    "crate `{name}`: version `{version}` is not one exact version"
                ));
            }
            if sha256.is_none() {
                return Err(format!(
                    "crate `{name}` needs a sha256 (of its .crate file)"
                ));
            }
            if raw.debian.is_some() {
                return Err("`debian` belongs to url sources".into());
            }
            Origin::Crate { name, version }
        }
        (None, None, Some(path)) => {
            check_relative(&path).map_err(|e| format!("path `{path}`: {e}"))?;
            if raw.debian.is_some() || raw.version.is_some() {
                return Err("path sources take only `path`, `sha256` and `patches`".into());
            }
            Origin::Path(path)
        }
        _ => return Err("needs exactly one of `url` (and/or `debian`), `crate` and `path`".into()),
    };
    Ok(Source {
        origin,
        sha256,
        patches: raw.patches,
    })
}

fn check_build(raw: &RawBuild) -> Result<Build, String> {
    let kind = raw.kind.as_str();
    // Keys another kind uses are errors here: a recipe says nothing that is ignored.
    let refuse = |key: &str, present: bool, kinds: &str| {
        if present {
            Err(format!("build.{key} is for kind {kinds}, not `{kind}`"))
        } else {
            Ok(())
        }
    };
    let build = match kind {
        "script" => {
            let script = raw
                .script
                .clone()
                .ok_or("build.kind `script` needs build.script")?;
            check_relative(&script).map_err(|e| format!("build.script `{script}`: {e}"))?;
            Build::Script { script }
        }
        "configure-make" => Build::ConfigureMake {
            configure_args: raw.configure_args.clone().unwrap_or_default(),
            make_args: raw.make_args.clone().unwrap_or_default(),
        },
        "make" => Build::Make {
            make_args: raw.make_args.clone().unwrap_or_default(),
        },
        "cargo" => {
            let bins = raw.bins.clone().unwrap_or_default();
            if bins.is_empty() {
                return Err("build.kind `cargo` needs build.bins (the binaries to package)".into());
            }
            for bin in &bins {
                if bin.is_empty() || bin.contains('/') {
                    return Err(format!("build.bins: `{bin}` is not a binary name"));
                }
            }
            Build::Cargo {
                cargo_args: raw.cargo_args.clone().unwrap_or_default(),
                bins,
            }
        }
        other => {
            return Err(format!(
                "build.kind `{other}` is not one of script, configure-make, make, cargo"
            ))
        }
    };
    refuse("script", raw.script.is_some() && kind != "script", "script")?;
    refuse(
        "configure-args",
        raw.configure_args.is_some() && kind != "configure-make",
        "configure-make",
    )?;
    refuse(
        "make-args",
        raw.make_args.is_some() && !matches!(kind, "make" | "configure-make"),
        "make and configure-make",
    )?;
    refuse(
        "cargo-args",
        raw.cargo_args.is_some() && kind != "cargo",
        "cargo",
    )?;
    refuse("bins", raw.bins.is_some() && kind != "cargo", "cargo")?;
    Ok(build)
}

/// A path inside the recipe directory (or the package): relative, no `..`.
pub(crate) fn check_relative(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty".into());
    }
    let path = Path::new(path);
    if path.is_absolute() {
        return Err("must be relative".into());
    }
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err("must stay inside its directory (no `..`)".into());
    }
    Ok(())
}

/// Whether a `/`-separated relative path matches a glob: `*` and `?` within one path
/// segment, `**` as a whole segment for any number of segments.
pub fn glob_matches(glob: &str, path: &str) -> bool {
    let glob: Vec<&str> = glob
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    let path: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segments_match(&glob, &path)
}

fn segments_match(glob: &[&str], path: &[&str]) -> bool {
    match glob.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| segments_match(rest, &path[skip..])),
        Some((first, rest)) => match path.split_first() {
            Some((segment, path_rest)) => {
                segment_matches(first.as_bytes(), segment.as_bytes())
                    && segments_match(rest, path_rest)
            }
            None => false,
        },
    }
}

fn segment_matches(glob: &[u8], name: &[u8]) -> bool {
    match glob.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| segment_matches(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && segment_matches(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && segment_matches(rest, &name[1..]),
    }
}

/// A recipe with the directory it came from.
pub struct Loaded {
    pub recipe: Recipe,
    pub dir: PathBuf,
}

/// Every `<dir>/<name>/recipe.toml`, parsed and checked; directories without one are
/// not recipes.
pub fn load_all(dir: &Path) -> Result<Vec<Loaded>, String> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let file = path.join(RECIPE_FILE);
        if !file.is_file() {
            continue;
        }
        let directory = entry.file_name().to_string_lossy().into_owned();
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let recipe = parse(&directory, &text).map_err(|e| format!("{}: {e}", file.display()))?;
        found.push(Loaded { recipe, dir: path });
    }
    found.sort_by(|a, b| a.recipe.name.cmp(&b.recipe.name));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn good() -> String {
        format!(
            r#"
name = "dropbear"
version = "2022.83"
revision = 1
description = "ssh server"
license = "MIT"

[[source]]
url = "https://example.org/dropbear-2022.83.tar.bz2"
sha256 = "{HASH}"
debian = "dropbear"
patches = ["a.patch"]

[build]
kind = "configure-make"
configure-args = ["--disable-zlib"]
make-args = ["PROGRAMS=dropbear"]
deps = ["zlib>=1.2"]

[package]
deps = ["zlib"]
files = ["sbin/*", "svc/**"]
"#
        )
    }

    #[test]
    fn a_good_recipe_parses() {
        let recipe = parse("dropbear", &good()).unwrap();
        assert_eq!(recipe.full_version(), "2022.83-r1");
        assert_eq!(recipe.sources.len(), 1);
        assert_eq!(recipe.sources[0].label(), "dropbear-2022.83.tar.bz2");
        assert_eq!(recipe.sources[0].patches, ["a.patch"]);
        assert_eq!(recipe.build.kind(), "configure-make");
        assert_eq!(recipe.build_deps[0].name, "zlib");
    }

    /// Each edit of the good recipe and the error it must give.
    #[test]
    fn strict_errors() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "revision = 1",
                "revision = 1\ncolour = \"red\"",
                "unknown field `colour`",
            ),
            (
                "kind = ",
                "optimize = true\nkind = ",
                "unknown field `optimize`",
            ),
            (
                "name = \"dropbear\"",
                "name = \"Dropbear\"",
                "is not a package name",
            ),
            (
                "name = \"dropbear\"",
                "name = \"drop-2bear\"",
                "is not a package name",
            ),
            (
                "name = \"dropbear\"",
                "name = \"zlib\"",
                "differs from its directory",
            ),
            (&format!("sha256 = \"{HASH}\"\n"), "", "needs a sha256"),
            (HASH, &HASH.to_uppercase(), "64 lowercase hex"),
            (HASH, &HASH[1..], "64 lowercase hex"),
            (
                "version = \"2022.83\"",
                "version = \"2022.83-r0\"",
                "revision goes",
            ),
            (
                "version = \"2022.83\"",
                "version = \"x y\"",
                "version `x y`",
            ),
            ("\"configure-make\"", "\"meson\"", "is not one of script"),
            (
                "\"configure-make\"",
                "\"make\"",
                "build.configure-args is for kind",
            ),
            ("zlib>=1.2", "zlib=>1.2", "build.deps: `zlib=>1.2`"),
            (
                "url = \"https:",
                "path = \"x\"\nurl = \"https:",
                "exactly one of",
            ),
            (
                "files = [\"sbin/*\"",
                "files = [\"../sbin\"",
                "must stay inside",
            ),
            (
                "patches = [\"a.patch\"]",
                "patches = [\"/a.patch\"]",
                "must be relative",
            ),
        ];
        for (from, to, expected) in cases {
            let text = good().replacen(from, to, 1);
            assert_ne!(text, good(), "edit {from:?} did not apply");
            let error = parse("dropbear", &text).err().unwrap_or_default();
            assert!(error.contains(expected), "{from:?} -> {to:?}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn crate_and_path_sources() {
        let text = format!(
            "name = \"ripgrep\"\nversion = \"14.1.1\"\nrevision = 0\ndescription = \"d\"\n\
             license = \"MIT\"\n[[source]]\ncrate = \"ripgrep\"\nversion = \"14.1.1\"\n\
             sha256 = \"{HASH}\"\n[[source]]\npath = \"files/x\"\n\
             [build]\nkind = \"cargo\"\nbins = [\"rg\"]\n"
        );
        let recipe = parse("ripgrep", &text).unwrap();
        assert_eq!(
            recipe.sources[0].origin,
            Origin::Crate {
                name: "ripgrep".into(),
                version: "14.1.1".into()
            }
        );
        assert_eq!(recipe.sources[1].origin, Origin::Path("files/x".into()));
        let no_bins = text.replace("bins = [\"rg\"]\n", "");
        assert!(parse("ripgrep", &no_bins)
            .unwrap_err()
            .contains("build.bins"));
        let no_hash = text.replacen(&format!("sha256 = \"{HASH}\"\n"), "", 1);
        assert!(parse("ripgrep", &no_hash)
            .unwrap_err()
            .contains("needs a sha256"));
    }

    #[test]
    fn globs() {
        for (glob, path, expected) in [
            ("bin/*", "bin/sh", true),
            ("bin/*", "bin/x/y", false),
            ("bin/*", "sbin/sh", false),
            ("**", "a/b/c", true),
            ("share/**", "share", true),
            ("share/**/*.txt", "share/a/b/c.txt", true),
            ("sbin/drop?ear", "sbin/dropbear", true),
            ("lib/*.a", "lib/libz.so", false),
        ] {
            assert_eq!(glob_matches(glob, path), expected, "{glob} {path}");
        }
    }
}
