//! Reading the HubSpot simulator back: its contacts compared with VOMO's
//! users field by field, as the default property mapping writes them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use vomo_sync::domain::User;
use vomo_sync::sim::hubspot::{Contact, HubspotSim};

/// Field by field: one live contact per user, each equal to its user.
pub fn assert_contacts_match(sim: &HubspotSim, users: &[User]) {
    let contacts = sim.contacts();
    let by_user: HashMap<&str, &Contact> =
        contacts.iter().filter_map(|c| c.properties.get("vomo_user_id").map(|id| (id.as_str(), c))).collect();
    assert_eq!(by_user.len(), contacts.len(), "one contact per user, each with a vomo_user_id");
    assert_eq!(contacts.len(), users.len());
    for user in users {
        let contact =
            by_user.get(user.id.to_string().as_str()).unwrap_or_else(|| panic!("no contact for {}", user.id));
        let p = |name: &str| contact.properties.get(name).map(String::as_str);
        let instant =
            |name: &str| DateTime::parse_from_rfc3339(p(name).unwrap()).unwrap().with_timezone(&Utc);
        assert_eq!(p("email"), Some(user.email.to_lowercase().as_str()), "user {}", user.id);
        assert_eq!(p("firstname"), Some(user.first_name.as_str()));
        assert_eq!(p("lastname"), Some(user.last_name.as_str()));
        assert_eq!(p("phone"), user.phone.as_deref(), "user {}", user.id);
        assert_eq!(p("address"), user.address.as_deref());
        assert_eq!(p("date_of_birth"), user.birthday.as_deref());
        assert_eq!(p("vomo_gender"), user.gender.as_deref());
        assert_eq!(p("vomo_user_status"), user.user_status.as_deref());
        assert_eq!(p("vomo_membership_status"), user.membership_status.as_deref());
        assert_eq!(p("vomo_membership_role"), user.membership_role.as_deref());
        assert_eq!(instant("vomo_created_at"), user.created_at);
        assert_eq!(instant("vomo_updated_at"), user.updated_at, "user {}", user.id);
    }
}
