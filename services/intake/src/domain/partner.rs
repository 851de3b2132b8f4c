//! Who works with whom: the partners of a company, why, and since when; the
//! company's consent to the one-stop network; what a caller may see of a
//! company. Pure rules; `crate::access` applies them to requests.

use onestop_contracts::intake::v1 as pb;
use onestop_platform::pagination::Page;
use onestop_platform::{Caller, Role, Violations};
use uuid::Uuid;

/// The kind of partner: the partner roles of tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartnerRole {
    Agency,
    Advisor,
    TradeOffice,
}

impl PartnerRole {
    pub fn of(role: Role) -> Option<Self> {
        match role {
            Role::Agency => Some(Self::Agency),
            Role::Advisor => Some(Self::Advisor),
            Role::TradeOffice => Some(Self::TradeOffice),
            Role::Dashboard | Role::Service | Role::Admin => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agency => "agency",
            Self::Advisor => "advisor",
            Self::TradeOffice => "trade_office",
        }
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        [Self::Agency, Self::Advisor, Self::TradeOffice]
            .into_iter()
            .find(|role| role.as_str() == text)
    }

    pub fn from_proto(value: i32) -> Option<Self> {
        match pb::PartnerRole::try_from(value).ok()? {
            pb::PartnerRole::Agency => Some(Self::Agency),
            pb::PartnerRole::Advisor => Some(Self::Advisor),
            pb::PartnerRole::TradeOffice => Some(Self::TradeOffice),
            pb::PartnerRole::Unspecified => None,
        }
    }

    pub fn to_proto(self) -> pb::PartnerRole {
        match self {
            Self::Agency => pb::PartnerRole::Agency,
            Self::Advisor => pb::PartnerRole::Advisor,
            Self::TradeOffice => pb::PartnerRole::TradeOffice,
        }
    }
}

/// One partner: an agency, an advisor or an overseas office.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partner {
    pub role: PartnerRole,
    pub tenant: String,
}

impl Partner {
    /// The partner a token acts for; None for dashboards, services and
    /// admins, which are not partners.
    pub fn of(caller: &Caller) -> Option<Self> {
        Some(Self {
            role: PartnerRole::of(caller.role)?,
            tenant: caller.tenant.clone()?,
        })
    }

    /// The partner as the event feed names it.
    pub fn on_feed(&self) -> onestop_platform::events::Partner {
        let role = match self.role {
            PartnerRole::Agency => Role::Agency,
            PartnerRole::Advisor => Role::Advisor,
            PartnerRole::TradeOffice => Role::TradeOffice,
        };
        onestop_platform::events::Partner {
            role,
            tenant: self.tenant.clone(),
        }
    }

    pub fn agency(id: &str) -> Self {
        Self {
            role: PartnerRole::Agency,
            tenant: id.to_owned(),
        }
    }

    pub fn advisor(id: &str) -> Self {
        Self {
            role: PartnerRole::Advisor,
            tenant: id.to_owned(),
        }
    }

    pub fn trade_office(id: &str) -> Self {
        Self {
            role: PartnerRole::TradeOffice,
            tenant: id.to_owned(),
        }
    }
}

/// Why a partner works with a company.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Registered,
    CaseOpened,
    Referral,
    Advisor,
    BuyerMatch,
    Grant,
}

impl Source {
    const ALL: [Source; 6] = [
        Source::Registered,
        Source::CaseOpened,
        Source::Referral,
        Source::Advisor,
        Source::BuyerMatch,
        Source::Grant,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "REGISTERED",
            Self::CaseOpened => "CASE_OPENED",
            Self::Referral => "REFERRAL",
            Self::Advisor => "ADVISOR",
            Self::BuyerMatch => "BUYER_MATCH",
            Self::Grant => "GRANT",
        }
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|source| source.as_str() == text)
    }

    pub fn to_proto(self) -> pb::RelationshipSource {
        match self {
            Self::Registered => pb::RelationshipSource::Registered,
            Self::CaseOpened => pb::RelationshipSource::CaseOpened,
            Self::Referral => pb::RelationshipSource::Referral,
            Self::Advisor => pb::RelationshipSource::Advisor,
            Self::BuyerMatch => pb::RelationshipSource::BuyerMatch,
            Self::Grant => pb::RelationshipSource::Grant,
        }
    }
}

