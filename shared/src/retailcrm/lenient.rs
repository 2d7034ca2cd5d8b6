//! Serde helpers for exactly the places where the RetailCRM API is known to vary
//! (API-NOTES §10): `[]` standing for an empty object, numbers that come as an int, a float or a
//! numeric string, ids that come as `""`, and collections that are a map keyed by id or an array.
//!
//! Everything else in the models is strict. Each helper names what it accepts; anything outside
//! that is an error, which `serde_path_to_error` turns into the offending JSON path.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};

/// Money and other amounts: an int, a float, a numeric string or `null`; `""` means absent.
///
/// A float is turned into a `Decimal` through its shortest round-trip text (`1395.16` →
/// `"1395.16"`), never through binary arithmetic, so every value with up to 15 significant
/// digits comes out exactly as written in the body. (serde_json's `arbitrary_precision` would
/// keep the raw text, but it is a workspace-wide switch that changes how untagged and flattened
/// types buffer numbers in every other crate, so it is not used.)
pub(crate) fn opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    d.deserialize_any(DecimalVisitor)
}

struct DecimalVisitor;

impl<'de> Visitor<'de> for DecimalVisitor {
    type Value = Option<Decimal>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, a numeric string or null")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Decimal::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Decimal::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // `Display` for f64 prints the shortest text that round-trips, never an exponent.
        Decimal::from_str(&v.to_string())
            .map(Some)
            .map_err(|_| E::invalid_value(de::Unexpected::Float(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let v = v.trim();
        if v.is_empty() {
            return Ok(None);
        }
        Decimal::from_str(v)
            .or_else(|_| Decimal::from_scientific(v))
            .map(Some)
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Numeric ids that the API sometimes sends as `""` or as a numeric string (`regionId`,
/// `cityId`, … in addresses; API-NOTES §10.3): int, numeric string, `""` or `null` (→ `None`).
pub(crate) fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(IdVisitor)
}

struct IdVisitor;

impl<'de> Visitor<'de> for IdVisitor {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer id, a numeric string, \"\" or null")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v)
            .map(Some)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let v = v.trim();
        if v.is_empty() {
            return Ok(None);
        }
        v.parse()
            .map(Some)
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Objects keyed by code or name that the API sends as `[]` when empty (`customFields`,
/// `properties`, reference dictionaries; API-NOTES §10.1). An object or `null` is accepted, and
/// an array only when it is empty: a non-empty array is a real shape change and is an error.
pub(crate) fn map_or_empty<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: DeserializeOwned,
{
    d.deserialize_any(MapOrEmptyVisitor(PhantomData))
}

struct MapOrEmptyVisitor<V>(PhantomData<V>);

impl<'de, V: DeserializeOwned> Visitor<'de> for MapOrEmptyVisitor<V> {
    type Value = BTreeMap<String, V>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object, or [] for an empty one")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, V>()? {
            // Duplicate keys happen in real bodies (customers-list); the last one wins, as in
            // every other JSON parser the API's clients use.
            out.insert(key, value);
        }
        Ok(out)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        match seq.next_element::<de::IgnoredAny>()? {
            None => Ok(BTreeMap::new()),
            Some(_) => Err(de::Error::invalid_type(de::Unexpected::Seq, &self)),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Collections that come either as an array or as an object keyed by id (`payments`:
/// `{"4326": {...}}` on get/edit, `[...]` on create and in history; API-NOTES §10.2). Both are
/// read into a `Vec` in body order (the key repeats the element's own `id`); `null` → empty.
pub(crate) fn vec_or_map<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    d.deserialize_any(VecOrMapVisitor(PhantomData))
}

struct VecOrMapVisitor<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> Visitor<'de> for VecOrMapVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array, or an object keyed by id")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            out.push(item);
        }
        Ok(out)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some((_key, item)) = map.next_entry::<de::IgnoredAny, T>()? {
            out.push(item);
        }
        Ok(out)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "opt_decimal")]
        amount: Option<Decimal>,
        #[serde(default, deserialize_with = "opt_id")]
        id: Option<i64>,
        #[serde(default, deserialize_with = "map_or_empty")]
        fields: BTreeMap<String, serde_json::Value>,
        #[serde(default, deserialize_with = "vec_or_map")]
        list: Vec<i64>,
    }

    fn probe(json: &str) -> Result<Probe, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn amounts_keep_their_decimal_text() {
        let cases = [
            (r#"{"amount": 1395.16}"#, "1395.16"),
            (r#"{"amount": 1}"#, "1"),
            (r#"{"amount": -1157.1}"#, "-1157.1"),
            (r#"{"amount": "616.16"}"#, "616.16"),
            (r#"{"amount": 0.1}"#, "0.1"),
            (r#"{"amount": 99999999999.99}"#, "99999999999.99"),
        ];
        for (json, want) in cases {
            assert_eq!(
                probe(json).unwrap().amount.unwrap().to_string(),
                want,
                "{json}"
            );
        }
        assert_eq!(probe(r#"{"amount": ""}"#).unwrap().amount, None);
        assert_eq!(probe(r#"{"amount": null}"#).unwrap().amount, None);
        assert!(probe(r#"{"amount": "abc"}"#).is_err());
        assert!(probe(r#"{"amount": true}"#).is_err());
    }

    #[test]
    fn ids_accept_empty_strings_and_numeric_text() {
        assert_eq!(probe(r#"{"id": 73}"#).unwrap().id, Some(73));
        assert_eq!(probe(r#"{"id": "73"}"#).unwrap().id, Some(73));
        assert_eq!(probe(r#"{"id": ""}"#).unwrap().id, None);
        assert!(probe(r#"{"id": "x1"}"#).is_err());
        assert!(probe(r#"{"id": 1.5}"#).is_err());
    }

    #[test]
    fn empty_array_is_an_empty_map_but_a_full_array_is_not() {
        assert!(probe(r#"{"fields": []}"#).unwrap().fields.is_empty());
        assert_eq!(probe(r#"{"fields": {"a": 1}}"#).unwrap().fields.len(), 1);
        assert!(probe(r#"{"fields": [1]}"#).is_err());
    }

    #[test]
    fn keyed_objects_and_arrays_both_become_vectors() {
        assert_eq!(
            probe(r#"{"list": {"7": 7, "3": 3}}"#).unwrap().list,
            vec![7, 3]
        );
        assert_eq!(probe(r#"{"list": [1, 2]}"#).unwrap().list, vec![1, 2]);
        assert!(probe(r#"{"list": {}}"#).unwrap().list.is_empty());
        assert!(probe(r#"{"list": "x"}"#).is_err());
    }
}
