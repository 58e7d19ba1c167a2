//! A profile's exclusion rules as a retrieval filter: the items a profile never recommends
//! (fuel, coupons, zero-price lines, ...) are removed by the search itself, so every source
//! still fills its list with eligible items and no rule can leave a list short.
//!
//! Rules on a field the index does not have (or that is not a TAG field) are skipped: the
//! built-in rules name Complete Journey departments and categories, and must not break a
//! catalog without them.

use std::ops::Bound;

use redrec_core::{
    filter::Filter,
    schema::{FieldKind, IndexSchema},
};

use crate::profile::CompiledProfile;

/// The filter that keeps `profile`'s excluded items out, for an index with `schema` whose
/// price lives in `price_field`. `Filter::All` when nothing applies.
pub fn exclusion_filter(
    profile: &CompiledProfile,
    schema: &IndexSchema,
    price_field: &str,
) -> Filter {
    let mut out = Filter::All;
    for rule in profile.config.exclude.iter().flatten() {
        if matches!(
            schema.field(&rule.field).map(|f| &f.kind),
            Ok(FieldKind::Tag(_))
        ) {
            out = out.and_also(Filter::tag_not_any(&rule.field, rule.values.clone()));
        }
    }
    if profile.config.exclude_zero_price.unwrap_or(false)
        && matches!(
            schema.field(price_field).map(|f| &f.kind),
            Ok(FieldKind::Numeric(_))
        )
    {
        // NOT (price <= 0): items without a price do not match the range, so they stay
        out = out.and_also(Filter::not(Filter::range(
            price_field,
            Bound::Unbounded,
            Bound::Included(0.0),
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use redrec_core::schema::{IndexSchema, ItemFields};

    use super::*;
    use crate::profile::{ExcludeRule, RankProfile, RankProfiles, RerankerConfig};

    fn schema() -> IndexSchema {
        redrec_core::config::IndexConfig::default()
            .schema(1)
            .unwrap()
    }

    fn profile(p: RankProfile) -> CompiledProfile {
        let config = RerankerConfig {
            profiles: [("p".to_owned(), p)].into(),
            ..RerankerConfig::default()
        };
        RankProfiles::new(config).unwrap().get("p").unwrap().clone()
    }

    #[test]
    fn renders_tag_and_price_rules_and_skips_unknown_fields() {
        let p = profile(RankProfile {
            exclude: Some(vec![
                ExcludeRule {
                    field: "department".into(),
                    values: vec!["KIOSK-GAS".into(), "COUPON/MISC ITEMS".into()],
                },
                ExcludeRule {
                    field: "no_such_field".into(),
                    values: vec!["x".into()],
                },
            ]),
            exclude_zero_price: Some(true),
            ..RankProfile::default()
        });
        let f = exclusion_filter(&p, &schema(), &ItemFields::default().price);
        assert_eq!(
            f.render(&schema()).unwrap(),
            r"(-@department:{KIOSK\-GAS | COUPON\/MISC\ ITEMS} -(@price:[-inf 0]))"
        );
        let none = profile(RankProfile {
            exclude: Some(vec![]),
            exclude_zero_price: Some(false),
            ..RankProfile::default()
        });
        assert_eq!(exclusion_filter(&none, &schema(), "price"), Filter::All);
    }
}
