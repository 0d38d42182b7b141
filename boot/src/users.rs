//! Users and groups: the base's (root, nobody, the tty group) and those the installed
//! packages declare, written to /run/etc/passwd and /run/etc/group (where /etc/passwd and
//! /etc/group point), with the ids they were given remembered on /data.
//!
//! A package declares a user with a file `users/NAME` in its image (data, never a
//! script), strict `key value` lines like a service file:
//!
//! ```text
//! # users/dropbear
//! uid 22             # optional: the id wanted, taken when it is free
//! home /data/ssh     # optional: the home directory (default /)
//! ```
//!
//! Each package user gets a group of the same name and number. The first time a name is
//! seen it gets the id it wants when free, else the lowest free one from 100 to 999; the
//! name keeps that id for good (`/data/amber/ids`, `NAME ID` lines), even after its
//! package is gone, so files a service left on /data never change owner.

use std::path::{Path, PathBuf};

/// Where package users' ids are allocated when the one wanted is taken.
const DYNAMIC: std::ops::RangeInclusive<u32> = 100..=999;
/// The base's users: (name, id, home, shell); each has a group of its id.
const BASE_USERS: [(&str, u32, &str, &str); 2] = [
    ("root", 0, "/root", "/bin/sh"),
    ("nobody", 65534, "/", "/bin/false"),
];
/// The base's groups besides the users' own: devpts gives terminals group 5.
const BASE_GROUPS: [(&str, u32); 3] = [("root", 0), ("tty", 5), ("nogroup", 65534)];
const MAX_DECLARATION: u64 = 4096;

/// Where the tables come from and go.
#[derive(Debug)]
pub struct Places {
    /// The store's root, /ro: each installed package at /ro/<id>/.
    pub packages: PathBuf,
    /// The ids given so far (/data/amber/ids).
    pub ids: PathBuf,
    /// Where passwd and group are written (/run/etc).
    pub output: PathBuf,
}

/// One user.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// The users and groups known now.
#[derive(Default)]
pub struct Table {
    /// Sorted by name.
    users: Vec<User>,
    groups: Vec<(String, u32)>,
    /// The packages the table was made from (the store's root listing).
    packages: Vec<String>,
}

/// A user or group name: `[a-z_][a-z0-9_-]*`, at most 32 bytes.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 32
        && (bytes[0].is_ascii_lowercase() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// What a `users/NAME` file says: the id wanted and the home directory.
pub fn parse_declaration(text: &str) -> Result<(Option<u32>, Option<String>), String> {
    let (mut uid, mut home) = (None, None);
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |reason: &str| format!("line {}: {reason}", index + 1);
        match line.split_once(' ').map(|(key, value)| (key, value.trim())) {
            Some(("uid", value)) if uid.is_none() => match crate::log::number(value) {
                Some(id) if (1..65534).contains(&id) => uid = Some(id as u32),
                _ => return Err(error("uid: not a number from 1 to 65533")),
            },
            Some(("home", value)) if home.is_none() => {
                if !value.starts_with('/') || value.contains(':') || value.contains(' ') {
                    return Err(error("home: not an absolute path"));
                }
                home = Some(value.to_owned());
            }
            Some(("uid" | "home", _)) => return Err(error("given twice")),
            _ => return Err(error("not `uid N` or `home PATH`")),
        }
    }
    Ok((uid, home))
}

/// The `NAME ID` lines of the ids file; bad lines are left out.
pub fn parse_ids(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|line| {
            let (name, id) = line.split_once(' ')?;
            Some((name.to_owned(), crate::log::number(id.trim())? as u32))
        })
        .filter(|(name, _)| valid_name(name))
        .collect()
}

/// Give every name of `wanted` (name, id it asks for) an id: the one remembered, else
/// the one it asks for when free, else the lowest free dynamic one. New names are
/// added to `remembered`; returns whether any was. A name that finds no id is left out.
pub fn allocate(wanted: &[(String, Option<u32>)], remembered: &mut Vec<(String, u32)>) -> bool {
    let mut added = false;
    for (name, asked) in wanted {
        if remembered.iter().any(|(known, _)| known == name) {
            continue;
        }
        let taken = |id: u32, remembered: &[(String, u32)]| {
            remembered.iter().any(|(_, used)| *used == id)
                || BASE_USERS.iter().any(|user| user.1 == id)
                || BASE_GROUPS.iter().any(|group| group.1 == id)
        };
        let id = asked
            .filter(|&id| !taken(id, remembered))
            .or_else(|| DYNAMIC.clone().find(|&id| !taken(id, remembered)));
        if let Some(id) = id {
            remembered.push((name.clone(), id));
            added = true;
        }
    }
    added
}