/// Where one relationship stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Active,
    /// An outgoing advisor during a handover: still works with the company.
    Handover,
    /// History only: gives no access.
    Ended,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Handover => "HANDOVER",
            Self::Ended => "ENDED",
        }
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        [Self::Active, Self::Handover, Self::Ended]
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    pub fn to_proto(self) -> pb::RelationshipState {
        match self {
            Self::Active => pb::RelationshipState::Active,
            Self::Handover => pb::RelationshipState::Handover,
            Self::Ended => pb::RelationshipState::Ended,
        }
    }
}

/// A relationship to record: `partner` works with `company_id` for
/// `source` (and the record `reference` behind it), now in `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    pub company_id: Uuid,
    pub partner: Partner,
    pub source: Source,
    pub reference: String,
    pub state: State,
}

/// The company's consent to share its business profile across the
/// one-stop network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConsent {
    pub terms_version: String,
}

const MAX_TERMS_VERSION: usize = onestop_platform::limits::MAX_SHORT;

impl NetworkConsent {
    /// The consent a registration carries, if any, with violations under
    /// `network_consent`.
    pub fn parse(
        consent: Option<&pb::NetworkConsent>,
        violations: &mut Violations,
    ) -> Option<Self> {
        let consent = consent?;
        match pb::ConsentScope::try_from(consent.scope) {
            Ok(pb::ConsentScope::Unspecified) => {
                if !consent.terms_version.is_empty() {
                    violations.add(
                        "network_consent.scope",
                        "terms_version is set but no scope was given",
                    );
                }
                None
            }
            Ok(pb::ConsentScope::BusinessProfile) => {
                let version = consent.terms_version.trim();
                if version.is_empty()
                    || version.len() > MAX_TERMS_VERSION
                    || version.chars().any(char::is_control)
                {
                    violations.add(
                        "network_consent.terms_version",
                        format!(
                            "the version of the consent terms agreed to, 1 to {MAX_TERMS_VERSION} printable characters"
                        ),
                    );
                    return None;
                }
                Some(Self {
                    terms_version: version.to_owned(),
                })
            }
            Err(_) => {
                violations.add("network_consent.scope", "not a consent scope");
                None
            }
        }
    }
}

/// What a caller sees of a company it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Everything, contacts included: admins and partners that work with
    /// the company now.
    WithContacts,
    /// The business record: services and dashboards, and agencies finding
    /// a consenting company.
    BusinessProfile,
}

/// Whether free text people typed (need details) reaches the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeText {
    Shown,
    /// Dashboards read the numbers, not what people wrote.
    Redacted,
}

impl FreeText {
    pub fn for_caller(caller: &Caller) -> Self {
        if caller.role == Role::Dashboard {
            Self::Redacted
        } else {
            Self::Shown
        }
    }
}

/// What a partner (or internal caller) may read of one company.
/// `works_with` is whether the partner works with it now.
pub fn view_of(caller: &Caller, works_with: bool) -> Option<View> {
    match caller.role {
        Role::Admin => Some(View::WithContacts),
        Role::Service | Role::Dashboard => Some(View::BusinessProfile),
        Role::Agency | Role::Advisor | Role::TradeOffice => {
            works_with.then_some(View::WithContacts)
        }
    }
}

/// Who may find a company by its registration number: anyone who may read
/// it, and any agency when the company consented to the network.
pub fn may_look_up(caller: &Caller, works_with: bool, consented: bool) -> bool {
    view_of(caller, works_with).is_some() || (caller.role == Role::Agency && consented)
}

/// Whether an agency may open a case for a company it does not work with
/// yet, which makes it a partner: only under the company's consent.
pub fn may_open_case_by_consent(caller: &Caller, consented: bool) -> bool {
    caller.role == Role::Agency && consented
}

/// A page of a company's partners.
pub struct PartnerQuery {
    pub company_id: Uuid,
    pub page: Page<(chrono::DateTime<chrono::Utc>, String)>,
}

/// An admin's grant or revocation.
pub struct GrantCommand {
    pub company_id: Uuid,
    pub partner: Partner,
}

const MAX_TENANT: usize = onestop_platform::limits::MAX_LABEL;

