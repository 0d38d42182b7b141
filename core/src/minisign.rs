//! minisign public keys, secret keys and signatures, byte-compatible with the `minisign` tool.
//!
//! Formats (every line ends in `\n`; the base64 is standard and padded):
//!
//! ```text
//! public key file   untrusted comment: <text>
//!                   base64("Ed" || key id (8) || Ed25519 public key (32))
//! signature file    untrusted comment: <text>
//!                   base64(algorithm (2) || key id (8) || signature (64))
//!                   trusted comment: <text>
//!                   base64(global signature (64))
//! secret key file   untrusted comment: <text>
//!                   base64("Ed" || kdf (2) || "B2" || salt (32) || opslimit (8) || memlimit (8)
//!                          || key id (8) || Ed25519 seed and public key (64) || checksum (32))
//! ```
//!
//! The algorithm `ED` signs BLAKE2b-512 of the data ("prehashed", minisign's default) and
//! `Ed` signs the data itself (legacy, `minisign -S -l`). The global signature signs the
//! signature bytes followed by the trusted comment, so the comment cannot be edited.
//!
//! Parsing is stricter than the tool's: minisign also accepts CRLF line ends, a missing
//! final newline, trailing lines and non-zero unused base64 bits in signature files; we
//! accept only the exact text minisign writes, so a file that passes cannot be
//! rewritten into another one that also passes. Every file the tool writes passes.
//!
//! Verification needs no features; signing and key files for signing are `host` only.
//! Core never draws random numbers: key generation takes the seed and key id from the caller.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use ed25519_compact as ed25519;

use crate::base64::{self, Base64Error};
use crate::blake2b::Blake2b512;

/// A minisign key id: 8 random bytes chosen when the key is made, stored in key and
/// signature files so a verifier can pick the right key.
pub type KeyId = [u8; 8];

const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
const TRUSTED_PREFIX: &str = "trusted comment: ";

/// minisign reads an untrusted comment line into a 1024-byte buffer that also holds the
/// prefix, the newline and a NUL; a longer comment makes its own verification fail.
pub const MAX_UNTRUSTED_COMMENT: usize = 1024 - UNTRUSTED_PREFIX.len() - 2;
/// The same limit for the trusted comment line, whose buffer is 8192 bytes.
pub const MAX_TRUSTED_COMMENT: usize = 8192 - TRUSTED_PREFIX.len() - 2;

/// The signature algorithm of public keys and secret keys, and of legacy signatures.
const ALGORITHM_ED25519: [u8; 2] = *b"Ed";
/// The signature algorithm of prehashed signatures.
const ALGORITHM_PREHASHED: [u8; 2] = *b"ED";
/// The checksum algorithm of secret keys: BLAKE2b-256.
#[cfg(feature = "host")]
const CHECKSUM_BLAKE2B: [u8; 2] = *b"B2";
/// The key derivation algorithm of encrypted secret keys: scrypt.
#[cfg(feature = "host")]
const KDF_SCRYPT: [u8; 2] = *b"Sc";
/// The key derivation "algorithm" of unencrypted secret keys (`minisign -G -W`).
#[cfg(feature = "host")]
const KDF_NONE: [u8; 2] = [0, 0];

const PUBLIC_KEY_BYTES: usize = 2 + 8 + 32;
const SIGNATURE_BYTES: usize = 2 + 8 + 64;
#[cfg(feature = "host")]
const SECRET_KEY_BYTES: usize = 2 + 2 + 2 + 32 + 8 + 8 + 8 + 64 + 32;

/// The key id as minisign prints it: the 8 bytes read as a little-endian number, in
/// uppercase hex without leading zeros (`minisign public key 5F8F7AB396D33256`, but
/// `minisign public key AB` for the id `ab 00 00 00 00 00 00 00`).
pub fn key_id_hex(key_id: &KeyId) -> String {
    alloc::format!("{:X}", u64::from_le_bytes(*key_id))
}

/// Parse a key id written the way [`key_id_hex`] writes it: 1 to 16 hex digits. Either
/// case and leading zeros are accepted, since people type these.
pub fn parse_key_id_hex(text: &str) -> Result<KeyId, KeyError> {
    let valid = (1..=16).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit());
    match u64::from_str_radix(text, 16) {
        Ok(number) if valid => Ok(number.to_le_bytes()),
        _ => Err(KeyError::KeyIdHex),
    }
}

/// Why a comment cannot go into a minisign file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentError {
    /// CR, LF or NUL: each would change the line structure, or what minisign (written
    /// in C) reads as the comment.
    Character,
    /// Longer than minisign can read back.
    TooLong { limit: usize },
}

impl fmt::Display for CommentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommentError::Character => f.write_str("comment contains CR, LF or NUL"),
            CommentError::TooLong { limit } => {
                write!(f, "comment longer than minisign's limit of {limit} bytes")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CommentError {}

fn check_comment(text: &str, limit: usize) -> Result<(), CommentError> {
    if text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(CommentError::Character);
    }
    if text.len() > limit {
        return Err(CommentError::TooLong { limit });
    }
    Ok(())
}

/// Split `text` into exactly `N` lines, each ending in `\n`. When `final_newline` is
/// false the last line may also end the text without one.
fn split_lines<const N: usize>(text: &str, final_newline: bool) -> Option<[&str; N]> {
    let body = match text.strip_suffix('\n') {
        Some(body) => body,
        None if !final_newline => text,
        None => return None,
    };
    let mut parts = body.split('\n');
    let mut lines = [""; N];
    for line in lines.iter_mut() {
        *line = parts.next()?;
    }
    match parts.next() {
        Some(_) => None,
        None => Some(lines),
    }
}

/// Decode one base64 line into exactly `N` bytes.
fn decode_exact<const N: usize>(line: &str) -> Result<[u8; N], (Option<Base64Error>, usize)> {
    let bytes = base64::decode(line).map_err(|error| (Some(error), 0))?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| (None, bytes.len()))
}

