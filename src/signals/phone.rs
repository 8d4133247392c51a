//! Phone-number facts: calling code, region, validity, number type, prefix.
//!
//! Parsed once per request with `rlibphonenumber` (a port of Google's
//! libphonenumber with recent metadata). The region matters: +44 7911… is
//! Guernsey (GG), not the United Kingdom.

use super::{CountryCode, SubjectBuf};
use crate::request::E164;
use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::util::{start, syntax};
use regex_automata::{Anchored, MatchKind};
use rlibphonenumber::interfaces::AsOriginal;
use rlibphonenumber::{PhoneNumber, PhoneNumberType, PHONE_NUMBER_UTIL};
use std::sync::{LazyLock, OnceLock};

/// The number plan's view of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberType {
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

impl NumberType {
    pub const ALL: [NumberType; 12] = [
        NumberType::Mobile,
        NumberType::FixedLine,
        NumberType::FixedLineOrMobile,
        NumberType::TollFree,
        NumberType::PremiumRate,
        NumberType::SharedCost,
        NumberType::Voip,
        NumberType::Personal,
        NumberType::Pager,
        NumberType::Uan,
        NumberType::Voicemail,
        NumberType::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NumberType::Mobile => "mobile",
            NumberType::FixedLine => "fixed_line",
            NumberType::FixedLineOrMobile => "fixed_line_or_mobile",
            NumberType::TollFree => "toll_free",
            NumberType::PremiumRate => "premium_rate",
            NumberType::SharedCost => "shared_cost",
            NumberType::Voip => "voip",
            NumberType::Personal => "personal",
            NumberType::Pager => "pager",
            NumberType::Uan => "uan",
            NumberType::Voicemail => "voicemail",
            NumberType::Unknown => "unknown",
        }
    }
}

/// What the number plan says about one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneFacts {
    pub calling_code: u16,
    /// Digits in the calling code (1 to 3).
    pub calling_code_len: u8,
    pub region: Option<CountryCode>,
    pub valid: bool,
    pub number_type: NumberType,
}

/// Facts of a (syntactically valid) E.164 number.
///
/// The number is first read as written: the calling code (the plan's one
/// that its first one to three digits spell) and the national significant
/// number after it. When the plan knows that number's type, those are the
/// facts. Otherwise (an invalid number, a leading zero, a trunk prefix written
/// after the calling code) libphonenumber's full parser decides, as it always
/// did: it also strips trunk prefixes and carrier codes, which is what makes
/// it slow (0.8 µs of regular expressions before typing the number; reading
/// it as written costs a few nanoseconds). Both readings agree wherever the
/// first one finds a valid number, with one known exception: where a trunk
/// prefix is also the start of valid numbers (Belarus: "8", and 810… is
/// premium rate), the parser takes the prefix off an E.164 number that is
/// valid as written, and the digits as written win (tested against the
/// parser on the plan's example numbers of every region and type and on
/// numbers around them). A number invalid as written whose start the parser
/// would not take for a national prefix is invalid for the parser too (it
/// reads the same digits): the parser runs only when that start matches, or
/// where the calling code has no plan (non-geographic codes) or the number
/// cannot be split as written.
///
/// The number's region and type come from the calling code's [`Plans`]:
/// every type pattern of a region in one pass over the digits, the same
/// answer as libphonenumber's pattern-by-pattern typing (tested on the same
/// numbers), for a fraction of the work.
pub fn facts(number: &E164) -> PhoneFacts {
    unparsed(number).unwrap_or_else(|| parsed(number))
}

