//! Change detection (design.md §3.2), as a pure function: what one user read
//! from VOMO means, given what the mapping table says was synced.

use crate::domain::{ContentHash, User};
use crate::store::Mapping;

/// What a read of one user calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The destinations have this version already.
    Unchanged,
    /// The mapping holds a newer version than this read (a slower run read
    /// it earlier): never send the older one.
    Stale,
    /// Anonymised before it was ever sent: remember it, tell nobody.
    ErasedUnsent,
    /// Never synced: `user.created`.
    Created,
    /// Changed, and VOMO moved its `updated_at`: `user.updated`.
    Updated,
    /// Changed while `updated_at` stayed the same (drift only a re-read
    /// finds): `user.updated`.
    Drifted,
    /// Anonymised (`vomodeleteduser…@vomo.org`): `user.deleted` (erasure).
    Deleted,
}

/// Classifies one read user against its mapping.
pub fn classify(user: &User, hash: ContentHash, mapping: Option<&Mapping>) -> Verdict {
    let Some(mapping) = mapping else {
        return if user.is_anonymised() { Verdict::ErasedUnsent } else { Verdict::Created };
    };
    if mapping.vomo_updated_at > user.updated_at {
        return Verdict::Stale;
    }
    if user.is_anonymised() {
        return if mapping.deleted_at.is_none() { Verdict::Deleted } else { Verdict::Unchanged };
    }
    if mapping.content_hash == hash && mapping.deleted_at.is_none() {
        return Verdict::Unchanged;
    }
    if user.updated_at > mapping.vomo_updated_at || mapping.deleted_at.is_some() {
        Verdict::Updated
    } else {
        Verdict::Drifted
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{Duration, TimeZone, Utc};

    use super::*;

    fn user(phone: &str, updated_secs: i64) -> User {
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        User {
            id: 1,
            first_name: "A".into(),
            last_name: "B".into(),
            full_name: "A B".into(),
            email: "a@b.org".into(),
            address: None,
            phone: Some(phone.into()),
            birthday: None,
            gender: None,
            created_at: at,
            updated_at: at + Duration::seconds(updated_secs),
            user_status: None,
            membership_status: None,
            membership_role: None,
        }
    }

    fn mapping_of(u: &User) -> Mapping {
        Mapping {
            vomo_user_id: u.id,
            email: u.email.clone(),
            content_hash: u.content_hash(),
            vomo_updated_at: u.updated_at,
            external_ids: BTreeMap::new(),
            first_synced_at: u.updated_at,
            last_synced_at: u.updated_at,
            deleted_at: None,
        }
    }

    fn verdict(read: &User, synced: Option<&User>) -> Verdict {
        let mapping = synced.map(mapping_of);
        classify(read, read.content_hash(), mapping.as_ref())
    }

    #[test]
    fn the_table_of_verdicts() {
        let v1 = user("1", 0);
        let v2 = user("2", 10);
        let drifted = user("3", 0);
        let mut anonymised = user("555-555-5555", 20);
        anonymised.email = "vomodeleteduser1@vomo.org".into();
        assert_eq!(verdict(&v1, None), Verdict::Created);
        assert_eq!(verdict(&v1, Some(&v1)), Verdict::Unchanged);
        assert_eq!(verdict(&v2, Some(&v1)), Verdict::Updated);
        assert_eq!(verdict(&v1, Some(&v2)), Verdict::Stale, "an older read never overwrites");
        assert_eq!(verdict(&drifted, Some(&v1)), Verdict::Drifted);
        assert_eq!(verdict(&anonymised, Some(&v1)), Verdict::Deleted);
        assert_eq!(verdict(&anonymised, None), Verdict::ErasedUnsent);
        let mut gone = mapping_of(&anonymised);
        gone.deleted_at = Some(anonymised.updated_at);
        assert_eq!(
            classify(&anonymised, anonymised.content_hash(), Some(&gone)),
            Verdict::Unchanged,
            "deleted once"
        );
        let mut returning = mapping_of(&v1);
        returning.deleted_at = Some(v1.updated_at);
        assert_eq!(
            classify(&v2, v2.content_hash(), Some(&returning)),
            Verdict::Updated,
            "a returning user is an update"
        );
    }
}
