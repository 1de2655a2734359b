//! The source text of the lines the target runs, read from its own files while it runs (the
//! recording keeps them, so a replay shows them too). Files are read through the target's
//! root, so a program in a container shows its own source.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::procfs;

/// Files larger than this are not read: not Python source a person wrote.
const MAX_FILE_BYTES: u64 = 4 << 20;
/// The files kept in memory, in bytes; past it the cache starts over.
const CACHE_BYTES: usize = 32 << 20;
/// A source line is cut to this many characters.
pub const MAX_LINE_CHARS: usize = 160;

/// The lines of the target's files, read once per file.
#[derive(Debug, Default)]
pub struct SourceFiles {
    /// Each file's lines, or `None` when it could not be read.
    files: HashMap<String, Option<Vec<String>>>,
    bytes: usize,
}

impl SourceFiles {
    /// Line `line` (1-based) of `file` as process `pid` sees it, trimmed; `None` for a file
    /// that is not on disk (`<frozen ...>`, `<string>`), unreadable, or too short.
    pub fn line(&mut self, pid: u32, file: &str, line: i32) -> Option<String> {
        let index = usize::try_from(line).ok()?.checked_sub(1)?;
        if file.is_empty() || file.starts_with('<') {
            return None;
        }
        if !self.files.contains_key(file) {
            let lines = read_lines(&target_path(pid, Path::new(file)));
            let size: usize = lines.iter().flatten().map(String::len).sum();
            if self.bytes + size > CACHE_BYTES {
                self.files.clear();
                self.bytes = 0;
            }
            self.bytes += size;
            self.files.insert(file.to_string(), lines);
        }
        let text = self.files.get(file)?.as_ref()?.get(index)?.trim();
        (!text.is_empty()).then(|| shorten(text))
    }
}

/// Where gilscope finds the target's `file`: an absolute path under its root, a relative one
/// (a script started by a relative name before 3.9) under its working directory.
fn target_path(pid: u32, file: &Path) -> PathBuf {
    if file.is_absolute() {
        procfs::in_target_root(pid, file)
    } else {
        Path::new(&format!("/proc/{pid}/cwd")).join(file)
    }
}

fn read_lines(path: &Path) -> Option<Vec<String>> {
    if std::fs::metadata(path).ok()?.len() > MAX_FILE_BYTES {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    Some(
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_LINE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_through_the_targets_root_and_trimmed() {
        let dir = std::env::temp_dir().join(format!("gilscope-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("work.py");
        let long = "x".repeat(MAX_LINE_CHARS + 10);
        std::fs::write(
            &file,
            format!("import hashlib\n\n    h = hashlib.sha256(b)  \n{long}\n"),
        )
        .unwrap();
        let name = file.to_str().unwrap();
        let mut files = SourceFiles::default();
        let pid = std::process::id();
        assert_eq!(files.line(pid, name, 1).as_deref(), Some("import hashlib"));
        assert_eq!(files.line(pid, name, 2), None, "a blank line");
        assert_eq!(
            files.line(pid, name, 3).as_deref(),
            Some("h = hashlib.sha256(b)")
        );
        let cut = files.line(pid, name, 4).unwrap();
        assert_eq!(cut.chars().count(), MAX_LINE_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(files.line(pid, name, 5), None, "past the end");
        assert_eq!(files.line(pid, name, 0), None);
        assert_eq!(files.line(pid, name, -3), None);
        assert_eq!(files.line(pid, "<frozen importlib._bootstrap>", 1), None);
        assert_eq!(files.line(pid, "/no/such/file.py", 1), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
