use std::process::ExitCode;

fn main() -> ExitCode {
    modelwatch::cli::main()
}
