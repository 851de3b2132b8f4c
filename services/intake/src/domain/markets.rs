//! The languages business is done in per market, so a need can tell its
//! owner which languages it calls for: mentoring scores an advisor's
//! languages against them (0.20 of the match).

/// The languages an advisor for this need should speak: those of the
/// markets the need is about, or, when it names none, of the markets the
/// company already exports to (a first advisor for a company that names no
/// market yet gets no language requirement). Korean is left out: every
/// advisor speaks it. In the order the markets come, without repeats.
pub fn languages_needed(target_markets: &[String], export_countries: &[String]) -> Vec<String> {
    let markets = if target_markets.is_empty() {
        export_countries
    } else {
        target_markets
    };
    let mut languages: Vec<String> = Vec::new();
    for language in markets
        .iter()
        .flat_map(|market| business_languages(market))
        .filter(|language| **language != "ko")
    {
        if !languages.iter().any(|known| known == language) {
            languages.push((*language).to_owned());
        }
    }
    languages
}

/// ISO 639-1 codes of the languages business is done in, per ISO 3166-1
/// alpha-2 market; the first is the main one. A market not listed calls for
/// no language (rather than a guess).
pub fn business_languages(market: &str) -> &'static [&'static str] {
    match market.to_ascii_uppercase().as_str() {
        "US" | "GB" | "AU" | "NZ" | "IE" | "ZA" | "NG" | "GH" => &["en"],
        "CA" => &["en", "fr"],
        "IN" | "PK" => &["en", "hi"],
        "PH" => &["en", "tl"],
        "SG" => &["en", "zh", "ms"],
        "MY" => &["ms", "en"],
        "HK" => &["zh", "en"],
        "KE" => &["en", "sw"],
        "CN" | "TW" => &["zh"],
        "JP" => &["ja"],
        "VN" => &["vi"],
        "TH" => &["th"],
        "ID" => &["id"],
        "KH" => &["km"],
        "MM" => &["my"],
        "LA" => &["lo"],
        "BD" => &["bn"],
        "MN" => &["mn"],
        "KZ" => &["ru", "kk"],
        "UZ" => &["uz", "ru"],
        "RU" | "BY" | "KG" => &["ru"],
        "DE" | "AT" => &["de"],
        "CH" => &["de", "fr", "it"],
        "FR" => &["fr"],
        "BE" => &["nl", "fr"],
        "NL" => &["nl"],
        "IT" => &["it"],
        "ES" | "MX" | "AR" | "CL" | "CO" | "PE" => &["es"],
        "BR" | "PT" => &["pt"],
        "PL" => &["pl"],
        "CZ" => &["cs"],
        "HU" => &["hu"],
        "RO" => &["ro"],
        "SE" => &["sv"],
        "NO" => &["no"],
        "DK" => &["da"],
        "FI" => &["fi"],
        "TR" => &["tr"],
        "IL" => &["he"],
        "AE" | "SA" | "QA" | "KW" | "EG" | "JO" | "OM" | "BH" => &["ar"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(list: &[&str]) -> Vec<String> {
        list.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn the_need_s_markets_decide_and_the_company_s_exports_stand_in() {
        assert_eq!(
            languages_needed(&codes(&["VN", "US", "CA"]), &codes(&["JP"])),
            codes(&["vi", "en", "fr"])
        );
        assert_eq!(languages_needed(&[], &codes(&["JP", "KR"])), codes(&["ja"]));
        assert!(languages_needed(&[], &[]).is_empty());
        assert!(
            languages_needed(&codes(&["AQ"]), &[]).is_empty(),
            "no guess for a market not listed"
        );
    }
}