fn parse_grant(company_id: &str, role: i32, tenant: &str) -> Result<GrantCommand, Violations> {
    let mut violations = Violations::default();
    let company_id = violations.id("company_id", company_id);
    let role = PartnerRole::from_proto(role);
    if role.is_none() {
        violations.add("role", "AGENCY, ADVISOR or TRADE_OFFICE");
    }
    let tenant = tenant.trim();
    if tenant.is_empty() || tenant.len() > MAX_TENANT || tenant.chars().any(char::is_control) {
        violations.add(
            "tenant",
            format!("the agency, advisor or office id, 1 to {MAX_TENANT} printable characters"),
        );
    }
    violations.finish_with(|| {
        Some(GrantCommand {
            company_id: company_id?,
            partner: Partner {
                role: role?,
                tenant: tenant.to_owned(),
            },
        })
    })
}

impl TryFrom<&pb::GrantPartnerRequest> for GrantCommand {
    type Error = Violations;
    fn try_from(request: &pb::GrantPartnerRequest) -> Result<Self, Violations> {
        parse_grant(&request.company_id, request.role, &request.tenant)
    }
}

impl TryFrom<&pb::RevokePartnerRequest> for GrantCommand {
    type Error = Violations;
    fn try_from(request: &pb::RevokePartnerRequest) -> Result<Self, Violations> {
        parse_grant(&request.company_id, request.role, &request.tenant)
    }
}

impl TryFrom<&pb::ListCompanyPartnersRequest> for PartnerQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListCompanyPartnersRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let company_id = violations.id("company_id", &request.company_id);
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        violations.finish_with(|| {
            Some(PartnerQuery {
                company_id: company_id?,
                page,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, tenant: Option<&str>) -> Caller {
        Caller {
            subject: "t".into(),
            role,
            tenant: tenant.map(str::to_owned),
        }
    }

    /// Appends name a case's partners from their stored rows in SQL
    /// (`store::case_partner_keys_sql`), so a stored role must read as the
    /// feed's role does.
    #[test]
    fn stored_roles_are_spelled_as_the_feed_spells_them() {
        for role in [
            PartnerRole::Agency,
            PartnerRole::Advisor,
            PartnerRole::TradeOffice,
        ] {
            let partner = Partner {
                role,
                tenant: "t".into(),
            };
            assert_eq!(role.as_str(), partner.on_feed().role.as_str());
        }
    }

    #[test]
    fn partners_see_only_companies_they_work_with_and_internal_roles_no_contacts() {
        let kotra = caller(Role::Agency, Some("kotra"));
        assert_eq!(view_of(&kotra, true), Some(View::WithContacts));
        assert_eq!(view_of(&kotra, false), None);
        let office = caller(Role::TradeOffice, Some("kbc-hanoi"));
        assert_eq!(view_of(&office, false), None);
        assert_eq!(
            view_of(&caller(Role::Dashboard, None), false),
            Some(View::BusinessProfile)
        );
        assert_eq!(
            view_of(&caller(Role::Service, None), false),
            Some(View::BusinessProfile)
        );
        assert_eq!(
            view_of(&caller(Role::Admin, None), false),
            Some(View::WithContacts)
        );
    }

    #[test]
    fn only_agencies_find_consenting_companies_they_do_not_work_with() {
        let advisor = caller(Role::Advisor, Some("a1"));
        let agency = caller(Role::Agency, Some("sbc"));
        assert!(may_look_up(&agency, false, true));
        assert!(!may_look_up(&agency, false, false));
        assert!(!may_look_up(&advisor, false, true));
        assert!(may_open_case_by_consent(&agency, true));
        assert!(!may_open_case_by_consent(&advisor, true));
    }

    #[test]
    fn consent_needs_a_terms_version() {
        let mut violations = Violations::default();
        let consent = pb::NetworkConsent {
            scope: pb::ConsentScope::BusinessProfile as i32,
            terms_version: String::new(),
            ..Default::default()
        };
        assert_eq!(NetworkConsent::parse(Some(&consent), &mut violations), None);
        assert!(!violations.is_empty());

        let mut violations = Violations::default();
        let consent = pb::NetworkConsent {
            scope: pb::ConsentScope::BusinessProfile as i32,
            terms_version: "2026-01".into(),
            ..Default::default()
        };
        assert_eq!(
            NetworkConsent::parse(Some(&consent), &mut violations),
            Some(NetworkConsent {
                terms_version: "2026-01".into()
            })
        );
        assert!(violations.is_empty());
        assert_eq!(NetworkConsent::parse(None, &mut violations), None);
    }
}
