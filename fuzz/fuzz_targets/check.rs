//! Arbitrary text through parse + check + plan (and both plan renderings, and the
//! diagnostics' rendering): any input must give a plan or diagnostics, never a panic.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run check -- -max_total_time=60` from the crate root.

#![no_main]

use cnm::model::Model;
use cnm::syntax::Sources;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut sources = Sources::default();
    // A name that is no file: an `include` resolves against the working directory.
    let id = sources.add("fuzz.cnm", text);
    match cnm::plan_scripts(&mut sources, &[id], &Model::empty()) {
        Ok((_, plan)) => {
            let etc = std::path::Path::new(cnm::plan::op::DEFAULT_ETC_DIR);
            cnm::plan::render::human(&plan, &sources, etc);
            cnm::plan::render::json(&plan, &sources, etc);
        }
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty(), "a failed check must say why");
            cnm::cli::render_diagnostics(&sources, &diagnostics, false, 100);
        }
    }
});
