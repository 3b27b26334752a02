//! The command line: arguments resolve into one [`Settings`] value, each subcommand is a
//! function of it, and [`main`] is the one place that maps outcomes to exit codes.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use miette::{GraphicalReportHandler, GraphicalTheme};

use crate::error::Diagnostic;
use crate::syntax::{FileId, Sources};
use crate::{plan, state};

const ABOUT: &str = "Describe, plan and apply container networks (Docker's Container Network Model) on Linux";

const LONG_ABOUT: &str = "\
cnm reads .cnm scripts that describe networks (Linux bridges with a subnet), sandboxes \
(network namespaces) and endpoints (veth pairs joining a sandbox to a network), checks \
them, and shows the kernel operations that would make the host look like the script says.

A script is read against the committed state (state.json in the state directory): \
declarations that already hold are no-ops, so applying a script twice changes nothing.";

const AFTER_HELP: &str = "\
Examples:
  cnm check scripts/seed.cnm            report every error in a script
  cnm plan scripts/seed.cnm             show what an apply would do
  cnm plan --json scripts/fleet.cnm     the same, for programs
  cnm --state-dir ./st plan a.cnm b.cnm read two scripts as one, against ./st/state.json

Exit status: 0 success; 1 errors in a script, its files or the state; 2 (plan \
--detailed-exitcode only) the plan has changes.";

#[derive(Debug, Parser)]
#[command(name = "cnm", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
struct Cli {
    /// Directory of the committed state (state.json and its journal).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "CNM_STATE_DIR",
        default_value = "/var/lib/cnm"
    )]
    state_dir: PathBuf,

    /// Directory of the named network namespaces, as `ip netns` uses it.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "CNM_NETNS_DIR",
        default_value = "/run/netns"
    )]
    netns_dir: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check scripts for errors, without planning or touching anything.
    ///
    /// Every error of every script is reported, each with the file, line and column, a
    /// label under the offending words, and a help line. FILEs are read in order as one
    /// script; `-` reads standard input.
    #[command(after_help = "Exit status: 0 when the scripts are clean, 1 when they have errors.")]
    Check {
        /// Scripts to check (`-` for standard input).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },

    /// Show the kernel operations that applying scripts would perform (a dry run).
    ///
    /// The plan lists each network, sandbox and endpoint that would be added (+),
    /// changed (~) or removed (-), then the numbered kernel operations in iproute2's
    /// terms, grouped under the statement that calls for them, then a summary. Nothing
    /// is touched; no privilege is needed.
    #[command(
        after_help = "Exit status: 0 success (with --detailed-exitcode: no changes); 1 errors; \
2 (with --detailed-exitcode) the plan has changes, as `terraform plan` does."
    )]
    Plan {
        /// Scripts to plan, read in order as one script (`-` for standard input).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,

        /// Print the plan as JSON (layout: README.md, "Plan JSON"; see format_version).
        #[arg(long)]
        json: bool,

        /// Exit 0 when there is nothing to do and 2 when there is.
        #[arg(long)]
        detailed_exitcode: bool,
    },
}

/// Everything a subcommand needs from the command line and the environment.
#[derive(Debug)]
pub struct Settings {
    pub state_dir: PathBuf,
    pub netns_dir: PathBuf,
}

/// How a run ended, short of success with nothing more to say.
enum Failure {
    /// Errors in scripts, already loaded in `sources`.
    Script(Sources, Vec<Diagnostic>),
    /// Anything else, in one line.
    Message(String),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = Settings {
        state_dir: cli.state_dir,
        netns_dir: cli.netns_dir,
    };
    let outcome = match cli.command {
        Command::Check { files } => check(&settings, &files),
        Command::Plan {
            files,
            json,
            detailed_exitcode,
        } => plan(&settings, &files, json, detailed_exitcode),
    };
    match outcome {
        Ok(code) => code,
        Err(Failure::Script(sources, diagnostics)) => {
            report(&sources, &diagnostics);
            ExitCode::from(1)
        }
        Err(Failure::Message(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

fn check(settings: &Settings, files: &[PathBuf]) -> Result<ExitCode, Failure> {
    let committed = state::load(&settings.state_dir).map_err(|e| Failure::Message(e.to_string()))?;
    let (mut sources, ids) = load(files)?;
    match crate::check::check(&mut sources, &ids, &committed) {
        Ok(_) => {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            eprintln!("{}: no errors", names.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Err(diagnostics) => Err(Failure::Script(sources, diagnostics)),
    }
}

fn plan(
    settings: &Settings,
    files: &[PathBuf],
    json: bool,
    detailed_exitcode: bool,
) -> Result<ExitCode, Failure> {
    let committed = state::load(&settings.state_dir).map_err(|e| Failure::Message(e.to_string()))?;
    let (mut sources, ids) = load(files)?;
    let (_, plan) = match crate::plan_scripts(&mut sources, &ids, &committed) {
        Ok(planned) => planned,
        Err(diagnostics) => return Err(Failure::Script(sources, diagnostics)),
    };
    let text = if json {
        plan::render::json(&plan, &sources)
    } else {
        plan::render::human(&plan, &sources)
    };
    let mut out = anstream::stdout();
    // A closed pipe (`cnm plan … | head`) is not an error worth a message.
    let _ = out.write_all(text.as_bytes());
    Ok(match (detailed_exitcode, plan.is_empty()) {
        (true, false) => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    })
}

/// Reads scripts into a fresh source table; `-` is standard input.
fn load(files: &[PathBuf]) -> Result<(Sources, Vec<FileId>), Failure> {
    let mut sources = Sources::default();
    let mut ids = Vec::new();
    for path in files {
        let (name, text) = if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| {
                Failure::Message(format!(
                    "cannot read standard input: {}",
                    crate::check::io_reason(&e)
                ))
            })?;
            ("<stdin>".to_string(), text)
        } else {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::Message(format!(
                    "cannot read {}: {}",
                    path.display(),
                    crate::check::io_reason(&e)
                ))
            })?;
            (path.display().to_string(), text)
        };
        ids.push(sources.add(name, text));
    }
    Ok((sources, ids))
}

/// Prints diagnostics to standard error, in colour on a terminal unless NO_COLOR is set,
/// then one line that counts them.
fn report(sources: &Sources, diagnostics: &[Diagnostic]) {
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut text = render_diagnostics(sources, diagnostics, colour, terminal_width());
    let count = diagnostics.len();
    text.push_str(&format!(
        "error: {count} error{} found; nothing was planned or applied\n",
        if count == 1 { "" } else { "s" }
    ));
    let _ = std::io::stderr().write_all(text.as_bytes());
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

/// Diagnostics as miette draws them: message, source excerpt with labels, help.
pub fn render_diagnostics(
    sources: &Sources,
    diagnostics: &[Diagnostic],
    colour: bool,
    width: usize,
) -> String {
    let theme = if colour {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width);
    let mut text = String::new();
    for diagnostic in diagnostics {
        let rendered = diagnostic.render(sources);
        handler
            .render_report(&mut text, &rendered)
            .expect("rendering into a String cannot fail");
        text.push('\n');
    }
    text
}
