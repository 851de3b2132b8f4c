use std::fmt;

use crate::Invalid;

/// 사업자등록번호: ten digits whose last is a check digit. Accepted with or
/// without dashes ("124-81-00998"), kept as ten digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BusinessRegistrationNumber(String);

impl BusinessRegistrationNumber {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let digits: String = text.chars().filter(|c| *c != '-').collect();
        if digits.len() != 10 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(Invalid::new(
                "a business registration number is 10 digits, e.g. 124-81-00998",
            ));
        }
        let d: Vec<u32> = digits
            .chars()
            .map(|c| c.to_digit(10).unwrap_or(0))
            .collect();
        const WEIGHTS: [u32; 9] = [1, 3, 7, 1, 3, 7, 1, 3, 5];
        let weighted: u32 = d.iter().zip(WEIGHTS).map(|(digit, w)| digit * w).sum();
        let sum = weighted + (d[8] * 5) / 10;
        let check = (10 - sum % 10) % 10;
        if d[9] != check {
            return Err(Invalid::new(
                "check digit does not match: not a valid business registration number",
            ));
        }
        Ok(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The usual written form, "124-81-00998".
    pub fn dashed(&self) -> String {
        format!("{}-{}-{}", &self.0[..3], &self.0[3..5], &self.0[5..])
    }
}

impl fmt::Display for BusinessRegistrationNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Korean province or metropolitan city as an ISO 3166-2:KR code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Province(&'static str, &'static str);

const PROVINCES: [(&str, &str); 17] = [
    ("KR-11", "Seoul"),
    ("KR-26", "Busan"),
    ("KR-27", "Daegu"),
    ("KR-28", "Incheon"),
    ("KR-29", "Gwangju"),
    ("KR-30", "Daejeon"),
    ("KR-31", "Ulsan"),
    ("KR-50", "Sejong"),
    ("KR-41", "Gyeonggi"),
    ("KR-51", "Gangwon"),
    ("KR-43", "Chungbuk"),
    ("KR-44", "Chungnam"),
    ("KR-52", "Jeonbuk"),
    ("KR-46", "Jeonnam"),
    ("KR-47", "Gyeongbuk"),
    ("KR-48", "Gyeongnam"),
    ("KR-49", "Jeju"),
];

impl Province {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        PROVINCES
            .iter()
            .find(|(code, _)| *code == text)
            .map(|(code, name)| Province(code, name))
            .ok_or_else(|| {
                Invalid::new(
                    "an ISO 3166-2:KR province code such as KR-11 (Seoul) or KR-26 (Busan)",
                )
            })
    }

    pub fn all() -> impl Iterator<Item = Province> {
        PROVINCES.iter().map(|(code, name)| Province(code, name))
    }

    pub fn code(&self) -> &'static str {
        self.0
    }

    pub fn name(&self) -> &'static str {
        self.1
    }
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_digit())
}

/// A product's HS code: exactly six digits (the international subheading).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HsCode(String);

impl HsCode {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let compact: String = text.chars().filter(|c| *c != '.').collect();
        if compact.len() == 6 && all_digits(&compact) && &compact[..2] != "00" {
            Ok(Self(compact))
        } else {
            Err(Invalid::new("an HS code of 6 digits, e.g. 330499"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An HS code stating interest at chapter (2 digits), heading (4) or
/// subheading (6) level.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HsInterest(String);

impl HsInterest {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let compact: String = text.chars().filter(|c| *c != '.').collect();
        if matches!(compact.len(), 2 | 4 | 6) && all_digits(&compact) && &compact[..2] != "00" {
            Ok(Self(compact))
        } else {
            Err(Invalid::new(
                "an HS chapter (2 digits), heading (4) or subheading (6), e.g. 33, 3304 or 330499",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A KSIC industry code, 2 to 5 digits (division to sub-class).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KsicCode(String);

impl KsicCode {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        if (2..=5).contains(&text.len()) && all_digits(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid::new("a KSIC code of 2 to 5 digits, e.g. 20423"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

const LANGUAGES: &str = "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu";

const CURRENCIES: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG";

fn listed(list: &str, code: &str) -> bool {
    !code.is_empty() && !code.contains(' ') && list.split(' ').any(|entry| entry == code)
}

/// ISO 3166-1 alpha-2, upper case ("US", "VN").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode(String);

impl CountryCode {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        if listed(COUNTRIES, text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid::new(
                "an ISO 3166-1 alpha-2 country code in capitals, e.g. US or VN",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// ISO 639-1, lower case ("en", "vi").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LanguageCode(String);

impl LanguageCode {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        if listed(LANGUAGES, text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid::new(
                "an ISO 639-1 language code in lower case, e.g. en or vi",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// ISO 4217, upper case ("KRW", "USD").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CurrencyCode(String);

impl CurrencyCode {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        if listed(CURRENCIES, text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid::new("an ISO 4217 currency code, e.g. KRW or USD"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A non-negative amount in integer minor units of one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub currency: CurrencyCode,
    pub amount_minor: i64,
}

impl Money {
    /// Parses a wire amount; `required_currency` pins the currency where a
    /// rule is defined in one (the growth ladder is in USD).
    pub fn parse(
        money: &onestop_contracts::common::v1::Money,
        required_currency: Option<&str>,
    ) -> Result<Self, Invalid> {
        let currency = CurrencyCode::parse(&money.currency_code)?;
        if let Some(required) = required_currency
            && currency.as_str() != required
        {
            return Err(Invalid::new(format!("must be in {required}")));
        }
        if money.amount_minor < 0 {
            return Err(Invalid::new("must not be negative"));
        }
        Ok(Self {
            currency,
            amount_minor: money.amount_minor,
        })
    }

    pub fn to_proto(&self) -> onestop_contracts::common::v1::Money {
        onestop_contracts::common::v1::Money {
            currency_code: self.currency.as_str().to_owned(),
            amount_minor: self.amount_minor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_numbers_check_their_last_digit() {
        for valid in ["124-81-00998", "1248100998", "107-86-14075", "220-81-62517"] {
            assert!(BusinessRegistrationNumber::parse(valid).is_ok(), "{valid}");
        }
        for invalid in [
            "124-81-00997",
            "1248100999",
            "107-86-14076",
            "12481009",
            "12a8100998",
            "",
        ] {
            assert!(
                BusinessRegistrationNumber::parse(invalid).is_err(),
                "{invalid}"
            );
        }
        let brn = BusinessRegistrationNumber::parse("1248100998").unwrap();
        assert_eq!(brn.as_str(), "1248100998");
        assert_eq!(brn.dashed(), "124-81-00998");
    }

    #[test]
    fn codes_accept_only_their_standard() {
        assert!(Province::parse("KR-49").is_ok());
        assert!(Province::parse("KR-99").is_err());
        assert_eq!(Province::all().count(), 17);
        assert!(HsCode::parse("330499").is_ok());
        assert!(HsCode::parse("3304").is_err());
        assert!(HsInterest::parse("3304").is_ok());
        assert!(HsInterest::parse("330").is_err());
        assert!(KsicCode::parse("20423").is_ok());
        assert!(KsicCode::parse("204231").is_err());
        assert!(CountryCode::parse("VN").is_ok());
        assert!(CountryCode::parse("vn").is_err());
        assert!(CountryCode::parse("XX").is_err());
        assert!(LanguageCode::parse("vi").is_ok());
        assert!(LanguageCode::parse("xx").is_err());
        assert!(CurrencyCode::parse("KRW").is_ok());
        assert!(CurrencyCode::parse("KRW USD").is_err());
    }
}
