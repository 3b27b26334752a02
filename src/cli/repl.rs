//! The interactive prompt: a line editor (rustyline) over the [`Console`]. The prompt
//! says where cnm acts and whether a transaction is open; Tab completes what the
//! language allows at the cursor, with the names of the committed state; the usage line
//! of the statement being typed shows as a hint; an open `{`, quote or trailing `\`
//! continues on a `...>` prompt; history is kept per state directory.
//!
//! Ctrl-C while typing drops the entry (the editor's raw mode reads it as a key). Ctrl-C
//! while a statement applies is a SIGINT, which the console's handler turns into a stop:
//! the transaction rolls back. Ctrl-D leaves, aborting an open transaction.

pub mod complete;
pub mod highlight;
pub mod names;
mod words;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::{Hint, Hinter};
use rustyline::history::{FileHistory, History};
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{CompletionType, Context, Editor};

use super::console::{Console, Outcome, COMMANDS};
use super::Settings;
use crate::check::usage;
use crate::syntax::needs_more;
use names::Names;

const CONTINUATION: &str = "...> ";

/// What the line editor asks of cnm: completion, hints, colours and when an entry is
/// whole.
#[derive(rustyline::Helper)]
struct Helper {
    /// The committed state's names, taken after each entry.
    names: Names,
    colour: bool,
    /// The columns after the prompt, for a hint that must not wrap.
    room: usize,
}

impl Completer for Helper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(complete::complete(line, pos, &self.names))
    }
}

/// The usage line of the statement being typed; not something to insert.
struct Usage(String);

impl Hint for Usage {
    fn display(&self) -> &str {
        &self.0
    }

    fn completion(&self) -> Option<&str> {
        None
    }
}

impl Hinter for Helper {
    type Hint = Usage;

    fn hint(&self, line: &str, pos: usize, _: &Context<'_>) -> Option<Usage> {
        if pos < line.len() {
            return None;
        }
        let (words, _, _) = words::at_cursor(line, pos)?;
        let first = *words.first()?;
        let text = match usage::statement(first) {
            Some(statement) => statement.usage,
            None => COMMANDS.iter().find(|(c, _)| *c == first)?.1,
        };
        let typed = line.rsplit('\n').next().unwrap_or("").chars().count();
        fit(text, self.room.checked_sub(typed + 4)?).map(|text| Usage(format!("   {text}")))
    }
}

/// `text`, cut to `width` columns with `…` when longer; nothing when too little room.
fn fit(text: &str, width: usize) -> Option<String> {
    if text.chars().count() <= width {
        Some(text.to_string())
    } else if width >= 16 {
        Some(text.chars().take(width - 1).chain(['…']).collect())
    } else {
        None
    }
}

impl Highlighter for Helper {
    fn highlight<'l>(&self, line: &'l str, _: usize) -> Cow<'l, str> {
        if self.colour {
            Cow::Owned(highlight::highlight(line, &self.names))
        } else {
            Cow::Borrowed(line)
        }
    }

    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if self.colour {
            let dim = highlight::COMMENT;
            Cow::Owned(format!("{}{hint}{}", dim.render(), dim.render_reset()))
        } else {
            Cow::Borrowed(hint)
        }
    }

    fn highlight_char(&self, _: &str, _: usize, _: CmdKind) -> bool {
        self.colour
    }
}

