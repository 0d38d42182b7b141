//! Interop with the real `minisign` tool, both ways: its keys and signatures work with
//! amber-core, and ours (from core and from `pkg keygen`) work with it.
//!
//! Each test is skipped when /usr/bin/minisign is not installed: with a notice on a
//! developer's machine, as a failure under CI (amber-testkit).

#![cfg(feature = "host")]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use amber_core::minisign::{self, KeyPair, PublicKey, SecretKey, SignatureError};

const MINISIGN: &str = "/usr/bin/minisign";
const DATA: &[u8] = b"amber index\nserial 1\n";

/// A fresh directory under cargo's per-target temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("minisign-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) {
        fs::write(self.path(name), contents).unwrap();
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Whether the real tool is there; prints why a test does nothing when it is not.
fn have_minisign() -> bool {
    amber_testkit::require(
        Path::new(MINISIGN).exists(),
        &format!("{MINISIGN} is not installed (apt-get install minisign)"),
    )
}

/// Run a command in `dir` with no input (minisign would otherwise wait for a password).
fn run(command: &mut Command, dir: &TempDir) -> Output {
    command
        .current_dir(&dir.0)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn minisign(dir: &TempDir, args: &[&str]) -> Output {
    run(Command::new(MINISIGN).args(args), dir)
}

fn pkg(dir: &TempDir, args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_pkg")).args(args), dir)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// A key pair made by `minisign -G -W` in `dir`, as `tool.pub` and `tool.key`.
fn tool_keys(dir: &TempDir) -> PublicKey {
    assert_success(&minisign(
        dir,
        &["-G", "-W", "-p", "tool.pub", "-s", "tool.key"],
    ));
    PublicKey::parse_file(&dir.read("tool.pub")).unwrap()
}

/// `data` signed by the real tool; `legacy` picks `-l`.
fn tool_signature(dir: &TempDir, legacy: bool, trusted_comment: &str) -> String {
    dir.write("data", DATA);
    let mut args = vec!["-S", "-s", "tool.key", "-m", "data", "-t", trusted_comment];
    if legacy {
        args.push("-l");
    }
    assert_success(&minisign(dir, &args));
    dir.read("data.minisig")
}

/// A key pair made by core, with its public key written as `core.pub`.
fn core_keys(dir: &TempDir) -> KeyPair {
    let pair = KeyPair::from_seed([0x5a; 32], [0xab, 0, 0, 0, 0, 0, 0x10, 0x20]).unwrap();
    dir.write("core.pub", pair.public.to_file_string());
    pair
}

/// The `minisign -V` verdict on `data` with the signature `data.minisig`.
fn tool_verify(dir: &TempDir, public_key_file: &str) -> Output {
    minisign(dir, &["-V", "-p", public_key_file, "-m", "data"])
}

#[test]
fn minisign_prehashed_signature_verifies_in_core() {
    if !have_minisign() {
        return;
    }
    let dir = TempDir::new("tool-prehashed");
    let key = tool_keys(&dir);
    let signature = tool_signature(&dir, false, "timestamp:1\tfile:index\tserial:1");
    let verified = minisign::verify(&[key], DATA, &signature).unwrap();
    assert_eq!(verified.algorithm, minisign::Algorithm::Prehashed);
    assert_eq!(verified.key_id, key.key_id);
    assert_eq!(
        verified.trusted_comment,
        "timestamp:1\tfile:index\tserial:1"
    );
}

#[test]
fn minisign_legacy_signature_verifies_in_core() {
    if !have_minisign() {
        return;
    }
    let dir = TempDir::new("tool-legacy");
    let key = tool_keys(&dir);
    let signature = tool_signature(&dir, true, "legacy");
    let verified = minisign::verify(&[key], DATA, &signature).unwrap();
    assert_eq!(verified.algorithm, minisign::Algorithm::Legacy);
    assert_eq!(verified.trusted_comment, "legacy");
}

#[test]
fn minisign_default_trusted_comment_verifies_in_core() {
    if !have_minisign() {
        return;
    }
    let dir = TempDir::new("tool-default");
    let key = tool_keys(&dir);
    dir.write("data", DATA);
    assert_success(&minisign(&dir, &["-S", "-s", "tool.key", "-m", "data"]));
    let verified = minisign::verify(&[key], DATA, &dir.read("data.minisig")).unwrap();
    // minisign 0.11's default: "timestamp:<unix time>\tfile:<name>\thashed".
    assert!(verified.trusted_comment.starts_with("timestamp:"));
    assert!(verified.trusted_comment.ends_with("\tfile:data\thashed"));
}

#[test]
fn minisign_secret_key_signs_in_core() {
    if !have_minisign() {
        return;
    }
    let dir = TempDir::new("tool-secret");
    let key = tool_keys(&dir);
    let secret = SecretKey::parse_file(&dir.read("tool.key")).unwrap();
    assert_eq!(secret.public_key(), key);
    dir.write("data", DATA);
    let signature = minisign::sign(&secret, DATA, "by core", "u", true).unwrap();
    dir.write("data.minisig", signature);
    assert_success(&tool_verify(&dir, "tool.pub"));
}

#[test]
fn core_prehashed_signature_verifies_with_minisign() {
    if !have_minisign() {
        return;
    }
    let dir = TempDir::new("core-prehashed");
    let pair = core_keys(&dir);
    dir.write("data", DATA);
    let signature = minisign::sign(&pair.secret, DATA, "core\tprehashed", "u", true).unwrap();
    dir.write("data.minisig", signature);
    let output = tool_verify(&dir, "core.pub");
    assert_success(&output);
    assert!(text(&output.stdout).contains("Trusted comment: core\tprehashed"));
    // `-H` demands a prehashed signature.
    assert_success(&minisign(
        &dir,
        &["-V", "-H", "-p", "core.pub", "-m", "data"],
    ));
    // The key line alone, as `-P` takes it, works too.
    let line = pair.public.to_base64_line();
    assert_success(&minisign(&dir, &["-V", "-P", &line, "-m", "data"]));
}

#[test]
fn core_legacy_signature_verifies_with_minisign() {
    if !have_minisign() {
        return;
    }
    let dir = TempDir::new("core-legacy");
    let pair = core_keys(&dir);
    dir.write("data", DATA);
    let signature = minisign::sign(&pair.secret, DATA, "core legacy", "u", false).unwrap();
    dir.write("data.minisig", signature);
    let output = tool_verify(&dir, "core.pub");
    assert_success(&output);
    assert!(text(&output.stdout).contains("Trusted comment: core legacy"));
    // And the tool agrees it is not prehashed.
    let output = minisign(&dir, &["-V", "-H", "-p", "core.pub", "-m", "data"]);
    assert!(!output.status.success());
}

#[test]
fn core_signature_with_longest_comments_verifies_with_minisign() {
    if !have_minisign() {
        return;
    }
    let dir = TempDir::new("core-limits");
    let pair = core_keys(&dir);
    dir.write("data", DATA);
    let trusted = "t".repeat(minisign::MAX_TRUSTED_COMMENT);
    let untrusted = "u".repeat(minisign::MAX_UNTRUSTED_COMMENT);
    let signature = minisign::sign(&pair.secret, DATA, &trusted, &untrusted, true).unwrap();
    dir.write("data.minisig", signature);
    assert_success(&tool_verify(&dir, "core.pub"));
}

#[test]
fn core_secret_key_file_signs_with_minisign() {
    if !have_minisign() {
        return;
    }
    let dir = TempDir::new("core-secret");
    let pair = core_keys(&dir);
    dir.write("core.key", pair.secret.to_file_string());
    dir.write("data", DATA);
    assert_success(&minisign(&dir, &["-S", "-s", "core.key", "-m", "data"]));
    assert_success(&tool_verify(&dir, "core.pub"));
    // minisign recreates the same public key file from our secret key.
    assert_success(&minisign(
        &dir,
        &["-R", "-s", "core.key", "-p", "again.pub"],
    ));
    assert_eq!(dir.read("again.pub"), dir.read("core.pub"));
}

#[test]
fn pkg_keygen_keys_work_with_minisign() {
    if !have_minisign() {
        return;
    }
    let dir = TempDir::new("keygen");
    let output = pkg(
        &dir,
        &["keygen", "--secret-key", "k.key", "--public-key", "k.pub"],
    );
    assert_success(&output);
    let public = PublicKey::parse_file(&dir.read("k.pub")).unwrap();
    assert_eq!(
        text(&output.stdout),
        format!("public key k.pub (key id {})\n", public.key_id_hex())
    );
    // The public key file says the key id the way minisign does.
    assert!(dir.read("k.pub").starts_with(&format!(
        "untrusted comment: minisign public key {}\n",
        public.key_id_hex()
    )));
    let mode = fs::metadata(dir.path("k.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    dir.write("data", DATA);
    assert_success(&minisign(&dir, &["-S", "-s", "k.key", "-m", "data"]));
    assert_success(&tool_verify(&dir, "k.pub"));
    minisign::verify(&[public], DATA, &dir.read("data.minisig")).unwrap();
    // Legacy signatures from our key too.
    assert_success(&minisign(&dir, &["-S", "-l", "-s", "k.key", "-m", "data"]));
    assert_success(&tool_verify(&dir, "k.pub"));
}

#[test]
fn pkg_keygen_refuses_to_overwrite_without_force() {
    let dir = TempDir::new("keygen-force");
    let args = ["keygen", "--secret-key", "k.key", "--public-key", "k.pub"];
    assert_success(&pkg(&dir, &args));
    let (secret, public) = (dir.read("k.key"), dir.read("k.pub"));

    let output = pkg(&dir, &args);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "pkg: k.key: already exists (use --force to overwrite)\n"
    );
    assert_eq!(
        (dir.read("k.key"), dir.read("k.pub")),
        (secret.clone(), public.clone())
    );

    // Only the public key present is refused as well, and the secret is not written.
    fs::remove_file(dir.path("k.key")).unwrap();
    let output = pkg(&dir, &args);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("k.pub: already exists"));
    assert!(!dir.path("k.key").exists());

    let mut forced = args.to_vec();
    forced.push("--force");
    assert_success(&pkg(&dir, &forced));
    assert_ne!(dir.read("k.pub"), public);
    let key = PublicKey::parse_file(&dir.read("k.pub")).unwrap();
    assert_eq!(
        SecretKey::parse_file(&dir.read("k.key"))
            .unwrap()
            .public_key(),
        key
    );
    // No temporary files are left behind.
    assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 2);
}

#[test]
fn pkg_keygen_same_file_twice_is_a_usage_error() {
    let dir = TempDir::new("keygen-same");
    let output = pkg(&dir, &["keygen", "--secret-key", "k", "--public-key", "k"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(!dir.path("k").exists());
}

/// A tool-made prehashed signature, its key, and a second, unrelated tool key.
struct Tampering {
    dir: TempDir,
    key: PublicKey,
    signature: String,
}

impl Tampering {
    fn new(name: &str) -> Tampering {
        let dir = TempDir::new(name);
        let key = tool_keys(&dir);
        let signature = tool_signature(&dir, false, "timestamp:1\tfile:index\tserial:1");
        Tampering {
            dir,
            key,
            signature,
        }
    }

    /// Our verdict on `data` and `signature`, after checking that the real tool also
    /// refuses the pair, so both sides agree.
    fn verdict(&self, data: &[u8], signature: &str) -> Result<minisign::Verified, SignatureError> {
        self.dir.write("data", data);
        self.dir.write("data.minisig", signature);
        let tool = tool_verify(&self.dir, "tool.pub");
        assert!(!tool.status.success(), "minisign accepted it");
        minisign::verify(&[self.key], data, signature)
    }

    /// The signature file with line `number` (1-based) replaced.
    fn with_line(&self, number: usize, line: &str) -> String {
        let mut lines: Vec<&str> = self.signature.split('\n').collect();
        lines[number - 1] = line;
        lines.join("\n")
    }

    fn line(&self, number: usize) -> &str {
        self.signature.split('\n').nth(number - 1).unwrap()
    }

    /// The signature file with one bit of the decoded line `number` flipped.
    fn flip(&self, number: usize, byte: usize) -> String {
        let mut bytes = amber_core::base64::decode(self.line(number)).unwrap();
        bytes[byte] ^= 1;
        self.with_line(number, &amber_core::base64::encode(&bytes))
    }
}

#[test]
fn tampered_data_is_refused() {
    if !have_minisign() {
        return;
    }
    let case = Tampering::new("tamper-data");
    let mut data = DATA.to_vec();
    data[3] ^= 0x20;
    assert_eq!(
        case.verdict(&data, &case.signature),
        Err(SignatureError::Data)
    );
}

#[test]
fn tampered_signature_is_refused() {
    if !have_minisign() {
        return;
    }
    let case = Tampering::new("tamper-signature");
    let tampered = case.flip(2, 40);
    assert_eq!(case.verdict(DATA, &tampered), Err(SignatureError::Data));
}

#[test]
fn tampered_trusted_comment_is_refused() {
    if !have_minisign() {
        return;
    }
    let case = Tampering::new("tamper-comment");
    let tampered = case.with_line(3, "trusted comment: timestamp:1\tfile:index\tserial:2");
    assert_eq!(case.verdict(DATA, &tampered), Err(SignatureError::Global));
}

#[test]
fn tampered_global_signature_is_refused() {
    if !have_minisign() {
        return;
    }
    let case = Tampering::new("tamper-global");
    let tampered = case.flip(4, 63);
    assert_eq!(case.verdict(DATA, &tampered), Err(SignatureError::Global));
}

#[test]
fn tampered_key_id_is_refused() {
    if !have_minisign() {
        return;
    }
    let case = Tampering::new("tamper-key-id");
    let tampered = case.flip(2, 2);
    let mut key_id = case.key.key_id;
    key_id[0] ^= 1;
    let error = case.verdict(DATA, &tampered).unwrap_err();
    assert_eq!(error, SignatureError::UnknownKey(key_id));
    assert!(error.to_string().contains(&minisign::key_id_hex(&key_id)));
}

#[test]
fn truncated_base64_is_refused() {
    if !have_minisign() {
        return;
    }
    let case = Tampering::new("tamper-truncated");
    let line = case.line(2);
    for cut in [1, 2, 4, 50] {
        let tampered = case.with_line(2, &line[..line.len() - cut]);
        assert!(
            matches!(
                case.verdict(DATA, &tampered),
                Err(SignatureError::Base64 { line: 2, .. } | SignatureError::Length { line: 2, .. })
            ),
            "cut {cut}"
        );
    }
    let line = case.line(4);
    let tampered = case.with_line(4, &line[..line.len() - 3]);
    assert!(matches!(
        case.verdict(DATA, &tampered),
        Err(SignatureError::Base64 { line: 4, .. })
    ));
}

#[test]
fn truncated_file_is_refused() {
    if !have_minisign() {
        return;
    }
    let case = Tampering::new("tamper-file");
    // The file cut after its second line: no trusted comment at all.
    let end = case.signature.match_indices('\n').nth(1).unwrap().0 + 1;
    let tampered = &case.signature[..end];
    assert_eq!(case.verdict(DATA, tampered), Err(SignatureError::Lines));
}

#[test]
fn signature_by_unknown_key_is_refused() {
    if !have_minisign() {
        return;
    }
    let case = Tampering::new("unknown-key");
    // Another key made by the tool signs the same data; only the first key is trusted.
    assert_success(&minisign(
        &case.dir,
        &["-G", "-W", "-p", "other.pub", "-s", "other.key"],
    ));
    case.dir.write("data", DATA);
    assert_success(&minisign(
        &case.dir,
        &["-S", "-s", "other.key", "-m", "data"],
    ));
    let other = PublicKey::parse_file(&case.dir.read("other.pub")).unwrap();
    let signature = case.dir.read("data.minisig");
    assert_eq!(
        case.verdict(DATA, &signature),
        Err(SignatureError::UnknownKey(other.key_id))
    );
    // With the other key trusted as well, the same file verifies.
    minisign::verify(&[case.key, other], DATA, &signature).unwrap();
}
