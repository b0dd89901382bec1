//! Which HubSpot contact property each VOMO field goes to, the values sent,
//! and the comparison reconciliation uses to find contacts that differ.
//!
//! | VOMO field          | HubSpot property          | kind                     |
//! |---------------------|---------------------------|--------------------------|
//! | `id`                | `vomo_user_id`            | custom, unique (fixed)   |
//! | `email`             | `email`                   | standard                 |
//! | `first_name`        | `firstname`               | standard                 |
//! | `last_name`         | `lastname`                | standard                 |
//! | `phone`             | `phone`                   | standard                 |
//! | `address`           | `address`                 | standard                 |
//! | `birthday`          | `date_of_birth`           | standard (date)          |
//! | `gender`            | `vomo_gender`             | custom                   |
//! | `created_at`        | `vomo_created_at`         | custom (datetime)        |
//! | `updated_at`        | `vomo_updated_at`         | custom (datetime)        |
//! | `user_status`       | `vomo_user_status`        | custom                   |
//! | `membership_status` | `vomo_membership_status`  | custom                   |
//! | `membership_role`   | `vomo_membership_role`    | custom                   |
//! | `full_name`         | (not sent)                | derivable from the names |
//!
//! A customer may move any field but `id` to another property (a
//! `[dest.hubspot.properties]` table such as `phone = "mobilephone"`).
//! Custom properties named `vomo_*` are created by `check`; any other target
//! must already exist in the account.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::domain::User;

/// The unique property contacts are upserted by. Not configurable: it is the
/// identity of every contact this destination owns.
pub const ID_PROPERTY: &str = "vomo_user_id";
/// The group `check` creates for the `vomo_*` properties.
pub const GROUP: &str = "vomo";

/// A VOMO user field that can be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Email,
    FirstName,
    LastName,
    FullName,
    Phone,
    Address,
    Birthday,
    Gender,
    CreatedAt,
    UpdatedAt,
    UserStatus,
    MembershipStatus,
    MembershipRole,
}

/// How a value is stored and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// Compared case-insensitively (HubSpot stores e-mails lower-cased).
    Email,
    /// `YYYY-MM-DD`.
    Date,
    /// ISO 8601; compared as instants.
    DateTime,
}

impl Field {
    pub const ALL: [Field; 13] = [
        Field::Email,
        Field::FirstName,
        Field::LastName,
        Field::FullName,
        Field::Phone,
        Field::Address,
        Field::Birthday,
        Field::Gender,
        Field::CreatedAt,
        Field::UpdatedAt,
        Field::UserStatus,
        Field::MembershipStatus,
        Field::MembershipRole,
    ];

    /// The field's name in VOMO's user shape (and in override tables).
    pub fn name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::FirstName => "first_name",
            Self::LastName => "last_name",
            Self::FullName => "full_name",
            Self::Phone => "phone",
            Self::Address => "address",
            Self::Birthday => "birthday",
            Self::Gender => "gender",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
            Self::UserStatus => "user_status",
            Self::MembershipStatus => "membership_status",
            Self::MembershipRole => "membership_role",
        }
    }

    /// The default HubSpot property; `None` = not sent by default.
    fn default_property(self) -> Option<&'static str> {
        Some(match self {
            Self::Email => "email",
            Self::FirstName => "firstname",
            Self::LastName => "lastname",
            Self::FullName => return None,
            Self::Phone => "phone",
            Self::Address => "address",
            Self::Birthday => "date_of_birth",
            Self::Gender => "vomo_gender",
            Self::CreatedAt => "vomo_created_at",
            Self::UpdatedAt => "vomo_updated_at",
            Self::UserStatus => "vomo_user_status",
            Self::MembershipStatus => "vomo_membership_status",
            Self::MembershipRole => "vomo_membership_role",
        })
    }

    pub fn kind(self) -> Kind {
        match self {
            Self::Email => Kind::Email,
            Self::Birthday => Kind::Date,
            Self::CreatedAt | Self::UpdatedAt => Kind::DateTime,
            _ => Kind::Text,
        }
    }

    /// The user's value; `None` when VOMO has none.
    pub fn value(self, user: &User) -> Option<String> {
        let time = |at: &DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Secs, true);
        match self {
            Self::Email => Some(user.email.clone()),
            Self::FirstName => Some(user.first_name.clone()),
            Self::LastName => Some(user.last_name.clone()),
            Self::FullName => Some(user.full_name.clone()),
            Self::Phone => user.phone.clone(),
            Self::Address => user.address.clone(),
            Self::Birthday => user.birthday.clone(),
            Self::Gender => user.gender.clone(),
            Self::CreatedAt => Some(time(&user.created_at)),
            Self::UpdatedAt => Some(time(&user.updated_at)),
            Self::UserStatus => user.user_status.clone(),
            Self::MembershipStatus => user.membership_status.clone(),
            Self::MembershipRole => user.membership_role.clone(),
        }
        .filter(|v| !v.is_empty())
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A `[dest.hubspot.properties]` table as the configuration carries it:
/// VOMO field name → HubSpot property name. Validated by
/// [`PropertyMap::with_overrides`].
pub type PropertyOverrides = BTreeMap<String, String>;