impl Validator for Helper {
    /// A block recalled from history is edited in place: Enter inside it, while it is
    /// still open, breaks the line. A single line that needs more is taken as it is and
    /// continued on the `...>` prompt (see [`read_entry`]).
    fn validate(&self, context: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        let input = context.input();
        Ok(if input.contains('\n') && needs_more(input) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

/// How reading an entry ended.
enum Read {
    Entry(String),
    /// Ctrl-C: the entry typed so far is dropped.
    Cancelled,
    /// Ctrl-D, or the terminal went away.
    End,
}

/// Runs the prompt until Ctrl-D or `exit`.
pub fn run(settings: Settings) -> ExitCode {
    let colour = std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let config = rustyline::Config::builder()
        .history_ignore_space(true)
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .build();
    let mut editor: Editor<Helper, FileHistory> = match Editor::with_config(config) {
        Ok(editor) => editor,
        Err(error) => {
            note!("error: cannot start the line editor: {error}");
            return ExitCode::from(1);
        }
    };
    let _ = editor.history_mut().ignore_dups(true);
    let mut history = HistoryFile::at(&settings.state_dir);
    history.load(&mut editor);
    say!("{}", welcome(&settings));
    // Made after the editor, which installs a SIGINT handler of its own when it is
    // made: the console's must be the one in force while a statement applies.
    // (rustyline's `signal-hook` feature would leave SIGINT alone, but with it keys
    // that arrive together stall after the first.)
    let mut console = Console::new(settings, "<input>");
    editor.set_helper(Some(Helper {
        names: names_of(&mut console).unwrap_or_default(),
        colour,
        room: 0,
    }));
    loop {
        let prompt = prompt(&console);
        let columns = editor
            .dimensions()
            .map_or(80, |(columns, _)| usize::from(columns));
        if let Some(helper) = editor.helper_mut() {
            helper.room = columns.saturating_sub(prompt.chars().count());
        }
        let entry = match read_entry(&mut editor, &prompt) {
            Read::Entry(entry) => entry,
            Read::Cancelled => continue,
            Read::End => break,
        };
        if entry.trim().is_empty() {
            continue;
        }
        history.add(&mut editor, &entry);
        if entry.trim() == "history" {
            print_history(editor.history());
            continue;
        }
        // A Ctrl-C since the last entry (say, to stop an `exec`) is not for the next one.
        console.session().interrupt().reset();
        let outcome = console.run(&entry, 1);
        if let (Some(helper), Some(names)) = (editor.helper_mut(), names_of(&mut console)) {
            helper.names = names;
        }
        if outcome == Outcome::Exit {
            break;
        }
    }
    console.abort();
    ExitCode::SUCCESS
}

/// One entry: a line, and more lines while a block, a quote or a `\` is open.
fn read_entry(editor: &mut Editor<Helper, FileHistory>, prompt: &str) -> Read {
    let mut entry = String::new();
    loop {
        let shown = if entry.is_empty() { prompt } else { CONTINUATION };
        match editor.readline(shown) {
            Ok(line) => {
                entry.push_str(&line);
                entry.push('\n');
                if !needs_more(&entry) {
                    return Read::Entry(entry.trim_end().to_string());
                }
            }
            Err(ReadlineError::Interrupted) => return Read::Cancelled,
            Err(ReadlineError::Eof) => return Read::End,
            Err(error) => {
                note!("error: cannot read the terminal: {error}");
                return Read::End;
            }
        }
    }
}

/// The committed state's names, or `None` when it cannot be read (the console says why
/// when an entry needs it).
fn names_of(console: &mut Console) -> Option<Names> {
    console.session().committed().ok().map(|model| Names::of(&model))
}

/// `cnm[WHERE]> `, with `tx` while a transaction is open and `dry-run` while it is on.
fn prompt(console: &Console) -> String {
    let settings = console.settings();
    let place = if settings.isolated {
        "isolated".to_string()
    } else {
        short_path(
            &settings.state_dir,
            std::env::var_os("HOME").map(PathBuf::from).as_deref(),
        )
    };
    let mut marks = String::new();
    if console.in_transaction() {
        marks.push_str(" tx");
    }
    if console.dry_run() {
        marks.push_str(" dry-run");
    }
    format!("cnm[{place}]{marks}> ")
}

/// A state directory as the prompt shows it: `~` for the home directory, and only the
/// last two components of a long path.
fn short_path(path: &Path, home: Option<&Path>) -> String {
    let text = match home.and_then(|home| path.strip_prefix(home).ok()) {
        Some(rest) if rest.as_os_str().is_empty() => "~".to_string(),
        Some(rest) => format!("~/{}", rest.display()),
        None => path.display().to_string(),
    };
    if text.chars().count() <= 30 {
        return text;
    }
    let parts: Vec<_> = path.components().collect();
    let last: PathBuf = parts[parts.len().saturating_sub(2)..].iter().collect();
    format!("…/{}", last.display())
}

fn welcome(settings: &Settings) -> String {
    let place = if settings.isolated {
        "in a private namespace (--isolated): nothing outside changes, all is gone when you leave".to_string()
    } else {
        format!("on this host's kernel, state in {}", settings.state_dir.display())
    };
    format!(
        "cnm {} — acting {place}. `help` lists statements and commands; Ctrl-D leaves.",
        env!("CARGO_PKG_VERSION")
    )
}

/// The history file of a state directory, kept after each entry.
struct HistoryFile {
    path: PathBuf,
    /// Said once: the history cannot be kept.
    warned: bool,
}

impl HistoryFile {
    fn at(state_dir: &Path) -> HistoryFile {
        HistoryFile {
            path: state_dir.join("history"),
            warned: false,
        }
    }

    /// Why the file must not be read or written: cnm never follows a link planted in
    /// its state directory, nor reads a FIFO or a device.
    fn refused(&self) -> Option<&'static str> {
        let meta = std::fs::symlink_metadata(&self.path).ok()?;
        if meta.file_type().is_symlink() {
            Some("it is a symbolic link, which cnm does not follow")
        } else if !meta.is_file() {
            Some("it is not a regular file")
        } else {
            None
        }
    }

    fn load(&mut self, editor: &mut Editor<Helper, FileHistory>) {
        if let Some(why) = self.refused() {
            note!("cnm: the history is not kept: {} {why}", self.path.display());
            self.warned = true;
            return;
        }
        if self.path.exists() {
            if let Err(error) = editor.load_history(&self.path) {
                note!("cnm: cannot read the history {}: {error}", self.path.display());
            }
        }
    }

    /// Records an entry (not a repeat of the last one, nor one typed after a blank) and
    /// appends it to the file (mode 0600).
    fn add(&mut self, editor: &mut Editor<Helper, FileHistory>, entry: &str) {
        if !matches!(editor.add_history_entry(entry), Ok(true)) {
            return;
        }
        if self.refused().is_some() {
            return;
        }
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(error) = editor.append_history(&self.path) {
            if !self.warned {
                note!(
                    "cnm: the history is not kept: cannot write {}: {error}",
                    self.path.display()
                );
                self.warned = true;
            }
        }
    }
}

/// `history`: every entry, numbered; the lines of a block under its first.
fn print_history(history: &FileHistory) {
    for (index, entry) in history.iter().enumerate() {
        let mut lines = entry.lines();
        say!("{:>5}  {}", index + 1, lines.next().unwrap_or(""));
        for line in lines {
            say!("       {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_never_wraps() {
        assert_eq!(fit("stop SANDBOX", 20).unwrap(), "stop SANDBOX");
        assert_eq!(
            fit("connect SANDBOX to NETWORK [endpoint NAME]", 20).unwrap(),
            "connect SANDBOX to …"
        );
        assert_eq!(fit("connect SANDBOX to NETWORK [endpoint NAME]", 10), None);
    }

    #[test]
    fn the_prompt_shortens_the_state_directory() {
        let home = Some(Path::new("/home/ann"));
        assert_eq!(short_path(Path::new("/var/lib/cnm"), home), "/var/lib/cnm");
        assert_eq!(short_path(Path::new("/home/ann/lab/state"), home), "~/lab/state");
        assert_eq!(short_path(Path::new("/home/ann"), home), "~");
        assert_eq!(
            short_path(Path::new("/srv/some/rather/long/path/to/the/state"), home),
            "…/the/state"
        );
    }
}
