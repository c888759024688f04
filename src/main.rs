//! k8soidc: configure Kubernetes API-server OpenID Connect, safely and reversibly.

mod capi;
mod check;
mod cli;
mod config;
mod create;
mod error;
mod exec;
mod explain;
mod fleet;
mod idp;
mod inventory;
mod kubeconfig;
mod patch;
mod patch_file;
mod rbac;
mod render;
mod ui;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let env = ui::Env::detect();
    match run(args, &env) {
        Ok(code) => code,
        Err(err) => {
            if err.is_broken_pipe() {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn run(args: cli::Cli, env: &ui::Env) -> Result<ExitCode, error::Error> {
    match args.command {
        cli::Command::Render(a) => render::run(a, env),
        cli::Command::Create(a) => create::run(a, env),
        cli::Command::Patch(a) => patch::run(a, env),
        cli::Command::Rollback(a) => patch::rollback(a, env),
        cli::Command::Backups(a) => patch::backups(a),
        cli::Command::Completions { shell } => {
            let mut cmd = <cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "k8soidc", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Rbac(a) => rbac::run(a, env),
        cli::Command::Kubeconfig(a) => kubeconfig::run(a, env),
        cli::Command::Check(a) => check::run(a, env),
        cli::Command::Explain(a) => explain::run(a, env),
        cli::Command::Idp(a) => idp::run(a, env),
    }
}
