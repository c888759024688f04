//! Fuzzes the static-pod manifest patcher. The input is a manifest, optionally followed by a NUL
//! byte and "knob" bytes that choose the settings (values with YAML punctuation, flags or config
//! mode, with or without a CA and a mount). Without a NUL (the seed corpus: real manifests) the
//! first choice of each knob is used. It must never panic; when it returns a patch, the patch
//! must parse as YAML, carry exactly the asked flags, and a second patch must change nothing;
//! removing the flags again must leave none of ours and be idempotent too.

#![no_main]

use backends::apiserver::{self, Arg};
use backends::manifest::{current_flags, patch_manifest, remove_oidc, NodeMount};
use backends::{CaBundle, OidcSettings, SettingsInput};
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

/// One of `choices`, chosen by the knob bytes (the first one when they run out).
fn pick<'a>(u: &mut Unstructured<'_>, choices: &[&'a str]) -> &'a str {
    u.choose(choices).copied().unwrap_or(choices[0])
}

/// Sometimes a value from the pool, sometimes arbitrary text (which `validate` may refuse).
fn value(u: &mut Unstructured<'_>, pool: &[&str]) -> String {
    // `ratio` is true when the knobs have run out, so the seeds get the pool's first value.
    if u.ratio(7u8, 8).unwrap_or(true) {
        pick(u, pool).to_string()
    } else {
        u.arbitrary::<String>().unwrap_or_default()
    }
}

/// Settings, flags and mount chosen by `knobs`; `None` when the settings do not validate.
fn request(knobs: &[u8]) -> Option<(Vec<Arg>, Option<NodeMount>)> {
    let u = &mut Unstructured::new(knobs);
    let input = SettingsInput {
        issuer_url: Some(value(
            u,
            &[
                "https://idp.example.com/realms/k8s",
                "https://accounts.google.com",
                "https://idp.example.com:8443/a/b/",
                "https://ïdp.example.com/#x",
            ],
        )),
        client_id: Some(value(u, &["kubernetes", "k8s: 'x'", "a#b", "{{ id }}"])),
        username_claim: Some(value(u, &["email", "sub", "preferred username"])),
        username_prefix: Some(value(u, &["oidc:", "-", "#", "'q'", "\"", "$HOME:", "ü:"])),
        groups_claim: match pick(u, &["groups", "", "roles & more"]) {
            "" => None,
            g => Some(g.to_string()),
        },
        groups_prefix: Some(value(u, &["-", "oidc:", "& *a", "[x]", "{y}"])),
        signing_algs: match pick(u, &["", "RS256", "RS256,ES256"]) {
            "" => None,
            a => Some(a.to_string()),
        },
        required_claim: (0..u.int_in_range(0..=2u8).unwrap_or(0))
            .map(|_| {
                value(
                    u,
                    &["hd=example.com # not a comment & 'x'", "a=b", "k=v: w"],
                )
            })
            .collect(),
        auth_mode: match pick(u, &["flags", "config", ""]) {
            "" => None,
            m => Some(m.to_string()),
        },
        kubernetes_version: match pick(u, &["", "1.30.0", "1.34.1", "1.28.2"]) {
            "" => None,
            v => Some(v.to_string()),
        },
        ..SettingsInput::default()
    };
    let ca = u.ratio(3u8, 4).unwrap_or(true).then(|| CaBundle {
        local_path: "/tmp/ca.pem".into(),
        pem: "-----BEGIN CERTIFICATE-----\nMIIBfuzz\n-----END CERTIFICATE-----\n".into(),
    });
    let s = OidcSettings::validate(&input, ca).ok()?;
    let mode = s.mode().ok()?;
    let dir = pick(
        u,
        &[
            "/etc/kubernetes/oidc",
            "/etc/kubernetes/pki",
            "/srv/o i d c",
        ],
    );
    let mount = match pick(u, &["oidc", "", "k8s-certs", "ca-certs"]) {
        "" => None,
        name => Some(NodeMount {
            name: name.into(),
            host_path: dir.into(),
            mount_path: dir.into(),
        }),
    };
    Some((apiserver::args(&s, mode, dir), mount))
}

fn managed_flags(text: &str) -> Vec<(String, Option<String>)> {
    let mut flags: Vec<_> = current_flags(text)
        .expect("a patched manifest reads back")
        .into_iter()
        .filter(|(n, _)| apiserver::is_managed_flag(n))
        .collect();
    flags.sort();
    flags
}

fuzz_target!(|data: &[u8]| {
    let (manifest, knobs) = match data.iter().rposition(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Some((args, mount)) = request(knobs) else {
        return;
    };
    let text = String::from_utf8_lossy(manifest);
    let Ok(p) = patch_manifest(&text, &args, mount.as_ref()) else {
        return;
    };
    for doc in serde_yaml_ng::Deserializer::from_str(&p.text) {
        let parsed: Result<serde_yaml_ng::Value, _> = serde::Deserialize::deserialize(doc);
        if let Err(e) = parsed {
            panic!("the patched manifest does not parse: {e}\n{}", p.text);
        }
    }
    let mut want: Vec<(String, Option<String>)> = args
        .iter()
        .map(|a| (a.name.clone(), Some(a.value.clone())))
        .collect();
    want.sort();
    assert_eq!(
        managed_flags(&p.text),
        want,
        "the flags read back differ\n{}",
        p.text
    );
    let again = patch_manifest(&p.text, &args, mount.as_ref()).expect("a second patch succeeds");
    assert!(
        !again.changed,
        "a second patch changed it again:\n{}\n---\n{}",
        p.text, again.text
    );
    // Removal (for `--remove`) may refuse, e.g. a mount name that is not ours; when it does
    // not, none of our flags may be left, and a second removal must change nothing.
    let name = mount.as_ref().map_or("oidc", |m| m.name.as_str());
    if let Ok(r) = remove_oidc(&p.text, name) {
        assert_eq!(
            managed_flags(&r.text),
            [],
            "flags left by remove\n{}",
            r.text
        );
        let again = remove_oidc(&r.text, name).expect("a second removal succeeds");
        assert!(!again.changed, "a second removal changed it:\n{}", r.text);
    }
});
