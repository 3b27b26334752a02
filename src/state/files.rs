//! Files in the state directory, opened so that nothing planted there can redirect what
//! cnm writes or hang what it reads: no symbolic link is followed, a file cnm reads must
//! be a regular file (of a bounded size, for the state), and the directory itself must be
//! a real directory that belongs to the user running cnm.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::io_reason::io_reason;

/// The largest `state.json` cnm reads: far more than any state it writes (a thousand
/// sandboxes take about 2 MiB).
pub const MAX_STATE_BYTES: u64 = 64 << 20;

/// Whether `dir` may serve as the state directory: `Err` says why not; `Ok(Some)` is a
/// warning. An absent directory is fine (it is made when first needed). `writing`: the
/// caller will write there, so the directory must be this user's.
pub fn check_dir(dir: &Path, writing: bool) -> Result<Option<String>, String> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(describe(&e)),
    };
    if meta.file_type().is_symlink() {
        return Err("it is a symbolic link, which cnm does not follow to its state \
                    directory (give the directory's own path)"
            .into());
    }
    if !meta.is_dir() {
        return Err("it is not a directory".into());
    }
    let me = nix::unistd::geteuid().as_raw();
    if writing && meta.uid() != me {
        return Err(format!(
            "it belongs to user {}, not to the user running cnm ({me}); cnm keeps its state \
             only in a directory of its own",
            meta.uid()
        ));
    }
    if meta.mode() & 0o002 != 0 {
        return Ok(Some(format!(
            "warning: the state directory {} is writable by every user: anyone could plant \
             files in it (chmod o-w {})",
            dir.display(),
            dir.display()
        )));
    }
    Ok(None)
}

/// An I/O error on a file of the state directory, in words.
pub fn describe(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::ELOOP) => "it is a symbolic link, which cnm does not follow in its state directory".into(),
        Some(libc::ENOSPC) => "no space left on the device".into(),
        Some(libc::EDQUOT) => "the disk quota is exhausted".into(),
        _ => io_reason(error),
    }
}

fn not_regular(kind: std::fs::FileType) -> std::io::Error {
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    };
    std::io::Error::other(format!("it is {what}, not a regular file"))
}

/// Opens `path` to read it, if it is there: never through a symbolic link, never
/// blocking (a FIFO is refused, not waited on), and only a regular file.
pub fn open_read(path: &Path) -> std::io::Result<Option<File>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(not_regular(kind));
    }
    Ok(Some(file))
}

/// The bytes of the regular file `path`, if it is there and at most `max` bytes long.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let Some(file) = open_read(path)? else {
        return Ok(None);
    };
    let size = file.metadata()?.len();
    if size > max {
        return Err(std::io::Error::other(format!(
            "it is {size} bytes long, more than the {} MiB cnm reads",
            max >> 20
        )));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Creates `path`, mode 0600, failing if anything (a file, a link) is there already.
pub fn create_new(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Opens (creating it, mode 0600) a file cnm appends to or rewrites in place, never
/// through a symbolic link, and only a regular file.
pub fn open_writable(path: &Path, append: bool) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(!append)
        .append(append)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(not_regular(kind));
    }
    Ok(file)
}

/// A name for a copy of something set aside now: `PREFIX-YYYYMMDDTHHMMSSZ`, with a
/// number added if that is taken.
pub fn aside(dir: &Path, prefix: &str) -> std::path::PathBuf {
    let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(['-', ':'], "");
    let mut path = dir.join(format!("{prefix}-{time}"));
    let mut n = 2;
    while std::fs::symlink_metadata(&path).is_ok() {
        path = dir.join(format!("{prefix}-{time}-{n}"));
        n += 1;
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_fifos_and_huge_files_are_refused_with_what_they_are() {
        let dir = std::env::temp_dir().join(format!("cnm-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("target");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("link")).unwrap();
        let err = open_writable(&dir.join("link"), true).unwrap_err();
        assert!(describe(&err).contains("symbolic link"), "{err}");
        assert!(create_new(&dir.join("link")).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");

        nix::unistd::mkfifo(&dir.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = read_bounded(&dir.join("fifo"), 10).unwrap_err();
        assert_eq!(describe(&err), "it is a FIFO, not a regular file");

        std::fs::write(dir.join("big"), vec![b'x'; 11]).unwrap();
        let err = read_bounded(&dir.join("big"), 10).unwrap_err();
        assert!(describe(&err).starts_with("it is 11 bytes long"), "{err}");
        assert_eq!(read_bounded(&dir.join("none"), 10).unwrap(), None);

        let err = check_dir(&dir.join("link"), false).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
        std::os::unix::fs::symlink(&dir, dir.join("dirlink")).unwrap();
        assert!(check_dir(&dir.join("dirlink"), false).is_err());
        assert_eq!(check_dir(&dir, true), Ok(None));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
