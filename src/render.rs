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
    if d == Distribution::Eks {
        return crate::managed::check_eks_name(name);
    }
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

/// The name rendered when `--name` is not given: `oidc`, or for kops (which needs a fully
/// qualified DNS name) the gossip-cluster placeholder `oidc.k8s.local`.
fn default_name(d: Distribution) -> &'static str {
    if d == Distribution::Kops {
        "oidc.k8s.local"
    } else {
        "oidc"
    }
}

pub(crate) fn run(args: RenderArgs, env: &Env) -> Result<ExitCode, Error> {
    let d = Distribution::parse(&args.distro)?;
    // Only a name the user gave is checked: the default is valid for every distribution.
    let placeholder = match &args.name {
        Some(name) => {
            check_name(d, name)?;
            None
        }
        None => Some(default_name(d)),
    };
    let name = args.name.as_deref().unwrap_or(default_name(d));
    let s = crate::config::settings_on(&args.oidc, env, Some(d))?;
    let req = ClusterRequest {
        name: name.to_string(),
        staging_dir: staging_dir(d, name)?,
        extra_args: vec![],
        platform: crate::managed::platform(&args.platform, None)?,
    };
    let r = backend(d).render(&s, &req)?;
    // kops has no default cluster name: say that the one shown is a placeholder (on stderr for
    // JSON/YAML, which stay parseable).
    let note = placeholder.filter(|_| d == Distribution::Kops).map(|p| {
        format!("# no --name given: `{p}` below is a placeholder (a kops gossip cluster name); give --name with your cluster's name\n")
    });
    if let (Some(note), false) = (&note, args.output == Output::Text) {
        eprint!("{note}");
    }
    let text = match args.output {
        Output::Text => note.unwrap_or_default() + &r.to_string(),
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
