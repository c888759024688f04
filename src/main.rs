//! k8soidc: configure Kubernetes API-server OpenID Connect, safely and reversibly.

mod authn_eval;
mod backups;
mod capi;
mod cel;
mod check;
mod cli;
mod completions;
mod config;
mod create;
mod create_ssh;
mod error;
mod exec;
mod explain;
mod fleet;
mod gardener;
mod gke_identity;
mod host;
mod idp;
mod input;
mod interrupt;
mod inventory;
mod kubeconfig;
mod live;
mod man;
mod managed;
mod patch;
mod patch_file;
mod rbac;
mod render;
mod report;
mod talos;
mod testing;
mod ui;
mod vcluster;
mod yamlpos;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

/// Parses the command line once; records which OIDC settings clap took from `K8SOIDC_*`, and
/// whether `--dry-run=server` was asked for (`server` in the second value).
fn parse() -> (cli::Cli, bool) {
    let matches = cli::Cli::command().get_matches();
    let mut args = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let server = matches.subcommand().is_some_and(|(_, sub)| {
        sub.try_get_raw("dry_run")
            .ok()
            .flatten()
            .is_some_and(|mut v| v.any(|v| v == "server"))
    });
    if let (Some((_, sub)), Some(oidc)) = (matches.subcommand(), args.command.oidc_mut()) {
        oidc.env_ids = sub
            .ids()
            .filter(|id| {
                sub.value_source(id.as_str()) == Some(clap::parser::ValueSource::EnvVariable)
            })
            .map(|id| id.as_str().to_string())
            .collect();
    }
    (args, server)
}

/// `--dry-run=server` needs a check the API server makes: `patch --capi`, `patch --shoot` and
/// `create --distro gardener` have one (kubectl's `--dry-run=server`); elsewhere it is refused
/// rather than silently run client-side.
fn server_dry_run(command: &mut cli::Command) -> Result<(), error::Error> {
    match command {
        cli::Command::Patch(a) if a.capi.is_some() || a.shoot.is_some() => {
            a.dry_run.server = true;
            Ok(())
        }
        cli::Command::Create(a) if a.distro == "gardener" => {
            a.dry_run.server = true;
            Ok(())
        }
        _ => Err(error::Error::Input(
            "--dry-run=server needs a server-side check; only `patch --capi`, `patch --shoot` and `create --distro gardener` have one; use --dry-run".into(),
        )),
    }
}

fn main() -> ExitCode {
    testing::TestSeam::init();
    let (mut args, server) = parse();
    let env = ui::Env::detect();
    let result = if server {
        server_dry_run(&mut args.command)
    } else {
        Ok(())
    };
    match result.and_then(|()| run(args, &env)) {
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
        cli::Command::Rollback(a) => backups::rollback(a, env),
        cli::Command::Backups(a) => backups::backups(a),
        cli::Command::Completions { shell } => completions::run(shell),
        cli::Command::Man { dir } => man::run(dir),
        cli::Command::Rbac(a) => rbac::run(a, env),
        cli::Command::Kubeconfig(a) => kubeconfig::run(a, env),
        cli::Command::Check(a) => check::run(a, env),
        cli::Command::Explain(a) => explain::run(a, env),
        cli::Command::Idp(a) => idp::run(a, env),
    }
}
