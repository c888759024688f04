//! Property tests: any value reads back exactly; no input makes the patcher panic.

use proptest::prelude::*;

use super::*;

fn value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,24}",
        "[-:#'\"@=!&*|>%{}\\[\\], ]{1,8}[a-z]{0,4}",
        "[ -~]{0,6}[\u{e9}\u{4e2d}\u{1f600}\t\u{7f}\u{85}][ -~]{0,6}",
    ]
}

const FILES: [&str; 4] = [
    "012-erkules-v1.15.3-plain.yaml",
    "031-mikolajsemeniuk-v1.30.0-indented.yaml",
    "027-iyerabhi07-v1.27.4-minikube-crlf.yaml",
    "016-brightzheng100-v1.19.1-kind-oidc.yaml",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_values_read_back_exactly(
        values in proptest::collection::vec(value_strategy(), 1..6),
        pick in 0usize..4,
    ) {
        let names = [
            "oidc-issuer-url",
            "oidc-client-id",
            "oidc-username-prefix",
            "oidc-groups-prefix",
            "oidc-required-claim",
            "oidc-required-claim",
        ];
        let args: Vec<Arg> = values
            .iter()
            .zip(names)
            .map(|(v, n)| Arg { name: n.into(), value: v.clone() })
            .collect();
        let before = fixture(FILES[pick]);
        let p = patch_manifest(&before, &args, Some(&node_mount())).unwrap();
        assert_flags(&p.text, &args);
        assert_minimal(&before, &p.text, Some(&node_mount()));
        let again = patch_manifest(&p.text, &args, Some(&node_mount())).unwrap();
        prop_assert!(!again.changed);
    }

    #[test]
    fn any_settings_read_back_exactly(prefix in "[!-~]{1,12}", claim in "[a-z:#@=_-]{1,10}") {
        let s = crate::OidcSettings::validate(
            &crate::SettingsInput {
                username_prefix: Some(prefix.clone()),
                groups_prefix: Some(prefix),
                groups_claim: Some(claim.clone()),
                username_claim: Some(claim),
                ..crate::testutil::input()
            },
            None,
        );
        prop_assume!(s.is_ok());
        let s = s.unwrap();
        let args = apiserver::args(&s, s.mode().unwrap(), NODE_DIR);
        let p = patch_manifest(MINIMAL, &args, None).unwrap();
        assert_flags(&p.text, &args);
        prop_assert!(!patch_manifest(&p.text, &args, None).unwrap().changed);
    }

    #[test]
    fn garbage_never_panics(text in "(?s).{0,300}") {
        let _ = patch_manifest(&text, &flag_args(), Some(&node_mount()));
        let _ = remove_oidc(&text, "k8soidc");
        let _ = current_flags(&text);
        let _ = api_endpoint(&text);
    }

    #[test]
    fn mangled_manifests_never_panic(
        cut in 0usize..3000,
        len in 0usize..40,
        insert in "[ \\-:#\\[\\]\"'\n|>]{0,6}",
    ) {
        let before = fixture("018-mrandhikpurwala-v1.21.4-commented-flags.yaml");
        let floor = |mut i: usize| {
            i = i.min(before.len());
            while !before.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let at = floor(cut);
        let end = floor(at + len);
        let text = format!("{}{insert}{}", &before[..at], &before[end..]);
        if let Ok(p) = patch_manifest(&text, &flag_args(), Some(&node_mount())) {
            assert_flags(&p.text, &flag_args());
            prop_assert!(!patch_manifest(&p.text, &flag_args(), Some(&node_mount())).unwrap().changed);
        }
        let _ = remove_oidc(&text, "k8soidc");
        let _ = api_endpoint(&text);
    }
}
