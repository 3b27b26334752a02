//! The command line: arguments resolve into one [`Settings`] value, each subcommand is a
//! function of it, and [`main`] is the one place that maps outcomes to exit codes.

mod actions;
mod apply;
mod console;
mod help;
mod isolate;
pub mod repl;
mod run;
mod show;
mod test;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::plan;
use crate::session::{Config, Session};
use crate::syntax::{FileId, Sources};

const ABOUT: &str = "Describe, plan and apply container networks (Docker's Container Network Model) on Linux";

const LONG_ABOUT: &str = "\
cnm reads .cnm scripts that describe networks (Linux bridges with a subnet), sandboxes \
(network namespaces) and endpoints (veth pairs joining a sandbox to a network), checks \
them, shows the kernel operations that would make the host look like the script says, \
and applies them over netlink as one transaction that rolls back on any failure.

A script is read against the committed state (state.json in the state directory): \
declarations that already hold are no-ops, so applying a script twice changes nothing. \
Every transaction is recorded in journal.jsonl beside it; one that a crash cut short is \
rolled back by the next cnm command, before anything else runs.

With --isolated, cnm runs in a fresh user, network and mount namespace with private \
namespace, state and /etc/netns directories: any user can try a topology without root, \
and nothing outside changes.";

const AFTER_HELP: &str = "\
Examples:
  cnm check scripts/seed.cnm            report every error in a script
  cnm plan scripts/seed.cnm             show what an apply would do
  cnm plan --json scripts/fleet.cnm     the same, for programs
  sudo cnm apply scripts/seed.cnm       make it so
  cnm --isolated shell -- sh -c 'cnm apply scripts/seed.cnm && cnm show'
                                        the same, as any user, in a throwaway namespace
  cnm --isolated repl                   an interactive prompt there (`cnm` alone on a
                                        terminal opens one where cnm acts)

