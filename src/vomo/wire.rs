//! VOMO's wire format: the only place its JSON shapes exist. Decoding is
//! tolerant of every spec defect vomo-api.md lists — numbers and ids as
//! strings, `"null"` strings in links, unknown status values, missing optional
//! fields, timestamps with or without fractions — and converts into
//! [`crate::domain`] types. The Projects shapes are in `wire_projects`, which
//! shares the lenient scalar decoders below.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::domain::{User, VomoUserId};

/// `GET /users` envelope.
#[derive(Debug, Deserialize)]
pub struct ListEnvelope {
    pub data: Vec<WireUser>,
    #[serde(default)]
    pub links: Option<Links>,
    pub meta: Meta,
}

#[derive(Debug, Default, Deserialize)]
pub struct Links {
    #[serde(default, deserialize_with = "null_string")]
    pub first: Option<String>,
    #[serde(default, deserialize_with = "null_string")]
    pub last: Option<String>,
    #[serde(default, deserialize_with = "null_string")]
    pub prev: Option<String>,
    #[serde(default, deserialize_with = "null_string")]
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Meta {
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub current_page: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub from: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub to: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub per_page: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub total: u64,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub last_page: Option<u64>,
}

/// `GET /users` envelope with users left undecoded, to read them one by one
/// when the page as a whole does not decode.
#[derive(Debug, Deserialize)]
pub struct LooseListEnvelope {
    pub data: Vec<serde_json::Value>,
    pub meta: Meta,
}

/// Why one listed user could not be read, with what could be.
#[derive(Debug)]
pub struct BadUser {
    pub id: Option<VomoUserId>,
    pub updated_at: Option<DateTime<Utc>>,
    /// The field and the problem, without the value.
    pub reason: String,
    pub raw: String,
}

/// Decodes one listed user; on failure, its id and `updated_at` if readable.
pub fn decode_user(value: serde_json::Value) -> Result<User, BadUser> {
    let raw = value.to_string();
    let id = value.get("id").and_then(|v| lenient_opt_i64(v.clone()).ok().flatten());
    let updated_at = value.get("updated_at").and_then(serde_json::Value::as_str).and_then(parse_vomo_time);
    serde_path_to_error::deserialize::<_, WireUser>(value).map(WireUser::into_user).map_err(|e| BadUser {
        id,
        updated_at,
        reason: describe_error(&e.path().to_string(), e.inner()),
        raw,
    })
}

/// A serde error as a message that names the field and the expected shape
/// but never the value found (it may be an e-mail, a name, a phone):
/// quoted strings and back-quoted scalars are left out.
pub fn describe_error(path: &str, error: &impl fmt::Display) -> String {
    let text = error.to_string();
    let mut clean = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                for inner in chars.by_ref() {
                    if inner == '"' {
                        break;
                    }
                }
                clean.push_str("(value hidden)");
            }
            _ => clean.push(c),
        }
    }
    // serde_json appends "at line L column C", meaningless once the page
    // was split; serde's own scalars in `…` stay (field names, numbers).
    let clean = clean.split(" at line ").next().unwrap_or(&clean).trim().to_owned();
    if path.is_empty() || path == "." { clean } else { format!("field `{path}`: {clean}") }
}

/// A user as VOMO sends it (list or detail shape).
#[derive(Debug, Deserialize)]
pub struct WireUser {
    #[serde(deserialize_with = "lenient_i64")]
    pub id: VomoUserId,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub full_name: Option<String>,
    pub email: String,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub birthday: Option<String>,
    #[serde(default)]
    pub gender: Option<String>,
    #[serde(deserialize_with = "vomo_time")]
    pub created_at: DateTime<Utc>,
    #[serde(deserialize_with = "vomo_time")]
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub user_status: Option<String>,
    #[serde(default)]
    pub membership_status: Option<String>,
    #[serde(default)]
    pub membership_role: Option<String>,
    /// Detail shape only; element shapes are undocumented, so kept as JSON.
    #[serde(default)]
    pub participations: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub profile_field_values: Option<Vec<serde_json::Value>>,
}

impl WireUser {
    pub fn into_user(self) -> User {
        let first_name = self.first_name.unwrap_or_default();
        let last_name = self.last_name.unwrap_or_default();
        let full_name =
            self.full_name.unwrap_or_else(|| format!("{first_name} {last_name}").trim().to_owned());
        User {
            id: self.id,
            first_name,
            last_name,
            full_name,
            email: self.email,
            address: self.address,
            phone: self.phone,
            birthday: self.birthday,
            gender: self.gender,
            created_at: self.created_at,
            updated_at: self.updated_at,
            user_status: self.user_status,
            membership_status: self.membership_status,
            membership_role: self.membership_role,
        }
    }
}

/// `GET /users/{id}` envelope: `{"data": {...}}`, or the bare object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum DetailEnvelope {
    Wrapped { data: WireUser },
    Bare(WireUser),
}

/// `POST /users` success body: `{code, message, data}`.
#[derive(Debug, Deserialize)]
pub struct UpsertEnvelope {
    #[serde(default)]
    pub message: Option<String>,
    pub data: WireUser,
}

/// The body VOMO sends with an error status. Both 422 shapes are accepted:
/// `errors` as a map of field → messages, or as one string.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub errors: Option<ErrorsField>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ErrorsField {
    Fields(BTreeMap<String, OneOrMany>),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    Many(Vec<String>),
    One(String),
}