impl Table {
    /// The base's users and groups only.
    pub fn base() -> Table {
        let mut table = Table::default();
        table.fill(Vec::new(), &[]);
        table
    }

    fn fill(&mut self, declared: Vec<(String, String)>, ids: &[(String, u32)]) {
        self.users = BASE_USERS
            .iter()
            .map(|(name, id, home, _)| User {
                name: (*name).into(),
                uid: *id,
                gid: *id,
                home: (*home).into(),
            })
            .collect();
        self.groups = BASE_GROUPS
            .iter()
            .map(|(name, id)| ((*name).into(), *id))
            .collect();
        for (name, home) in declared {
            if let Some((_, id)) = ids.iter().find(|(known, _)| *known == name) {
                if self.user(&name).is_none() {
                    self.groups.push((name.clone(), *id));
                    self.users.push(User {
                        name,
                        uid: *id,
                        gid: *id,
                        home,
                    });
                }
            }
        }
        crate::sort_small(&mut self.users);
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|user| user.name == name)
    }

    pub fn group(&self, name: &str) -> Option<u32> {
        self.groups
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, id)| *id)
    }

    /// /etc/passwd's text.
    pub fn passwd(&self) -> String {
        self.users
            .iter()
            .map(|user| {
                let shell = BASE_USERS
                    .iter()
                    .find(|base| base.0 == user.name)
                    .map_or("/bin/false", |base| base.3);
                format!(
                    "{0}:x:{1}:{2}:{0}:{3}:{shell}\n",
                    user.name, user.uid, user.gid, user.home
                )
            })
            .collect()
    }

    /// /etc/group's text.
    pub fn group_file(&self) -> String {
        self.groups
            .iter()
            .map(|(name, id)| format!("{name}:x:{id}:\n"))
            .collect()
    }

    /// Read the installed packages' declarations again if the set of packages changed,
    /// give new names their ids, and write passwd and group. Problems are reported
    /// through `report`; a declaration that cannot be read is left out.
    #[inline(never)]
    pub fn refresh(&mut self, places: &Places, report: &mut dyn FnMut(String)) {
        let Ok(mut packages) = crate::dir_names(&places.packages) else {
            return;
        };
        packages.retain(|name| is_package_id(name));
        if packages == self.packages && !self.users.is_empty() {
            return;
        }
        let mut wanted = Vec::new();
        let mut declared = Vec::new();
        for package in &packages {
            let dir = places.packages.join(package).join("users");
            let Ok(files) = std::fs::read_dir(&dir) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                let path = file.path();
                if !valid_name(&name) {
                    report(format!("{}: skipped: not a user name", path.display()));
                    continue;
                }
                match read_small(&path).and_then(|text| parse_declaration(&text)) {
                    Ok((uid, home)) => {
                        wanted.push((name.clone(), uid));
                        declared.push((name, home.unwrap_or_else(|| "/".into())));
                    }
                    Err(reason) => report(format!("{}: skipped: {reason}", path.display())),
                }
            }
        }
        let mut ids = parse_ids(&std::fs::read_to_string(&places.ids).unwrap_or_default());
        if allocate(&wanted, &mut ids) {
            let text: String = ids
                .iter()
                .map(|(name, id)| format!("{name} {id}\n"))
                .collect();
            if let Some(parent) = places.ids.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            // Without room on /data the ids hold for this boot only.
            if let Err(error) = amber_base::durable::write_atomic(&places.ids, text.as_bytes()) {
                report(format!("users: {error}"));
            }
        }
        self.fill(declared, &ids);
        self.packages = packages;
        if let Err(error) = self.write(&places.output) {
            report(format!("users: {}: {error}", places.output.display()));
        }
    }

    /// Write passwd and group into `dir`, each replaced atomically.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let temp = dir.join(".new");
        for (name, text) in [("passwd", self.passwd()), ("group", self.group_file())] {
            std::fs::write(&temp, text)?;
            std::fs::rename(&temp, dir.join(name))?;
        }
        Ok(())
    }
}