Exit status: 0 success; 1 errors in a script, its files, the state or the kernel \
(after rolling back); 2 a usage error (an unknown command or flag, a missing or bad \
argument: nothing was run), or with plan --detailed-exitcode, the plan has changes. \
`cnm exec` exits with its command's status.";

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

    /// Directory of the per-sandbox /etc files (hosts, resolv.conf), as `ip netns exec` uses it.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "CNM_ETC_DIR",
        default_value = plan::op::DEFAULT_ETC_DIR
    )]
    etc_dir: PathBuf,

    /// How long to wait for another cnm to release the state directory.
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    lock_timeout: Duration,

    /// Run in a fresh user + network + mount namespace with private directories: no root
    /// needed, nothing outside changes, everything is gone when cnm exits.
    #[arg(long, global = true)]
    isolated: bool,

    /// Without a command: the interactive prompt (`cnm repl`) on a terminal; otherwise
    /// statements are read from standard input, each applied as it comes, exit status 1
    /// if any failed.
    #[command(subcommand)]
    command: Option<Command>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::check::values::duration(text).map_err(str::to_string)
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

    /// Apply scripts to the kernel, as one transaction.
    ///
    /// Creates and removes bridges, namespaces, veth pairs, addresses, routes and
    /// /etc/netns files so that the kernel matches the scripts, showing progress (a bar
    /// on a terminal; in a log, the first and the last step and one a second between).
    /// On the first refusal, or when stopped, every
    /// completed step is undone, last first, and the error names the statement, the
    /// operation and what was undone: the kernel and state.json are left as they were.
    /// If the kernel refuses an undo operation, the error lists what is left, and the
    /// next cnm command runs those operations again. `publish` is applied with the rest
    /// (a DNAT element in cnm's nftables table); once committed, `exec` and `expect`
    /// statements run in order, a line each, and a failed one makes the exit status 1
    /// (the topology stays). `serve` is refused: it needs a cnm that stays (`cnm test`,
    /// the REPL). Ctrl-C, SIGTERM and SIGHUP roll back. Needs root (CAP_NET_ADMIN,
    /// CAP_SYS_ADMIN), or --isolated.
    #[command(
        after_help = "Exit status: 0 applied (or nothing to do); 1 errors (rolled back: nothing changed, \
unless the error says the kernel refused part of the rollback)."
    )]
    Apply {
        /// Scripts to apply, read in order as one script (`-` for standard input).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,

        /// Simulate the transaction on an in-memory model of the kernel; change nothing.
        #[arg(long)]
        dry_run: bool,
    },

    /// Remove everything cnm made (namespaces, bridges, veths, files), as one transaction.
    ///
    /// Safe to run again: with nothing left, it does nothing.
    Destroy,

    /// List what the committed state holds and the kernel lacks (drift).
    ///
    /// Reads the kernel — namespaces, links, masters, MTUs, up/down, addresses, default
    /// routes, the sandboxes' /etc/netns files, cnm's nftables table and ip_forward — and
    /// prints, for each object, every operation of the committed state whose effect is
    /// missing: a veth deleted by hand, a namespace gone, an address changed. Objects that
    /// are there and more than the state records (an extra address) are not listed.
    Status {
        /// Print the differences as JSON.
        #[arg(long)]
        json: bool,
        /// Exit 0 when the kernel holds everything the state records and 2 when not.
        #[arg(long)]
        detailed_exitcode: bool,
    },

    /// Make again what the committed state holds and the kernel lacks (after a reboot:
    /// everything), as one transaction with rollback.
    ///
    /// The same names, addresses and MACs as recorded; what exists and matches is not
    /// touched (`cnm status` lists what this would do). Needs root, or --isolated.
    Restore,

    /// Remove what cnm made that the committed state does not know.
    ///
    /// After a lost state directory or a crash in an older cnm: host links named as cnm
    /// names them (cnm0, cnm-…, ve-…) that carry the MAC cnm derives from their name,
    /// namespaces whose /etc/netns hosts file carries cnm's mark for them (and those
    /// files), and cnm's nftables table when no network needs it. An interface or a
    /// namespace made by hand, however alike its name, is never touched. Needs root,
    /// or --isolated.
    Gc {
        /// List what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },

    /// List the networks, sandboxes and endpoints of the committed state.
    Show,

    /// Print a network, sandbox or endpoint as JSON, the way `docker inspect` does.
    Inspect {
        /// The name of a network, sandbox or endpoint.
        name: String,
    },

    /// Run a command inside a sandbox's namespace, with its /etc/netns files.
    ///
    /// Like `ip netns exec`: the command sees the sandbox's interfaces, routes, hosts
    /// and resolv.conf. Its exit status becomes cnm's. A sandbox has no UTS namespace:
    /// `hostname` prints the host's name; a script's `hostname H` only names the
    /// sandbox's own addresses in its hosts file.
    Exec {
        /// The sandbox.
        sandbox: String,
        /// The command and its arguments (after `--`).
        #[arg(required = true, last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },

    /// Print the history of transactions from the journal, newest first.
    ///
    /// One line per transaction: its number, time, steps, outcome (committed, rolled
    /// back and why, cut short and recovered, open) and command. Lists the last 20
    /// unless told otherwise; archived journals are read only as far back as needed.
    Log {
        /// List the last N transactions.
        #[arg(long, value_name = "N", default_value_t = show::DEFAULT_LOG_LIMIT, conflicts_with = "all")]
        limit: usize,
        /// List every transaction.
        #[arg(long)]
        all: bool,
    },

    /// Set the state directory right by hand: `--from-journal` rebuilds state.json.
    ///
    /// For a state.json that is lost or corrupt, or a journal corrupt before its end:
    /// every line of journal.jsonl that can be read is kept (the file as it was is set
    /// aside as journal.jsonl.corrupt-TIME first, if some cannot), state.json becomes
    /// the last state a transaction committed (the old file is kept as
    /// state.json.replaced-TIME), and a transaction the kept lines leave open is rolled
    /// back as after a crash. The kernel is not read: run it where the kernel still
    /// holds what the journal says.
    #[command(after_help = "Exit status: 0 rebuilt; 1 errors.")]
    Recover {
        /// Rebuild state.json from the journal's committed transactions.
        #[arg(long, required = true)]
        from_journal: bool,
    },

    /// Test scripts: apply each in namespaces of its own and check its expectations.
    ///
    /// Each FILE is applied in a fresh user, network and mount namespace (as with
    /// --isolated: no root needed, nothing outside changes), then its `exec`, `serve`
    /// and `expect` statements run in order, and everything is gone when it ends,
    /// whatever happens. Prints one line per expectation (pass or FAIL, where it stands,
    /// what was probed and what came back), a summary per script, and closes with
    /// `N passed, N failed`. A script that does not check or apply counts as failed,
    /// with its diagnostic.
    #[command(
        after_help = "Exit status: 0 every expectation held; 1 one failed, or a script did not apply.\n\n\
Example: cnm test --junit report.xml tests/*.cnm"
    )]
    Test {
        /// The scripts.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Also write the results as JUnit XML to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Print the results as JSON instead of lines.
        #[arg(long)]
        json: bool,
    },

    /// One script of `cnm test`, in the namespaces `--isolated` made (internal).
    #[command(hide = true)]
    TestOne { file: PathBuf },

    /// Take back the last committed transaction, as a new transaction.
    ///
    /// Plans the way back from the state the journal recorded before that transaction
    /// and applies it with the same rollback guarantees as apply. Run it again to go
    /// back one more; an undo itself is not undone by the next undo.
    #[command(after_help = "Exit status: 0 undone (or nothing to undo); 1 errors (rolled back).")]
    Undo,

    /// Print the committed state as a .cnm script that recreates it.
    ///
    /// Applied to a host without cnm objects (after `cnm destroy`, or elsewhere), the
    /// script makes the same networks, sandboxes and endpoints: the same ids, addresses,
    /// MACs, interface names and default routes, published ports and stopped sandboxes.
    /// Every address and MAC is written out.
    #[command(after_help = "Example: cnm export > state.cnm && cnm destroy && cnm apply state.cnm")]
    Export,

    /// Draw the committed topology: networks and sandboxes, endpoints as edges between.
    ///
    /// Each edge is labelled with the interface inside the sandbox and its addresses; an
    /// endpoint not joined hangs off its network; stopped sandboxes are dashed. Mermaid
    /// prints a `graph LR` block to paste into a ```mermaid fence; dot a Graphviz graph.
    #[command(after_help = "Example: cnm graph --format dot | dot -Tsvg > network.svg")]
    Graph {
        /// The diagram language.
        #[arg(long, value_enum, default_value = "mermaid")]
        format: crate::graph::Format,
    },

    /// Print a shell completion script (bash, zsh, fish, elvish or powershell).
    #[command(after_help = "Example: cnm completions bash > ~/.local/share/bash-completion/completions/cnm")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },

    /// Print the manual page (roff), with every command and flag.
    #[command(after_help = "Example: cnm man | man -l -")]
    Man,

    /// The interactive prompt: type statements and session commands, each run at once.
    ///
    /// A statement is applied as its own transaction as soon as it is whole (`begin` …
    /// `commit` groups several; `dry-run on` simulates them). The prompt says where cnm
    /// acts: `cnm[isolated]>` or `cnm[STATE-DIR]>`, with `tx` while a transaction is open
    /// and `dry-run` while it is on; an open `{`, quote or trailing `\` continues on
    /// `...>`. Session commands: plan, begin, commit, abort, dry-run, show, inspect, log,
    /// undo, exec, source, save, graph, history, help [STATEMENT], exit.
    ///
    /// Keys: Tab completes statements, commands, options and the names of the committed
    /// state (a second Tab lists the choices); Up/Down and Ctrl-R search the history,
    /// kept in STATE-DIR/history; Ctrl-C drops the line being typed, or stops the
    /// statement being applied and rolls it back; Ctrl-D leaves (aborting an open
    /// transaction). Colours are off when NO_COLOR is set.
    #[command(
        after_help = "Example:\n  cnm --isolated repl\n  cnm[isolated]> network backend subnet 10.1.0.0/24\n  cnm[isolated]> for i in 1..3 {\n  ...>   sandbox web$i mode none; connect web$i to backend\n  ...> }\n  cnm[isolated]> undo"
    )]
    Repl,

    /// Run a shell or a command in the environment cnm uses (with --isolated: the
    /// throwaway namespaces, where further cnm commands share the private state).
    Shell {
        /// The command to run (default: $SHELL, else /bin/sh).
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
}

