//! The simulated HubSpot account (portal): contact properties and property
//! groups, contacts with their unique-value indexes, the archive (recycle
//! bin) and the GDPR-deleted records. Pure data and rules, no IO: the API
//! module turns these results into HubSpot's HTTP answers.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A contact's HubSpot id (`hs_object_id`).
pub type ContactId = u64;

/// HubSpot allows at most this many inputs per batch call.
pub const BATCH_LIMIT: usize = 100;
/// Custom unique-value properties allowed per object (HubSpot: ten).
const UNIQUE_LIMIT: usize = 10;

/// A property definition, in HubSpot's v3 shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyDef {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub field_type: String,
    pub group_name: String,
    #[serde(default)]
    pub has_unique_value: bool,
    #[serde(default)]
    pub hubspot_defined: bool,
    #[serde(default)]
    pub description: String,
    /// Set by HubSpot (`hs_object_id`, `createdate`…); writes are refused.
    #[serde(default, skip_serializing)]
    pub read_only: bool,
}

/// A property group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupDef {
    pub name: String,
    pub label: String,
    #[serde(default)]
    pub display_order: i64,
    #[serde(default)]
    pub archived: bool,
}

/// A stored contact. `properties` holds only set values (a cleared value is
/// removed), normalised the way HubSpot stores them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub id: ContactId,
    pub properties: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A contact removed by a GDPR delete: what the admin surface reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GdprRecord {
    pub id: Option<ContactId>,
    pub email: Option<String>,
}

/// One property value HubSpot refused, as it reports it inside the message
/// of a `VALIDATION_ERROR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyError {
    pub name: String,
    pub code: &'static str,
    pub message: String,
}

/// Why one input of a batch write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    Validation(Vec<PropertyError>),
    /// A unique value (e-mail or a unique custom property) belongs to
    /// another contact.
    Conflict {
        message: String,
    },
    NotFound {
        id: String,
    },
}

impl InputError {
    pub fn category(&self) -> &'static str {
        match self {
            Self::Validation(_) => "VALIDATION_ERROR",
            Self::Conflict { .. } => "CONFLICT",
            Self::NotFound { .. } => "OBJECT_NOT_FOUND",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::Validation(_) => 400,
            Self::Conflict { .. } => 409,
            Self::NotFound { .. } => 404,
        }
    }

    /// HubSpot's message: validation errors carry the per-property list as
    /// JSON text, the way HubSpot embeds it.
    pub fn message(&self) -> String {
        match self {
            Self::Validation(errors) => {
                let list: Vec<Value> = errors
                    .iter()
                    .map(|e| {
                        json!({"isValid": false, "message": e.message, "error": e.code, "name": e.name,
                               "localizedErrorMessage": e.message})
                    })
                    .collect();
                format!("Property values were not valid: {}", Value::Array(list))
            }
            Self::Conflict { message } => message.clone(),
            Self::NotFound { id } => format!("Object not found.  objectId are usually numeric. ({id})"),
        }
    }
}

