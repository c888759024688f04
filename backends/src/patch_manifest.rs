//! Interim static-pod helpers for `patch`: read the facts the transaction needs from a
//! kube-apiserver manifest (flags, probe address, mounted directories) and set the managed
//! flags with a minimal text edit of the `command:` list. The full patcher (args:, mounts,
//! refusals) is `crate::manifest`; this keeps `patch` working on kubeadm's own layout.

use serde_yaml_ng::Value;

use crate::apiserver::{self, Arg};
use crate::PlanError;

/// What the transaction needs to know about a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManifestFacts {
    /// The container's command and args, in order (program first).
    pub(crate) flags: Vec<String>,
    /// The readiness probe's scheme, host and port.
    pub(crate) scheme: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// (mountPath, hostPath) of every hostPath volume mounted into the container.
    pub(crate) mounts: Vec<(String, String)>,
}

impl ManifestFacts {
    pub(crate) fn url(&self, path: &str) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "{}://{host}:{}{path}",
            self.scheme.to_lowercase(),
            self.port
        )
    }

    /// True when `dir` on the host is visible at the same path inside the container.
    pub(crate) fn mounts_dir(&self, dir: &str) -> bool {
        self.mounts.iter().any(|(m, h)| {
            let (m, h) = (m.trim_end_matches('/'), h.trim_end_matches('/'));
            m == h && (dir == m || dir.starts_with(&format!("{m}/")))
        })
    }
}

fn refuse(reason: impl Into<String>) -> PlanError {
    PlanError::Patch {
        what: "the kube-apiserver manifest".into(),
        reason: reason.into(),
        fix: "patch it by hand (see `k8soidc render --distro kubeadm`)".into(),
    }
}

fn s(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads the facts; refuses what is not a kube-apiserver Pod.
pub(crate) fn facts(text: &str) -> Result<ManifestFacts, PlanError> {
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        refuse(format!(
            "it is not valid YAML ({})",
            e.to_string().replace('\n', " ")
        ))
    })?;
    if doc.get("kind").and_then(Value::as_str) != Some("Pod") {
        return Err(refuse("it is not a Pod"));
    }
    let spec = doc.get("spec").ok_or_else(|| refuse("it has no spec"))?;
    let container = spec
        .get("containers")
        .and_then(Value::as_sequence)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some("kube-apiserver"))
        })
        .ok_or_else(|| refuse("it has no container named `kube-apiserver`"))?;
    let mut flags = Vec::new();
    for key in ["command", "args"] {
        if let Some(seq) = container.get(key).and_then(Value::as_sequence) {
            flags.extend(seq.iter().filter_map(s));
        }
    }
    let flag = |name: &str| {
        flags
            .iter()
            .rev()
            .find_map(|f| f.strip_prefix(&format!("--{name}=")).map(str::to_string))
    };
    let probe = container
        .get("readinessProbe")
        .or_else(|| container.get("livenessProbe"))
        .and_then(|p| p.get("httpGet"));
    let host = probe
        .and_then(|p| p.get("host"))
        .and_then(s)
        .or_else(|| flag("advertise-address"))
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = probe
        .and_then(|p| p.get("port"))
        .and_then(s)
        .or_else(|| flag("secure-port"))
        .unwrap_or_else(|| "6443".into());
    let port: u16 = port
        .parse()
        .map_err(|_| refuse(format!("its probe port `{port}` is not a number")))?;
    let scheme = probe
        .and_then(|p| p.get("scheme"))
        .and_then(s)
        .unwrap_or_else(|| "HTTPS".into());
    let mut vols = Vec::new();
    if let Some(vs) = spec.get("volumes").and_then(Value::as_sequence) {
        for v in vs {
            if let (Some(n), Some(p)) = (
                v.get("name").and_then(s),
                v.get("hostPath").and_then(|h| h.get("path")).and_then(s),
            ) {
                vols.push((n, p));
            }
        }
    }
    let mut mounts = Vec::new();
    if let Some(ms) = container.get("volumeMounts").and_then(Value::as_sequence) {
        for m in ms {
            let name = m.get("name").and_then(s);
            if let (Some(name), Some(mp)) = (name, m.get("mountPath").and_then(s)) {
                if let Some((_, hp)) = vols.iter().find(|(n, _)| *n == name) {
                    mounts.push((mp, hp.clone()));
                }
            }
        }
    }
    Ok(ManifestFacts {
        flags,
        scheme,
        host,
        port,
        mounts,
    })
}

