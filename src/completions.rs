//! `k8soidc completions SHELL`: clap_complete's script, plus what its fish generator leaves out.

use std::io::Write;
use std::process::ExitCode;

use clap_complete::Shell;

use crate::error::Error;

pub(crate) fn run(shell: Shell) -> Result<ExitCode, Error> {
    let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "k8soidc", &mut script);
    if shell == Shell::Fish {
        script.extend_from_slice(fish_positionals(&cmd).as_bytes());
    }
    std::io::stdout()
        .write_all(&script)
        .map_err(|e| Error::io("stdout", e))?;
    Ok(ExitCode::SUCCESS)
}

/// clap_complete's fish generator "only supports named options, not positional arguments"
/// (its `shells/fish.rs` doc): one line per subcommand positional with known values (the
/// `idp` provider), offered until one of them is on the command line.
fn fish_positionals(cmd: &clap::Command) -> String {
    let mut out = String::new();
    for sub in cmd.get_subcommands() {
        for arg in sub.get_positionals() {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_string())
                .collect();
            if values.is_empty() {
                continue;
            }
            let values = values.join(" ");
            out.push_str(&format!(
                "complete -c k8soidc -n \"__fish_k8soidc_using_subcommand {}; and not __fish_seen_subcommand_from {values}\" -f -a \"{values}\"\n",
                sub.get_name()
            ));
        }
    }
    out
}
