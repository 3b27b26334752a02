//! Arbitrary bytes as `state.json`: the loader must refuse them with a reason, or give a
//! model that passes the consistency check, which then plans both ways (made from
//! nothing, taken down to nothing) and renders, without a panic.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run state -- -max_total_time=60` from the crate root.

#![no_main]

use cnm::check::Causes;
use cnm::model::Model;
use cnm::syntax::Sources;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let dir = std::env::temp_dir().join(format!("cnm-fuzz-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("state.json"), bytes).unwrap();
    let Ok(model) = cnm::state::load(&dir) else {
        return;
    };
    let etc = std::path::Path::new(cnm::plan::op::DEFAULT_ETC_DIR);
    let sources = Sources::default();
    for plan in [
        cnm::plan::between(&Model::empty(), &model, &Causes::new()),
        cnm::plan::between(&model, &Model::empty(), &Causes::new()),
    ] {
        cnm::plan::render::human(&plan, &sources, etc);
        cnm::plan::render::json(&plan, &sources, etc);
    }
    cnm::export::script(&model);
});
