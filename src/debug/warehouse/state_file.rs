//! `state.json`: read at the start of a debug sync and replaced atomically after each commit.

use std::{
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
};

/// Reads a state file; `None` when it does not exist or is blank (a fresh start).
///
/// # Errors
/// When the file exists but cannot be read.
pub fn read_state(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Replaces the state file atomically: the new text goes to a temporary file
/// in the same folder (same file system, so the rename is atomic), is flushed
/// to disk, then renamed over the old one. A crash leaves the old or the new
/// state, never a mix.
///
/// # Errors
/// When the temporary file cannot be written or renamed.
pub fn write_state_atomically(path: &Path, state_json: &str) -> io::Result<()> {
    let temporary = temporary_path(path);
    let written = (|| {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(state_json.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        // Best effort: do not leave a half-written temporary file behind.
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// `dir/.state.json.tmp` for `dir/state.json`.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state.json".to_owned());
    path.with_file_name(format!(".{name}.tmp"))
}