/// Why a key file or key line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// Not exactly the two lines of a key file.
    Lines,
    /// The first line does not start with `untrusted comment: `.
    UntrustedComment,
    /// The comment line has a forbidden character or is too long.
    Comment(CommentError),
    /// The key line is not valid base64.
    Base64(Base64Error),
    /// The key line decodes to the wrong number of bytes.
    Length { expected: usize, found: usize },
    /// A signature algorithm other than Ed25519 (`Ed`).
    Algorithm([u8; 2]),
    /// The public key is not a usable Ed25519 point.
    InvalidKey,
    /// A secret key encrypted with a password (scrypt).
    Encrypted,
    /// A secret key with an unknown key derivation algorithm.
    Kdf([u8; 2]),
    /// A secret key with an unknown checksum algorithm.
    ChecksumAlgorithm([u8; 2]),
    /// The secret key's checksum does not match: the file is damaged.
    Checksum,
    /// The public half stored in the secret key does not belong to its seed.
    KeyMismatch,
    /// An all-zero seed, which cannot come from a random source.
    ZeroSeed,
    /// A key id that is not 1 to 16 hex digits.
    KeyIdHex,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Lines => f.write_str(
                "not a minisign key file: expected an untrusted comment line and a key line",
            ),
            KeyError::UntrustedComment => {
                f.write_str("not a minisign key file: no `untrusted comment: ` line")
            }
            KeyError::Comment(error) => write!(f, "untrusted comment: {error}"),
            KeyError::Base64(error) => write!(f, "key line: {error}"),
            KeyError::Length { expected, found } => {
                write!(f, "key line holds {found} bytes, expected {expected}")
            }
            KeyError::Algorithm(algorithm) => {
                write!(f, "unsupported key algorithm {:?}", Bytes(algorithm))
            }
            KeyError::InvalidKey => f.write_str("not a valid Ed25519 public key"),
            KeyError::Encrypted => f.write_str(
                "encrypted secret keys are not supported; create one with \
                 `minisign -G -W` or `pkg keygen`",
            ),
            KeyError::Kdf(kdf) => {
                write!(
                    f,
                    "unsupported secret key derivation algorithm {:?}",
                    Bytes(kdf)
                )
            }
            KeyError::ChecksumAlgorithm(algorithm) => {
                write!(
                    f,
                    "unsupported secret key checksum algorithm {:?}",
                    Bytes(algorithm)
                )
            }
            KeyError::Checksum => f.write_str("secret key checksum mismatch (damaged file?)"),
            KeyError::KeyMismatch => {
                f.write_str("secret key's public half does not match its seed (damaged file?)")
            }
            KeyError::ZeroSeed => f.write_str("all-zero key seed"),
            KeyError::KeyIdHex => f.write_str("a key id is 1 to 16 hex digits"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for KeyError {}

/// Shows a two-byte algorithm tag as text when it is printable, else as hex.
struct Bytes<'a>(&'a [u8; 2]);

impl fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match core::str::from_utf8(self.0) {
            Ok(text) if self.0.iter().all(|b| b.is_ascii_graphic()) => write!(f, "\"{text}\""),
            _ => write!(f, "0x{:02x}{:02x}", self.0[0], self.0[1]),
        }
    }
}

/// A minisign public key: an Ed25519 key and the key id signatures name it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey {
    pub key_id: KeyId,
    pub key: [u8; 32],
}

impl PublicKey {
    /// Parse a public key file: an untrusted comment line, then the key line. The final
    /// newline may be missing, since people also write these files by hand.
    pub fn parse_file(text: &str) -> Result<PublicKey, KeyError> {
        let [comment, line] = split_lines::<2>(text, false).ok_or(KeyError::Lines)?;
        let comment = comment
            .strip_prefix(UNTRUSTED_PREFIX)
            .ok_or(KeyError::UntrustedComment)?;
        check_comment(comment, MAX_UNTRUSTED_COMMENT).map_err(KeyError::Comment)?;
        PublicKey::parse_base64_line(line)
    }

    /// Parse the key line alone, the form `minisign -P` takes on its command line.
    pub fn parse_base64_line(line: &str) -> Result<PublicKey, KeyError> {
        let bytes = decode_exact::<PUBLIC_KEY_BYTES>(line).map_err(|error| match error {
            (Some(error), _) => KeyError::Base64(error),
            (None, found) => KeyError::Length {
                expected: PUBLIC_KEY_BYTES,
                found,
            },
        })?;
        let algorithm = [bytes[0], bytes[1]];
        if algorithm != ALGORITHM_ED25519 {
            return Err(KeyError::Algorithm(algorithm));
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&bytes[2..10]);
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[10..]);
        // A key that is not a point, or has small order, could never verify anything;
        // refusing it here gives `pkg key add` a clear error instead of later failures.
        ed25519::PublicKey::new(key)
            .validate()
            .map_err(|_| KeyError::InvalidKey)?;
        Ok(PublicKey { key_id, key })
    }

    /// The key line: base64 of `Ed`, the key id and the key.
    pub fn to_base64_line(&self) -> String {
        let mut bytes = Vec::with_capacity(PUBLIC_KEY_BYTES);
        bytes.extend_from_slice(&ALGORITHM_ED25519);
        bytes.extend_from_slice(&self.key_id);
        bytes.extend_from_slice(&self.key);
        base64::encode(&bytes)
    }

    /// The public key file, with the comment minisign itself writes.
    pub fn to_file_string(&self) -> String {
        alloc::format!(
            "{UNTRUSTED_PREFIX}minisign public key {}\n{}\n",
            self.key_id_hex(),
            self.to_base64_line()
        )
    }

    /// The key id as minisign prints it.
    pub fn key_id_hex(&self) -> String {
        key_id_hex(&self.key_id)
    }
}

/// The two kinds of minisign signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `ED`: Ed25519 over BLAKE2b-512 of the data; minisign's default since 0.8.
    Prehashed,
    /// `Ed`: Ed25519 over the data itself (`minisign -S -l`).
    Legacy,
}

impl Algorithm {
    fn tag(self) -> [u8; 2] {
        match self {
            Algorithm::Prehashed => ALGORITHM_PREHASHED,
            Algorithm::Legacy => ALGORITHM_ED25519,
        }
    }
}

/// Why a signature file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// Not exactly four lines, each ending in a newline (a truncated file, or extra text).
    Lines,
    /// The first line does not start with `untrusted comment: `.
    UntrustedComment,
    /// The third line does not start with `trusted comment: `.
    TrustedComment,
    /// A comment has a forbidden character or is too long.
    Comment(CommentError),
    /// Line 2 or 4 is not valid base64.
    Base64 { line: u8, error: Base64Error },
    /// Line 2 or 4 decodes to the wrong number of bytes.
    Length {
        line: u8,
        expected: usize,
        found: usize,
    },
    /// Neither `ED` nor `Ed`.
    Algorithm([u8; 2]),
    /// No trusted key has the key id the signature names.
    UnknownKey(KeyId),
    /// The signature does not match the data.
    Data,
    /// The global signature does not match: the trusted comment was changed.
    Global,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::Lines => {
                f.write_str("not a minisign signature: expected 4 lines, each ending in a newline")
            }
            SignatureError::UntrustedComment => {
                f.write_str("not a minisign signature: line 1 is not an untrusted comment")
            }
            SignatureError::TrustedComment => {
                f.write_str("not a minisign signature: line 3 is not a trusted comment")
            }
            SignatureError::Comment(error) => write!(f, "signature {error}"),
            SignatureError::Base64 { line, error } => {
                write!(f, "signature line {line}: {error}")
            }
            SignatureError::Length {
                line,
                expected,
                found,
            } => write!(
                f,
                "signature line {line} holds {found} bytes, expected {expected}"
            ),
            SignatureError::Algorithm(algorithm) => {
                write!(f, "unsupported signature algorithm {:?}", Bytes(algorithm))
            }
            SignatureError::UnknownKey(key_id) => write!(
                f,
                "signed by key {}, which is not a trusted key",
                key_id_hex(key_id)
            ),
            SignatureError::Data => f.write_str("signature does not match the data"),
            SignatureError::Global => {
                f.write_str("trusted comment signature does not match (comment edited?)")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SignatureError {}

/// A parsed, not yet verified, signature file. Nothing in it is trustworthy until
/// [`verify`] or a [`Verifier`] says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub algorithm: Algorithm,
    pub key_id: KeyId,
    pub signature: [u8; 64],
    pub untrusted_comment: String,
    pub trusted_comment: String,
    pub global_signature: [u8; 64],
}