/// Everything a subcommand needs from the command line and the environment.
#[derive(Debug)]
pub struct Settings {
    pub state_dir: PathBuf,
    pub netns_dir: PathBuf,
    pub etc_dir: PathBuf,
    pub lock_timeout: Duration,
    pub isolated: bool,
    /// The command line, as the journal and the lock record it.
    pub command_line: String,
}

/// How a run ended, short of success with nothing more to say.
pub type Failure = crate::session::Error;

impl Settings {
    /// A session acting where these settings say.
    pub fn session(&self) -> Session {
        Session::new(Config {
            state_dir: self.state_dir.clone(),
            netns_dir: self.netns_dir.clone(),
            etc_dir: self.etc_dir.clone(),
            lock_timeout: self.lock_timeout,
            command_line: self.command_line.clone(),
        })
    }
}

pub fn main() -> ExitCode {
    let after_help = format!("{AFTER_HELP}\n\n{}", help::statement_list());
    let matches = Cli::command().after_help(after_help).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    huge_pages_where_they_pay(cli.command.as_ref());
    let mut settings = Settings {
        state_dir: cli.state_dir,
        netns_dir: cli.netns_dir,
        etc_dir: cli.etc_dir,
        lock_timeout: cli.lock_timeout,
        isolated: cli.isolated,
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
    };
    // Before anything else: entering a user namespace needs a single-threaded process.
    if settings.isolated {
        match isolate::enter() {
            Ok(dirs) => {
                settings.state_dir = dirs.state_dir;
                settings.netns_dir = dirs.netns_dir;
                settings.etc_dir = dirs.etc_dir;
            }
            Err(message) => {
                note!("error: cannot isolate: {message}");
                return ExitCode::from(1);
            }
        }
    }
    let Some(command) = cli.command else {
        if std::io::stdin().is_terminal() {
            return repl::run(settings);
        }
        return console::piped(settings);
    };
    let outcome = match command {
        Command::Check { files } => check(&settings, &files),
        Command::Plan {
            files,
            json,
            detailed_exitcode,
        } => plan(&settings, &files, json, detailed_exitcode),
        Command::Apply { files, dry_run } => apply::apply(&settings, &files, dry_run),
        Command::Destroy => apply::destroy(&settings),
        Command::Status {
            json,
            detailed_exitcode,
        } => show::status(&settings, json, detailed_exitcode),
        Command::Restore => apply::restore(&settings),
        Command::Gc { dry_run } => apply::gc(&settings, dry_run),
        Command::Undo => apply::undo(&settings),
        Command::Show => show::show(&settings),
        Command::Inspect { name } => show::inspect(&settings, &name),
        Command::Log { limit, all } => show::log_paged(&settings, (!all).then_some(limit)),
        Command::Recover { from_journal: _ } => show::recover(&settings),
        Command::Test { files, junit, json } => test::test(&files, junit.as_deref(), json),
        Command::TestOne { file } => test::test_one(&settings, &file),
        Command::Export => show::export(&settings),
        Command::Graph { format } => show::graph(&settings, format),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "cnm", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let _ = clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Exec { sandbox, command } => run::exec(&settings, &sandbox, &command),
        Command::Shell { command } => run::shell(&settings, &command),
        Command::Repl => Ok(repl::run(settings)),
    };
    match outcome {
        Ok(code) => code,
        Err(failure) => {
            let _ = std::io::stderr().write_all(failure.render().as_bytes());
            ExitCode::from(1)
        }
    }
}