/// Replaces every managed flag in the `command:` list with `args` (minimal edit: other lines,
/// comments and line endings stay as they are).
pub(crate) fn set_flags(text: &str, args: &[Arg]) -> Result<String, PlanError> {
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let start = lines
        .iter()
        .position(|l| {
            let t = l.trim();
            t == "- kube-apiserver" || t == "- \"kube-apiserver\""
        })
        .ok_or_else(|| {
            refuse("its flags are not a `command:` list starting with `- kube-apiserver`")
        })?;
    let indent = &lines[start][..lines[start].len() - lines[start].trim_start().len()];
    let mut end = start + 1;
    while end < lines.len() {
        let l = lines[end];
        let ind = &l[..l.len() - l.trim_start().len()];
        if ind == indent && l.trim_start().starts_with("- ") {
            end += 1;
        } else {
            break;
        }
    }
    let is_managed = |l: &str| {
        let v = l
            .trim()
            .trim_start_matches("- ")
            .trim_matches('"')
            .trim_matches('\'');
        v.strip_prefix("--")
            .map(|n| apiserver::is_managed_flag(n.split('=').next().unwrap_or("")))
            .unwrap_or(false)
    };
    let mut out = String::with_capacity(text.len() + 512);
    for l in &lines[..end] {
        if !is_managed(l) {
            out.push_str(l);
        }
    }
    if !out.ends_with('\n') {
        out.push_str(eol);
    }
    for a in args {
        let quoted = serde_json::to_string(&a.flag()).expect("strings serialise");
        out.push_str(&format!("{indent}- {quoted}{eol}"));
    }
    for l in &lines[end..] {
        out.push_str(l);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;
    use crate::Mode;

    /// A shared fixture: `../shared` from the workspace root (/work/main), or two levels up
    /// from a worktree (/work/wt/X).
    fn fixture(rel: &str) -> String {
        let root = env!("CARGO_MANIFEST_DIR");
        ["/../../shared/fixtures/", "/../../../shared/fixtures/"]
            .iter()
            .find_map(|up| std::fs::read_to_string(format!("{root}{up}{rel}")).ok())
            .unwrap_or_else(|| panic!("fixture {rel} not found"))
    }

    fn m034() -> String {
        fixture("apiserver-manifests/034-austintalbot-v1.32.2-cks.yaml")
    }

    #[test]
    fn facts_of_a_kubeadm_manifest() {
        let f = facts(&m034()).unwrap();
        assert_eq!(f.url("/readyz"), "https://192.168.97.4:6443/readyz");
        assert!(f.mounts_dir("/etc/kubernetes/pki"));
        assert!(!f.mounts_dir("/etc/kubernetes"));
        assert_eq!(f.flags[0], "kube-apiserver");
    }

    #[test]
    fn set_then_remove_is_identity_and_idempotent() {
        let s = testutil::settings();
        let args = apiserver::args(&s, Mode::Flags, "/etc/kubernetes/pki");
        let once = set_flags(&m034(), &args).unwrap();
        assert_eq!(set_flags(&once, &args).unwrap(), once);
        let f = facts(&once).unwrap();
        assert!(f
            .flags
            .contains(&"--oidc-username-prefix=oidc:".to_string()));
        assert_eq!(set_flags(&once, &[]).unwrap(), m034());
    }
}
