//! `k8soidc render`: the settings in one distribution's syntax.

use std::io::Write;
use std::process::ExitCode;

use backends::{backend, ClusterRequest, Distribution};

use crate::cli::{Output, RenderArgs};
use crate::error::Error;
use crate::ui::Env;

/// Where files for cluster `name` of `d` are staged: `$XDG_DATA_HOME/k8soidc/<distro>-<name>`
/// (default `~/.local/share`), absolute, so container runtimes can mount it.
pub(crate) fn staging_dir(d: Distribution, name: &str) -> Result<String, Error> {
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => std::path::PathBuf::from(home).join(".local/share"),
            None => return Err(Error::Input(
                "neither XDG_DATA_HOME nor HOME is set; set one so k8soidc can stage cluster files"
                    .into(),
            )),
        },
    };
    let dir = base.join("k8soidc").join(format!("{d}-{name}"));
    let dir = if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io(".", e))?
            .join(dir)
    };
    Ok(dir.display().to_string())
}

/// Checks a cluster name the way each tool does: a DNS-1123 label for k3d and kind (they
/// prefix container names with it), a fully qualified DNS name for kops ("Cluster Name must be
/// a fully-qualified DNS name (e.g. --name=mycluster.myzone.com)", kops `pkg/apis/kops/validation`;
/// `.k8s.local` for gossip clusters).
pub(crate) fn check_name(d: Distribution, name: &str) -> Result<(), Error> {
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let (ok, rule) = if d == Distribution::Kops {
        (
            name.len() <= 253 && name.contains('.') && name.split('.').all(label),
            "kops needs a fully qualified DNS name, e.g. `--name oidc.k8s.local`",
        )
    } else {
        (label(name), "cluster names are lowercase letters, digits and `-`, at most 63, not starting or ending with `-`; e.g. `--name oidc-test`")
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "invalid --name `{}`: {rule}",
            backends::escape(name)
        )))
    }
}

pub(crate) fn run(args: RenderArgs, env: &Env) -> Result<ExitCode, Error> {
    let d = Distribution::parse(&args.distro)?;
    check_name(d, &args.name)?;
    let s = crate::config::settings(&args.oidc, env)?;
    let req = ClusterRequest {
        name: args.name.clone(),
        staging_dir: staging_dir(d, &args.name)?,
        extra_args: vec![],
    };
    let r = backend(d).render(&s, &req)?;
    let text = match args.output {
        Output::Text => r.to_string(),
        Output::Json => {
            serde_json::to_string_pretty(&r).map_err(|e| Error::Other(e.to_string()))? + "\n"
        }
        Output::Yaml => serde_yaml_ng::to_string(&r).map_err(|e| Error::Other(e.to_string()))?,
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("stdout", e))?;
    Ok(ExitCode::SUCCESS)
}