/// Transparent huge pages, which the allocator asks for, take a quarter off `cnm plan`
/// of 10,000 sandboxes (most of it page faults) but would add megabytes to every
/// command, a tenth of an apply's memory. The process starts without them (see
/// main.rs); `check` and `plan`, which build their model, print and exit, turn them on,
/// and so do `exec` and `shell`, whose programs would otherwise inherit their being off.
fn huge_pages_where_they_pay(command: Option<&Command>) {
    let pays = matches!(
        command,
        Some(Command::Check { .. } | Command::Plan { .. } | Command::Exec { .. } | Command::Shell { .. })
    );
    if pays {
        let _ = nix::sys::prctl::set_thp_disable(false);
    }
}

fn check(settings: &Settings, files: &[PathBuf]) -> Result<ExitCode, Failure> {
    let (mut sources, ids) = load(files)?;
    settings.session().check(&mut sources, &ids)?;
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    note!("{}: no errors", names.join(", "));
    Ok(ExitCode::SUCCESS)
}

fn plan(
    settings: &Settings,
    files: &[PathBuf],
    json: bool,
    detailed_exitcode: bool,
) -> Result<ExitCode, Failure> {
    let (mut sources, ids) = load(files)?;
    let mut session = settings.session();
    let (checked, plan) = session.plan(&mut sources, &ids)?;
    // The plan starts from the committed state; where the kernel lacks part of it, say
    // so beside the plan rather than let it pass for the kernel's picture. Checked from
    // the host's side (links, namespaces, files, firewall): cheap, and needs no
    // privilege; `cnm status` looks inside the namespaces too.
    if let Ok(missing) = session.drift(false) {
        if !missing.is_empty() {
            note!(
                "cnm: drift: the kernel lacks {} of the committed state; this plan starts from \
                 the state, so `cnm status` lists them and `cnm restore` makes them again",
                crate::report::plural(missing.len(), "operation")
            );
        }
    }
    // A closed pipe (`cnm plan … | head`) is not an error worth a message.
    if json {
        let out = std::io::BufWriter::new(std::io::stdout().lock());
        let _ = plan::render::write_json(&plan, &sources, &settings.etc_dir, out);
    } else {
        print_human_plan(&plan, &sources, &settings.etc_dir);
    }
    // The plan of a large script, and the model it was made from, are a great many small
    // allocations: the process ends here, and freeing them one by one would cost more
    // than a tenth of its time.
    let changes = !plan.is_empty();
    std::mem::forget((checked, plan));
    Ok(match (detailed_exitcode, changes) {
        (true, true) => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    })
}