fn decode_signature_line<const N: usize>(
    line: &str,
    number: u8,
) -> Result<[u8; N], SignatureError> {
    decode_exact::<N>(line).map_err(|error| match error {
        (Some(error), _) => SignatureError::Base64 {
            line: number,
            error,
        },
        (None, found) => SignatureError::Length {
            line: number,
            expected: N,
            found,
        },
    })
}

impl Signature {
    /// Parse a signature file strictly: exactly the four lines minisign writes.
    pub fn parse(text: &str) -> Result<Signature, SignatureError> {
        let [untrusted, line2, trusted, line4] =
            split_lines::<4>(text, true).ok_or(SignatureError::Lines)?;
        let untrusted = untrusted
            .strip_prefix(UNTRUSTED_PREFIX)
            .ok_or(SignatureError::UntrustedComment)?;
        check_comment(untrusted, MAX_UNTRUSTED_COMMENT).map_err(SignatureError::Comment)?;
        let bytes = decode_signature_line::<SIGNATURE_BYTES>(line2, 2)?;
        let trusted = trusted
            .strip_prefix(TRUSTED_PREFIX)
            .ok_or(SignatureError::TrustedComment)?;
        check_comment(trusted, MAX_TRUSTED_COMMENT).map_err(SignatureError::Comment)?;
        let global_signature = decode_signature_line::<64>(line4, 4)?;

        let algorithm = match [bytes[0], bytes[1]] {
            ALGORITHM_PREHASHED => Algorithm::Prehashed,
            ALGORITHM_ED25519 => Algorithm::Legacy,
            other => return Err(SignatureError::Algorithm(other)),
        };
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&bytes[2..10]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[10..]);
        Ok(Signature {
            algorithm,
            key_id,
            signature,
            untrusted_comment: untrusted.into(),
            trusted_comment: trusted.into(),
            global_signature,
        })
    }

    /// The signature file, exactly as minisign writes it.
    pub fn to_file_string(&self) -> String {
        let mut bytes = Vec::with_capacity(SIGNATURE_BYTES);
        bytes.extend_from_slice(&self.algorithm.tag());
        bytes.extend_from_slice(&self.key_id);
        bytes.extend_from_slice(&self.signature);
        alloc::format!(
            "{UNTRUSTED_PREFIX}{}\n{}\n{TRUSTED_PREFIX}{}\n{}\n",
            self.untrusted_comment,
            base64::encode(&bytes),
            self.trusted_comment,
            base64::encode(&self.global_signature)
        )
    }
}

/// What a successful verification vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The trusted key that made the signature.
    pub key_id: KeyId,
    /// The trusted comment, now authenticated.
    pub trusted_comment: String,
    pub algorithm: Algorithm,
}

/// Verify `data` against a minisign signature file made by one of the `trusted` keys.
pub fn verify(
    trusted: &[PublicKey],
    data: &[u8],
    signature_file: &str,
) -> Result<Verified, SignatureError> {
    let mut verifier = Verifier::new(trusted, signature_file)?;
    verifier.update(data);
    verifier.finish()
}

/// What the streaming verifier keeps while the data flows through.
#[derive(Clone)]
enum Pending {
    /// Prehashed signatures only need the BLAKE2b state until the end. Both states are
    /// boxed so a verifier stays small to move around.
    Prehashed(Box<Blake2b512>),
    /// Legacy signatures hash the data inside Ed25519 itself.
    Legacy(Box<ed25519::VerifyingState>),
    /// The signature was unusable (not canonical, or a bad point); it will fail at the end.
    Invalid,
}

/// Verifies a signature over data that arrives in pieces, so large files never need to
/// be in memory at once.
#[derive(Clone)]
pub struct Verifier {
    key: ed25519::PublicKey,
    signature: Signature,
    pending: Pending,
}

impl Verifier {
    /// Parse the signature file and find its key among the `trusted` ones.
    pub fn new(trusted: &[PublicKey], signature_file: &str) -> Result<Verifier, SignatureError> {
        let signature = Signature::parse(signature_file)?;
        let public = trusted
            .iter()
            .find(|key| key.key_id == signature.key_id)
            .ok_or(SignatureError::UnknownKey(signature.key_id))?;
        let key = ed25519::PublicKey::new(public.key);
        let pending = match signature.algorithm {
            Algorithm::Prehashed => Pending::Prehashed(Box::default()),
            Algorithm::Legacy => {
                match key.verify_incremental(&ed25519::Signature::new(signature.signature)) {
                    Ok(state) => Pending::Legacy(Box::new(state)),
                    Err(_) => Pending::Invalid,
                }
            }
        };
        Ok(Verifier {
            key,
            signature,
            pending,
        })
    }

    /// The parsed signature; its comments are not authenticated before [`Verifier::finish`].
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Feed the next piece of the signed data.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.pending {
            Pending::Prehashed(hash) => hash.update(data),
            Pending::Legacy(state) => state.absorb(data),
            Pending::Invalid => {}
        }
    }

    /// Check the signature over all the data, then the global signature over the
    /// signature and trusted comment. Both must hold.
    pub fn finish(self) -> Result<Verified, SignatureError> {
        let signature = ed25519::Signature::new(self.signature.signature);
        let data = match self.pending {
            // As a slice, like the global signature below: one instantiation of
            // ed25519's generic verify.
            Pending::Prehashed(hash) => self.key.verify(&hash.finalize()[..], &signature),
            Pending::Legacy(state) => state.verify(),
            Pending::Invalid => Err(ed25519::Error::InvalidSignature),
        };
        data.map_err(|_| SignatureError::Data)?;

        let mut global = Vec::with_capacity(64 + self.signature.trusted_comment.len());
        global.extend_from_slice(&self.signature.signature);
        global.extend_from_slice(self.signature.trusted_comment.as_bytes());
        self.key
            .verify(
                &global[..],
                &ed25519::Signature::new(self.signature.global_signature),
            )
            .map_err(|_| SignatureError::Global)?;

        Ok(Verified {
            key_id: self.signature.key_id,
            trusted_comment: self.signature.trusted_comment,
            algorithm: self.signature.algorithm,
        })
    }
}

