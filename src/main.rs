//! Process entry: parse the command line, build the configuration, start
//! logging and the runtime, run the command, and turn the outcome into an exit
//! code (0 success, 1 failure, 2 bad usage or configuration).

use std::process::ExitCode;

use clap::Parser;
use vomo_sync::app;
use vomo_sync::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    app::main(cli)
}
