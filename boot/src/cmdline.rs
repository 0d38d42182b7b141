//! The kernel command line (/proc/cmdline): `name=value` and bare `name` parameters,
//! double quotes around a value or a whole parameter as the kernel allows.

/// The parameters in order; a bare parameter has no value.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CommandLine {
    pub parameters: Vec<(String, Option<String>)>,
}

impl CommandLine {
    pub fn parse(text: &str) -> CommandLine {
        let mut parameters = Vec::new();
        let mut chars = text.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.peek().is_none() {
                break;
            }
            let mut word = String::new();
            let mut quoted = false;
            while let Some(c) = chars.next_if(|c| quoted || !c.is_whitespace()) {
                if c == '"' {
                    quoted = !quoted;
                } else {
                    word.push(c);
                }
            }
            let parameter = match word.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (word, None),
            };
            parameters.push(parameter);
        }
        CommandLine { parameters }
    }

    /// Read /proc/cmdline; an unreadable one is empty.
    pub fn read() -> CommandLine {
        CommandLine::parse(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default())
    }

    /// The value of the last `name=value` (the kernel's rule: the last one wins).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters() {
        let line = CommandLine::parse(
            "console=ttyS0 quiet amber.ip=10.0.2.15/24  amber.gw=10.0.2.2\tamber.if=eth1 \
             x=\"a b\" \"y=c d\" amber.gw=10.0.2.3 empty= -- init-arg\n",
        );
        assert_eq!(line.get("console"), Some("ttyS0"));
        assert_eq!(line.get("quiet"), None);
        assert_eq!(line.get("amber.ip"), Some("10.0.2.15/24"));
        assert_eq!(line.get("amber.gw"), Some("10.0.2.3"));
        assert_eq!(line.get("amber.if"), Some("eth1"));
        assert_eq!(line.get("x"), Some("a b"));
        assert_eq!(line.get("y"), Some("c d"));
        assert_eq!(line.get("empty"), Some(""));
        assert_eq!(line.get("missing"), None);
        assert!(line.parameters.contains(&("quiet".into(), None)));
        assert!(line.parameters.contains(&("init-arg".into(), None)));
        assert_eq!(CommandLine::parse("  \n"), CommandLine::default());
    }
}
