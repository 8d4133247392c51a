//! The policy file as written: TOML, every table `deny_unknown_fields`, values
//! that need checking kept with their span so errors name the line.

use crate::decision::StepUpMethod;
use crate::request::{Channel, Event};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Reported as `policy_version` in every response.
    pub version: Spanned<String>,
    /// Global shadow switch: every rule is evaluated and reported, none enforced.
    #[serde(default)]
    pub shadow: bool,
    pub scoring: Option<ScoringFile>,
    pub subnet: Option<SubnetFile>,
    pub backoff: Option<BackoffFile>,
    #[serde(default, rename = "limit")]
    pub limits: Vec<LimitFile>,
    pub session: Option<SessionFile>,
    pub account: Option<AccountFile>,
    pub phone: Option<PhoneFile>,
    pub conversion: Option<ConversionFile>,
    #[serde(default, rename = "signal")]
    pub signals: Vec<SignalFile>,
    /// Cost of one code per destination region (`FR = 7`), and `default`.
    pub costs: Option<BTreeMap<String, Spanned<u32>>>,
}

/// `[session]`: verification-session limits (reasons `session.*`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionFile {
    pub max_sends: Option<Spanned<u32>>,
    pub max_code_attempts: Option<Spanned<u32>>,
    pub max_destination_changes: Option<Spanned<u32>>,
    pub code_ttl: Option<Spanned<String>>,
    pub idle_ttl: Option<Spanned<String>>,
    #[serde(default)]
    pub shadow: bool,
}

/// `[account]`: failure lock and unverified sends per account.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountFile {
    pub max_failures: Option<Spanned<u32>>,
    /// Omitted: locked until a help-desk reset.
    pub lock_for: Option<Spanned<String>>,
    pub max_unverified_sends: Option<Spanned<u32>>,
    pub forget_after: Option<Spanned<String>>,
    #[serde(default)]
    pub shadow: bool,
}

/// `[phone]`: unverified sends per number.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneFile {
    pub max_unverified_sends: Option<Spanned<u32>>,
    pub forget_after: Option<Spanned<String>>,
    #[serde(default)]
    pub shadow: bool,
}

/// `[conversion]`: automatic protection of countries and number ranges whose
/// codes stop being verified (reason `conversion.low`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversionFile {
    pub window: Spanned<String>,
    pub min_sends: Spanned<u32>,
    pub min_ratio: Spanned<f64>,
    pub protect_for: Spanned<String>,
    pub prefix_digits: Option<Spanned<u32>>,
    pub action: Spanned<ActionName>,
    pub step_up_methods: Option<Spanned<Vec<Spanned<MethodName>>>>,
    #[serde(default)]
    pub shadow: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringFile {
    pub step_up_at: Spanned<u32>,
    pub block_at: Spanned<u32>,
    #[serde(default)]
    pub step_up_methods: Vec<Spanned<MethodName>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetFile {
    pub ipv4_prefix: Option<Spanned<u32>>,
    pub ipv6_prefix: Option<Spanned<u32>>,
}

/// Declares a rule table: the fields every rule has (identity, scope,
/// consequence) plus its own. Written as a macro because serde's `flatten` would
/// lose both `deny_unknown_fields` and the spans that errors need.
macro_rules! rule_table {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            pub id: Spanned<String>,
            pub events: Option<Spanned<Vec<Spanned<EventName>>>>,
            pub channels: Option<Spanned<Vec<Spanned<ChannelName>>>>,
            pub action: Spanned<ActionName>,
            pub score: Option<Spanned<u32>>,
            pub step_up_methods: Option<Spanned<Vec<Spanned<MethodName>>>>,
            #[serde(default)]
            pub shadow: bool,
            /// Skipped for subjects on the safe list.
            #[serde(default)]
            pub bypassable: bool,
            pub message: Option<Spanned<String>>,
            $($(#[$fm])* pub $field: $ty,)*
        }

        impl $name {
            pub fn common(&self) -> RuleCommon<'_> {
                RuleCommon {
                    id: &self.id,
                    events: self.events.as_ref(),
                    channels: self.channels.as_ref(),
                    action: &self.action,
                    score: self.score.as_ref(),
                    step_up_methods: self.step_up_methods.as_ref(),
                    shadow: self.shadow,
                    bypassable: self.bypassable,
                    message: self.message.as_ref(),
                }
            }
        }
    };
}

/// A view of the fields every rule table has.
pub struct RuleCommon<'a> {
    pub id: &'a Spanned<String>,
    pub events: Option<&'a Spanned<Vec<Spanned<EventName>>>>,
    pub channels: Option<&'a Spanned<Vec<Spanned<ChannelName>>>>,
    pub action: &'a Spanned<ActionName>,
    pub score: Option<&'a Spanned<u32>>,
    pub step_up_methods: Option<&'a Spanned<Vec<Spanned<MethodName>>>>,
    pub shadow: bool,
    pub bypassable: bool,
    pub message: Option<&'a Spanned<String>>,
}

