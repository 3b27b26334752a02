//! After a transaction commits: the statements that act on what it built — `exec` runs
//! a command in a sandbox, `expect` probes reachability, `serve` starts a responder —
//! in the order of the script, each result printed with where it stands.

use std::io::Write;

use super::{Failure, Settings};
use crate::check::Action;
use crate::expect::Expectation;
use crate::model::Model;
use crate::probe::{self, Responder};
use crate::syntax::Sources;

/// What running the actions came to.
#[derive(Debug, Default)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
}

/// Runs `actions` against `model` (the state just committed). Responders started by
/// `serve` go into `responders`, which keeps them for as long as the caller wants.
pub fn run(
    settings: &Settings,
    model: &Model,
    actions: &[Action],
    sources: &Sources,
    responders: &mut Vec<Responder>,
) -> Tally {
    let mut tally = Tally::default();
    for action in actions {
        let (file, at) = sources.position(action.span());
        let place = format!("{file}:{}", at.line);
        let outcome = match action {
            Action::Publish { .. } => continue,
            Action::Exec { sandbox, command, .. } => exec(settings, sandbox, command).map(|()| None),
            Action::Serve {
                sandbox,
                port,
                protocol,
                ..
            } => crate::expect::namespace(model, &settings.netns_dir, sandbox)
                .and_then(|netns| {
                    probe::serve(netns.as_deref(), *port, *protocol).map_err(|e| {
                        format!("cannot serve {protocol} port {port} in sandbox `{sandbox}`: {e}")
                    })
                })
                .map(|responder| {
                    responders.push(responder);
                    None
                }),
            Action::Expect {
                sandbox,
                reaches,
                target,
                port,
                timeout,
                ..
            } => Expectation {
                sandbox,
                reaches: *reaches,
                target,
                port: *port,
                timeout: *timeout,
            }
            .check(model, &settings.netns_dir)
            .map(Some),
        };
        let mut out = anstream::stdout().lock();
        match outcome {
            Ok(None) => tally.passed += 1,
            Ok(Some(verdict)) if verdict.passed => {
                tally.passed += 1;
                let _ = writeln!(out, "pass  {place}  {}: {}", verdict.probed, verdict.found);
            }
            Ok(Some(verdict)) => {
                tally.failed += 1;
                let _ = writeln!(out, "FAIL  {place}  {}: {}", verdict.probed, verdict.found);
            }
            Err(why) => {
                tally.failed += 1;
                let _ = writeln!(out, "FAIL  {place}  {}: {why}", action.keyword());
            }
        }
    }
    tally
}

/// `cnm exec` in a child process, since it enters the sandbox's namespaces for good.
pub fn exec(settings: &Settings, sandbox: &str, command: &[String]) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find cnm's own program: {e}"))?;
    let status = std::process::Command::new(me)
        .arg("--state-dir")
        .arg(&settings.state_dir)
        .arg("--netns-dir")
        .arg(&settings.netns_dir)
        .arg("--etc-dir")
        .arg(&settings.etc_dir)
        .args(["exec", sandbox, "--"])
        .args(command)
        .status()
        .map_err(|e| format!("cannot run cnm exec: {e}"))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(format!("`{}` exited with status {code}", command.join(" "))),
        None => Err(format!("`{}` was killed by a signal", command.join(" "))),
    }
}

/// `serve` needs a process that stays: `cnm apply` refuses it, pointing at `cnm test`
/// and the REPL.
pub fn refuse_serve(actions: &[Action], sources: &Sources) -> Result<(), Failure> {
    let Some(serve) = actions.iter().find(|a| matches!(a, Action::Serve { .. })) else {
        return Ok(());
    };
    let diagnostic = miette::MietteDiagnostic::new(
        "`serve` needs a cnm that stays running; `cnm apply` exits",
    )
    .with_code("cnm::serve-in-apply")
    .with_help(
        "run the script with `cnm test FILE` (responders last for the test), or type it in `cnm repl`",
    );
    Err(Failure::Report(crate::report::render_at(
        diagnostic,
        sources,
        Some(serve.span()),
        "a responder would end with cnm".into(),
    )))
}