#[cfg(feature = "host")]
pub use signing::{sign, KeyPair, SecretKey};

/// Secret keys and signing, for the host only: the device verifies and never signs.
#[cfg(feature = "host")]
mod signing {
    use super::*;
    use crate::blake2b::{blake2b_512, Blake2b256};

    /// A minisign secret key: the key id and the Ed25519 key (seed and public half).
    /// The Ed25519 key wipes itself from memory when dropped.
    #[derive(Clone)]
    pub struct SecretKey {
        key_id: KeyId,
        key: ed25519::SecretKey,
    }

    impl fmt::Debug for SecretKey {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            // Never print the key itself, not even in a debug log.
            write!(f, "SecretKey({})", key_id_hex(&self.key_id))
        }
    }

    /// A new key pair: the public key to publish and the secret key to sign with.
    #[derive(Debug, Clone)]
    pub struct KeyPair {
        pub public: PublicKey,
        pub secret: SecretKey,
    }

    impl KeyPair {
        /// Make a key pair from 32 random bytes and an 8-byte random key id, both drawn
        /// by the caller (core has no randomness).
        pub fn from_seed(seed: [u8; 32], key_id: KeyId) -> Result<KeyPair, KeyError> {
            let pair = ed25519::KeyPair::try_from_seed(ed25519::Seed::new(seed))
                .map_err(|_| KeyError::ZeroSeed)?;
            Ok(KeyPair {
                public: PublicKey {
                    key_id,
                    key: *pair.pk,
                },
                secret: SecretKey {
                    key_id,
                    key: pair.sk,
                },
            })
        }
    }

    /// BLAKE2b-256 of the signature algorithm, key id and key: the secret key checksum.
    fn checksum(key_id: &KeyId, key: &[u8]) -> [u8; 32] {
        let mut hash = Blake2b256::new();
        hash.update(&ALGORITHM_ED25519);
        hash.update(key_id);
        hash.update(key);
        hash.finalize()
    }

    impl SecretKey {
        /// Parse an unencrypted secret key file, as `minisign -G -W` and `pkg keygen` write.
        /// Password-protected keys are refused with an error that says how to make one.
        pub fn parse_file(text: &str) -> Result<SecretKey, KeyError> {
            let [comment, line] = split_lines::<2>(text, false).ok_or(KeyError::Lines)?;
            let comment = comment
                .strip_prefix(UNTRUSTED_PREFIX)
                .ok_or(KeyError::UntrustedComment)?;
            check_comment(comment, MAX_UNTRUSTED_COMMENT).map_err(KeyError::Comment)?;
            let bytes = decode_exact::<SECRET_KEY_BYTES>(line).map_err(|error| match error {
                (Some(error), _) => KeyError::Base64(error),
                (None, found) => KeyError::Length {
                    expected: SECRET_KEY_BYTES,
                    found,
                },
            })?;
            let tag = |at: usize| [bytes[at], bytes[at + 1]];
            if tag(0) != ALGORITHM_ED25519 {
                return Err(KeyError::Algorithm(tag(0)));
            }
            match tag(2) {
                KDF_NONE => {}
                KDF_SCRYPT => return Err(KeyError::Encrypted),
                other => return Err(KeyError::Kdf(other)),
            }
            if tag(4) != CHECKSUM_BLAKE2B {
                return Err(KeyError::ChecksumAlgorithm(tag(4)));
            }
            // The salt and the scrypt limits (bytes 6..54) only matter for encrypted keys.
            let mut key_id = [0u8; 8];
            key_id.copy_from_slice(&bytes[54..62]);
            let key = &bytes[62..126];
            let stored = &bytes[126..158];
            // minisign 0.11 writes an all-zero checksum for unencrypted keys (and does not
            // check it); any other value must be the real checksum.
            if stored.iter().any(|&b| b != 0) && stored != checksum(&key_id, key) {
                return Err(KeyError::Checksum);
            }
            let mut seed = [0u8; 32];
            seed.copy_from_slice(&key[..32]);
            let pair = KeyPair::from_seed(seed, key_id)?;
            // Signing hashes the stored public half, so a damaged one would make every
            // signature invalid; recompute it from the seed and compare.
            if pair.public.key[..] != key[32..] {
                return Err(KeyError::KeyMismatch);
            }
            Ok(pair.secret)
        }

        /// The unencrypted secret key file. Unlike minisign, the checksum is filled in, so
        /// damage is detected; minisign reads such files too.
        pub fn to_file_string(&self) -> String {
            let mut bytes = Vec::with_capacity(SECRET_KEY_BYTES);
            bytes.extend_from_slice(&ALGORITHM_ED25519);
            bytes.extend_from_slice(&KDF_NONE);
            bytes.extend_from_slice(&CHECKSUM_BLAKE2B);
            // Salt, opslimit and memlimit: zero, as `minisign -G -W` writes them.
            bytes.extend_from_slice(&[0u8; 32 + 8 + 8]);
            bytes.extend_from_slice(&self.key_id);
            bytes.extend_from_slice(&self.key[..]);
            bytes.extend_from_slice(&checksum(&self.key_id, &self.key[..]));
            alloc::format!(
                "{UNTRUSTED_PREFIX}minisign unencrypted secret key\n{}\n",
                base64::encode(&bytes)
            )
        }

        /// The key id signatures made with this key carry.
        pub fn key_id(&self) -> KeyId {
            self.key_id
        }

        /// The matching public key.
        pub fn public_key(&self) -> PublicKey {
            PublicKey {
                key_id: self.key_id,
                key: *self.key.public_key(),
            }
        }
    }

    /// Sign `data` and return the signature file. `prehashed` chooses minisign's default
    /// `ED` algorithm; otherwise the legacy `Ed` one. Signatures are deterministic
    /// (RFC 8032), so the same key, data and comments give the same bytes as `minisign -S`.
    pub fn sign(
        secret: &SecretKey,
        data: &[u8],
        trusted_comment: &str,
        untrusted_comment: &str,
        prehashed: bool,
    ) -> Result<String, CommentError> {
        check_comment(untrusted_comment, MAX_UNTRUSTED_COMMENT)?;
        check_comment(trusted_comment, MAX_TRUSTED_COMMENT)?;
        let (algorithm, signature) = if prehashed {
            let digest = blake2b_512(data);
            (Algorithm::Prehashed, secret.key.sign(digest, None))
        } else {
            (Algorithm::Legacy, secret.key.sign(data, None))
        };
        let mut global = Vec::with_capacity(64 + trusted_comment.len());
        global.extend_from_slice(&signature[..]);
        global.extend_from_slice(trusted_comment.as_bytes());
        let global_signature = secret.key.sign(&global, None);
        let file = Signature {
            algorithm,
            key_id: secret.key_id,
            signature: *signature,
            untrusted_comment: untrusted_comment.into(),
            trusted_comment: trusted_comment.into(),
            global_signature: *global_signature,
        };
        Ok(file.to_file_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::{format, vec};

    // Made with the real tool (minisign 0.11):
    //   minisign -G -W -p kat.pub -s kat.key
    //   printf 'amber known-answer test\n' > msg
    //   minisign -S -s kat.key -m msg -x pre.minisig \
    //       -t "timestamp:1700000000<TAB>file:msg<TAB>hashed" -c "signature from minisign secret key"
    //   minisign -S -l -s kat.key -m msg -x legacy.minisig -t "timestamp:1700000000<TAB>file:msg"
    const MESSAGE: &[u8] = b"amber known-answer test\n";
    const PUBLIC_FILE: &str = "untrusted comment: minisign public key B547D128DAB6A5F1\n\
        RWTxpbbaKNFHtYiVjnreRIAmwQBEy7qmESnn4wkJOv4/rOVt1rLIz9yi\n";
    const PUBLIC_LINE: &str = "RWTxpbbaKNFHtYiVjnreRIAmwQBEy7qmESnn4wkJOv4/rOVt1rLIz9yi";
    /// The key id bytes as stored in the files; minisign shows them reversed.
    const KEY_ID: KeyId = [0xf1, 0xa5, 0xb6, 0xda, 0x28, 0xd1, 0x47, 0xb5];
    /// Note the misleading comment: minisign 0.11 writes "encrypted" even with `-W`.
    #[cfg(feature = "host")]
    const SECRET_FILE: &str = "untrusted comment: minisign encrypted secret key\n\
        RWQAAEIyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA8aW22ijRR7UDsXJd\
        n2WaAGrKCH1hGlML74doP1Dbj1B3LaTyYgtZi4iVjnreRIAmwQBEy7qmESnn4wkJOv4/rOVt1rLIz9yiAAAAAAAA\
        AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
    /// The first half of the secret key: the Ed25519 seed.
    #[cfg(feature = "host")]
    const SEED_HEX: &str = "03b1725d9f659a006aca087d611a530bef87683f50db8f50772da4f2620b598b";
    const PREHASHED_SIGNATURE: &str = "untrusted comment: signature from minisign secret key\n\
        RUTxpbbaKNFHtShk+rT7FxUwdkliXhdmp/YAICumbtbuMoUa9axu4Nd5hE+9t3Oze78ZvbNHonXpg+zLO/jy8oK0Xm+XNd9BVQE=\n\
        trusted comment: timestamp:1700000000\tfile:msg\thashed\n\
        pbXH27AVxahLHO4FvVY2+zK2knX/dsgDpLZP4vw6x6JyXBbyzGV5jw7p6jz4SXrVuMDcWbccYqk6mr3kjvP/BQ==\n";
    const LEGACY_SIGNATURE: &str = "untrusted comment: signature from minisign secret key\n\
        RWTxpbbaKNFHtaHONkckK17whvm5zRA+WdMINIDBYRsakqiP8jh0BRMb0yWJ3qQ4K55mRR6VebLT/uEN5hb8TMEALyscQsoFtQQ=\n\
        trusted comment: timestamp:1700000000\tfile:msg\n\
        r5Y59dKw5t12pNI4cMNXeP4reC/DytYRN4eKVEb8YAuadHgNaAjKvKjI+93vYQOd2HrvwRFgkdP8bptymvqeBg==\n";
    /// Another key made by `minisign -G -W`, trusted by nobody in these tests.
    const OTHER_PUBLIC_FILE: &str = "untrusted comment: minisign public key 5F8F7AB396D33256\n\
        RWRWMtOWs3qPX4k3ySLNZC7Uke/DgyyBLrCJLHf5A7PzzUvzb6ksJH0z\n";
    /// A secret key given a password with `minisign -C`.
    #[cfg(feature = "host")]
    const ENCRYPTED_SECRET_FILE: &str = "untrusted comment: minisign encrypted secret key\n\
        RWRTY0Iyud7zmK4ksbPrWzpOZ9aOtbSO0gST/VPa3IG41p6+oUQAAAACAAAAAAAAAEAAAAAAaIOEnglu8G4xTQAx\
        IhPvyRDVZUw18Oq2aEuEu8G8trYt6Jg0Dx1fUjl0X5DyW+NeuW5JN5xMm6hPhDkI1ZkPFlcHlqzNW3y42QOE8874\
        8LMu3M8nvJaWtOvx8weFjrVYJxB7JW5S7yA=\n";

    fn trusted() -> [PublicKey; 1] {
        [PublicKey::parse_file(PUBLIC_FILE).unwrap()]
    }

    /// Replace line `number` (1-based) of a signature file.
    fn with_line(file: &str, number: usize, line: &str) -> String {
        let mut lines: Vec<&str> = file.split('\n').collect();
        lines[number - 1] = line;
        lines.join("\n")
    }

    fn line(file: &str, number: usize) -> &str {
        file.split('\n').nth(number - 1).unwrap()
    }

    /// Decode a base64 line of a signature file, let `edit` change the bytes, re-encode.
    fn edit_bytes(file: &str, number: usize, edit: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut bytes = base64::decode(line(file, number)).unwrap();
        edit(&mut bytes);
        with_line(file, number, &base64::encode(&bytes))
    }

    #[test]
    fn public_key_file_from_minisign() {
        let key = PublicKey::parse_file(PUBLIC_FILE).unwrap();
        assert_eq!(key.key_id, KEY_ID);
        assert_eq!(key.key_id_hex(), "B547D128DAB6A5F1");
        assert_eq!(key.to_file_string(), PUBLIC_FILE);
        assert_eq!(key.to_base64_line(), PUBLIC_LINE);
    }

    #[test]
    fn public_key_line_as_minisign_dash_capital_p_takes_it() {
        assert_eq!(
            PublicKey::parse_base64_line(PUBLIC_LINE).unwrap(),
            trusted()[0]
        );
    }

    #[test]
    fn public_key_file_without_final_newline() {
        let text = PUBLIC_FILE.strip_suffix('\n').unwrap();
        assert_eq!(PublicKey::parse_file(text).unwrap(), trusted()[0]);
    }

    #[test]
    fn public_key_file_refusals() {
        let mut small_order = Vec::from(*b"Ed");
        small_order.extend_from_slice(&KEY_ID);
        small_order.extend_from_slice(&[0u8; 32]);
        let mut wrong_algorithm = base64::decode(PUBLIC_LINE).unwrap();
        wrong_algorithm[1] = b'D';
        let cases: Vec<(String, KeyError)> = vec![
            (String::new(), KeyError::Lines),
            (PUBLIC_LINE.to_string(), KeyError::Lines),
            (format!("{PUBLIC_FILE}\n"), KeyError::Lines),
            (format!("{PUBLIC_FILE}extra\n"), KeyError::Lines),
            (
                PUBLIC_FILE.replace('\n', "\r\n"),
                KeyError::Comment(CommentError::Character),
            ),
            (
                PUBLIC_FILE.replace("untrusted comment: ", "comment: "),
                KeyError::UntrustedComment,
            ),
            (
                format!("untrusted comment: {}\n{PUBLIC_LINE}\n", "x".repeat(1004)),
                KeyError::Comment(CommentError::TooLong { limit: 1003 }),
            ),
            (
                format!("untrusted comment: k\n{}\n", &PUBLIC_LINE[..55]),
                KeyError::Base64(Base64Error::Length),
            ),
            (
                format!("untrusted comment: k\n{}\n", &PUBLIC_LINE[..52]),
                KeyError::Length {
                    expected: 42,
                    found: 39,
                },
            ),
            (
                format!("untrusted comment: k\n {}\n", &PUBLIC_LINE[..55]),
                KeyError::Base64(Base64Error::Character(0)),
            ),
            (
                format!("untrusted comment: k\n{}\n", base64::encode(&small_order)),
                KeyError::InvalidKey,
            ),
            (
                format!(
                    "untrusted comment: k\n{}\n",
                    base64::encode(&wrong_algorithm)
                ),
                KeyError::Algorithm(*b"ED"),
            ),
        ];
        for (text, error) in cases {
            assert_eq!(PublicKey::parse_file(&text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn key_id_hex_has_no_leading_zeros_like_minisign() {
        // `minisign -R` on a secret key with this id writes "minisign public key AB".
        let key_id = [0xab, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(key_id_hex(&key_id), "AB");
        assert_eq!(key_id_hex(&[0; 8]), "0");
        assert_eq!(parse_key_id_hex("AB"), Ok(key_id));
        assert_eq!(parse_key_id_hex("00000000000000ab"), Ok(key_id));
        assert_eq!(parse_key_id_hex("B547D128DAB6A5F1"), Ok(KEY_ID));
    }

    #[test]
    fn key_id_hex_refusals() {
        for text in [
            "",
            "+AB",
            "-1",
            " AB",
            "AB ",
            "0x12",
            "G",
            "B547D128DAB6A5F10",
        ] {
            assert_eq!(parse_key_id_hex(text), Err(KeyError::KeyIdHex), "{text:?}");
        }
    }

    #[test]
    fn prehashed_signature_from_minisign_verifies() {
        let verified = verify(&trusted(), MESSAGE, PREHASHED_SIGNATURE).unwrap();
        assert_eq!(
            verified,
            Verified {
                key_id: KEY_ID,
                trusted_comment: "timestamp:1700000000\tfile:msg\thashed".into(),
                algorithm: Algorithm::Prehashed,
            }
        );
    }

    #[test]
    fn legacy_signature_from_minisign_verifies() {
        let verified = verify(&trusted(), MESSAGE, LEGACY_SIGNATURE).unwrap();
        assert_eq!(verified.key_id, KEY_ID);
        assert_eq!(verified.trusted_comment, "timestamp:1700000000\tfile:msg");
        assert_eq!(verified.algorithm, Algorithm::Legacy);
    }

    #[test]
    fn right_key_is_found_among_several() {
        let other = PublicKey::parse_file(OTHER_PUBLIC_FILE).unwrap();
        let keys = [other, trusted()[0]];
        verify(&keys, MESSAGE, PREHASHED_SIGNATURE).unwrap();
    }

    #[test]
    fn signature_file_round_trips_exactly() {
        for file in [PREHASHED_SIGNATURE, LEGACY_SIGNATURE] {
            assert_eq!(Signature::parse(file).unwrap().to_file_string(), file);
        }
    }

    #[test]
    fn streaming_equals_one_shot() {
        for file in [PREHASHED_SIGNATURE, LEGACY_SIGNATURE] {
            let mut verifier = Verifier::new(&trusted(), file).unwrap();
            assert_eq!(verifier.signature().key_id, KEY_ID);
            for chunk in MESSAGE.chunks(5) {
                verifier.update(chunk);
            }
            assert_eq!(
                verifier.finish(),
                verify(&trusted(), MESSAGE, file),
                "{file}"
            );
        }
    }

    #[test]
    fn tampered_data_is_refused() {
        let mut data = MESSAGE.to_vec();
        data[0] ^= 1;
        for file in [PREHASHED_SIGNATURE, LEGACY_SIGNATURE] {
            assert_eq!(verify(&trusted(), &data, file), Err(SignatureError::Data));
        }
        // Data cut short, or with a byte added, is as wrong as a flipped byte.
        let short = &MESSAGE[..MESSAGE.len() - 1];
        assert_eq!(
            verify(&trusted(), short, PREHASHED_SIGNATURE),
            Err(SignatureError::Data)
        );
        let long = [MESSAGE, b"x"].concat();
        assert_eq!(
            verify(&trusted(), &long, LEGACY_SIGNATURE),
            Err(SignatureError::Data)
        );
    }

    #[test]
    fn tampered_signature_is_refused() {
        for file in [PREHASHED_SIGNATURE, LEGACY_SIGNATURE] {
            // One bit in the R half, then one in the S half of the Ed25519 signature.
            for at in [10, 50] {
                let tampered = edit_bytes(file, 2, |bytes| bytes[at] ^= 1);
                assert_eq!(
                    verify(&trusted(), MESSAGE, &tampered),
                    Err(SignatureError::Data),
                    "byte {at}"
                );
            }
        }
    }

    #[test]
    fn tampered_trusted_comment_is_refused() {
        for file in [PREHASHED_SIGNATURE, LEGACY_SIGNATURE] {
            let comment = line(file, 3).replace("1700000000", "1800000000");
            let tampered = with_line(file, 3, &comment);
            assert_eq!(
                verify(&trusted(), MESSAGE, &tampered),
                Err(SignatureError::Global)
            );
        }
    }

    #[test]
    fn tampered_global_signature_is_refused() {
        let tampered = edit_bytes(PREHASHED_SIGNATURE, 4, |bytes| bytes[0] ^= 0x80);
        assert_eq!(
            verify(&trusted(), MESSAGE, &tampered),
            Err(SignatureError::Global)
        );
    }

    #[test]
    fn untrusted_comment_is_not_signed() {
        // As in minisign: the untrusted comment may change freely, which is why
        // nothing may rely on it.
        let edited = with_line(PREHASHED_SIGNATURE, 1, "untrusted comment: anything");
        verify(&trusted(), MESSAGE, &edited).unwrap();
    }

    #[test]
    fn tampered_key_id_is_refused_naming_it() {
        let tampered = edit_bytes(PREHASHED_SIGNATURE, 2, |bytes| bytes[2] ^= 1);
        let error = verify(&trusted(), MESSAGE, &tampered).unwrap_err();
        let mut key_id = KEY_ID;
        key_id[0] ^= 1;
        assert_eq!(error, SignatureError::UnknownKey(key_id));
        assert_eq!(
            error.to_string(),
            "signed by key B547D128DAB6A5F0, which is not a trusted key"
        );
    }

    #[test]
    fn signature_claiming_a_trusted_key_id_is_refused() {
        // A signature by another key, relabeled with the trusted key's id.
        let other = PublicKey::parse_file(OTHER_PUBLIC_FILE).unwrap();
        let relabeled = edit_bytes(PREHASHED_SIGNATURE, 2, |bytes| {
            bytes[2..10].copy_from_slice(&other.key_id)
        });
        assert_eq!(
            verify(&[other], MESSAGE, &relabeled),
            Err(SignatureError::Data)
        );
    }

    #[test]
    fn signature_by_unknown_key_is_refused() {
        let other = PublicKey::parse_file(OTHER_PUBLIC_FILE).unwrap();
        assert_eq!(
            verify(&[other], MESSAGE, PREHASHED_SIGNATURE),
            Err(SignatureError::UnknownKey(KEY_ID))
        );
        assert_eq!(
            verify(&[], MESSAGE, LEGACY_SIGNATURE),
            Err(SignatureError::UnknownKey(KEY_ID))
        );
    }

    #[test]
    fn truncated_signature_line_is_refused() {
        let full = line(PREHASHED_SIGNATURE, 2);
        // One character short: not base64 at all.
        let cut = with_line(PREHASHED_SIGNATURE, 2, &full[..full.len() - 1]);
        assert_eq!(
            verify(&trusted(), MESSAGE, &cut),
            Err(SignatureError::Base64 {
                line: 2,
                error: Base64Error::Length
            })
        );
        // One group short: valid base64, but too few bytes.
        let cut = with_line(PREHASHED_SIGNATURE, 2, &full[..full.len() - 4]);
        assert_eq!(
            verify(&trusted(), MESSAGE, &cut),
            Err(SignatureError::Length {
                line: 2,
                expected: 74,
                found: 72
            })
        );
    }

    #[test]
    fn truncated_global_signature_line_is_refused() {
        let full = line(PREHASHED_SIGNATURE, 4);
        let cut = with_line(PREHASHED_SIGNATURE, 4, &full[..full.len() - 2]);
        assert_eq!(
            verify(&trusted(), MESSAGE, &cut),
            Err(SignatureError::Base64 {
                line: 4,
                error: Base64Error::Length
            })
        );
        let long = edit_bytes(PREHASHED_SIGNATURE, 4, |bytes| bytes.push(0));
        assert_eq!(
            verify(&trusted(), MESSAGE, &long),
            Err(SignatureError::Length {
                line: 4,
                expected: 64,
                found: 65
            })
        );
    }

    #[test]
    fn truncated_file_is_refused() {
        // Every proper prefix of a valid file is refused.
        for end in 0..PREHASHED_SIGNATURE.len() {
            let cut = &PREHASHED_SIGNATURE[..end];
            assert!(verify(&trusted(), MESSAGE, cut).is_err(), "{cut:?}");
        }
    }

    #[test]
    fn garbage_base64_is_refused() {
        let full = line(PREHASHED_SIGNATURE, 2);
        let garbage = with_line(PREHASHED_SIGNATURE, 2, &full.replacen('R', "*", 1));
        assert_eq!(
            verify(&trusted(), MESSAGE, &garbage),
            Err(SignatureError::Base64 {
                line: 2,
                error: Base64Error::Character(0)
            })
        );
    }

    #[test]
    fn non_canonical_base64_is_refused() {
        // minisign itself accepts this spelling ('E' -> 'F' only sets an unused bit);
        // we do not, so each signature has one accepted text.
        let full = line(PREHASHED_SIGNATURE, 2);
        assert!(full.ends_with("QE="));
        let spelled = format!("{}QF=", &full[..full.len() - 3]);
        let file = with_line(PREHASHED_SIGNATURE, 2, &spelled);
        assert_eq!(
            verify(&trusted(), MESSAGE, &file),
            Err(SignatureError::Base64 {
                line: 2,
                error: Base64Error::NonCanonical
            })
        );
    }

    #[test]
    fn line_structure_is_exact() {
        let cases: Vec<(String, SignatureError)> = vec![
            (String::new(), SignatureError::Lines),
            (
                PREHASHED_SIGNATURE.strip_suffix('\n').unwrap().into(),
                SignatureError::Lines,
            ),
            (format!("{PREHASHED_SIGNATURE}\n"), SignatureError::Lines),
            (
                format!("{PREHASHED_SIGNATURE}more\n"),
                SignatureError::Lines,
            ),
            (format!("\n{PREHASHED_SIGNATURE}"), SignatureError::Lines),
            (
                PREHASHED_SIGNATURE.replace('\n', "\r\n"),
                SignatureError::Comment(CommentError::Character),
            ),
            (
                with_line(PREHASHED_SIGNATURE, 1, "untrusted comment:x"),
                SignatureError::UntrustedComment,
            ),
            (
                with_line(PREHASHED_SIGNATURE, 3, "trusted comment:x"),
                SignatureError::TrustedComment,
            ),
            (
                with_line(PREHASHED_SIGNATURE, 3, "untrusted comment: x"),
                SignatureError::TrustedComment,
            ),
            (
                with_line(PREHASHED_SIGNATURE, 3, "trusted comment: a\0b"),
                SignatureError::Comment(CommentError::Character),
            ),
        ];
        for (text, error) in cases {
            assert_eq!(verify(&trusted(), MESSAGE, &text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn comments_longer_than_minisign_reads_are_refused() {
        let long = format!("trusted comment: {}", "t".repeat(MAX_TRUSTED_COMMENT + 1));
        assert_eq!(
            Signature::parse(&with_line(PREHASHED_SIGNATURE, 3, &long)),
            Err(SignatureError::Comment(CommentError::TooLong {
                limit: 8173
            }))
        );
        let long = format!(
            "untrusted comment: {}",
            "u".repeat(MAX_UNTRUSTED_COMMENT + 1)
        );
        assert_eq!(
            Signature::parse(&with_line(PREHASHED_SIGNATURE, 1, &long)),
            Err(SignatureError::Comment(CommentError::TooLong {
                limit: 1003
            }))
        );
    }

    #[test]
    fn unknown_algorithm_is_refused() {
        let file = edit_bytes(PREHASHED_SIGNATURE, 2, |bytes| {
            bytes[..2].copy_from_slice(b"EC")
        });
        assert_eq!(
            verify(&trusted(), MESSAGE, &file),
            Err(SignatureError::Algorithm(*b"EC"))
        );
        assert_eq!(
            SignatureError::Algorithm([0, 0xff]).to_string(),
            "unsupported signature algorithm 0x00ff"
        );
    }

    #[test]
    fn prehashed_and_legacy_cannot_be_swapped() {
        let swapped = edit_bytes(PREHASHED_SIGNATURE, 2, |bytes| bytes[1] = b'd');
        assert_eq!(
            verify(&trusted(), MESSAGE, &swapped),
            Err(SignatureError::Data)
        );
    }

    #[cfg(feature = "host")]
    mod host {
        use super::*;
        use crate::hash::parse_hex32;

        fn secret() -> SecretKey {
            SecretKey::parse_file(SECRET_FILE).unwrap()
        }

        #[test]
        fn secret_key_from_minisign() {
            let secret = secret();
            assert_eq!(secret.key_id(), KEY_ID);
            assert_eq!(secret.public_key(), trusted()[0]);
            assert_eq!(format!("{secret:?}"), "SecretKey(B547D128DAB6A5F1)");
        }

        #[test]
        fn key_pair_from_seed_matches_minisign() {
            let pair = KeyPair::from_seed(parse_hex32(SEED_HEX).unwrap(), KEY_ID).unwrap();
            assert_eq!(pair.public, trusted()[0]);
            assert_eq!(pair.secret.public_key(), pair.public);
        }

        #[test]
        fn zero_seed_is_refused() {
            assert_eq!(
                KeyPair::from_seed([0; 32], KEY_ID).unwrap_err(),
                KeyError::ZeroSeed
            );
        }

        #[test]
        fn secret_key_file_round_trips_with_checksum() {
            let text = secret().to_file_string();
            assert!(text.starts_with("untrusted comment: minisign unencrypted secret key\n"));
            let bytes = base64::decode(text.lines().nth(1).unwrap()).unwrap();
            assert_eq!(&bytes[..6], b"Ed\0\0B2");
            assert_ne!(&bytes[126..], &[0u8; 32]);
            let again = SecretKey::parse_file(&text).unwrap();
            assert_eq!(again.public_key(), trusted()[0]);
            assert_eq!(again.to_file_string(), text);
        }

        #[test]
        fn signing_reproduces_minisign_byte_for_byte() {
            let untrusted = "signature from minisign secret key";
            let prehashed = sign(
                &secret(),
                MESSAGE,
                "timestamp:1700000000\tfile:msg\thashed",
                untrusted,
                true,
            );
            assert_eq!(prehashed.unwrap(), PREHASHED_SIGNATURE);
            let legacy = sign(
                &secret(),
                MESSAGE,
                "timestamp:1700000000\tfile:msg",
                untrusted,
                false,
            );
            assert_eq!(legacy.unwrap(), LEGACY_SIGNATURE);
        }

        #[test]
        fn signing_at_the_comment_limits_verifies() {
            let trusted_comment = "t".repeat(MAX_TRUSTED_COMMENT);
            let untrusted_comment = "u".repeat(MAX_UNTRUSTED_COMMENT);
            let file = sign(&secret(), b"", &trusted_comment, &untrusted_comment, true).unwrap();
            let verified = verify(&trusted(), b"", &file).unwrap();
            assert_eq!(verified.trusted_comment, trusted_comment);
        }

        #[test]
        fn signing_refuses_bad_comments() {
            let secret = secret();
            let cases = [
                ("a\nb", "u", CommentError::Character),
                ("a\rb", "u", CommentError::Character),
                ("a\0b", "u", CommentError::Character),
                ("t", "a\nb", CommentError::Character),
            ];
            for (trusted_comment, untrusted_comment, error) in cases {
                assert_eq!(
                    sign(&secret, b"", trusted_comment, untrusted_comment, true),
                    Err(error)
                );
            }
            let long = "t".repeat(MAX_TRUSTED_COMMENT + 1);
            assert_eq!(
                sign(&secret, b"", &long, "u", false),
                Err(CommentError::TooLong { limit: 8173 })
            );
        }

        #[test]
        fn encrypted_secret_key_is_refused_with_advice() {
            let error = SecretKey::parse_file(ENCRYPTED_SECRET_FILE).unwrap_err();
            assert_eq!(error, KeyError::Encrypted);
            assert_eq!(
                error.to_string(),
                "encrypted secret keys are not supported; \
                 create one with `minisign -G -W` or `pkg keygen`"
            );
        }

        /// Change the decoded bytes of a secret key file and re-encode it.
        fn edit_secret(edit: impl FnOnce(&mut Vec<u8>)) -> String {
            let mut bytes = base64::decode(SECRET_FILE.lines().nth(1).unwrap()).unwrap();
            edit(&mut bytes);
            format!("untrusted comment: k\n{}\n", base64::encode(&bytes))
        }

        #[test]
        fn damaged_secret_keys_are_refused() {
            let cases: Vec<(String, KeyError)> = vec![
                (edit_secret(|b| b[126] = 1), KeyError::Checksum),
                (edit_secret(|b| b[100] ^= 1), KeyError::KeyMismatch),
                (edit_secret(|b| b[62..94].fill(0)), KeyError::ZeroSeed),
                (
                    edit_secret(|b| b[2..4].copy_from_slice(b"Xy")),
                    KeyError::Kdf(*b"Xy"),
                ),
                (
                    edit_secret(|b| b[4..6].copy_from_slice(b"B3")),
                    KeyError::ChecksumAlgorithm(*b"B3"),
                ),
                (edit_secret(|b| b[1] = b'D'), KeyError::Algorithm(*b"ED")),
                (
                    edit_secret(|b| b.truncate(157)),
                    KeyError::Length {
                        expected: 158,
                        found: 157,
                    },
                ),
                (
                    PUBLIC_FILE.into(),
                    KeyError::Length {
                        expected: 158,
                        found: 42,
                    },
                ),
                ("untrusted comment: k\n".into(), KeyError::Lines),
            ];
            for (text, error) in cases {
                assert_eq!(SecretKey::parse_file(&text).unwrap_err(), error, "{text}");
            }
        }

        #[test]
        fn a_seed_change_with_a_fixed_checksum_is_caught() {
            // With the real checksum filled in, a damaged seed is caught by the checksum
            // before the public half is compared.
            let text = secret().to_file_string();
            let mut bytes = base64::decode(text.lines().nth(1).unwrap()).unwrap();
            bytes[70] ^= 4;
            let damaged = format!("untrusted comment: k\n{}\n", base64::encode(&bytes));
            assert_eq!(
                SecretKey::parse_file(&damaged).unwrap_err(),
                KeyError::Checksum
            );
        }

        #[test]
        fn signatures_of_a_new_key_verify_and_others_do_not() {
            let pair = KeyPair::from_seed([7; 32], [1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
            for prehashed in [true, false] {
                let file = sign(&pair.secret, b"data", "c", "u", prehashed).unwrap();
                assert_eq!(
                    verify(&[pair.public], b"data", &file)
                        .unwrap()
                        .trusted_comment,
                    "c"
                );
                assert_eq!(
                    verify(&trusted(), b"data", &file),
                    Err(SignatureError::UnknownKey([1, 2, 3, 4, 5, 6, 7, 8]))
                );
            }
        }
    }
}
