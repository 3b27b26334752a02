//! The files `ip netns exec NAME` shows a sandbox as its own `/etc`: `ETC_DIR/NAME/FILE`.
//!
//! Everything below `ETC_DIR` is reached through directory descriptors, never by
//! following a symbolic link: a sandbox's directory that is a link is refused (it would
//! put the file, or remove one, wherever the link points), and a file that is a link is
//! replaced or removed itself, never its target.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{mkdirat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::plan::FileText;

fn io(errno: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno as i32)
}

/// `ETC_DIR` itself, open (it may be a link, as `/etc/netns` is the administrator's).
fn open_root(root: &Path) -> std::io::Result<OwnedFd> {
    nix::fcntl::open(
        root,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)
}

/// `ETC_DIR`, open; made first if missing (with its parents), and then marked as the top
/// of a hierarchy of unrelated directories (see [`mark_top`]).
fn open_or_make_root(root: &Path) -> std::io::Result<OwnedFd> {
    match open_root(root) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(root)?;
            let made = open_root(root)?;
            mark_top(&made);
            Ok(made)
        }
        opened => opened,
    }
}

/// `FS_TOPDIR_FL`, `chattr +T`: the directories in this one are unrelated (as those in
/// `/home` are), so ext2/3/4 spread them over the disk's block groups instead of keeping
/// them beside it.
const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;

/// Marks the directory cnm made as the top of unrelated ones, where the filesystem knows
/// the mark (elsewhere this does nothing). Without it, every sandbox's directory and hosts
/// file go to the same block group, and ext4 without a journal skips each inode deleted
/// there in the last minute, one by one, for every inode it hands out: an apply of 500
/// sandboxes after a destroy spent 0.43 and 0.50 s of CPU on that in two runs (perf),
/// beside the kernel's work on the namespaces and links.
fn mark_top(dir: &OwnedFd) {
    if let Some(flags) = inode_flags(dir) {
        let marked = flags | FS_TOPDIR_FL;
        // SAFETY: the request reads one int at the pointer, which is valid.
        unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_SETFLAGS, &marked) };
    }
}

/// The inode flags of `dir` (`lsattr -d`); `None` on a filesystem without them.
fn inode_flags(dir: &OwnedFd) -> Option<libc::c_int> {
    let mut flags: libc::c_int = 0;
    // SAFETY: the request writes one int at the pointer, which is valid.
    let got = unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    (got == 0).then_some(flags)
}

/// The sandbox's directory `name` in `root`, open without following a link; `None` if
/// it is missing. A link there is refused with ELOOP.
fn open_dir(root: &OwnedFd, name: &str) -> std::io::Result<Option<OwnedFd>> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match openat(root.as_fd(), name, flags, Mode::empty()) {
        Ok(dir) => Ok(Some(dir)),
        Err(Errno::ENOENT) => Ok(None),
        // O_NOFOLLOW on a link: ELOOP; O_DIRECTORY on a link to a file: ENOTDIR.
        Err(Errno::ELOOP | Errno::ENOTDIR) if is_link(root, name) => Err(io(Errno::ELOOP)),
        Err(errno) => Err(io(errno)),
    }
}

fn is_link(dir: &OwnedFd, name: &str) -> bool {
    nix::sys::stat::fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
}

/// Says what a refusal of `dir` means when it is a link.
fn worded(error: std::io::Error, dir: &Path) -> std::io::Error {
    if error.raw_os_error() == Some(libc::ELOOP) {
        return std::io::Error::new(
            error.kind(),
            format!("{} is a symbolic link; cnm does not follow it", dir.display()),
        );
    }
    error
}

/// Writes `dir/file` atomically: a temporary file beside it, renamed over it. Creates
/// `dir` (in its parent, which must exist or be creatable). Not flushed to disk here:
/// [`sync`] flushes every file of a transaction at once. The temporary files of `file`
/// that a killed cnm left are removed.
pub fn write(dir: &Path, file: &str, content: &FileText) -> std::io::Result<()> {
    let (root, name) = split(dir)?;
    let root = open_or_make_root(root)?;
    let inside = match open_dir(&root, name).map_err(|e| worded(e, dir))? {
        Some(inside) => {
            // A directory that was there may hold what a killed cnm left (see `remove`).
            for stale in temporaries(&inside, file)? {
                let _ = unlinkat(inside.as_fd(), stale.as_str(), UnlinkatFlags::NoRemoveDir);
            }
            inside
        }
        None => {
            match mkdirat(root.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(errno) => return Err(io(errno)),
            }
            open_dir(&root, name)
                .map_err(|e| worded(e, dir))?
                .ok_or_else(|| io(Errno::ENOENT))?
        }
    };
    let temporary = temporary(file);
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mode = Mode::from_bits_truncate(0o644);
    let out = match openat(inside.as_fd(), temporary.as_str(), flags, mode) {
        // Left by a killed process of the same id in a directory made meanwhile.
        Err(Errno::EEXIST) => {
            let _ = unlinkat(inside.as_fd(), temporary.as_str(), UnlinkatFlags::NoRemoveDir);
            openat(inside.as_fd(), temporary.as_str(), flags, mode)
        }
        opened => opened,
    }
    .map_err(io)?;
    let written = (|| {
        // The text's pieces, gathered into writes of up to 64 KiB.
        let mut out =
            std::io::BufWriter::with_capacity(content.len().min(64 << 10), std::fs::File::from(out));
        for chunk in content.chunks() {
            out.write_all(chunk.as_bytes())?;
        }
        out.flush()?;
        renameat(inside.as_fd(), temporary.as_str(), inside.as_fd(), file).map_err(io)
    })();
    if written.is_err() {
        let _ = unlinkat(inside.as_fd(), temporary.as_str(), UnlinkatFlags::NoRemoveDir);
    }
    written
}

