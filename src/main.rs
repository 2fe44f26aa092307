fn main() -> std::process::ExitCode {
    paysync::cli::main()
}
