//! `cnm exec` and `cnm shell`: run a program inside a sandbox, or inside cnm's
//! (isolated) environment.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use super::{committed_state, Failure, Settings};
use crate::io_reason::io_reason;
use crate::model::Mode;

/// Runs `command` in the sandbox's network namespace with its `/etc/netns` files bound
/// over `/etc`, as `ip netns exec` does; the command replaces cnm, so its exit status is
/// cnm's.
pub fn exec(settings: &Settings, sandbox: &str, command: &[String]) -> Result<ExitCode, Failure> {
    let model = committed_state(settings)?;
    let Some(found) = model.sandboxes.get(sandbox) else {
        let known: Vec<&str> = model.sandboxes.keys().map(String::as_str).collect();
        let hint = crate::check::suggest_name(sandbox, known)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        return Err(Failure::Message(format!("no sandbox named `{sandbox}`{hint}")));
    };
    if !found.is_running() {
        return Err(Failure::Message(format!(
            "sandbox `{sandbox}` is stopped; `start {sandbox}` first"
        )));
    }
    // A container-mode sandbox lives in the namespace of the one it shares.
    let owner = match &found.mode {
        Mode::Container(other) => other.as_str(),
        _ => sandbox,
    };
    if found.mode != Mode::Host {
        let path = settings.netns_dir.join(owner);
        let file = std::fs::File::open(&path).map_err(|e| {
            Failure::Message(format!(
                "sandbox `{owner}` is dead: cannot open its namespace {}: {}",
                path.display(),
                io_reason(&e)
            ))
        })?;
        setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| Failure::Message(format!("cannot enter sandbox `{owner}`: {}", e.desc())))?;
        bind_etc_files(&settings.etc_dir.join(owner))?;
    }
    let error = std::process::Command::new(&command[0]).args(&command[1..]).exec();
    Err(Failure::Message(format!(
        "cannot run `{}`: {}",
        command[0],
        io_reason(&error)
    )))
}

/// In a private mount namespace, binds each file of `dir` over the file of the same name
/// in `/etc`.
fn bind_etc_files(dir: &Path) -> Result<(), Failure> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let fail = |what: &str, e: nix::Error| Failure::Message(format!("{what}: {}", e.desc()));
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| fail("cannot make a private mount namespace", e))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| fail("cannot make the mounts private", e))?;
    for entry in entries.flatten() {
        let target = Path::new("/etc").join(entry.file_name());
        if target.exists() {
            mount(
                Some(&entry.path()),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| fail(&format!("cannot bind {}", target.display()), e))?;
        }
    }
    Ok(())
}

/// Runs a shell or a command where cnm runs (with --isolated: inside the throwaway
/// namespaces, with CNM_STATE_DIR, CNM_NETNS_DIR and CNM_ETC_DIR pointing at them).
pub fn shell(settings: &Settings, command: &[String]) -> Result<ExitCode, Failure> {
    if !settings.isolated {
        return Err(Failure::Message(
            "`cnm shell` is for --isolated sessions: `cnm --isolated shell [-- COMMAND…]`".into(),
        ));
    }
    let command: Vec<String> = if command.is_empty() {
        vec![std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into())]
    } else {
        command.to_vec()
    };
    // `cnm` in the session is this cnm.
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(dir) = std::env::current_exe().ok().as_deref().and_then(Path::parent) {
        let mut dirs = vec![dir.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        path = std::env::join_paths(dirs).unwrap_or(path);
    }
    // A child rather than exec: the namespaces live as long as this process does.
    let status = std::process::Command::new(&command[0])
        .args(&command[1..])
        .env("PATH", path)
        .status()
        .map_err(|e| Failure::Message(format!("cannot run `{}`: {}", command[0], io_reason(&e))))?;
    Ok(ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8))
}