/// Removes `dir/file` (missing is success; a link is removed, not its target), and the
/// temporary files a killed cnm left of it, then `dir` if that left it empty.
pub fn remove(dir: &Path, file: &str) -> std::io::Result<()> {
    let (root, name) = split(dir)?;
    let root = match open_root(root) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        opened => opened?,
    };
    let Some(inside) = open_dir(&root, name).map_err(|e| worded(e, dir))? else {
        return Ok(());
    };
    let unlink = |name: &str| match unlinkat(inside.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(io(errno)),
    };
    let remove_dir = || unlinkat(root.as_fd(), name, UnlinkatFlags::RemoveDir);
    unlink(file)?;
    // Left empty, the directory goes, and there were no temporary files to look for (a
    // destroy of 500 sandboxes: 8 system calls fewer per sandbox).
    match remove_dir() {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::ENOTEMPTY | Errno::EEXIST) => {}
        Err(errno) => return Err(io(errno)),
    }
    let stale = temporaries(&inside, file)?;
    if stale.is_empty() {
        // It holds the other file.
        return Ok(());
    }
    for name in &stale {
        unlink(name)?;
    }
    match remove_dir() {
        // Still holds the other file, or is already gone.
        Ok(()) | Err(Errno::ENOENT | Errno::ENOTEMPTY | Errno::EEXIST) => Ok(()),
        Err(errno) => Err(io(errno)),
    }
}

/// The name of the temporary file [`write`] writes `file` to before renaming it.
fn temporary(file: &str) -> String {
    format!(".{file}.cnm-{}", std::process::id())
}

/// The temporary files of `file` in the directory `inside` (see [`temporary`]), of
/// any process: one killed between making and renaming it left it there.
fn temporaries(inside: &OwnedFd, file: &str) -> std::io::Result<Vec<String>> {
    let prefix = format!(".{file}.cnm-");
    let mut dir = Dir::openat(
        inside.as_fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)?;
    let mut found = Vec::new();
    for entry in dir.iter() {
        let entry = entry.map_err(io)?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        let pid = name.strip_prefix(&prefix);
        if pid.is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())) {
            found.push(name.to_string());
        }
    }
    Ok(found)
}

/// Flushes the filesystem that holds `root` (and the files cnm wrote under it) to disk:
/// one `syncfs` for a transaction's files rather than one `fsync` per file (200
/// sandboxes on ext4 here: 4.7 ms against 48 ms). Until then a crash may lose what was
/// written, but the transaction is not committed yet, and recovery undoes it.
pub fn sync(root: &Path) -> std::io::Result<()> {
    let root = open_root(root)?;
    nix::unistd::syncfs(&root).map_err(io)
}

/// `dir` as its parent and its last name (a sandbox's name: one component).
fn split(dir: &Path) -> std::io::Result<(&Path, &str)> {
    match (dir.parent(), dir.file_name().and_then(|n| n.to_str())) {
        (Some(root), Some(name)) => Ok((root, name)),
        _ => Err(io(Errno::EINVAL)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn flags(path: &Path) -> Option<libc::c_int> {
        inode_flags(&open_root(path).unwrap())
    }

    #[test]
    fn an_etc_dir_cnm_makes_is_marked_as_a_top_directory_and_one_it_finds_is_not() {
        let base = std::env::temp_dir().join(format!("cnm-etc-top-{}", std::process::id()));
        let (made, found) = (base.join("made"), base.join("found"));
        std::fs::create_dir_all(&found).unwrap();
        let text = FileText::from("127.0.0.1\tlocalhost\n");
        write(&made.join("s1"), "hosts", &text).unwrap();
        write(&found.join("s1"), "hosts", &text).unwrap();
        match (flags(&made), flags(&found)) {
            (Some(made), Some(found)) => {
                assert_ne!(made & FS_TOPDIR_FL, 0, "flags {made:#x}");
                assert_eq!(found & FS_TOPDIR_FL, 0, "flags {found:#x}");
            }
            _ => println!("not checked: {} has no inode flags", base.display()),
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_temporary_file_left_by_a_killed_cnm_goes_with_its_file() {
        let root = std::env::temp_dir().join(format!("cnm-etc-test-{}", std::process::id()));
        let dir = root.join("s1");
        let text = FileText::from("127.0.0.1\tlocalhost\n");
        write(&dir, "hosts", &text).unwrap();
        write(&dir, "resolv.conf", &text).unwrap();
        // What a cnm killed while writing (or writing ahead) left behind.
        for left in [".hosts.cnm-4242", ".hosts.cnm-77", ".resolv.conf.cnm-4242"] {
            std::fs::write(dir.join(left), "half a fi").unwrap();
        }
        std::fs::write(dir.join(".hosts.cnm-notes"), "not cnm's").unwrap();

        write(&dir, "hosts", &text).unwrap();
        assert_eq!(
            listing(&dir),
            [
                ".hosts.cnm-notes",
                ".resolv.conf.cnm-4242",
                "hosts",
                "resolv.conf"
            ]
        );
        std::fs::write(dir.join(".hosts.cnm-4242"), "half a fi").unwrap();
        remove(&dir, "resolv.conf").unwrap();
        assert_eq!(listing(&dir), [".hosts.cnm-4242", ".hosts.cnm-notes", "hosts"]);
        std::fs::remove_file(dir.join(".hosts.cnm-notes")).unwrap();
        remove(&dir, "hosts").unwrap();
        assert!(!dir.exists(), "{:?}", listing(&dir));
        std::fs::remove_dir(&root).unwrap();
    }
}