/// The facts of the number as written, where they are also what
/// libphonenumber's parser would find: a number valid as written, and (for
/// calling codes with a plan) an invalid one whose start the parser would not
/// take for a national prefix, so that it reads the same digits. `None`: the
/// parser decides.
fn unparsed(number: &E164) -> Option<PhoneFacts> {
    let (cc, national) = split(number)?;
    let Some(plans) = plans(cc) else {
        let n = as_written(number)?;
        let number_type = map_type(n.get_type());
        return (number_type != NumberType::Unknown).then(|| of(&n, number_type));
    };
    let (region, number_type) = match plans.type_of(national) {
        Some((plan, t)) => (plan.region, t),
        None => (None, NumberType::Unknown),
    };
    let parser_may_strip = || match plans.national_prefix {
        Some(Some(prefix)) => prefix.is_match(national),
        Some(None) => false,
        None => true,
    };
    if number_type == NumberType::Unknown && parser_may_strip() {
        return None;
    }
    let cc = cc as u16;
    Some(PhoneFacts {
        calling_code: cc,
        calling_code_len: digits_of(cc),
        region,
        valid: number_type != NumberType::Unknown,
        number_type,
    })
}

/// libphonenumber's number descriptions in the order it tries them: the
/// general one first, the special types, then fixed line and mobile.
const GENERAL: usize = 0;
const SPECIAL: [(usize, NumberType); 8] = [
    (1, NumberType::PremiumRate),
    (2, NumberType::TollFree),
    (3, NumberType::SharedCost),
    (4, NumberType::Voip),
    (5, NumberType::Personal),
    (6, NumberType::Pager),
    (7, NumberType::Uan),
    (8, NumberType::Voicemail),
];
const FIXED: usize = 9;
const MOBILE: usize = 10;
const DESCS: usize = 11;

/// One region's number plan, compiled for typing numbers in one pass.
pub struct Plan {
    region: Option<CountryCode>,
    /// The descriptions' patterns (already anchored at both ends) as one
    /// dense DFA that reports every pattern matching: a number is typed by
    /// one table lookup per digit, then the patterns of the state its end
    /// reaches.
    set: dense::DFA<Vec<u32>>,
    /// Per description: its pattern's index in `set`; `None`: no pattern (it
    /// never matches).
    index: [Option<usize>; DESCS],
    /// Per description: its possible lengths as a bit set; `None`: any.
    lengths: [Option<u32>; DESCS],
    same_mobile_and_fixed: bool,
}

/// The regions of one calling code, in libphonenumber's order, each with the
/// leading digits that claim a number for it besides the numbers valid there
/// (`None`: only those).
pub struct Plans {
    regions: Vec<(Option<&'static regex::Regex>, Plan)>,
    /// What the parser may strip from the start of a national number as a
    /// national (trunk) prefix, anchored at the start: the first region's,
    /// whose metadata the parser reads for the calling code. Where it does not
    /// match, the parser's number is the one as written. `Some(None)`: the
    /// region has none; `None`: its pattern could not be read here, and invalid
    /// numbers go to the parser.
    national_prefix: Option<Option<&'static regex::Regex>>,
}

/// A region's DFA larger than this is not built: its calling code keeps
/// libphonenumber's typing. The largest plan takes ~32 KiB (measured by
/// `every_geographic_calling_code_has_a_plan_once_prepared`).
const DFA_LIMIT: usize = 4 << 20;

static PLANS: [OnceLock<Option<Plans>>; 1000] = [const { OnceLock::new() }; 1000];

/// The plans of a calling code's regions (built on first use); `None` for
/// non-geographic codes (+800, +882…), which keep libphonenumber's typing.
fn plans(cc: usize) -> Option<&'static Plans> {
    PLANS.get(cc)?.get_or_init(|| Plans::build(cc)).as_ref()
}

/// Builds every calling code's plans now rather than on the first number of
/// each code (+1's plans, 25 regions, take several milliseconds): `serve` runs
/// it in the background at startup. About a tenth of a second in a release
/// build.
pub fn prepare_plans() {
    for cc in 0..PLANS.len() {
        plans(cc);
    }
}