/// The committed state, for commands that only read it (see [`Session::committed`]).
fn committed_state(settings: &Settings) -> Result<crate::model::Model, Failure> {
    settings.session().committed()
}

/// Reads scripts into a fresh source table; `-` is standard input.
fn load(files: &[PathBuf]) -> Result<(Sources, Vec<FileId>), Failure> {
    let mut sources = Sources::default();
    let mut ids = Vec::new();
    for path in files {
        let (name, text) = if path.as_os_str() == "-" {
            let text = crate::syntax::read::bounded(std::io::stdin().lock())
                .map_err(|reason| Failure::Message(format!("cannot read standard input: {reason}")))?;
            ("<stdin>".to_string(), text)
        } else {
            let text = crate::syntax::read::script_file(path)
                .map_err(|reason| Failure::Message(format!("cannot read {}: {reason}", path.display())))?;
            (path.display().to_string(), text)
        };
        ids.push(sources.add(name, text));
    }
    Ok((sources, ids))
}

pub use crate::report::render_diagnostics;

/// Prints a plan as people read it: styled where standard output takes colour (a
/// terminal, unless `NO_COLOR` says otherwise), else plain text, written as it is.
pub fn print_human_plan(plan: &plan::Plan, sources: &crate::syntax::Sources, etc_dir: &std::path::Path) {
    let color = anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never;
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    let _ = plan::render::write_human(&mut out, plan, sources, etc_dir, color).and_then(|()| out.flush());
}
