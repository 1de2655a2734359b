//! Writing output files atomically: a temporary file beside the target, then a rename, so a
//! crash or a full disk never leaves half a file.

use std::io::Write;
use std::path::Path;

use crate::error::Error;

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let to_error = |source| Error::Output {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".gilscope-")
        .tempfile_in(dir)
        .map_err(to_error)?;
    tmp.write_all(bytes).map_err(to_error)?;
    tmp.as_file().sync_all().map_err(to_error)?;
    tmp.persist(path).map_err(|e| to_error(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_directory_is_an_error_and_writes_nothing() {
        let err = write_atomic(Path::new("/nonexistent-dir/r.json"), b"x").unwrap_err();
        assert!(matches!(err, Error::Output { .. }));
    }
}
