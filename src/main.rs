//! The `baton` binary: parses the command line and hands each verb to `cli`.
//! All logic lives in the library; this edge maps errors to exit codes (0 / 1 / 2).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
