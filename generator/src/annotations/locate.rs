//! Finding the line and column of a node in an annotations file.
//!
//! Design note: serde_yaml 0.9 keeps no positions in its `Value`, but it does put the
//! position of the node being read into any error a `Deserialize` implementation
//! returns. So a node is located by reading the text again with a seed that walks down
//! the node's path, skipping everything else, and fails on purpose when it arrives; the
//! failure carries libyaml's own line and column. This costs one pass over the text per
//! problem, which is nothing for a file of a few hundred lines, and needs neither a
//! second YAML parser nor a hand-written scanner that would disagree with libyaml on
//! flow mappings, anchors or multi-line scalars.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path into the file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    /// The value under a mapping key.
    Key(String),
    /// A mapping key itself (to report an unknown key where it is written).
    KeyName(String),
    /// An item of a sequence.
    Index(usize),
}

/// Where a node is: the path from the document's root.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct At(pub Vec<Seg>);

impl At {
    /// The value under `key`.
    pub fn key(&self, key: &str) -> Self {
        self.with(Seg::Key(key.to_owned()))
    }

    /// The key `key` itself.
    pub fn key_name(&self, key: &str) -> Self {
        self.with(Seg::KeyName(key.to_owned()))
    }

    /// Item `index`.
    pub fn index(&self, index: usize) -> Self {
        self.with(Seg::Index(index))
    }

    fn with(&self, seg: Seg) -> Self {
        let mut path = self.0.clone();
        path.push(seg);
        Self(path)
    }
}

impl fmt::Display for At {
    /// `groups[1].match.operation`, for messages that name a place.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(key) | Seg::KeyName(key) if i == 0 => write!(f, "{key}")?,
                Seg::Key(key) | Seg::KeyName(key) => write!(f, ".{key}")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

const HERE: &str = "polvo: found";
const MISSING: &str = "polvo: missing";

/// The 1-based line and column of the node at `at`, or of its nearest ancestor that
/// exists; `(1, 1)` when nothing can be located.
pub fn locate(text: &str, at: &At) -> (usize, usize) {
    let mut path = at.0.as_slice();
    loop {
        if let Some(found) = try_locate(text, path) {
            return found;
        }
        match path.split_last() {
            Some((_, parent)) if !parent.is_empty() => path = parent,
            _ => return (1, 1),
        }
    }
}

fn try_locate(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    // The message is prefixed with the YAML path (`service.name: ...`) when not at the root.
    let error = Seek { path }.deserialize(deserializer).err()?;
    if !error.to_string().contains(HERE) {
        return None;
    }
    let location = error.location()?;
    Some((location.line(), location.column()))
}

/// Walks down `path`, failing with [`HERE`] at its end.
struct Seek<'p> {
    path: &'p [Seg],
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        let (key, stop) = match first {
            Seg::Key(key) => (key, false),
            Seg::KeyName(key) => (key, rest.is_empty()),
            Seg::Index(_) => return Err(de::Error::custom(MISSING)),
        };
        while let Some(found) = map.next_key_seed(KeyProbe { key, stop })? {
            if found {
                return map.next_value_seed(Seek { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom(MISSING))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        let Seg::Index(index) = first else {
            return Err(de::Error::custom(MISSING));
        };
        for _ in 0..*index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(MISSING));
            }
        }
        seq.next_element_seed(Seek { path: rest })?;
        Err(de::Error::custom(MISSING))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
}

impl Seek<'_> {
    fn scalar<E: de::Error>(&self) -> Result<(), E> {
        Err(E::custom(if self.path.is_empty() { HERE } else { MISSING }))
    }
}

/// Reads a mapping key: whether it is `key`, failing with [`HERE`] on it when `stop`.
struct KeyProbe<'k> {
    key: &'k str,
    stop: bool,
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<bool, E> {
        self.compare(value)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<bool, E> {
        self.compare(&value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<bool, E> {
        self.compare(&value.to_string())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<bool, E> {
        self.compare(&value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<bool, E> {
        self.compare(&value.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.compare("~")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

impl KeyProbe<'_> {
    fn compare<E: de::Error>(&self, value: &str) -> Result<bool, E> {
        match (value == self.key, self.stop) {
            (true, true) => Err(E::custom(HERE)),
            (found, _) => Ok(found),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "service:\n  name: x\nbuckets:\n  default:\n    limits: [\"1/s\", {rate: 2/s, burst: 3}]\ngroups:\n  - match: {operation: A}\n    cost: 2\n";

    fn at(path: &[Seg]) -> At {
        At(path.to_vec())
    }

    #[test]
    fn finds_values_keys_and_items() {
        let key = |k: &str| Seg::Key(k.into());
        assert_eq!(locate(TEXT, &at(&[key("service"), key("name")])), (2, 9));
        let name = Seg::KeyName("name".into());
        assert_eq!(locate(TEXT, &at(&[key("service"), name])), (2, 3));
        let limits = [key("buckets"), key("default"), key("limits"), Seg::Index(1)];
        assert_eq!(locate(TEXT, &at(&limits)), (5, 21));
        let burst = [&limits[..], &[key("burst")]].concat();
        assert_eq!(locate(TEXT, &at(&burst)), (5, 40));
        let cost = [key("groups"), Seg::Index(0), key("cost")];
        assert_eq!(locate(TEXT, &at(&cost)), (8, 11));
    }

    #[test]
    fn falls_back_to_the_nearest_ancestor() {
        let path = [Seg::Key("service".into()), Seg::Key("nope".into())];
        assert_eq!(locate(TEXT, &at(&path)), (2, 3));
        assert_eq!(locate("", &at(&path)), (1, 1));
    }
}
