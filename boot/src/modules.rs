//! Kernel modules: the list in /etc/amber/modules, loaded in order with finit_module(2).
//!
//! One module per line: the file name in /amber/modules (`virtio_net.ko`), optionally
//! followed by its parameters (`virtio_net.ko napi_tx=0`). `#` starts a comment. The order
//! is the load order; the image builder works it out from each module's `depends=`.

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use crate::sys;

/// One line of the module list.
#[derive(Debug, PartialEq, Eq)]
pub struct Module {
    pub file: String,
    pub parameters: String,
}

/// Parse the module list; bad lines are returned as messages and left out.
pub fn parse_list(text: &str) -> (Vec<Module>, Vec<String>) {
    let mut modules = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_ascii_whitespace();
        let Some(file) = words.next() else {
            continue;
        };
        if file.contains('/') || file.starts_with('.') {
            errors.push(format!(
                "line {}: {file:?} is not a file name in the module directory",
                index + 1
            ));
            continue;
        }
        modules.push(Module {
            file: file.to_owned(),
            parameters: words.collect::<Vec<_>>().join(" "),
        });
    }
    (modules, errors)
}

/// Load every module of `list` (a file in `dir`); report each failure and the total.
/// A module that is already loaded or built in (EEXIST) counts as present, not as failed.
pub fn load_all(list_file: &Path, dir: &Path) {
    let Ok(text) = std::fs::read_to_string(list_file) else {
        say!("modules: no {} (none loaded)", list_file.display());
        return;
    };
    let started = Instant::now();
    let (modules, errors) = parse_list(&text);
    for error in errors {
        say!("modules: {}: {error}", list_file.display());
    }
    let (mut loaded, mut present, mut failed) = (0, 0, 0);
    for module in &modules {
        let path = dir.join(&module.file);
        let result =
            File::open(&path).and_then(|file| sys::finit_module(&file, &module.parameters));
        match result {
            Ok(()) => loaded += 1,
            Err(error) if error.raw_os_error() == Some(libc::EEXIST) => present += 1,
            Err(error) => {
                failed += 1;
                say!("module {}: {error}", path.display());
            }
        }
    }
    say!(
        "modules: {loaded} loaded, {present} already present, {failed} failed ({} ms)",
        crate::millis(started.elapsed())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        let (modules, errors) = parse_list(
            "# virtio first\nvirtio_ring.ko\n\n  virtio.ko  # core\nvirtio_net.ko napi_tx=0  debug=1\n../evil.ko\nsub/dir.ko\n.hidden.ko\n",
        );
        let module = |file: &str, parameters: &str| Module {
            file: file.into(),
            parameters: parameters.into(),
        };
        assert_eq!(
            modules,
            [
                module("virtio_ring.ko", ""),
                module("virtio.ko", ""),
                module("virtio_net.ko", "napi_tx=0 debug=1"),
            ]
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("line 6: \"../evil.ko\""));
        assert!(parse_list("").0.is_empty());
    }
}
