//! Model-file integrity: streaming sha256 and verification against a pinned hash.
//!
//! A model file is an input from outside; its hash is checked before it is stored or used.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

/// Bytes read per step: large enough to be fast, small enough to report progress often.
const CHUNK: usize = 1 << 20;

/// An incremental sha256 over bytes fed in order (used while extracting or copying).
#[derive(Default)]
pub struct Hasher {
    inner: Sha256,
    bytes: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.bytes += data.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Lower-case hex digest.
    pub fn finish(self) -> String {
        hex::encode(self.inner.finalize())
    }
}

/// sha256 of everything `reader` yields, calling `progress(bytes_done)` after each chunk.
pub fn sha256_reader(reader: &mut impl Read, mut progress: impl FnMut(u64)) -> io::Result<String> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        progress(hasher.bytes());
    }
    Ok(hasher.finish())
}

/// sha256 of a file (lower-case hex), streamed, with a progress callback in bytes done.
pub fn sha256_file(path: &Path, progress: impl FnMut(u64)) -> Result<String> {
    let io_err = |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    sha256_reader(&mut file, progress).map_err(io_err)
}

/// Checks that `actual` equals `expected` (hex, case-insensitive) for the file `path`.
pub fn check_hash(path: &Path, expected: &str, actual: &str) -> Result<()> {
    if actual.eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(ModelError::HashMismatch {
            path: path.display().to_string(),
            expected: expected.trim().to_ascii_lowercase(),
            actual: actual.to_ascii_lowercase(),
        })
    }
}

/// Hashes `path` and fails with [`ModelError::HashMismatch`] unless it is `expected`.
pub fn verify(path: &Path, expected: &str) -> Result<()> {
    verify_with_progress(path, expected, |_| {})
}

/// [`verify`] with a progress callback in bytes done.
pub fn verify_with_progress(path: &Path, expected: &str, progress: impl FnMut(u64)) -> Result<()> {
    let actual = sha256_file(path, progress)?;
    check_hash(path, expected, &actual)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(name: &str, data: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("hearth-integrity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        let mut f = File::create(&path).expect("create");
        f.write_all(data).expect("write");
        path
    }

    // sha256("abc") from FIPS 180-2.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_vector() {
        let path = temp_file("abc", b"abc");
        assert_eq!(sha256_file(&path, |_| {}).expect("hash"), ABC);
        verify(&path, &ABC.to_uppercase()).expect("case-insensitive match");
    }

    #[test]
    fn progress_reaches_file_size() {
        let data = vec![7u8; CHUNK * 2 + 5];
        let path = temp_file("big", &data);
        let mut seen = Vec::new();
        sha256_file(&path, |n| seen.push(n)).expect("hash");
        assert_eq!(
            seen,
            vec![CHUNK as u64, 2 * CHUNK as u64, data.len() as u64]
        );
    }

    #[test]
    fn mismatch_names_file_and_both_hashes() {
        let path = temp_file("wrong", b"not abc");
        let err = verify(&path, ABC).expect_err("must mismatch");
        let msg = err.to_string();
        assert!(matches!(err, ModelError::HashMismatch { .. }));
        assert!(msg.contains("wrong"), "{msg}");
        assert!(msg.contains(ABC), "{msg}");
        let actual = sha256_file(&path, |_| {}).expect("hash");
        assert!(msg.contains(&actual), "{msg}");
    }

    #[test]
    fn missing_file_is_io_error() {
        let err = verify(Path::new("/nonexistent/hearth/model.gguf"), ABC).expect_err("missing");
        assert!(matches!(err, ModelError::Io { .. }));
    }
}