/// Whether a name in the store's root is a package (`NAME-VERSION-rN`), not an
/// exchange directory.
fn is_package_id(name: &str) -> bool {
    let digits = name.bytes().rev().take_while(u8::is_ascii_digit).count();
    digits > 0 && name.as_bytes()[..name.len() - digits].ends_with(b"-r")
}

fn read_small(path: &Path) -> Result<String, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > MAX_DECLARATION {
        return Err(format!("larger than {MAX_DECLARATION} bytes"));
    }
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations() {
        assert_eq!(parse_declaration(""), Ok((None, None)));
        assert_eq!(
            parse_declaration("# ssh\nuid 22   # wanted\nhome /data/ssh\n"),
            Ok((Some(22), Some("/data/ssh".into())))
        );
        for (text, reason) in [
            ("uid 0\n", "line 1: uid: not a number"),
            ("uid x\n", "uid: not a number"),
            ("uid 65534\n", "uid: not a number"),
            ("home data\n", "home: not an absolute path"),
            ("home /a:b\n", "home: not an absolute path"),
            ("uid 5\nuid 6\n", "line 2: given twice"),
            ("shell /bin/sh\n", "not `uid N` or `home PATH`"),
            ("uid\n", "not `uid N`"),
        ] {
            let error = parse_declaration(text).unwrap_err();
            assert!(error.contains(reason), "{text:?}: {error}");
        }
        for good in ["dropbear", "_x", "a-b_1"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "1a", "A", "a.b", &"a".repeat(33)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn ids_are_kept_for_good() {
        let mut ids = parse_ids("web 100\nbad line\nNope 7\nntp 123\n");
        assert_eq!(ids, [("web".into(), 100), ("ntp".into(), 123)]);
        let wanted = [
            ("web".to_string(), Some(80)),
            ("dns".to_string(), Some(123)),
            ("ssh".to_string(), Some(22)),
            ("mail".to_string(), None),
            ("tty".to_string(), Some(5)),
        ];
        assert!(allocate(&wanted, &mut ids));
        let expected: Vec<(String, u32)> = [
            ("web", 100),
            ("ntp", 123),
            ("dns", 101),
            ("ssh", 22),
            ("mail", 102),
            ("tty", 103),
        ]
        .iter()
        .map(|(name, id)| (name.to_string(), *id))
        .collect();
        assert_eq!(ids, expected);
        assert!(!allocate(&wanted, &mut ids), "nothing new");
    }

    #[test]
    fn tables_are_written_from_the_packages() {
        let dir = std::env::temp_dir().join(format!("amber-boot-users-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let users = dir.join("ro/dropbear-2022.83-r0/users");
        std::fs::create_dir_all(&users).unwrap();
        std::fs::create_dir_all(dir.join("ro/bin/users")).unwrap();
        std::fs::write(users.join("dropbear"), "uid 22\n").unwrap();
        std::fs::write(users.join("Bad"), "").unwrap();
        std::fs::write(dir.join("ro/bin/users/ghost"), "").unwrap();
        let places = Places {
            packages: dir.join("ro"),
            ids: dir.join("data/amber/ids"),
            output: dir.join("run/etc"),
        };
        let mut reports = Vec::new();
        let mut table = Table::base();
        table.refresh(&places, &mut |line| reports.push(line));
        let passwd = std::fs::read_to_string(dir.join("run/etc/passwd")).unwrap();
        let group = std::fs::read_to_string(dir.join("run/etc/group")).unwrap();
        let ids = std::fs::read_to_string(dir.join("data/amber/ids")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            passwd,
            "dropbear:x:22:22:dropbear:/:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\nroot:x:0:0:root:/root:/bin/sh\n"
        );
        assert_eq!(
            group,
            "root:x:0:\ntty:x:5:\nnogroup:x:65534:\ndropbear:x:22:\n"
        );
        assert_eq!(ids, "dropbear 22\n");
        assert_eq!(table.user("dropbear").map(|user| user.uid), Some(22));
        assert_eq!(table.group("tty"), Some(5));
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(reports[0].ends_with("Bad: skipped: not a user name"));
        assert!(is_package_id("hello-1.0-r0") && !is_package_id("bin"));
    }
}