rule_table!(
    /// `[[limit]]`: a keyed GCRA rate limit.
    LimitFile {
        key: Spanned<KeyName>,
        /// `"COUNT/PERIOD"`, e.g. `"5/1h"`, `"100/s"`.
        rate: Spanned<String>,
        /// Requests allowed at once; defaults to COUNT.
        burst: Option<Spanned<u32>>,
        /// `phone_prefix` only: national digits after the calling code.
        prefix_digits: Option<Spanned<u32>>,
        /// `"attempts"` (default) or `"allowed"`.
        count: Option<CountName>,
        /// Weigh each request by the destination's cost (`[costs]`) instead of 1:
        /// a send budget in cost units.
        #[serde(default)]
        cost: bool,
    }
);

rule_table!(
    /// `[[signal]]`: fires when every condition given holds. A condition on a
    /// fact tollgate does not know (no number, no database) never holds.
    SignalFile {
        phone_type: Option<Spanned<Vec<Spanned<NumberTypeName>>>>,
        phone_valid: Option<bool>,
        phone_region_in: Option<Spanned<Vec<Spanned<String>>>>,
        phone_region_not_in: Option<Spanned<Vec<Spanned<String>>>>,
        ip_country_in: Option<Spanned<Vec<Spanned<String>>>>,
        ip_country_not_in: Option<Spanned<Vec<Spanned<String>>>>,
        /// The IP's country differs from the number's region (both known).
        country_mismatch: Option<bool>,
        /// Any of these anonymity flags.
        ip_anonymous: Option<Spanned<Vec<Spanned<AnonymityName>>>>,
        ip_connection: Option<Spanned<Vec<Spanned<ConnectionName>>>>,
        /// In any of these custom network lists (`--ip-list NAME=PATH`).
        ip_list: Option<Spanned<Vec<Spanned<String>>>>,
        /// The IP's ASN is in any of these custom ASN lists (`--asn-list NAME=PATH`).
        asn_list: Option<Spanned<Vec<Spanned<String>>>>,
        /// The IP's ASN is one of these.
        asn_in: Option<Spanned<Vec<u32>>>,
    }
);

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NumberTypeName {
    Mobile,
    FixedLine,
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    Voip,
    Personal,
    Pager,
    Uan,
    Voicemail,
    Unknown,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AnonymityName {
    Anonymous,
    Vpn,
    Hosting,
    PublicProxy,
    ResidentialProxy,
    Tor,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionName {
    Dialup,
    CableDsl,
    Corporate,
    Cellular,
    Satellite,
}

rule_table!(
    /// `[backoff]`: exponential backoff between OTP sends to one number.
    BackoffFile {
        base: Spanned<String>,
        factor: Spanned<f64>,
        cap: Spanned<String>,
        reset_after: Spanned<String>,
    }
);

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyName {
    Ip,
    Subnet,
    Device,
    Account,
    Phone,
    PhonePrefix,
    PhoneCountry,
    Session,
    Tenant,
    Global,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CountName {
    Attempts,
    Allowed,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActionName {
    Block,
    StepUp,
    Score,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EventName {
    OtpSend,
    OtpVerify,
    Login,
    Transaction,
    Registration,
    CredentialChange,
    AccountRecovery,
}

impl From<EventName> for Event {
    fn from(e: EventName) -> Event {
        match e {
            EventName::OtpSend => Event::OtpSend,
            EventName::OtpVerify => Event::OtpVerify,
            EventName::Login => Event::Login,
            EventName::Transaction => Event::Transaction,
            EventName::Registration => Event::Registration,
            EventName::CredentialChange => Event::CredentialChange,
            EventName::AccountRecovery => Event::AccountRecovery,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChannelName {
    Sms,
    Voice,
    Email,
    Whatsapp,
    Push,
}

impl From<ChannelName> for Channel {
    fn from(c: ChannelName) -> Channel {
        match c {
            ChannelName::Sms => Channel::Sms,
            ChannelName::Voice => Channel::Voice,
            ChannelName::Email => Channel::Email,
            ChannelName::Whatsapp => Channel::Whatsapp,
            ChannelName::Push => Channel::Push,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MethodName {
    Captcha,
    EmailOtp,
    KnowledgeFactor,
    ReverseSms,
    PushApproval,
}

impl From<MethodName> for StepUpMethod {
    fn from(m: MethodName) -> StepUpMethod {
        match m {
            MethodName::Captcha => StepUpMethod::Captcha,
            MethodName::EmailOtp => StepUpMethod::EmailOtp,
            MethodName::KnowledgeFactor => StepUpMethod::KnowledgeFactor,
            MethodName::ReverseSms => StepUpMethod::ReverseSms,
            MethodName::PushApproval => StepUpMethod::PushApproval,
        }
    }
}