impl Plans {
    fn build(cc: usize) -> Option<Plans> {
        let util = PHONE_NUMBER_UTIL.as_original();
        let regions = util.get_regions_for_country_calling_code(i32::try_from(cc).ok()?)?;
        let shared = regions.len() > 1;
        let mut plans = Vec::new();
        let mut national_prefix = None;
        for (i, region) in regions.enumerate() {
            let m = util.get_metadata_for_region(region)?;
            if i == 0 {
                national_prefix = m.national_prefix_for_parsing().anchor_start().ok();
            }
            let leading = if shared {
                m.leading_digits().anchor_start().ok()?
            } else {
                None
            };
            // The metadata's types are private to rlibphonenumber: their
            // patterns and lengths are handed over.
            let descs = [
                &m.general_desc,
                &m.premium_rate,
                &m.toll_free,
                &m.shared_cost,
                &m.voip,
                &m.personal_number,
                &m.pager,
                &m.uan,
                &m.voicemail,
                &m.fixed_line,
                &m.mobile,
            ]
            .map(|d| {
                (
                    d.national_number_pattern().pattern_base.as_deref(),
                    d.original.possible_length.as_slice(),
                )
            });
            let same = m.original.same_mobile_and_fixed_line_pattern();
            plans.push((leading, Plan::build(region, &descs, same)?));
        }
        (!plans.is_empty()).then_some(Plans {
            regions: plans,
            national_prefix,
        })
    }

    /// libphonenumber's `getRegionForNumber` then `getNumberType`: the first
    /// region whose leading digits start the number or where it is a valid
    /// number (rlibphonenumber asks both of every region); its type there.
    fn type_of(&self, national: &str) -> Option<(&Plan, NumberType)> {
        if let [(_, plan)] = self.regions.as_slice() {
            return Some((plan, plan.type_of(national)));
        }
        self.regions
            .iter()
            .find_map(|(leading, plan)| match leading {
                Some(re) if re.is_match(national) => Some((plan, plan.type_of(national))),
                _ => {
                    let t = plan.type_of(national);
                    (t != NumberType::Unknown).then_some((plan, t))
                }
            })
    }
}

impl Plan {
    /// From each description's pattern and possible lengths, in [`SPECIAL`]'s
    /// numbering.
    fn build(
        region: rlibphonenumber::Region,
        descs: &[(Option<&str>, &[i32]); DESCS],
        same_mobile_and_fixed: bool,
    ) -> Option<Plan> {
        let mut patterns = Vec::new();
        let mut index = [None; DESCS];
        let mut lengths = [None; DESCS];
        for (i, &(pattern, possible)) in descs.iter().enumerate() {
            match pattern {
                // libphonenumber anchors "^(?:…)$" patterns; anything shorter
                // it treats differently, so such a plan keeps its typing.
                Some(p) if p.starts_with("^(?:") && p.ends_with(")$") => {
                    index[i] = Some(patterns.len());
                    patterns.push(p);
                }
                Some(_) => return None,
                None => {}
            }
            if !possible.is_empty() {
                let bits = possible
                    .iter()
                    .filter(|&&l| (0..32).contains(&l))
                    .fold(0u32, |b, &l| b | 1 << l);
                lengths[i] = Some(bits);
            }
        }
        // Numbers reach the plan as ASCII digits: `\d` needs no Unicode
        // classes (which would multiply the DFA's states).
        let set = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .match_kind(MatchKind::All)
                    .start_kind(StartKind::Anchored)
                    .dfa_size_limit(Some(DFA_LIMIT))
                    .determinize_size_limit(Some(DFA_LIMIT)),
            )
            .syntax(syntax::Config::new().unicode(false))
            .build_many(&patterns)
            .ok()?;
        Some(Plan {
            region: CountryCode::parse(region.as_region_str().as_str()),
            set,
            index,
            lengths,
            same_mobile_and_fixed,
        })
    }

    /// libphonenumber's `getNumberTypeHelper` on a national significant number.
    fn type_of(&self, national: &str) -> NumberType {
        self.decide(national.len(), self.matches(national))
    }

    /// The patterns matching all of `national`, as bits by pattern index.
    /// Every pattern is anchored at both ends, so they can only match where
    /// the digits end: one walk over them, then the end-of-input state's
    /// patterns.
    fn matches(&self, national: &str) -> u32 {
        let dfa = &self.set;
        let Ok(mut state) = dfa.start_state(&start::Config::new().anchored(Anchored::Yes)) else {
            return 0;
        };
        for &b in national.as_bytes() {
            state = dfa.next_state(state, b);
            if dfa.is_dead_state(state) {
                return 0;
            }
        }
        state = dfa.next_eoi_state(state);
        if !dfa.is_match_state(state) {
            return 0;
        }
        (0..dfa.match_len(state)).fold(0, |bits, i| {
            bits | 1 << dfa.match_pattern(state, i).as_usize()
        })
    }

    /// libphonenumber's precedence over the patterns that matched.
    fn decide(&self, len: usize, hits: u32) -> NumberType {
        let is = |i: usize| {
            self.lengths[i].is_none_or(|b| len < 32 && b & (1 << len) != 0)
                && self.index[i].is_some_and(|j| hits & (1 << j) != 0)
        };
        if !is(GENERAL) {
            return NumberType::Unknown;
        }
        if let Some(&(_, t)) = SPECIAL.iter().find(|&&(i, _)| is(i)) {
            return t;
        }
        if is(FIXED) {
            return if self.same_mobile_and_fixed || is(MOBILE) {
                NumberType::FixedLineOrMobile
            } else {
                NumberType::FixedLine
            };
        }
        if !self.same_mobile_and_fixed && is(MOBILE) {
            return NumberType::Mobile;
        }
        NumberType::Unknown
    }
}