/// How a batch write finds the contact each input is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `batch/upsert`: by a unique property; created when absent.
    Upsert { id_property: &'a str },
    /// `batch/update`: by HubSpot id (or a unique property); never created.
    Update { id_property: Option<&'a str> },
}

/// One input of a batch write.
#[derive(Debug, Clone)]
pub struct WriteInput {
    pub id: String,
    pub properties: BTreeMap<String, String>,
}

/// The result of one applied input.
#[derive(Debug, Clone)]
pub struct Written {
    pub contact: Contact,
    pub created: bool,
}

/// What to put back when an all-or-nothing batch fails part-way.
struct Undo {
    id: ContactId,
    before: Option<Contact>,
}

/// The account.
#[derive(Debug, Clone, Default)]
pub struct Portal {
    pub properties: BTreeMap<String, PropertyDef>,
    pub groups: BTreeMap<String, GroupDef>,
    pub contacts: BTreeMap<ContactId, Contact>,
    pub archived: BTreeMap<ContactId, Contact>,
    pub gdpr_deleted: Vec<GdprRecord>,
    /// E-mails blocked by a GDPR delete by e-mail that found no contact.
    pub blocklist: Vec<String>,
    /// Unique property → normalised value → contact.
    unique: HashMap<String, HashMap<String, ContactId>>,
    next_id: ContactId,
}

fn standard(name: &str, label: &str, kind: &str, group: &str) -> PropertyDef {
    let field_type = match kind {
        "date" => "date",
        "number" => "number",
        _ => "text",
    };
    PropertyDef {
        name: name.to_owned(),
        label: label.to_owned(),
        kind: kind.to_owned(),
        field_type: field_type.to_owned(),
        group_name: group.to_owned(),
        has_unique_value: false,
        hubspot_defined: true,
        description: String::new(),
        read_only: false,
    }
}

impl Portal {
    /// A fresh account with HubSpot's standard contact properties (the
    /// subset vomo-sync can map to) and groups.
    pub fn new() -> Self {
        let mut portal = Self { next_id: 101, ..Self::default() };
        for (name, label) in [("contactinformation", "Contact information"), ("emailinformation", "Email")] {
            let group =
                GroupDef { name: name.into(), label: label.into(), display_order: 0, archived: false };
            portal.groups.insert(name.into(), group);
        }
        let info = "contactinformation";
        let mut defs = vec![
            standard("email", "Email", "string", info),
            standard("firstname", "First Name", "string", info),
            standard("lastname", "Last Name", "string", info),
            standard("phone", "Phone Number", "string", info),
            standard("mobilephone", "Mobile Phone Number", "string", info),
            standard("address", "Street Address", "string", info),
            standard("city", "City", "string", info),
            standard("zip", "Postal Code", "string", info),
            standard("state", "State/Region", "string", info),
            standard("country", "Country/Region", "string", info),
            standard("company", "Company Name", "string", info),
            standard("jobtitle", "Job Title", "string", info),
            standard("date_of_birth", "Date of birth", "date", info),
        ];
        for (name, label, kind) in [
            ("hs_object_id", "Record ID", "number"),
            ("createdate", "Create Date", "datetime"),
            ("lastmodifieddate", "Last Modified Date", "datetime"),
        ] {
            let mut def = standard(name, label, kind, info);
            def.read_only = true;
            defs.push(def);
        }
        for def in defs {
            portal.properties.insert(def.name.clone(), def);
        }
        portal
    }

    /// Creates a property; `Err((status, category, message))` as HubSpot answers.
    pub fn create_property(&mut self, def: PropertyDef) -> Result<PropertyDef, (u16, &'static str, String)> {
        let invalid = |m: String| Err((400, "VALIDATION_ERROR", m));
        if self.properties.contains_key(&def.name) {
            return Err((
                409,
                "OBJECT_ALREADY_EXISTS",
                format!("Property named '{}' already exists.", def.name),
            ));
        }
        if !valid_name(&def.name) {
            return invalid(format!(
                "Property name '{}' is invalid: use lowercase letters, digits and _",
                def.name
            ));
        }
        if !["string", "number", "date", "datetime", "enumeration", "bool"].contains(&def.kind.as_str()) {
            return invalid(format!("Property type '{}' is not supported", def.kind));
        }
        if !self.groups.contains_key(&def.group_name) {
            return invalid(format!("Property group '{}' does not exist", def.group_name));
        }
        let unique_count = self.properties.values().filter(|p| p.has_unique_value).count();
        if def.has_unique_value && unique_count >= UNIQUE_LIMIT {
            return invalid(format!("Cannot create more than {UNIQUE_LIMIT} unique value properties"));
        }
        let def = PropertyDef { hubspot_defined: false, read_only: false, ..def };
        self.properties.insert(def.name.clone(), def.clone());
        Ok(def)
    }

    pub fn create_group(&mut self, group: GroupDef) -> Result<GroupDef, (u16, &'static str, String)> {
        if self.groups.contains_key(&group.name) {
            let message = format!("Property group named '{}' already exists.", group.name);
            return Err((409, "OBJECT_ALREADY_EXISTS", message));
        }
        if !valid_name(&group.name) {
            return Err((
                400,
                "VALIDATION_ERROR",
                format!("Property group name '{}' is invalid", group.name),
            ));
        }
        self.groups.insert(group.name.clone(), group.clone());
        Ok(group)
    }

    fn is_unique(&self, name: &str) -> bool {
        name == "email" || self.properties.get(name).is_some_and(|p| p.has_unique_value)
    }

    /// The contact holding `value` of the unique property `name`, or, for
    /// `hs_object_id`, the contact with that id.
    pub fn find(&self, name: &str, value: &str) -> Option<ContactId> {
        if name == "hs_object_id" {
            return value.trim().parse().ok().filter(|id| self.contacts.contains_key(id));
        }
        let normalised = if name == "email" { value.trim().to_lowercase() } else { value.to_owned() };
        self.unique.get(name)?.get(&normalised).copied()
    }

    /// Validates and normalises one property write: `Ok(None)` clears it.
    fn normalise(&self, name: &str, value: &str) -> Result<Option<String>, PropertyError> {
        let fail = |code, message: String| Err(PropertyError { name: name.to_owned(), code, message });
        let Some(def) = self.properties.get(name) else {
            return fail("PROPERTY_DOESNT_EXIST", format!("Property \"{name}\" does not exist"));
        };
        if def.read_only {
            return fail(
                "READ_ONLY_VALUE",
                format!("\"{name}\" is a read only property; its value cannot be set."),
            );
        }
        if value.is_empty() {
            return Ok(None);
        }
        if name == "email" {
            return if valid_email(value) {
                Ok(Some(value.trim().to_lowercase()))
            } else {
                fail("INVALID_EMAIL", format!("Email address {value} is invalid"))
            };
        }
        match def.kind.as_str() {
            "date" => parse_date(value).map(Some).ok_or(()).or_else(|()| {
                fail(
                    "INVALID_DATE",
                    format!(
                        "{value} was not a valid date; use YYYY-MM-DD or epoch milliseconds at midnight UTC"
                    ),
                )
            }),
            "datetime" => parse_datetime(value).map(Some).ok_or(()).or_else(|()| {
                fail(
                    "INVALID_DATETIME",
                    format!("{value} was not a valid datetime; use ISO 8601 or epoch milliseconds"),
                )
            }),
            "number" if value.trim().parse::<f64>().is_err() => {
                fail("INVALID_NUMBER", format!("{value} was not a valid number"))
            }
            _ => Ok(Some(value.to_owned())),
        }
    }

    /// Every property of `properties` validated; all refusals at once.
    fn validate(
        &self,
        properties: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, Option<String>>, InputError> {
        let mut values = BTreeMap::new();
        let mut errors = Vec::new();
        for (name, value) in properties {
            match self.normalise(name, value) {
                Ok(v) => {
                    values.insert(name.clone(), v);
                }
                Err(e) => errors.push(e),
            }
        }
        if let Some(email) = values.get("email").and_then(Option::as_ref)
            && self.blocklist.contains(email)
        {
            errors.push(PropertyError {
                name: "email".into(),
                code: "BLOCKLISTED_EMAIL",
                message: format!("Email address {email} was permanently deleted (GDPR) and cannot be used"),
            });
        }
        if errors.is_empty() { Ok(values) } else { Err(InputError::Validation(errors)) }
    }

    /// The first unique value of `values` another contact than `target` holds.
    fn conflict(
        &self,
        target: Option<ContactId>,
        values: &BTreeMap<String, Option<String>>,
    ) -> Option<InputError> {
        for (name, value) in values {
            let Some(value) = value.as_ref().filter(|_| self.is_unique(name)) else { continue };
            let owner = self.unique.get(name).and_then(|m| m.get(value)).copied();
            if let Some(owner) = owner.filter(|o| Some(*o) != target) {
                let message = if name == "email" {
                    format!("Contact already exists. Existing ID: {owner}")
                } else {
                    format!(
                        "A contact with the value \"{value}\" for the unique property \"{name}\" already exists. Existing ID: {owner}"
                    )
                };
                return Some(InputError::Conflict { message });
            }
        }
        None
    }

    /// Applies a batch. `all_or_nothing`: the first failing input undoes
    /// every earlier one and is the batch's only error (HubSpot without
    /// `objectWriteTraceId`); otherwise each input stands alone (207).
    pub fn write_batch(
        &mut self,
        target: Target<'_>,
        inputs: &[WriteInput],
        now: DateTime<Utc>,
        all_or_nothing: bool,
    ) -> Vec<Result<Written, InputError>> {
        let mut undo = Vec::new();
        let mut results = Vec::with_capacity(inputs.len());
        for input in inputs {
            let result = self.write_one(target, input, now, &mut undo);
            let failed = result.is_err();
            results.push(result);
            if failed && all_or_nothing {
                self.rollback(undo);
                return results.into_iter().filter(Result::is_err).collect();
            }
        }
        results
    }

    fn write_one(
        &mut self,
        target: Target<'_>,
        input: &WriteInput,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
    ) -> Result<Written, InputError> {
        let mut properties = input.properties.clone();
        let existing = match target {
            Target::Upsert { id_property } => {
                properties.insert(id_property.to_owned(), input.id.clone());
                self.find(id_property, &input.id)
            }
            Target::Update { id_property } => {
                let found = self.find(id_property.unwrap_or("hs_object_id"), &input.id);
                Some(found.ok_or_else(|| InputError::NotFound { id: input.id.clone() })?)
            }
        };
        let values = self.validate(&properties)?;
        if let Some(conflict) = self.conflict(existing, &values) {
            return Err(conflict);
        }
        let before = existing.and_then(|id| self.contacts.get(&id).cloned());
        let id = existing.unwrap_or_else(|| {
            self.next_id += 1;
            self.next_id
        });
        undo.push(Undo { id, before: before.clone() });
        let mut contact = before.clone().unwrap_or(Contact {
            id,
            properties: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        });
        for (name, value) in values {
            match value {
                Some(v) => contact.properties.insert(name, v),
                None => contact.properties.remove(&name),
            };
        }
        contact.updated_at = now;
        self.remove_contact(id);
        self.insert_contact(contact.clone());
        Ok(Written { contact, created: before.is_none() })
    }

    fn rollback(&mut self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            self.remove_contact(step.id);
            if let Some(before) = step.before {
                self.insert_contact(before);
            }
        }
    }

    /// Adds a contact with its unique values indexed (admin seeding too).
    pub fn insert_contact(&mut self, contact: Contact) {
        for (name, value) in &contact.properties {
            if self.is_unique(name) {
                self.unique.entry(name.clone()).or_default().insert(value.clone(), contact.id);
            }
        }
        self.next_id = self.next_id.max(contact.id);
        self.contacts.insert(contact.id, contact);
    }

    /// Removes a live contact and frees its unique values.
    pub fn remove_contact(&mut self, id: ContactId) -> Option<Contact> {
        let contact = self.contacts.remove(&id)?;
        for (name, value) in &contact.properties {
            if let Some(index) = self.unique.get_mut(name)
                && index.get(value) == Some(&id)
            {
                index.remove(value);
            }
        }
        Some(contact)
    }

    /// A new contact from the admin surface: validated like an API write,
    /// but without scopes or limits. Returns its id.
    pub fn seed_contact(
        &mut self,
        properties: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<ContactId, InputError> {
        let values = self.validate(properties)?;
        if let Some(conflict) = self.conflict(None, &values) {
            return Err(conflict);
        }
        self.next_id += 1;
        let id = self.next_id;
        let properties = values.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
        self.insert_contact(Contact { id, properties, created_at: now, updated_at: now });
        Ok(id)
    }

    /// `batch/archive`: live contacts move to the archive; unknown ids are
    /// ignored (HubSpot answers 204 for them too).
    pub fn archive(&mut self, ids: &[String]) {
        for id in ids {
            let Ok(id) = id.trim().parse::<ContactId>() else { continue };
            if let Some(contact) = self.remove_contact(id) {
                self.archived.insert(id, contact);
            }
        }
    }

    /// GDPR delete by HubSpot id or by e-mail. `false` when nothing matched
    /// an id (404); an unknown e-mail is blocklisted instead.
    pub fn gdpr_delete(&mut self, object_id: &str, id_property: Option<&str>) -> bool {
        let by_email = id_property == Some("email");
        let found = self.find(id_property.unwrap_or("hs_object_id"), object_id);
        match found {
            Some(id) => {
                let contact = self.remove_contact(id);
                self.archived.remove(&id);
                let email = contact.and_then(|c| c.properties.get("email").cloned());
                self.gdpr_deleted.push(GdprRecord { id: Some(id), email });
                true
            }
            None if by_email => {
                let email = object_id.trim().to_lowercase();
                self.blocklist.push(email.clone());
                self.gdpr_deleted.push(GdprRecord { id: None, email: Some(email) });
                true
            }
            None => false,
        }
    }
}

/// A contact as the API renders it: the requested properties (null when
/// unset) plus HubSpot's own.
pub fn render_contact(contact: &Contact, requested: Option<&[String]>) -> Value {
    let mut properties = serde_json::Map::new();
    let own = [
        ("hs_object_id", contact.id.to_string()),
        ("createdate", format_datetime(contact.created_at)),
        ("lastmodifieddate", format_datetime(contact.updated_at)),
    ];
    match requested {
        Some(names) => {
            for name in names {
                let value = contact.properties.get(name).cloned().map_or(Value::Null, Value::String);
                properties.insert(name.clone(), value);
            }
        }
        None => {
            for (name, value) in &contact.properties {
                properties.insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
    for (name, value) in own {
        properties.insert(name.to_owned(), Value::String(value));
    }
    json!({
        "id": contact.id.to_string(),
        "properties": properties,
        "createdAt": format_datetime(contact.created_at),
        "updatedAt": format_datetime(contact.updated_at),
        "archived": false,
    })
}

/// HubSpot's datetime rendering: UTC with milliseconds.
pub fn format_datetime(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn valid_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A plausible address: one `@`, a dotted domain, no spaces.
fn valid_email(value: &str) -> bool {
    let value = value.trim();
    value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !value.contains(char::is_whitespace)
    })
}

/// `YYYY-MM-DD`, or epoch milliseconds at midnight UTC; stored as `YYYY-MM-DD`.
fn parse_date(value: &str) -> Option<String> {
    let value = value.trim();
    if let Ok(ms) = value.parse::<i64>() {
        let at = Utc.timestamp_millis_opt(ms).single()?;
        return (ms % 86_400_000 == 0).then(|| at.format("%Y-%m-%d").to_string());
    }
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?;
    (value.len() == 10).then(|| date.format("%Y-%m-%d").to_string())
}

/// ISO 8601 / RFC 3339, or epoch milliseconds; stored in HubSpot's rendering.
fn parse_datetime(value: &str) -> Option<String> {
    let value = value.trim();
    let at = match value.parse::<i64>() {
        Ok(ms) => Utc.timestamp_millis_opt(ms).single()?,
        Err(_) => DateTime::parse_from_rfc3339(value).ok()?.with_timezone(&Utc),
    };
    Some(format_datetime(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn portal_with_vomo_id() -> Portal {
        let mut portal = Portal::new();
        portal
            .create_group(GroupDef {
                name: "vomo".into(),
                label: "VOMO".into(),
                display_order: 0,
                archived: false,
            })
            .unwrap();
        let def = PropertyDef {
            name: "vomo_user_id".into(),
            label: "VOMO user id".into(),
            kind: "string".into(),
            field_type: "text".into(),
            group_name: "vomo".into(),
            has_unique_value: true,
            hubspot_defined: false,
            description: String::new(),
            read_only: false,
        };
        portal.create_property(def).unwrap();
        portal
    }

    #[test]
    fn values_are_normalised_or_refused() {
        let portal = Portal::new();
        assert_eq!(
            portal.normalise("email", " Ada@Example.ORG").unwrap().as_deref(),
            Some("ada@example.org")
        );
        assert_eq!(portal.normalise("email", "ada@").unwrap_err().code, "INVALID_EMAIL");
        assert_eq!(portal.normalise("date_of_birth", "1815-12-10").unwrap().as_deref(), Some("1815-12-10"));
        assert_eq!(portal.normalise("date_of_birth", "1815-13-10").unwrap_err().code, "INVALID_DATE");
        assert_eq!(portal.normalise("date_of_birth", "0").unwrap().as_deref(), Some("1970-01-01"));
        assert_eq!(portal.normalise("nope", "x").unwrap_err().code, "PROPERTY_DOESNT_EXIST");
        assert_eq!(portal.normalise("hs_object_id", "1").unwrap_err().code, "READ_ONLY_VALUE");
        assert_eq!(portal.normalise("phone", "").unwrap(), None);
    }

    #[test]
    fn all_or_nothing_batches_undo_earlier_inputs() {
        let mut portal = portal_with_vomo_id();
        let now = Utc::now();
        let inputs = vec![
            WriteInput { id: "1".into(), properties: props(&[("email", "a@x.org")]) },
            WriteInput { id: "2".into(), properties: props(&[("email", "bad")]) },
        ];
        let target = Target::Upsert { id_property: "vomo_user_id" };
        let results = portal.write_batch(target, &inputs, now, true);
        assert_eq!(results.len(), 1);
        assert!(portal.contacts.is_empty(), "the first input was undone");
        assert!(portal.find("email", "a@x.org").is_none());
        let results = portal.write_batch(target, &inputs, now, false);
        assert!(results[0].is_ok() && results[1].is_err());
        assert_eq!(portal.contacts.len(), 1);
    }

    #[test]
    fn emails_are_unique_case_insensitively() {
        let mut portal = portal_with_vomo_id();
        let now = Utc::now();
        let existing = portal.seed_contact(&props(&[("email", "Ada@x.org")]), now).unwrap();
        let target = Target::Upsert { id_property: "vomo_user_id" };
        let input = WriteInput { id: "7".into(), properties: props(&[("email", "ada@X.org")]) };
        let result = portal.write_batch(target, &[input], now, false).remove(0);
        let Err(InputError::Conflict { message }) = result else { panic!("{result:?}") };
        assert_eq!(message, format!("Contact already exists. Existing ID: {existing}"));
    }
}
