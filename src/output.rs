//! Writing output files atomically: a temporary file beside the target, then a rename, so a
//! crash or a full disk never leaves half a file.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::Error;

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    // The OS error alone: the temporary file's name means nothing to the user.
    let to_error = |source: std::io::Error| Error::Output {
        path: path.to_path_buf(),
        source: source
            .raw_os_error()
            .map_or(source, std::io::Error::from_raw_os_error),
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
    // The temporary file is private (0600); the output gets the mode a plain create would.
    let mode = 0o666 & !current_umask();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
        .map_err(to_error)?;
    tmp.as_file().sync_all().map_err(to_error)?;
    tmp.persist(path).map_err(|e| to_error(e.error))?;
    Ok(())
}

/// The process's umask (read by setting and restoring it).
fn current_umask() -> u32 {
    // SAFETY: umask has no memory-safety preconditions; it is restored at once.
    unsafe {
        let mask = libc::umask(0o022);
        libc::umask(mask);
        mask as u32
    }
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
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !current_umask());
    }

    #[test]
    fn a_symlink_at_the_destination_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.path().join("report.json");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        write_atomic(&link, b"report").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&link).unwrap(), b"report");
    }

    #[test]
    fn missing_directory_is_an_error_and_writes_nothing() {
        let err = write_atomic(Path::new("/nonexistent-dir/r.json"), b"x").unwrap_err();
        assert!(matches!(err, Error::Output { .. }));
    }
}
