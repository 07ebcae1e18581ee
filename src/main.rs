fn main() -> std::process::ExitCode {
    stripe_hookd::main()
}
