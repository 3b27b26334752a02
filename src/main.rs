fn main() -> std::process::ExitCode {
    cnm::cli::main()
}
