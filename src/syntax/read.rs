//! Reading script text with bounds: only a regular file (never a FIFO that blocks, nor
//! `/dev/zero`), and at most [`SCRIPT_LIMIT`] bytes, whatever the file does meanwhile.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::io_reason::io_reason;

/// The most bytes one script file (or standard input) may hold.
pub const SCRIPT_LIMIT: u64 = 16 << 20;

/// A script file's text, or why it cannot be read, in words.
pub fn script_file(path: &Path) -> Result<String, String> {
    // Non-blocking: opening a FIFO must not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io_reason(&e))?;
    let meta = file.metadata().map_err(|e| io_reason(&e))?;
    if meta.is_dir() {
        return Err("it is a directory".into());
    }
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    if meta.len() > SCRIPT_LIMIT {
        return Err(too_large(meta.len()));
    }
    bounded(file)
}

/// All of `reader` as text, refused past [`SCRIPT_LIMIT`] bytes.
pub fn bounded(reader: impl Read) -> Result<String, String> {
    let mut bytes = Vec::new();
    reader
        .take(SCRIPT_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_reason(&e))?;
    if bytes.len() as u64 > SCRIPT_LIMIT {
        return Err(format!("it holds more than {} MiB", SCRIPT_LIMIT >> 20));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "it is not UTF-8 text (byte {} is not)",
            e.utf8_error().valid_up_to()
        )
    })
}

fn too_large(size: u64) -> String {
    format!(
        "it is {:.1} MiB, more than the {} MiB a script may hold",
        size as f64 / f64::from(1 << 20),
        SCRIPT_LIMIT >> 20
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        assert_eq!(
            script_file(Path::new("/dev/zero")).unwrap_err(),
            "it is not a regular file"
        );
        assert_eq!(script_file(Path::new("/")).unwrap_err(), "it is a directory");
        let big = std::io::repeat(b'#').take(SCRIPT_LIMIT + 10);
        assert_eq!(bounded(big).unwrap_err(), "it holds more than 16 MiB");
        assert_eq!(bounded(&b"network n\n"[..]).unwrap(), "network n\n");
        assert!(bounded(&[0xff, 0xfe][..]).unwrap_err().contains("not UTF-8"));
        assert_eq!(
            too_large(100 << 20),
            "it is 100.0 MiB, more than the 16 MiB a script may hold"
        );
    }
}
