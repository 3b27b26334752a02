//! The files `ip netns exec NAME` shows a sandbox as its own `/etc`: `ETC_DIR/NAME/FILE`.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `dir/file` atomically: a temporary file beside it, flushed to disk, then
/// renamed over it. Creates `dir`.
pub fn write(dir: &Path, file: &str, content: &str) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(".{file}.cnm-{}", std::process::id()));
    let written = (|| {
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&temporary)?;
        out.write_all(content.as_bytes())?;
        out.sync_all()?;
        fs::rename(&temporary, dir.join(file))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Removes `dir/file` (missing is success), then `dir` if that left it empty.
pub fn remove(dir: &Path, file: &str) -> std::io::Result<()> {
    match fs::remove_file(dir.join(file)) {
        Err(error) if error.kind() != ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    match fs::remove_dir(dir) {
        // Still holds the other file, or is already gone.
        Err(error) if matches!(error.kind(), ErrorKind::NotFound | ErrorKind::DirectoryNotEmpty) => Ok(()),
        result => result,
    }
}
