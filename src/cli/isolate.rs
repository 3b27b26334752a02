//! `--isolated`: cnm moves itself into a fresh user + network + mount namespace, as
//! `unshare --user --map-root-user --net --mount` does, and gives itself private
//! namespace, state and `/etc/netns` directories on tmpfs. Any user can then apply a
//! whole topology; nothing outside changes — not even a file under `/etc` — and it is
//! all gone when the process (and its children) exit. Its loopback is up, as a host's
//! is, so host-mode sandboxes there reach 127.0.0.1.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{getgid, getuid};

use crate::backend::netlink::NetlinkBackend;
use crate::backend::Backend;
use crate::plan::Op;

pub struct Dirs {
    pub state_dir: PathBuf,
    pub netns_dir: PathBuf,
    pub etc_dir: PathBuf,
}

/// Where everything private lives: a tmpfs over /run, seen only in the new namespace.
const RUN: &str = "/run";

fn step<T>(what: &str, result: nix::Result<T>) -> Result<T, String> {
    result.map_err(|e| format!("{what}: {}", e.desc()))
}

/// Enters the namespaces. Must run while the process has a single thread.
pub fn enter() -> Result<Dirs, String> {
    let host_netns = std::fs::read_link("/proc/self/ns/net").map_err(|e| e.to_string())?;
    let (uid, gid) = (getuid(), getgid());
    step(
        "cannot create a user namespace (are unprivileged user namespaces disabled?)",
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS),
    )?;
    // Map the caller to root inside, as --map-root-user does.
    let write = |path: &str, text: String| std::fs::write(path, text).map_err(|e| format!("{path}: {e}"));
    match std::fs::write("/proc/self/setgroups", "deny") {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("/proc/self/setgroups: {e}"))
        }
        _ => {}
    }
    write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    if std::fs::read_link("/proc/self/ns/net").map_err(|e| e.to_string())? == host_netns {
        return Err("still in the host's network namespace; refusing to go on".into());
    }
    // Mounts made from here on are seen by this namespace only.
    step(
        "cannot make the mounts private",
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        ),
    )?;
    tmpfs(Path::new(RUN))?;
    let run = Path::new(RUN);
    let dirs = Dirs {
        state_dir: run.join("cnm/state"),
        netns_dir: run.join("netns"),
        etc_dir: private_etc_netns(run)?,
    };
    for dir in [&dirs.state_dir, &dirs.netns_dir, &dirs.etc_dir] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // The cnm commands of an isolated `shell` use the same private directories.
    std::env::set_var("CNM_STATE_DIR", &dirs.state_dir);
    std::env::set_var("CNM_NETNS_DIR", &dirs.netns_dir);
    std::env::set_var("CNM_ETC_DIR", &dirs.etc_dir);
    loopback_up(&dirs)?;
    Ok(dirs)
}

/// Brings up `lo` of the new network namespace, which the kernel makes down.
fn loopback_up(dirs: &Dirs) -> Result<(), String> {
    let mut kernel = NetlinkBackend::new(dirs.netns_dir.clone(), dirs.etc_dir.clone())
        .map_err(|e| format!("cannot reach the kernel: {e}"))?;
    let lo = Op::LinkUp {
        netns: None,
        link: "lo".into(),
    };
    kernel.apply(&lo).map_err(|e| format!("cannot bring lo up: {e}"))
}

fn tmpfs(at: &Path) -> Result<(), String> {
    step(
        &format!("cannot mount a tmpfs on {}", at.display()),
        mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
        ),
    )
}

/// A private `/etc/netns`, so that `ip netns exec` inside sees the sandboxes' files:
/// a tmpfs over it if it exists; else an overlay over `/etc` in which to make it, with
/// its upper layer on the private tmpfs; else a directory on that tmpfs.
fn private_etc_netns(run: &Path) -> Result<PathBuf, String> {
    let etc_netns = Path::new("/etc/netns");
    if etc_netns.is_dir() {
        tmpfs(etc_netns)?;
        return Ok(etc_netns.to_path_buf());
    }
    let upper = run.join("cnm/etc/upper");
    let work = run.join("cnm/etc/work");
    for dir in [&upper, &work] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let options = format!(
        "lowerdir=/etc,upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    let overlay = mount(
        Some("overlay"),
        "/etc",
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    );
    if overlay.is_ok() && std::fs::create_dir(etc_netns).is_ok() {
        return Ok(etc_netns.to_path_buf());
    }
    Ok(run.join("cnm/etc-netns"))
}