impl ErrorBody {
    /// Field → messages; a plain-string `errors` lands under `"_"`.
    pub fn field_messages(&self) -> BTreeMap<String, Vec<String>> {
        match &self.errors {
            Some(ErrorsField::Fields(map)) => map
                .iter()
                .map(|(field, msgs)| {
                    let msgs = match msgs {
                        OneOrMany::Many(list) => list.clone(),
                        OneOrMany::One(one) => vec![one.clone()],
                    };
                    (field.clone(), msgs)
                })
                .collect(),
            Some(ErrorsField::Text(text)) => BTreeMap::from([("_".to_owned(), vec![text.clone()])]),
            None => BTreeMap::new(),
        }
    }
}

/// `POST /users` request body (vomo-api.md §5.6). `role` is always sent: VOMO
/// may reset an omitted role to VOLUNTEER.
#[derive(Clone, Serialize)]
pub struct UpsertBody<'a> {
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
    pub birthday: &'a str,
    pub gender: &'a str,
    pub role: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<&'a str>,
}

// ---- lenient scalars -------------------------------------------------------

struct LenientInt;

impl<'de> Visitor<'de> for LenientInt {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer, or an integer in a string")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v).map(Some).map_err(|_| E::custom(format!("integer {v} is out of range")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // 15.0 is 15; anything fractional is not a count or an id.
        if v.fract() == 0.0 && v.abs() < 9e15 {
            #[allow(clippy::cast_possible_truncation)]
            return Ok(Some(v as i64));
        }
        Err(E::custom(format!("{v} is not an integer")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let v = v.trim();
        if v.is_empty() || v == "null" {
            return Ok(None);
        }
        v.parse().map(Some).map_err(|_| E::custom(format!("{v:?} is not an integer")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(LenientInt)
    }
}

pub(super) fn lenient_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(LenientInt)
}

pub(super) fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    lenient_opt_i64(d)?.ok_or_else(|| de::Error::custom("missing integer"))
}

pub(super) fn lenient_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match lenient_opt_i64(d)? {
        Some(v) => u64::try_from(v).map(Some).map_err(|_| de::Error::custom(format!("{v} is negative"))),
        None => Ok(None),
    }
}

pub(super) fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    lenient_opt_u64(d)?.ok_or_else(|| de::Error::custom("missing number"))
}

/// `null`, absent, or the string `"null"` (spec defect audit #6) are all `None`.
fn null_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(d)?;
    Ok(value.filter(|s| s != "null" && !s.is_empty()))
}

pub(super) fn vomo_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(d)?;
    parse_vomo_time(&text).ok_or_else(|| de::Error::custom(format!("{text:?} is not a timestamp")))
}

/// Accepts RFC 3339 with any offset and fraction (`…+00:00`, `….000000Z`) and
/// Laravel's `YYYY-MM-DD HH:MM:SS` (taken as UTC).
pub fn parse_vomo_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok().map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = r#"{"type":"user","id":"8205","first_name":"Ada","last_name":"L","email":"a@x.org",
        "created_at":"2025-11-19T10:15:00+00:00","updated_at":"2025-11-19T10:15:00.000000Z",
        "user_status":"SOMETHING_NEW","phone":null}"#;

    #[test]
    fn tolerant_user_decoding() {
        let user: WireUser = serde_json::from_str(USER).unwrap();
        let user = user.into_user();
        assert_eq!(user.id, 8205);
        assert_eq!(user.full_name, "Ada L");
        assert_eq!(user.user_status.as_deref(), Some("SOMETHING_NEW"));
        assert_eq!(user.phone, None);
        assert_eq!(user.created_at, user.updated_at);
        assert_eq!(parse_vomo_time("2025-11-19 10:15:00"), Some(user.created_at));
    }

    #[test]
    fn meta_numbers_as_strings_and_null_links() {
        let body = format!(
            r#"{{"data":[{USER}],"links":{{"first":"http://h/v1/users?page=1","last":"x","prev":"null","next":null}},
            "meta":{{"current_page":"1","from":"1","to":"1","path":"p","per_page":"15","total":"1"}}}}"#
        );
        let env: ListEnvelope = serde_json::from_str(&body).unwrap();
        assert_eq!(env.meta.total, 1);
        assert_eq!(env.meta.per_page, Some(15));
        assert_eq!(env.meta.last_page, None);
        let links = env.links.unwrap();
        assert_eq!(links.prev, None);
        assert_eq!(links.next, None);
    }

    #[test]
    fn both_error_shapes() {
        let laravel: ErrorBody = serde_json::from_str(
            r#"{"message":"The given data was invalid.","errors":{"email":["The email field is required."],"gender":"bad"}}"#,
        )
        .unwrap();
        let fields = laravel.field_messages();
        assert_eq!(fields["email"], vec!["The email field is required."]);
        assert_eq!(fields["gender"], vec!["bad"]);
        let plain: ErrorBody =
            serde_json::from_str(r#"{"status":"error","message":"Error","errors":"boom"}"#).unwrap();
        assert_eq!(plain.field_messages()["_"], vec!["boom"]);
    }

    #[test]
    fn wrong_types_are_errors_not_panics() {
        assert!(serde_json::from_str::<WireUser>(r#"{"id":"abc","email":"e"}"#).is_err());
        assert!(serde_json::from_str::<WireUser>(r#"{"id":1.5,"email":"e"}"#).is_err());
        assert!(serde_json::from_str::<ListEnvelope>(r#"{"data":[],"meta":{"total":-3}}"#).is_err());
    }
}
