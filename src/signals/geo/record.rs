//! Decoding one record, in any of the shapes [`super`] lists, into
//! [`IpFacts`]. Runs at load only.

use super::{Anonymity, ConnectionType, IpFacts};
use crate::signals::CountryCode;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A record in any of the understood shapes; unknown fields are skipped.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Record {
    country: Option<CountryField>,
    registered_country: Option<CountryField>,
    country_code: Option<String>,
    autonomous_system_number: Option<AsnField>,
    autonomous_system_organization: Option<String>,
    asn: Option<AsnField>,
    as_name: Option<String>,
    is_anonymous: Option<bool>,
    is_anonymous_vpn: Option<bool>,
    is_hosting_provider: Option<bool>,
    is_public_proxy: Option<bool>,
    is_residential_proxy: Option<bool>,
    is_tor_exit_node: Option<bool>,
    connection_type: Option<String>,
    /// GeoIP2 Enterprise keeps the ASN, anonymity and connection type here.
    traits: Option<Box<Record>>,
}

impl Record {
    pub(super) fn into_facts(self, orgs: &mut HashMap<String, Arc<str>>) -> IpFacts {
        let traits = self.traits.map(|t| t.into_facts(orgs)).unwrap_or_default();
        let country = [self.country, self.registered_country]
            .into_iter()
            .flatten()
            .map(|c| c.0)
            .chain([self.country_code])
            .flatten()
            .find_map(|code| country_code(&code));
        let asn = self
            .autonomous_system_number
            .or(self.asn)
            .and_then(|a| a.0)
            .or(traits.asn);
        let as_org = match self.autonomous_system_organization.or(self.as_name) {
            Some(org) if asn.is_some() && !org.is_empty() => Some(intern(orgs, org)),
            _ => traits.as_org,
        };
        let flag = Option::unwrap_or_default;
        let mut anonymous = Anonymity {
            anonymous: flag(self.is_anonymous),
            vpn: flag(self.is_anonymous_vpn),
            hosting: flag(self.is_hosting_provider),
            public_proxy: flag(self.is_public_proxy),
            residential_proxy: flag(self.is_residential_proxy),
            tor_exit: flag(self.is_tor_exit_node),
        };
        anonymous.merge(traits.anonymous);
        let connection = self
            .connection_type
            .as_deref()
            .and_then(ConnectionType::parse)
            .or(traits.connection);
        IpFacts {
            country: country.or(traits.country),
            asn,
            as_org,
            anonymous,
            connection,
        }
    }
}

fn intern(orgs: &mut HashMap<String, Arc<str>>, org: String) -> Arc<str> {
    if let Some(shared) = orgs.get(&org) {
        return shared.clone();
    }
    let shared: Arc<str> = Arc::from(org.as_str());
    orgs.insert(org, shared.clone());
    shared
}

/// An ISO code, or `None` for anything else, including DB-IP's and IPinfo's
/// "ZZ" (unknown / reserved).
fn country_code(code: &str) -> Option<CountryCode> {
    CountryCode::parse(code).filter(|c| c.as_str() != "ZZ")
}

/// `country`: MaxMind's map (its `iso_code` is kept) or, in IPinfo Lite, the
/// country's name (ignored: `country_code` has the code).
struct CountryField(Option<String>);

impl<'de> Deserialize<'de> for CountryField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CountryField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a country map or name")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<CountryField, E> {
                Ok(CountryField(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CountryField, A::Error> {
                let mut iso_code = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "iso_code" {
                        iso_code = Some(map.next_value::<String>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(CountryField(iso_code))
            }
        }
        d.deserialize_any(V)
    }
}

/// An AS number: an integer, or a string such as `"AS64496"` (IPinfo). An
/// unparsable string is "unknown", not a corrupt database.
struct AsnField(Option<u32>);

impl<'de> Deserialize<'de> for AsnField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = AsnField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an AS number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AsnField, E> {
                Ok(AsnField(u32::try_from(v).ok()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AsnField, E> {
                Ok(AsnField(u32::try_from(v).ok()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AsnField, E> {
                let digits = v
                    .strip_prefix("AS")
                    .or_else(|| v.strip_prefix("as"))
                    .unwrap_or(v);
                Ok(AsnField(digits.parse().ok()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zz_is_unknown() {
        assert_eq!(country_code("ZZ"), None);
        assert_eq!(country_code("fr").unwrap().as_str(), "FR");
        assert_eq!(country_code("FRA"), None);
    }
}
