//! The event types each service writes on its feed: the dotted name on the
//! wire, the aggregate it is about and the payload message it carries.
//!
//! Producers append with these values and consumers match on them, so a
//! misspelt event type does not compile, and a payload of the wrong message
//! type fails the first test that appends it.

/// One kind of event on a feed.
pub trait EventType: Copy + std::fmt::Debug + Send + Sync + 'static {
    /// The wire name, e.g. "company.registered".
    fn name(self) -> &'static str;
    /// The aggregate type events of this kind are about, e.g. "company".
    fn aggregate_type(self) -> &'static str;
    /// Full protobuf name of the payload, e.g. "onestop.intake.v1.CompanyRegistered".
    fn payload_name(self) -> String;
}

macro_rules! event_types {
    (
        $(#[$doc:meta])*
        $enum:ident {
            $( $(#[$vdoc:meta])* $variant:ident = $name:literal on $aggregate:literal carries $payload:ty; )+
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $enum {
            $( $(#[$vdoc])* $variant, )+
        }

        impl $enum {
            pub const ALL: &'static [$enum] = &[$($enum::$variant),+];

            pub const fn name(self) -> &'static str {
                match self { $( $enum::$variant => $name, )+ }
            }

            /// The event type named `name`, if this feed has it.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $( $name => Some($enum::$variant), )+
                    _ => None,
                }
            }
        }

        impl EventType for $enum {
            fn name(self) -> &'static str {
                $enum::name(self)
            }
            fn aggregate_type(self) -> &'static str {
                match self { $( $enum::$variant => $aggregate, )+ }
            }
            fn payload_name(self) -> String {
                match self { $( $enum::$variant => <$payload as prost::Name>::full_name(), )+ }
            }
        }

        impl std::fmt::Display for $enum {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

use crate::mentoring::v1 as mentoring;
use crate::referral::v1 as referral;
use crate::{buyers::v1 as buyers, common::v1 as common, intake::v1 as intake};

event_types! {
    /// Events on intake's feed.
    IntakeEvent {
        CompanyRegistered = "company.registered" on "company" carries intake::CompanyRegistered;
        CompanyUpdated = "company.updated" on "company" carries intake::CompanyUpdated;
        CompanyAssessed = "company.assessed" on "company" carries intake::CompanyAssessed;
        CompanyStageChanged = "company.stage_changed" on "company" carries intake::CompanyStageChanged;
        PersonalDataErased = "company.personal_data_erased" on "company" carries intake::PersonalDataErased;
        PartnerChanged = "company.partner_changed" on "company" carries intake::CompanyPartnerChanged;
        CaseOpened = "case.opened" on "case" carries intake::CaseOpened;
        CaseClosed = "case.closed" on "case" carries intake::CaseClosed;
        NeedOpened = "need.opened" on "case" carries intake::NeedOpened;
        NeedDelivered = "need.delivered" on "case" carries intake::NeedDelivered;
        NeedDeliveryRetried = "need.delivery_retried" on "case" carries intake::NeedDeliveryRetried;
        NeedStatusChanged = "need.status_changed" on "case" carries intake::NeedStatusChanged;
        RequestRaised = "request.raised" on "case_request" carries intake::CaseRequestRaised;
        RequestEscalated = "request.escalated" on "case_request" carries intake::CaseRequestEscalated;
        RequestAnswered = "request.answered" on "case_request" carries intake::CaseRequestAnswered;
        RequestOverdue = "request.overdue" on "case_request" carries intake::CaseRequestOverdue;
        WebhookRegistered = "webhook.endpoint_registered" on "webhook" carries intake::WebhookEndpointChanged;
        WebhookSecretRotated = "webhook.endpoint_secret_rotated" on "webhook" carries intake::WebhookEndpointChanged;
        WebhookDisabled = "webhook.endpoint_disabled" on "webhook" carries intake::WebhookEndpointChanged;
        WebhookEnabled = "webhook.endpoint_enabled" on "webhook" carries intake::WebhookEndpointChanged;
        WebhookDeleted = "webhook.endpoint_deleted" on "webhook" carries intake::WebhookEndpointChanged;
    }
}

event_types! {
    /// Events on mentoring's feed.
    MentoringEvent {
        AdvisorRegistered = "advisor.registered" on "advisor" carries mentoring::AdvisorRegistered;
        AdvisorUpdated = "advisor.updated" on "advisor" carries mentoring::AdvisorUpdated;
        AdvisorDeactivated = "advisor.deactivated" on "advisor" carries mentoring::AdvisorDeactivated;
        AssignmentCreated = "assignment.created" on "assignment" carries mentoring::AssignmentCreated;
        AssignmentWaitlisted = "assignment.waitlisted" on "company" carries mentoring::AssignmentWaitlisted;
        AssignmentReassigned = "assignment.reassigned" on "company" carries mentoring::AssignmentReassigned;
        AssignmentHandoverStarted = "assignment.handover_started" on "assignment" carries mentoring::AssignmentHandoverStarted;
        AssignmentEnded = "assignment.ended" on "assignment" carries mentoring::AssignmentEnded;
        SessionLogged = "session.logged" on "assignment" carries mentoring::SessionLogged;
        ContactOverdue = "contact.overdue" on "assignment" carries mentoring::ContactOverdue;
        FeeCharged = "fee.charged" on "assignment" carries mentoring::FeeCharged;
        RequestWithdrawn = "request.withdrawn" on "company" carries mentoring::AdvisorRequestWithdrawn;
        CadenceChanged = "assignment.cadence_changed" on "assignment" carries mentoring::AssignmentCadenceChanged;
        /// What mentoring erased after intake's erasure of the company.
        PersonalDataErased = "company.personal_data_erased" on "company" carries common::CompanyDataErased;
    }
}

event_types! {
    /// Events on buyers' feed.
    BuyersEvent {
        BuyerRegistered = "buyer.registered" on "buyer" carries buyers::BuyerRegistered;
        BuyerVetted = "buyer.vetted" on "buyer" carries buyers::BuyerVetted;
        MatchProposed = "match.proposed" on "match" carries buyers::MatchProposed;
        MatchAdvanced = "match.advanced" on "match" carries buyers::MatchAdvanced;
        DealRecorded = "deal.recorded" on "match" carries buyers::DealRecorded;
        DealConfirmed = "deal.confirmed" on "match" carries buyers::DealConfirmed;
        DealDisputed = "deal.disputed" on "match" carries buyers::DealDisputed;
        DealConfirmationDue = "deal.confirmation_due" on "match" carries buyers::DealConfirmationDue;
        ConsultationBooked = "consultation.booked" on "match" carries buyers::ConsultationBooked;
        SampleStarted = "sample.started" on "sample_test" carries buyers::SampleTestStarted;
        SampleFeedback = "sample.feedback" on "sample_test" carries buyers::SampleFeedbackRecorded;
        SampleCertificationGap = "sample.certification_gap" on "sample_test" carries buyers::SampleCertificationGap;
        FollowUpDue = "followup.due" on "lead" carries buyers::FollowUpDue;
        LeadReactivation = "lead.reactivation" on "lead" carries buyers::LeadReactivation;
        MarketAccepted = "market.recommendation_accepted" on "buyer_search" carries buyers::MarketRecommendationAccepted;
        FollowUpCompleted = "tradeshow.follow_up_completed" on "buyer_search" carries buyers::TradeShowFollowUpCompleted;
        /// What buyers erased after intake's erasure of the company.
        PersonalDataErased = "company.personal_data_erased" on "company" carries common::CompanyDataErased;
    }
}

event_types! {
    /// Events on referral's feed. Every `referral.*` event carries the
    /// whole referral as it stands after the change.
    ReferralEvent {
        AgencyUpserted = "agency.upserted" on "agency" carries referral::Agency;
        ProgramUpserted = "program.upserted" on "program" carries referral::Program;
        ProgramCapacityChanged = "program.capacity_changed" on "program" carries referral::ProgramCapacityChanged;
        Created = "referral.created" on "referral" carries referral::Referral;
        Routed = "referral.routed" on "referral" carries referral::Referral;
        Unroutable = "referral.unroutable" on "referral" carries referral::Referral;
        Accepted = "referral.accepted" on "referral" carries referral::Referral;
        Declined = "referral.declined" on "referral" carries referral::Referral;
        Rerouted = "referral.rerouted" on "referral" carries referral::Referral;
        SlaBreached = "referral.sla_breached" on "referral" carries referral::Referral;
        Started = "referral.started" on "referral" carries referral::Referral;
        Completed = "referral.completed" on "referral" carries referral::Referral;
        Failed = "referral.failed" on "referral" carries referral::Referral;
        Cancelled = "referral.cancelled" on "referral" carries referral::Referral;
        Exhausted = "referral.exhausted" on "referral" carries referral::Referral;
        /// What referral erased after intake's erasure of the company.
        PersonalDataErased = "company.personal_data_erased" on "company" carries common::CompanyDataErased;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<E: EventType>(all: &[E]) {
        let mut names = std::collections::HashSet::new();
        for event in all {
            assert!(names.insert(event.name()), "{event:?} named twice");
            let (family, rest) = event.name().split_once('.').expect("dotted");
            assert!(!family.is_empty() && !rest.is_empty());
        }
    }

    #[test]
    fn names_are_unique_and_parse_back() {
        check(IntakeEvent::ALL);
        check(MentoringEvent::ALL);
        check(BuyersEvent::ALL);
        check(ReferralEvent::ALL);
        for event in ReferralEvent::ALL {
            assert_eq!(ReferralEvent::parse(event.name()), Some(*event));
        }
        assert_eq!(IntakeEvent::parse("case.openned"), None);
    }

    #[test]
    fn payloads_are_in_the_descriptor_set() {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap();
        let known: std::collections::HashSet<String> = set
            .file
            .iter()
            .flat_map(|file| {
                file.message_type
                    .iter()
                    .map(move |message| format!("{}.{}", file.package(), message.name()))
            })
            .collect();
        let payloads = IntakeEvent::ALL
            .iter()
            .map(|e| e.payload_name())
            .chain(MentoringEvent::ALL.iter().map(|e| e.payload_name()))
            .chain(BuyersEvent::ALL.iter().map(|e| e.payload_name()))
            .chain(ReferralEvent::ALL.iter().map(|e| e.payload_name()));
        for payload in payloads {
            assert!(
                known.contains(&payload),
                "{payload} is not a contract message"
            );
        }
    }
}
