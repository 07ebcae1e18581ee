fn main() -> std::process::ExitCode {
    stripe_hookd::cli::main()
}