/// Calling codes of the number plan, by value.
static CALLING_CODES: LazyLock<[bool; 1000]> = LazyLock::new(|| {
    let mut codes = [false; 1000];
    for cc in PHONE_NUMBER_UTIL.get_supported_calling_codes() {
        if let Some(c) = usize::try_from(cc).ok().filter(|&c| c < 1000) {
            codes[c] = true;
        }
    }
    codes
});

/// The number as written: calling code and national significant number, no
/// leading zero (libphonenumber's "Italian leading zero" is the parser's).
fn split(number: &E164) -> Option<(usize, &str)> {
    let d = number.digits();
    let mut cc = 0usize;
    for (i, &b) in d.as_bytes().iter().enumerate().take(3) {
        cc = cc * 10 + usize::from(b - b'0');
        if CALLING_CODES[cc] {
            let national = &d[i + 1..];
            if national.len() < 2 || national.starts_with('0') {
                return None;
            }
            return Some((cc, national));
        }
    }
    None
}

/// [`split`] as libphonenumber's number.
fn as_written(number: &E164) -> Option<PhoneNumber> {
    let (cc, national) = split(number)?;
    Some(PhoneNumber {
        country_code: cc as i32,
        national_number: national.parse().ok()?,
        ..PhoneNumber::default()
    })
}

fn of(n: &PhoneNumber, number_type: NumberType) -> PhoneFacts {
    let cc = n.country_code as u16;
    PhoneFacts {
        calling_code: cc,
        calling_code_len: digits_of(cc),
        region: n
            .get_region_code()
            .and_then(|r| CountryCode::parse(r.as_region_str().as_str())),
        // libphonenumber's own definition (isValidNumberForRegion on the
        // number's region): its type is known. Asking `is_valid` would match
        // the number against the plan a second time.
        valid: number_type != NumberType::Unknown,
        number_type,
    }
}

/// libphonenumber's parser on the whole string.
fn parsed(number: &E164) -> PhoneFacts {
    match PhoneNumber::parse(number.as_str(), None) {
        Ok(n) => of(&n, map_type(n.get_type())),
        // Syntactically E.164 but not a known calling code (e.g. +999…): keep
        // the first digit as the "calling code" so prefix limits still group it.
        Err(_) => PhoneFacts {
            calling_code: u16::from(number.digits().as_bytes()[0] - b'0'),
            calling_code_len: 1,
            region: None,
            valid: false,
            number_type: NumberType::Unknown,
        },
    }
}

/// The calling code of a region (FR -> 33), from the number plan.
pub fn calling_code_of(region: CountryCode) -> Option<u16> {
    let r = rlibphonenumber::Region::from_code(region.as_str()).ok()?;
    rlibphonenumber::PHONE_NUMBER_UTIL
        .get_country_code_for_region(r)
        .map(|c| c as u16)
}

