//! [`Path`]: typed path parameters, with a small serde deserializer over
//! the parameters matched by the router.

use std::sync::Arc;

use http::request::Parts;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use super::rejection::PathRejection;
use super::FromRequestParts;

/// The parameters the router matched, percent-decoded, in path order.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathParams(pub(crate) Arc<[(Arc<str>, String)]>);

/// Path parameters, deserialized with serde.
///
/// One parameter can be read as a single value (`Path<u32>`, `Path<String>`),
/// several as a tuple in path order or as a struct or map by name. A value
/// that does not parse is a `400`.
///
/// ```
/// use hyperws::{extract::Path, routing::get, Router};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Msg { room: String, id: u64 }
///
/// async fn one(Path(room): Path<String>) -> String { room }
/// async fn two(Path((room, id)): Path<(String, u64)>) -> String { format!("{room}/{id}") }
/// async fn named(Path(msg): Path<Msg>) -> String { format!("{}/{}", msg.room, msg.id) }
///
/// let router: Router = Router::new()
///     .route("/rooms/{room}", get(one))
///     .route("/rooms/{room}/messages/{id}", get(two))
///     .route("/named/{room}/{id}", get(named));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S: Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = PathRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PathRejection> {
        let params = parts
            .extensions
            .get::<PathParams>()
            .ok_or(PathRejection::Missing)?;
        T::deserialize(Params(&params.0))
            .map(Self)
            .map_err(|err| PathRejection::Invalid(err.0))
    }
}

/// Deserializes path parameters as `Path<T>` does (for the fuzz target).
#[cfg(feature = "__fuzz")]
pub(crate) fn deserialize<T: DeserializeOwned>(params: &[(Arc<str>, String)]) -> Result<T, String> {
    T::deserialize(Params(params)).map_err(|err| err.0)
}

/// The deserializer's error: a message for the 400 body.
#[derive(Debug)]
struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        Self(msg.to_string())
    }
}

/// All the parameters: a map by name, a sequence in order, or one value.
struct Params<'a>(&'a [(Arc<str>, String)]);

impl<'a> Params<'a> {
    fn single(&self) -> Result<Value<'a>, Error> {
        match self.0 {
            [(name, value)] => Ok(Value { name, value }),
            params => Err(Error(format!(
                "expected 1 parameter, the route has {}",
                params.len()
            ))),
        }
    }
}

macro_rules! single_value {
    ($($method:ident),+) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.single()?.$method(visitor)
        }
    )+};
}

impl<'de> de::Deserializer<'de> for Params<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_map(de::value::MapDeserializer::new(
            self.0
                .iter()
                .map(|(k, v)| (&**k, Value { name: k, value: v })),
        ))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(de::value::SeqDeserializer::new(
            self.0.iter().map(|(k, v)| Value { name: k, value: v }),
        ))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        if len != self.0.len() {
            return Err(Error(format!(
                "expected {len} parameters, the route has {}",
                self.0.len()
            )));
        }
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.single()?.deserialize_enum(name, variants, visitor)
    }

    single_value!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_identifier,
        deserialize_ignored_any
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }
}

/// One parameter's text, parsed into whatever type is asked for.
#[derive(Clone, Copy)]
struct Value<'a> {
    name: &'a str,
    value: &'a str,
}

impl<'de> IntoDeserializer<'de, Error> for Value<'_> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! parse_value {
    ($($method:ident => $visit:ident: $ty:ty),+ $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.value.parse::<$ty>() {
                Ok(v) => visitor.$visit(v),
                Err(_) => Err(Error(format!(
                    "`{}` is not a valid {} for parameter `{}`",
                    self.value,
                    stringify!($ty),
                    self.name
                ))),
            }
        }
    )+};
}

impl<'de> de::Deserializer<'de> for Value<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str(self.value)
    }

    parse_value!(
        deserialize_bool => visit_bool: bool,
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_i128 => visit_i128: i128,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_u128 => visit_u128: u128,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
        deserialize_char => visit_char: char,
    );

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(IntoDeserializer::<Error>::into_deserializer(self.value))
    }

    forward_to_deserialize_any! {
        str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn params(pairs: &[(&str, &str)]) -> Vec<(Arc<str>, String)> {
        pairs
            .iter()
            .map(|(k, v)| (Arc::from(*k), v.to_string()))
            .collect()
    }

    #[test]
    fn single_tuple_struct_and_map() {
        let p = params(&[("room", "lobby"), ("id", "42")]);
        let (room, id): (String, u64) = Deserialize::deserialize(Params(&p)).unwrap();
        assert_eq!((room.as_str(), id), ("lobby", 42));

        #[derive(Deserialize)]
        struct Named {
            id: u32,
            room: String,
        }
        let named: Named = Deserialize::deserialize(Params(&p)).unwrap();
        assert_eq!((named.id, named.room.as_str()), (42, "lobby"));

        let map: std::collections::HashMap<String, String> =
            Deserialize::deserialize(Params(&p)).unwrap();
        assert_eq!(map["room"], "lobby");

        let one = params(&[("id", "7")]);
        let id: u8 = Deserialize::deserialize(Params(&one)).unwrap();
        assert_eq!(id, 7);
    }

    #[test]
    fn bad_values_say_which_parameter() {
        let p = params(&[("id", "seven")]);
        let err = <u32 as Deserialize>::deserialize(Params(&p)).unwrap_err();
        assert_eq!(err.0, "`seven` is not a valid u32 for parameter `id`");
        let two = params(&[("a", "1"), ("b", "2")]);
        assert!(<u32 as Deserialize>::deserialize(Params(&two)).is_err());
        assert!(<(u32, u32, u32) as Deserialize>::deserialize(Params(&two)).is_err());
    }

    #[test]
    fn enums_from_unit_variants() {
        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(rename_all = "lowercase")]
        enum Kind {
            Text,
            Binary,
        }
        let p = params(&[("kind", "binary")]);
        assert_eq!(
            <Kind as Deserialize>::deserialize(Params(&p)).unwrap(),
            Kind::Binary
        );
    }
}