/// Reads a customer's property mapping: a TOML file holding a
/// `[dest.hubspot.properties]` table (VOMO field → HubSpot property),
/// validated like any override. Every failure names the file.
pub fn read_overrides(path: &std::path::Path) -> Result<PropertyMap, MappingError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        dest: Dest,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Dest {
        hubspot: Section,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        properties: PropertyOverrides,
    }
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| MappingError(format!("cannot read the property mapping {shown}: {e}")))?;
    let file: File = toml::from_str(&text).map_err(|e| {
        MappingError(format!("{shown} is not a `[dest.hubspot.properties]` table: {}", e.message()))
    })?;
    PropertyMap::with_overrides(&file.dest.hubspot.properties)
        .map_err(|e| MappingError(format!("{shown}: {}", e.0)))
}

/// Why a property override table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid HubSpot property mapping: {0}")]
pub struct MappingError(pub String);

/// VOMO field → HubSpot property, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyMap {
    fields: BTreeMap<Field, String>,
}

impl Default for PropertyMap {
    fn default() -> Self {
        let fields =
            Field::ALL.into_iter().filter_map(|f| f.default_property().map(|p| (f, p.to_owned()))).collect();
        Self { fields }
    }
}

/// A HubSpot internal property name: lower-case letters, digits and `_`.
fn valid_property(name: &str) -> bool {
    name.len() <= 100
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl PropertyMap {
    /// The defaults with `overrides` (VOMO field name → HubSpot property
    /// name, as a `[dest.hubspot.properties]` table carries them) applied.
    pub fn with_overrides(overrides: &PropertyOverrides) -> Result<Self, MappingError> {
        let mut map = Self::default();
        for (field, property) in overrides {
            let property = property.trim();
            if field == "id" {
                return Err(MappingError(format!(
                    "`id` always goes to {ID_PROPERTY}; it cannot be remapped"
                )));
            }
            let known = Field::ALL.map(Field::name).join(", ");
            let parsed = Field::parse(field).ok_or_else(|| {
                MappingError(format!("unknown VOMO field {field:?}; known fields: {known}"))
            })?;
            if property.is_empty() {
                return Err(MappingError(format!("{field} maps to an empty HubSpot property name")));
            }
            if !valid_property(property) {
                return Err(MappingError(format!(
                    "{field} → {property:?}: a HubSpot internal name is lower-case letters, digits and _"
                )));
            }
            if property == ID_PROPERTY || property.starts_with("hs_") {
                return Err(MappingError(format!("{field} → {property}: that property is reserved")));
            }
            map.fields.insert(parsed, property.to_owned());
        }
        let mut seen = HashSet::new();
        if let Some((_, twice)) = map.fields.iter().find(|(_, p)| !seen.insert(p.as_str())) {
            return Err(MappingError(format!("two VOMO fields map to the HubSpot property {twice}")));
        }
        Ok(map)
    }

    /// (field, property) pairs in field order.
    pub fn iter(&self) -> impl Iterator<Item = (Field, &str)> {
        self.fields.iter().map(|(f, p)| (*f, p.as_str()))
    }

    /// Every property this map writes, `vomo_user_id` first.
    pub fn property_names(&self) -> Vec<String> {
        let mut names = vec![ID_PROPERTY.to_owned()];
        names.extend(self.fields.values().cloned());
        names
    }

    /// The properties of an upsert: every mapped field, `""` clearing a value
    /// VOMO no longer has.
    pub fn properties(&self, user: &User) -> serde_json::Map<String, Value> {
        let mut map = serde_json::Map::new();
        for (field, property) in self.iter() {
            map.insert(property.to_owned(), Value::String(field.value(user).unwrap_or_default()));
        }
        map
    }

    /// The mapped fields whose HubSpot value differs from the user's.
    pub fn differences(&self, user: &User, stored: &serde_json::Map<String, Value>) -> Vec<Field> {
        self.iter()
            .filter(|(field, property)| {
                let theirs = stored.get(*property).and_then(Value::as_str).filter(|v| !v.is_empty());
                !same(field.kind(), field.value(user).as_deref(), theirs)
            })
            .map(|(field, _)| field)
            .collect()
    }
}

/// Equal as HubSpot stores them: e-mails without case, instants as instants.
fn same(kind: Kind, ours: Option<&str>, theirs: Option<&str>) -> bool {
    match (ours, theirs) {
        (None, None) => true,
        (Some(a), Some(b)) => match kind {
            Kind::Email => a.trim().eq_ignore_ascii_case(b.trim()),
            Kind::DateTime => match (DateTime::parse_from_rfc3339(a), DateTime::parse_from_rfc3339(b)) {
                (Ok(a), Ok(b)) => a.timestamp() == b.timestamp(),
                _ => a == b,
            },
            Kind::Date | Kind::Text => a == b,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user() -> User {
        // Mixed case, to show the email is matched lower-cased.
        User { email: "Ada@Example.org".into(), ..crate::domain::sample_user() }
    }

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_send_every_field_but_the_full_name() {
        let props = PropertyMap::default().properties(&user());
        assert_eq!(props["firstname"], "Ada");
        assert_eq!(props["date_of_birth"], "1815-12-10");
        assert_eq!(props["vomo_updated_at"], "2025-11-19T10:15:00Z");
        assert_eq!(props["address"], "", "an absent value clears the property");
        assert!(!props.values().any(|v| v == "Ada Lovelace"));
        assert_eq!(PropertyMap::default().property_names()[0], ID_PROPERTY);
    }

    #[test]
    fn overrides_are_validated() {
        let map =
            PropertyMap::with_overrides(&overrides(&[("phone", "mobilephone"), ("full_name", "vomo_name")]))
                .unwrap();
        let props = map.properties(&user());
        assert_eq!(props["mobilephone"], "555");
        assert_eq!(props["vomo_name"], "Ada Lovelace");
        assert!(!props.contains_key("phone"));
        for (pairs, says) in [
            (vec![("nickname", "x")], "unknown VOMO field \"nickname\""),
            (vec![("phone", " ")], "empty HubSpot property name"),
            (vec![("phone", "Mobile Phone")], "lower-case letters"),
            (vec![("id", "contact_id")], "cannot be remapped"),
            (vec![("phone", "vomo_user_id")], "reserved"),
            (vec![("phone", "email")], "two VOMO fields map to the HubSpot property email"),
        ] {
            let err = PropertyMap::with_overrides(&overrides(&pairs)).unwrap_err().to_string();
            assert!(err.contains(says), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn an_override_table_comes_from_toml() {
        #[derive(serde::Deserialize)]
        struct Section {
            properties: PropertyOverrides,
        }
        let section: Section = toml::from_str("[properties]\nphone = \"mobilephone\"\n").unwrap();
        let map = PropertyMap::with_overrides(&section.properties).unwrap();
        assert!(map.iter().any(|(f, p)| f == Field::Phone && p == "mobilephone"));
        let typo: Section = toml::from_str("[properties]\nphnoe = \"mobilephone\"\n").unwrap();
        assert!(PropertyMap::with_overrides(&typo.properties).is_err());
    }

    #[test]
    fn differences_follow_hubspot_normalisation() {
        let map = PropertyMap::default();
        let stored = |changes: &[(&str, Value)]| {
            let mut props = map.properties(&user());
            props.insert("email".into(), json!("ada@example.org"));
            props.insert("vomo_updated_at".into(), json!("2025-11-19T10:15:00.000Z"));
            props.insert("address".into(), Value::Null);
            for (k, v) in changes {
                props.insert((*k).to_owned(), v.clone());
            }
            props
        };
        assert!(map.differences(&user(), &stored(&[])).is_empty());
        assert_eq!(map.differences(&user(), &stored(&[("phone", json!("556"))])), vec![Field::Phone]);
        assert_eq!(map.differences(&user(), &stored(&[("address", json!("Main St"))])), vec![Field::Address]);
        let moved = stored(&[("vomo_updated_at", json!("2025-11-19T10:15:01Z"))]);
        assert_eq!(map.differences(&user(), &moved), vec![Field::UpdatedAt]);
    }
}
