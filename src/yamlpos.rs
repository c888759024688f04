//! Lines of nodes in a YAML document, for errors found after a typed parse (a bad setting in
//! `k8soidc.yaml`, a duplicate host in an inventory): serde_yaml_ng reports where a typed
//! parse failed, so [`line_of`] walks the document again to the node at a path and fails
//! there on purpose, which yields that node's position. A path ending in a key yields the
//! key's line (a list value may start on the next one).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A step of a path into the document.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// `clusters[1].settings.issuer-url`.
pub(crate) fn field_name(path: &[Seg<'_>]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The line of the node at `path` (None: no such node).
pub(crate) fn line_of(text: &str, path: &[Seg<'_>]) -> Option<usize> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    match (Walk { path }).deserialize(de) {
        Ok(()) => None,
        Err(e) if e.to_string().contains(HERE) => e.location().map(|l| l.line()),
        Err(_) => None,
    }
}

const HERE: &str = "k8soidc-here";

/// Walks to `path` and fails at the node there (the deserializer then marks the error with
/// that node's position).
struct Walk<'p, 'a> {
    path: &'p [Seg<'a>],
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// A map key: fails at the key itself when it is the wanted last key of the path.
struct Key<'a> {
    want: Option<&'a str>,
    last: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        // The error must be raised while the key's own node is read to carry its position.
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, k: &str) -> Result<bool, E> {
        let hit = self.want == Some(k);
        if hit && self.last {
            return Err(E::custom(HERE));
        }
        Ok(hit)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<bool, A::Error> {
        while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<bool, A::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HERE)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        let want = match first {
            Seg::Key(k) => Some(*k),
            Seg::Index(_) => None,
        };
        let last = rest.is_empty();
        while let Some(hit) = m.next_key_seed(Key { want, last })? {
            if hit {
                return m.next_value_seed(Walk { path: rest });
            }
            m.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        let mut i = 0;
        loop {
            if matches!(first, Seg::Index(n) if *n == i) {
                return s.next_element_seed(Walk { path: rest }).map(|_| ());
            }
            if s.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
}

impl Walk<'_, '_> {
    fn leaf<E: de::Error>(&self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(HERE))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "defaults:\n  issuer-url: https://idp.example.com\nclusters:\n  - name: a\n    hosts:\n      - h1\n      - h2\n  - name: b\n    hosts: [h3]\n    settings:\n      client-id: x\n      required-claim:\n        - a=b\n";

    #[test]
    fn lines_of_nodes() {
        let at = |p: &[Seg<'_>]| line_of(DOC, p);
        assert_eq!(at(&[Seg::Key("defaults"), Seg::Key("issuer-url")]), Some(2));
        assert_eq!(at(&[Seg::Key("clusters"), Seg::Index(0)]), Some(4));
        let h = |c, i| {
            [
                Seg::Key("clusters"),
                Seg::Index(c),
                Seg::Key("hosts"),
                Seg::Index(i),
            ]
        };
        assert_eq!(at(&h(0, 1)), Some(7));
        assert_eq!(at(&h(1, 0)), Some(9));
        let setting = |k| {
            [
                Seg::Key("clusters"),
                Seg::Index(1),
                Seg::Key("settings"),
                Seg::Key(k),
            ]
        };
        assert_eq!(at(&setting("client-id")), Some(11));
        // The key's line, not the list's first item.
        assert_eq!(at(&setting("required-claim")), Some(12));
        assert_eq!(at(&[Seg::Key("clusters")]), Some(3));
        assert_eq!(at(&h(1, 5)), None);
        assert_eq!(at(&[Seg::Key("nope")]), None);
    }
}
