//! `cnm test FILE…`: each script applied in namespaces of its own (as `--isolated`), its
//! `exec`, `serve` and `expect` statements run in order, everything gone when it ends,
//! whatever happens. One line per expectation, a summary per script, and a closing
//! `N passed, N failed` line; `--junit` and `--json` for CI systems.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::actions::{self, Outcome};
use super::{load, Failure, Settings};
use crate::report::plural;

/// What one script came to.
#[derive(Debug, Serialize, Deserialize)]
pub struct ScriptResult {
    pub file: String,
    /// What its `exec` commands printed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// Why it could not be applied (its diagnostic), if it could not.
    pub error: Option<String>,
    pub outcomes: Vec<Outcome>,
    pub seconds: f64,
}

impl ScriptResult {
    fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.passed).count()
    }

    /// Expectations that failed, and a script that did not apply counts as one.
    fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| !o.passed).count() + usize::from(self.error.is_some())
    }
}

pub fn test(files: &[PathBuf], junit: Option<&Path>, json: bool) -> Result<ExitCode, Failure> {
    let mut results = Vec::new();
    for file in files {
        let result = run_isolated(file)?;
        if !json {
            print_result(&result);
        }
        results.push(result);
    }
    let passed: usize = results.iter().map(ScriptResult::passed).sum();
    let failed: usize = results.iter().map(ScriptResult::failed).sum();
    if let Some(path) = junit {
        std::fs::write(path, junit_xml(&results))
            .map_err(|e| Failure::Message(format!("cannot write {}: {e}", path.display())))?;
    }
    if json {
        let report = serde_json::json!({ "passed": passed, "failed": failed, "scripts": results });
        say!("{report:#}");
    } else {
        say!("{passed} passed, {failed} failed");
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs one script in a child cnm that isolates itself, and reads its result.
fn run_isolated(file: &Path) -> Result<ScriptResult, Failure> {
    let me = std::env::current_exe()
        .map_err(|e| Failure::Message(format!("cannot find cnm's own program: {e}")))?;
    let started = Instant::now();
    let output = std::process::Command::new(me)
        .arg("--isolated")
        .arg("test-one")
        .arg(file)
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| Failure::Message(format!("cannot run cnm: {e}")))?;
    let seconds = started.elapsed().as_secs_f64();
    let file = file.display().to_string();
    // The result is the last line; what `exec` commands printed comes before it.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (printed, last) = stdout
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or(("", stdout.trim_end()));
    match serde_json::from_str::<ScriptResult>(last) {
        Ok(result) => Ok(ScriptResult {
            seconds,
            output: printed.to_string(),
            ..result
        }),
        Err(_) => Ok(ScriptResult {
            file,
            output: stdout.to_string(),
            error: Some(format!(
                "cnm test-one ended without a result ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            )),
            outcomes: Vec::new(),
            seconds,
        }),
    }
}

/// The child's side: applies the script (already isolated), runs its statements, and
/// prints the result as JSON.
pub fn test_one(settings: &Settings, file: &Path) -> Result<ExitCode, Failure> {
    // Never on the host's own state and kernel: only inside the namespaces it made.
    if !settings.isolated {
        return Err(Failure::Message(
            "test-one runs only with --isolated; use `cnm test FILE`".into(),
        ));
    }
    let name = file.display().to_string();
    let mut result = ScriptResult {
        file: name,
        output: String::new(),
        error: None,
        outcomes: Vec::new(),
        seconds: 0.0,
    };
    let applied = load(&[file.to_path_buf()]).and_then(|(mut sources, ids)| {
        let mut session = settings.session();
        session.set_notice(|_| {});
        let applied = session.apply(&mut sources, &ids, &mut super::apply::quiet())?;
        Ok((sources, applied))
    });
    match applied {
        Ok((sources, applied)) => {
            let mut responders = Vec::new();
            result.outcomes = actions::run(
                settings,
                &applied.model,
                &applied.actions,
                &sources,
                &mut responders,
            );
            // `exec` and `serve` report only failures; expectations always.
            result.outcomes.retain(|o| o.keyword == "expect" || !o.passed);
        }
        Err(failure) => result.error = Some(failure.render().trim_end().to_string()),
    }
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        serde_json::to_string(&result).expect("a result serialises")
    );
    Ok(ExitCode::SUCCESS)
}

fn print_result(result: &ScriptResult) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", result.file);
    for line in result.output.lines() {
        let _ = writeln!(out, "  | {line}");
    }
    if let Some(error) = &result.error {
        let _ = writeln!(out, "  FAIL  the script did not apply:");
        for line in error.lines() {
            let _ = writeln!(out, "        {line}");
        }
    }
    for outcome in &result.outcomes {
        let _ = writeln!(out, "  {}", outcome.line());
    }
    let _ = writeln!(
        out,
        "  {}: {} passed, {} failed ({:.2} s)\n",
        plural(result.outcomes.len(), "expectation"),
        result.passed(),
        result.failed(),
        result.seconds
    );
}

/// JUnit XML, as CI systems display it: a test suite per script, a test case per
/// expectation (and one for applying the script, when that failed).
fn junit_xml(results: &[ScriptResult]) -> String {
    let mut xml =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"cnm test\">\n");
    for result in results {
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">\n",
            escape(&result.file),
            result.outcomes.len() + usize::from(result.error.is_some()),
            result.failed(),
            result.seconds
        ));
        if let Some(error) = &result.error {
            xml.push_str(&format!(
                "    <testcase name=\"apply\" classname=\"{}\">\n      <failure message=\"the script did not apply\">{}</failure>\n    </testcase>\n",
                escape(&result.file),
                escape(error)
            ));
        }
        for outcome in &result.outcomes {
            let name = format!("{} {}", outcome.place, outcome.what);
            xml.push_str(&format!(
                "    <testcase name=\"{}\" classname=\"{}\">",
                escape(&name),
                escape(&result.file)
            ));
            if outcome.passed {
                xml.push_str("</testcase>\n");
            } else {
                xml.push_str(&format!(
                    "\n      <failure message=\"{}\"/>\n    </testcase>\n",
                    escape(&outcome.found)
                ));
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// Text as XML character data or an attribute value.
fn escape(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect()
}
