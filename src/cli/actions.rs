//! After a transaction commits: the statements that act on what it built — `exec` runs
//! a command in a sandbox, `expect` probes reachability, `serve` starts a responder —
//! in the order of the script, each result printed with where it stands.

use std::io::Write;

use super::{Failure, Settings};
use crate::check::Action;
use crate::expect::{Expectation, Ready};
use crate::model::Model;
use crate::probe::{self, Responder};
use crate::syntax::Sources;

/// What one action came to.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// `FILE:LINE` of the statement.
    pub place: String,
    pub keyword: String,
    pub passed: bool,
    /// What was tried: `A reaches B (10.1.0.3, ping)`, or the command.
    pub what: String,
    /// What came back.
    pub found: String,
}

impl Outcome {
    /// One line: `pass  FILE:LINE  WHAT: FOUND`.
    pub fn line(&self) -> String {
        let mark = if self.passed { "pass" } else { "FAIL" };
        if self.found.is_empty() {
            format!("{mark}  {}  {}", self.place, self.what)
        } else {
            format!("{mark}  {}  {}: {}", self.place, self.what, self.found)
        }
    }
}

/// Runs `actions` against `model` (the state just committed), in order. Responders
/// started by `serve` go into `responders`, which keeps them for as long as the caller
/// wants. `exec` and `serve` have an outcome only when they fail.
pub fn run(
    settings: &Settings,
    model: &Model,
    actions: &[Action],
    sources: &Sources,
    responders: &mut Vec<Responder>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut ready = Ready::default();
    for action in actions {
        let (file, at) = sources.position(action.span());
        let outcome = |passed: bool, what: String, found: String| Outcome {
            place: format!("{file}:{}", at.line),
            keyword: action.keyword().to_string(),
            passed,
            what,
            found,
        };
        match action {
            Action::Publish { .. } => {}
            Action::Exec { sandbox, command, .. } => {
                if let Err(why) = exec(settings, sandbox, command) {
                    outcomes.push(outcome(
                        false,
                        format!("exec {sandbox} -- {}", command.join(" ")),
                        why,
                    ));
                }
            }
            Action::Serve {
                sandbox,
                port,
                protocol,
                ..
            } => {
                let served =
                    crate::expect::namespace(model, &settings.netns_dir, sandbox).and_then(|netns| {
                        probe::serve(netns.as_deref(), *port, *protocol).map_err(|e| e.to_string())
                    });
                match served {
                    Ok(responder) => responders.push(responder),
                    Err(why) => outcomes.push(outcome(
                        false,
                        format!("serve {sandbox} {protocol} port {port}"),
                        why,
                    )),
                }
            }
            Action::Expect {
                sandbox,
                reaches,
                target,
                port,
                timeout,
                ..
            } => {
                let expectation = Expectation {
                    sandbox,
                    reaches: *reaches,
                    target,
                    port: *port,
                    timeout: *timeout,
                };
                outcomes.push(match expectation.check(model, &settings.netns_dir, &mut ready) {
                    Ok(verdict) => outcome(verdict.passed, verdict.probed, verdict.found),
                    Err(why) => outcome(false, format!("expect {sandbox}"), why),
                });
            }
        }
    }
    outcomes
}

/// Prints each outcome on its line; the number that failed.
pub fn print(outcomes: &[Outcome]) -> usize {
    let mut out = anstream::stdout().lock();
    for outcome in outcomes {
        let _ = writeln!(out, "{}", outcome.line());
    }
    outcomes.iter().filter(|o| !o.passed).count()
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
