// mimalloc: planning thousands of sandboxes makes and drops hundreds of thousands of
// small strings, maps and vectors, where glibc's allocator took a fifth of the time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cnm::cli::main()
}
