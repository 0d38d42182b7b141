//! A small strict option parser for the subcommands: `--name VALUE`, `--flag`, and `--`.

/// Parsed options of one subcommand. Unknown options are errors.
pub struct Args {
    values: Vec<(&'static str, String)>,
    flags: Vec<&'static str>,
    /// Everything after `--`, passed on untouched.
    pub rest: Vec<String>,
}

impl Args {
    /// Parse `args` where `valued` options take a value and `flags` do not.
    pub fn parse(
        command: &str,
        args: &[String],
        valued: &[&'static str],
        flags: &[&'static str],
    ) -> Result<Args, String> {
        let mut parsed = Args {
            values: Vec::new(),
            flags: Vec::new(),
            rest: Vec::new(),
        };
        let mut index = 0;
        while index < args.len() {
            let arg = args[index].as_str();
            index += 1;
            if arg == "--" {
                parsed.rest = args[index..].to_vec();
                break;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
                _ => (arg, None),
            };
            if let Some(&known) = valued.iter().find(|known| **known == name) {
                let value = match inline {
                    Some(value) => value,
                    None => {
                        let value = args
                            .get(index)
                            .ok_or_else(|| format!("{command}: {name} needs a value"))?;
                        index += 1;
                        value.clone()
                    }
                };
                parsed.values.push((known, value));
            } else if let Some(&known) = flags.iter().find(|known| **known == arg) {
                parsed.flags.push(known);
            } else {
                let mut options: Vec<&str> = valued.to_vec();
                options.extend(flags);
                return Err(format!(
                    "{command}: unknown argument `{arg}`; options: {}",
                    options.join(" ")
                ));
            }
        }
        Ok(parsed)
    }

    /// The option's value; when it was given more than once, the last.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of a repeatable option, in the order given.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(known, _)| *known == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.contains(&name)
    }

    /// The board named by `--board`, loaded and checked.
    pub fn board(&self) -> Result<crate::board::Board, String> {
        match self.value("--board") {
            Some(name) => crate::board::load(name),
            None => Err(format!(
                "--board is required; boards: {}",
                crate::board::names()?.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn values_flags_and_rest() {
        let args = Args::parse(
            "run",
            &strings(&["--board", "b", "--yes", "--port=9", "--", "-m", "1G"]),
            &["--board", "--port"],
            &["--yes"],
        )
        .unwrap();
        assert_eq!(args.value("--board"), Some("b"));
        assert_eq!(args.value("--port"), Some("9"));
        assert!(args.flag("--yes"));
        assert!(!args.flag("--force"));
        assert_eq!(args.rest, ["-m", "1G"]);
        let repeated = Args::parse(
            "image",
            &strings(&["--trust", "a.pub", "--trust=b.pub"]),
            &["--trust"],
            &[],
        )
        .unwrap();
        assert_eq!(repeated.values("--trust"), ["a.pub", "b.pub"]);
        assert_eq!(repeated.value("--trust"), Some("b.pub"));
    }

    #[test]
    fn unknown_and_missing_are_errors() {
        let error = Args::parse("run", &strings(&["--bored"]), &["--board"], &[])
            .err()
            .unwrap();
        assert!(error.contains("unknown argument `--bored`"), "{error}");
        let error = Args::parse("run", &strings(&["--board"]), &["--board"], &[])
            .err()
            .unwrap();
        assert!(error.contains("needs a value"), "{error}");
    }
}
