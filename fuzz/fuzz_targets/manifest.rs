//! Fuzzes the static-pod manifest patcher: arbitrary bytes, read as UTF-8 (lossy), patched with
//! fixed settings. It must never panic; when it returns a patch, the patch must parse as YAML,
//! carry the flags, and a second patch must change nothing.

#![no_main]

use std::sync::OnceLock;

use backends::apiserver::{self, Arg};
use backends::manifest::{current_flags, patch_manifest, NodeMount};
use backends::{CaBundle, OidcSettings, SettingsInput};
use libfuzzer_sys::fuzz_target;

const DIR: &str = "/etc/kubernetes/oidc";

/// Flags with values YAML cares about (`oidc:` unquoted is a mapping; `#`, `'`, `&`).
fn args() -> &'static [Arg] {
    static ARGS: OnceLock<Vec<Arg>> = OnceLock::new();
    ARGS.get_or_init(|| {
        let input = SettingsInput {
            issuer_url: Some("https://idp.example.com/realms/k8s".into()),
            client_id: Some("kubernetes".into()),
            username_claim: Some("email".into()),
            username_prefix: Some("oidc:".into()),
            groups_claim: Some("groups".into()),
            groups_prefix: Some("-".into()),
            required_claim: vec!["hd=example.com # not a comment & 'x'".into()],
            ..SettingsInput::default()
        };
        let ca = CaBundle {
            local_path: "/tmp/ca.pem".into(),
            pem: "-----BEGIN CERTIFICATE-----\nMIIBfuzz\n-----END CERTIFICATE-----\n".into(),
        };
        let s = OidcSettings::validate(&input, Some(ca)).expect("fixed settings validate");
        apiserver::args(&s, s.mode().expect("flags mode"), DIR)
    })
}

fn mount() -> NodeMount {
    NodeMount {
        name: "oidc".into(),
        host_path: DIR.into(),
        mount_path: DIR.into(),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(p) = patch_manifest(&text, args(), Some(&mount())) else {
        return;
    };
    for doc in serde_yaml_ng::Deserializer::from_str(&p.text) {
        let parsed: Result<serde_yaml_ng::Value, _> = serde::Deserialize::deserialize(doc);
        if let Err(e) = parsed {
            panic!("the patched manifest does not parse: {e}\n{}", p.text);
        }
    }
    let flags: Vec<(String, Option<String>)> = current_flags(&p.text)
        .expect("the patched manifest reads back")
        .into_iter()
        .filter(|(n, _)| apiserver::is_managed_flag(n))
        .collect();
    let mut want: Vec<(String, Option<String>)> = args()
        .iter()
        .map(|a| (a.name.clone(), Some(a.value.clone())))
        .collect();
    let mut got = flags;
    want.sort();
    got.sort();
    assert_eq!(got, want, "the flags read back differ\n{}", p.text);
    let again = patch_manifest(&p.text, args(), Some(&mount())).expect("a second patch succeeds");
    assert!(!again.changed, "a second patch changed it again:\n{}\n---\n{}", p.text, again.text);
});
