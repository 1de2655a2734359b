//! The output files: which ones the user asked for ([`Output`], parsed once from the command
//! line), each rendered by its renderer and written atomically: a temporary file beside the
//! target, then a rename, so a crash or a full disk never leaves half a file. Streams and devices (`/dev/null`, a FIFO,
//! `/dev/stdout`) are written in place instead: a rename would replace the device node with a
//! plain file, which as root breaks the whole machine.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::analysis::Analysis;
use crate::error::Error;
use crate::model::ThreadState;
use crate::render;
use crate::report::Report;

/// A file output of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// The JSON report, `gilscope.report/1`.
    Json(PathBuf),
    /// Chrome trace-event JSON.
    Trace(PathBuf),
    /// A flame graph (SVG), of one state's stacks or all.
    Flamegraph {
        path: PathBuf,
        only: Option<ThreadState>,
    },
    Speedscope(PathBuf),
    /// A gzipped pprof profile.
    Pprof(PathBuf),
    /// The self-contained HTML page.
    Html(PathBuf),
}

impl Output {
    pub fn path(&self) -> &Path {
        match self {
            Output::Json(path)
            | Output::Trace(path)
            | Output::Flamegraph { path, .. }
            | Output::Speedscope(path)
            | Output::Pprof(path)
            | Output::Html(path) => path,
        }
    }

    /// Renders this output of a run.
    pub fn render(
        &self,
        report: &Report,
        analysis: &Analysis,
        out: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        match self {
            Output::Json(_) => render::json(report, out),
            Output::Trace(_) => render::trace::render(analysis, out),
            Output::Flamegraph { only, .. } => render::flamegraph::render(analysis, *only, out),
            Output::Speedscope(_) => render::speedscope::render(analysis, out),
            Output::Pprof(_) => render::pprof::render(analysis, out),
            Output::Html(_) => {
                let mut svg = Vec::new();
                render::flamegraph::render(analysis, None, &mut svg)?;
                render::html::render(report, analysis, &String::from_utf8_lossy(&svg), out)
            }
        }
    }

    /// Renders into memory, then writes the file atomically.
    pub fn write(&self, report: &Report, analysis: &Analysis) -> Result<(), Error> {
        write_rendered(self.path(), |out| self.render(report, analysis, out))
    }
}

/// Renders into memory, then writes `path` atomically: a render that fails writes nothing.
pub fn write_rendered(
    path: &Path,
    render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
) -> Result<(), Error> {
    let mut bytes = Vec::new();
    render(&mut bytes).map_err(|source| Error::Output {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &bytes)
}

/// The directory `path` is written in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Fails when the directory `path` would be written in does not exist, before any work is
/// done for it.
pub fn check_dir(path: &Path) -> Result<(), Error> {
    if parent_dir(path).is_dir() {
        return Ok(());
    }
    Err(Error::Output {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "the directory does not exist"),
    })
}

/// Writes `bytes` to `path` atomically (in place when `path` is a stream or a device).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    // The OS error alone: the temporary file's name means nothing to the user.
    let to_error = |source: std::io::Error| Error::Output {
        path: path.to_path_buf(),
        source: source
            .raw_os_error()
            .map_or(source, std::io::Error::from_raw_os_error),
    };
    if is_stream(path) {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(to_error)?;
        return out.write_all(bytes).map_err(to_error);
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".gilscope-")
        .tempfile_in(parent_dir(path))
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

/// A device, FIFO or socket, or one of the standard aliases of gilscope's own streams
/// (`/dev/stdout`, `/dev/fd/N`, ...). Any other symlink is replaced, never followed: in a
/// shared directory it may point anywhere.
fn is_stream(path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return ["/dev/stdout", "/dev/stderr"]
            .iter()
            .any(|alias| path == Path::new(alias))
            || path.starts_with("/dev/fd")
            || path.starts_with("/proc/self/fd");
    }
    kind.is_char_device() || kind.is_block_device() || kind.is_fifo() || kind.is_socket()
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

    /// Renaming over `/dev/null` as root would leave a plain file there, and every later
    /// reader of `/dev/null` would read what was written to it.
    #[test]
    fn a_device_is_written_in_place_not_replaced() {
        write_atomic(Path::new("/dev/null"), b"report").unwrap();
        let meta = std::fs::metadata("/dev/null").unwrap();
        assert!(meta.file_type().is_char_device(), "/dev/null was replaced");
    }

    #[test]
    fn a_fifo_is_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("report.fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        write_atomic(&fifo, b"report").unwrap();
        assert_eq!(reader.join().unwrap(), b"report");
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
    }

    #[test]
    fn missing_directory_is_an_error_and_writes_nothing() {
        let err = write_atomic(Path::new("/nonexistent-dir/r.json"), b"x").unwrap_err();
        assert!(matches!(err, Error::Output { .. }));
    }
}
