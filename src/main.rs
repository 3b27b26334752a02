// mimalloc: planning thousands of sandboxes makes and drops hundreds of thousands of
// small strings, maps and vectors, where glibc's allocator took a fifth of the time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cnm::cli::main()
}

// No transparent huge pages until the command asks for them (`cnm::cli` does for
// `check`, `plan`, `exec` and `shell`). This runs before `main`, as the C runtime
// starts the process: the runtime's first allocations already fault in the allocator's
// memory, and on huge pages they would add 3.5 MB to every command (an apply of 1,000
// sandboxes: 28 -> 31 MB). An old kernel that cannot do this only costs that memory.
#[used]
#[link_section = ".init_array"]
static NO_HUGE_PAGES_YET: extern "C" fn() = {
    extern "C" fn no_huge_pages() {
        let _ = nix::sys::prctl::set_thp_disable(true);
    }
    no_huge_pages
};