fn digits_of(cc: u16) -> u8 {
    match cc {
        0..=9 => 1,
        10..=99 => 2,
        _ => 3,
    }
}

fn map_type(t: PhoneNumberType) -> NumberType {
    match t {
        PhoneNumberType::FixedLine => NumberType::FixedLine,
        PhoneNumberType::Mobile => NumberType::Mobile,
        PhoneNumberType::FixedLineOrMobile => NumberType::FixedLineOrMobile,
        PhoneNumberType::TollFree => NumberType::TollFree,
        PhoneNumberType::PremiumRate => NumberType::PremiumRate,
        PhoneNumberType::SharedCost => NumberType::SharedCost,
        PhoneNumberType::VoIP => NumberType::Voip,
        PhoneNumberType::PersonalNumber => NumberType::Personal,
        PhoneNumberType::Pager => NumberType::Pager,
        PhoneNumberType::UAN => NumberType::Uan,
        PhoneNumberType::VoiceMail => NumberType::Voicemail,
        PhoneNumberType::Unknown => NumberType::Unknown,
    }
}

impl PhoneFacts {
    /// `+` + calling code + the first `national_digits` national digits: the
    /// number range that prefix limits count (pumping targets ranges, not single
    /// numbers).
    pub fn prefix<'a>(&self, number: &'a E164, national_digits: u8) -> &'a str {
        let end = 1 + usize::from(self.calling_code_len) + usize::from(national_digits);
        let s = number.as_str();
        &s[..end.min(s.len())]
    }

    /// The subject of phone-country limits: the region when the number plan
    /// names one, otherwise the calling code.
    pub fn country_subject<'a>(&self, buf: &'a mut SubjectBuf) -> &'a [u8] {
        match self.region {
            Some(r) => {
                buf[..2].copy_from_slice(r.as_bytes());
                &buf[..2]
            }
            None => {
                buf[..2].copy_from_slice(&self.calling_code.to_be_bytes());
                buf[2] = b'+';
                &buf[..3]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> PhoneFacts {
        facts(&s.parse().unwrap())
    }

    #[test]
    fn region_calling_code_and_type() {
        let fr = f("+33612345678");
        assert_eq!(fr.calling_code, 33);
        assert_eq!(fr.region.unwrap().as_str(), "FR");
        assert!(fr.valid);
        assert_eq!(fr.number_type, NumberType::Mobile);

        // +44 is shared: 7911 1… and 7781… are Guernsey ranges, 7400… is GB.
        assert_eq!(f("+447400123456").region.unwrap().as_str(), "GB");
        assert_eq!(f("+447911123456").region.unwrap().as_str(), "GG");
        assert_eq!(f("+447781123456").region.unwrap().as_str(), "GG");
    }

    #[test]
    fn valid_is_libphonenumbers_validity() {
        // Numbers of every kind and plenty of invalid ones: scattered digits
        // after calling codes with one region, several regions and none.
        let mut z = 0x2545_f491_4f6c_dd1du64;
        let mut seen = [0; 2];
        for cc in ["1", "7", "33", "44", "49", "61", "262", "800", "882", "999"] {
            for _ in 0..300 {
                z ^= z << 13;
                z ^= z >> 7;
                z ^= z << 17;
                let len = 6 + (z % 8) as usize;
                let digits = format!("{:014}", z % 100_000_000_000_000);
                let s = format!("+{cc}{}", &digits[..len.min(15 - cc.len())]);
                let n: E164 = s.parse().unwrap();
                let expected = PhoneNumber::parse(n.as_str(), None).is_ok_and(|p| p.is_valid());
                assert_eq!(facts(&n).valid, expected, "{s}");
                seen[usize::from(expected)] += 1;
            }
        }
        assert!(seen[0] > 100 && seen[1] > 100, "both kinds tried: {seen:?}");
    }

    /// The plan's example numbers of every region and type, numbers around
    /// them (last digits changed, a trunk prefix or a zero written after the
    /// calling code) and scattered digits after every calling code.
    fn plan_numbers() -> Vec<String> {
        use rlibphonenumber::{PhoneNumberFormat, PHONE_NUMBER_UTIL};
        let util = &*PHONE_NUMBER_UTIL;
        let types = [
            PhoneNumberType::FixedLine,
            PhoneNumberType::Mobile,
            PhoneNumberType::FixedLineOrMobile,
            PhoneNumberType::TollFree,
            PhoneNumberType::PremiumRate,
            PhoneNumberType::SharedCost,
            PhoneNumberType::VoIP,
            PhoneNumberType::PersonalNumber,
            PhoneNumberType::Pager,
            PhoneNumberType::UAN,
            PhoneNumberType::VoiceMail,
        ];
        let mut examples = Vec::new();
        for region in util.get_supported_regions() {
            for t in types {
                if let Ok(n) = util.get_example_number_for_type_and_region(region, t) {
                    examples.push(n);
                }
            }
        }
        for cc in util.get_supported_global_network_calling_codes() {
            if let Ok(n) = util.get_example_number_for_non_geo_entity(cc) {
                examples.push(n);
            }
        }
        assert!(examples.len() > 1000, "{} examples", examples.len());
        let mut z = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            z ^= z << 13;
            z ^= z >> 7;
            z ^= z << 17;
            z
        };
        let mut out = Vec::new();
        for n in &examples {
            let e164 = n.format_as(PhoneNumberFormat::E164).into_owned();
            let cc = n.country_code.to_string();
            let national = &e164[1 + cc.len()..];
            for k in 1..=4usize.min(national.len()) {
                for _ in 0..3 {
                    let tail = format!("{:04}", next() % 10_000);
                    let keep = &national[..national.len() - k];
                    out.push(format!("+{cc}{keep}{}", &tail[4 - k..]));
                }
            }
            for trunk in ["0", "1", "8", "9", "00", "15"] {
                let s = format!("+{cc}{trunk}{national}");
                if s.len() <= 16 {
                    out.push(s);
                }
            }
            out.push(e164);
        }
        for cc in util.get_supported_calling_codes() {
            for _ in 0..40 {
                let len = 2 + (next() % 13) as usize;
                let digits = format!("{:015}", next() % 1_000_000_000_000_000);
                let s = format!("+{cc}{}", &digits[..len.min(15 - cc.to_string().len())]);
                out.push(s);
            }
        }
        out
    }

    #[test]
    fn the_number_as_written_agrees_with_the_parser() {
        let (mut fast, mut total, mut invalid_unparsed) = (0, 0, 0);
        let mut numbers = plan_numbers();
        // Belarus: 810… is premium rate, and "8" is also its trunk prefix.
        numbers.extend((0..200).map(|i| format!("+375810{:07}", i * 49_999 % 10_000_000)));
        for s in numbers {
            let Ok(n) = s.parse::<E164>() else { continue };
            total += 1;
            let by_parser = parsed(&n);
            let written = as_written(&n).filter(|p| map_type(p.get_type()) != NumberType::Unknown);
            fast += usize::from(written.is_some());
            invalid_unparsed += usize::from(unparsed(&n).is_some_and(|f| !f.valid));
            if facts(&n) == by_parser {
                continue;
            }
            // They differ only where the parser takes a trunk prefix off a
            // number that is valid as written: the parser's number is another
            // one than the digits say.
            let w = written.unwrap_or_else(|| panic!("{s}: {:?} vs {by_parser:?}", facts(&n)));
            let p = PhoneNumber::parse(&s, None).unwrap();
            assert!(
                (p.country_code, p.national_number) != (w.country_code, w.national_number),
                "{s}: the parser read the same number and still disagreed"
            );
            assert!(
                s.starts_with("+3758"),
                "{s}: a disagreement outside Belarus's 8"
            );
        }
        // Both readings were exercised: most plan numbers are read as written,
        // and thousands went to the parser.
        assert!(fast > 10_000 && total - fast > 5_000, "{fast} of {total}");
        // Invalid numbers were decided without the parser too (and agreed).
        assert!(
            invalid_unparsed > 2_000,
            "{invalid_unparsed} invalid, unparsed"
        );
        eprintln!(
            "{fast} valid as written, {invalid_unparsed} invalid without the parser, of {total}"
        );
    }

    #[test]
    fn the_one_pass_plan_types_numbers_as_libphonenumber_does() {
        let (mut planned, mut shared, mut unplanned) = (0, 0, 0);
        let mut seen = [0usize; NumberType::ALL.len()];
        for s in plan_numbers() {
            let Ok(n) = s.parse::<E164>() else { continue };
            let Some((cc, national)) = split(&n) else {
                continue;
            };
            let written = as_written(&n).unwrap();
            let Some(plans) = plans(cc) else {
                unplanned += 1;
                continue;
            };
            planned += 1;
            shared += usize::from(plans.regions.len() > 1);
            let found = plans.type_of(national);
            let t = found.map_or(NumberType::Unknown, |(_, t)| t);
            assert_eq!(t, map_type(written.get_type()), "{s}");
            seen[NumberType::ALL.iter().position(|x| *x == t).unwrap()] += 1;
            let region = written
                .get_region_code()
                .and_then(|r| CountryCode::parse(r.as_region_str().as_str()));
            assert_eq!(found.and_then(|(p, _)| p.region), region, "{s}");
        }
        // Calling codes of one region and shared ones (+1, +7, +44…) were
        // both met; only non-geographic codes keep libphonenumber's typing.
        assert!(
            planned > 25_000 && shared > 5_000 && unplanned > 50,
            "{planned} planned ({shared} of shared codes), {unplanned} not"
        );
        // Every type was met, Unknown included (numbers around the examples).
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    }

    #[test]
    fn every_geographic_calling_code_has_a_plan_once_prepared() {
        let util = &*PHONE_NUMBER_UTIL;
        let global: Vec<i32> = util.get_supported_global_network_calling_codes().collect();
        prepare_plans();
        let (mut codes, mut largest) = (0, 0);
        for cc in util.get_supported_calling_codes() {
            if global.contains(&cc) {
                continue;
            }
            // Built by `prepare_plans`, not on this lookup.
            let plans = PLANS[cc as usize]
                .get()
                .and_then(Option::as_ref)
                .unwrap_or_else(|| panic!("+{cc} has no plan"));
            codes += 1;
            for (_, plan) in &plans.regions {
                largest = largest.max(plan.set.memory_usage());
            }
        }
        assert!(codes > 200, "{codes} calling codes");
        // Well under the limit, which only guards against a metadata update.
        assert!(largest < DFA_LIMIT / 4, "largest plan: {largest} bytes");
        eprintln!("{codes} calling codes; largest plan {largest} bytes");
    }

    #[test]
    fn a_premium_number_in_e164_is_premium_even_where_the_parser_strips_it() {
        // libphonenumber formats +375 8101234567 (premium rate) as this E.164
        // string, and its parser reads the "8" back as a trunk prefix
        // (leaving an invalid number). The digits as written win.
        let n: E164 = "+3758101234567".parse().unwrap();
        assert!(!parsed(&n).valid);
        let f = facts(&n);
        assert_eq!(f.number_type, NumberType::PremiumRate);
        assert_eq!(f.region.unwrap().as_str(), "BY");
        assert!(f.valid);
    }

    #[test]
    fn calling_codes_of_regions() {
        assert_eq!(calling_code_of(CountryCode::parse("FR").unwrap()), Some(33));
        assert_eq!(calling_code_of(CountryCode::parse("GG").unwrap()), Some(44));
        assert_eq!(calling_code_of(CountryCode::parse("ZZ").unwrap()), None);
    }

    #[test]
    fn prefix_is_calling_code_plus_national_digits() {
        let n: E164 = "+33612345678".parse().unwrap();
        assert_eq!(facts(&n).prefix(&n, 3), "+33612");
        let n: E164 = "+12025550123".parse().unwrap();
        assert_eq!(facts(&n).prefix(&n, 3), "+1202");
        assert_eq!(facts(&n).prefix(&n, 30), "+12025550123");
    }
}
