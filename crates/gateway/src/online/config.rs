//! `[online]`: impression recording, the attribution window and the experiments, and their
//! validation. An invalid section is rejected whole, with the key that is wrong
//! (`online.experiments[1].variants[0].profile`).

use serde::{Deserialize, Serialize};

/// Most experiments one config may declare (each adds metric label values: kept bounded).
pub const MAX_EXPERIMENTS: usize = 16;
/// Most variants of one experiment.
pub const MAX_VARIANTS: usize = 8;
/// Longest experiment or variant name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Online evaluation (`[online]` in redrec.toml, `REDREC_ONLINE__*` in the environment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnlineConfig {
    /// Record every served list under `{ns}:rec:{rec_id}` (items, positions, profile,
    /// variant, sources) so that events carrying its `rec_id` are attributed to it. Off by
    /// default; experiments need it.
    pub impressions: bool,
    /// How long a served list is kept and feedback on it is attributed, in seconds.
    pub attribution_window_secs: u64,
    /// Served lists waiting for the background writer; past it, lists are not recorded (and
    /// counted in `redrec_impressions_dropped_total`) rather than slow a request down.
    pub queue: usize,
    /// Most lists the writer sends to Redis in one pipeline.
    pub batch: usize,
    /// A/B experiments between rank profiles.
    pub experiments: Vec<ExperimentConfig>,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        OnlineConfig {
            impressions: false,
            attribution_window_secs: 3600,
            queue: 10_000,
            batch: 256,
            experiments: Vec::new(),
        }
    }
}

/// One experiment: users are split between its variants by a hash of (experiment, user id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Letters, digits, `-`, `_` and `.`; at most 64 bytes.
    pub name: String,
    /// The request kinds it applies to (`recommendations`, `search`, `similar`); empty: all.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Two or more variants; the first is the control the others are compared with.
    pub variants: Vec<VariantConfig>,
}

/// One arm of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantConfig {
    /// A rank profile (`[reranker]`).
    pub profile: String,
    /// Variant name (default: the profile's name); two variants on one profile (an A/A test)
    /// need names of their own.
    #[serde(default)]
    pub name: Option<String>,
    /// Share of the experiment's users, relative to the other variants' weights.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// A request kind experiments can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    Recommendations,
    Search,
    Similar,
}

impl RouteKind {
    pub const ALL: [RouteKind; 3] = [
        RouteKind::Recommendations,
        RouteKind::Search,
        RouteKind::Similar,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Recommendations => "recommendations",
            RouteKind::Search => "search",
            RouteKind::Similar => "similar",
        }
    }
}

/// A validated experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub name: String,
    pub routes: Vec<RouteKind>,
    pub variants: Vec<Variant>,
}

/// A validated variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub name: String,
    pub profile: String,
    pub weight: u32,
}

impl Experiment {
    /// Whether the experiment covers requests of `route`.
    pub fn applies_to(&self, route: RouteKind) -> bool {
        self.routes.is_empty() || self.routes.contains(&route)
    }

    /// The variant of `user_id`: deterministic, and independent between experiments.
    pub fn assign(&self, user_id: &str) -> &Variant {
        let total: u64 = self.variants.iter().map(|v| u64::from(v.weight)).sum();
        let mut point = super::assign::bucket(&self.name, user_id, total);
        for v in &self.variants {
            let w = u64::from(v.weight);
            if point < w {
                return v;
            }
            point -= w;
        }
        // unreachable with total > 0 (validated): the last variant
        &self.variants[self.variants.len() - 1]
    }
}

/// A rejected `[online]` section: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid setting `{key}`: {message}")]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        key: key.into(),
        message: message.into(),
    }
}

fn check_name(key: &str, name: &str) -> Result<(), Invalid> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(invalid(
            key,
            format!("`{name}` must be 1..={MAX_NAME_LEN} bytes"),
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(invalid(
            key,
            format!("`{name}` may contain only ASCII letters, digits and - _ ."),
        ));
    }
    Ok(())
}

impl OnlineConfig {
    /// Validates the section against the rank profiles that exist (`profiles`); returns the
    /// experiments ready to assign users.
    pub fn validate(&self, profiles: &[String]) -> Result<Vec<Experiment>, Invalid> {
        if self.attribution_window_secs == 0 {
            return Err(invalid(
                "online.attribution_window_secs",
                "must be at least 1 second",
            ));
        }
        if self.queue == 0 {
            return Err(invalid("online.queue", "must be at least 1"));
        }
        if self.batch == 0 {
            return Err(invalid("online.batch", "must be at least 1"));
        }
        if self.experiments.len() > MAX_EXPERIMENTS {
            return Err(invalid(
                "online.experiments",
                format!(
                    "{} experiments, at most {MAX_EXPERIMENTS} are accepted",
                    self.experiments.len()
                ),
            ));
        }
        if !self.experiments.is_empty() && !self.impressions {
            return Err(invalid(
                "online.impressions",
                "experiments are measured on recorded lists: set `online.impressions = true`",
            ));
        }
        let mut out: Vec<Experiment> = Vec::with_capacity(self.experiments.len());
        for (i, e) in self.experiments.iter().enumerate() {
            let at = format!("online.experiments[{i}]");
            check_name(&format!("{at}.name"), &e.name)?;
            if out.iter().any(|o| o.name == e.name) {
                return Err(invalid(
                    format!("{at}.name"),
                    format!("`{}` is declared twice", e.name),
                ));
            }
            let mut routes = Vec::new();
            for (j, r) in e.routes.iter().enumerate() {
                let kind = RouteKind::ALL
                    .into_iter()
                    .find(|k| k.as_str() == r)
                    .ok_or_else(|| {
                        invalid(
                            format!("{at}.routes[{j}]"),
                            format!("unknown request kind `{r}`, expected recommendations, search or similar"),
                        )
                    })?;
                routes.push(kind);
            }
            if !(2..=MAX_VARIANTS).contains(&e.variants.len()) {
                return Err(invalid(
                    format!("{at}.variants"),
                    format!("{} variants, expected 2..={MAX_VARIANTS}", e.variants.len()),
                ));
            }
            let mut variants: Vec<Variant> = Vec::with_capacity(e.variants.len());
            for (j, v) in e.variants.iter().enumerate() {
                let vat = format!("{at}.variants[{j}]");
                if !profiles.contains(&v.profile) {
                    return Err(invalid(
                        format!("{vat}.profile"),
                        format!(
                            "unknown rank profile `{}`, expected one of {}",
                            v.profile,
                            profiles.join(", ")
                        ),
                    ));
                }
                let name = v.name.clone().unwrap_or_else(|| v.profile.clone());
                check_name(&format!("{vat}.name"), &name)?;
                if variants.iter().any(|o| o.name == name) {
                    return Err(invalid(
                        format!("{vat}.name"),
                        format!(
                            "variant `{name}` is declared twice (give variants on one profile a `name`)"
                        ),
                    ));
                }
                if v.weight == 0 || v.weight > 1_000_000 {
                    return Err(invalid(
                        format!("{vat}.weight"),
                        format!("is {}, expected 1..=1000000", v.weight),
                    ));
                }
                variants.push(Variant {
                    name,
                    profile: v.profile.clone(),
                    weight: v.weight,
                });
            }
            out.push(Experiment {
                name: e.name.clone(),
                routes,
                variants,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles() -> Vec<String> {
        ["default", "discovery", "repurchase"]
            .map(String::from)
            .to_vec()
    }

    fn parse(toml_text: &str) -> OnlineConfig {
        #[derive(Deserialize)]
        struct Root {
            online: OnlineConfig,
        }
        let root: Root = figment::Figment::new()
            .merge(<figment::providers::Toml as figment::providers::Format>::string(toml_text))
            .extract()
            .expect("toml");
        root.online
    }

    fn check(toml_text: &str) -> Result<Vec<Experiment>, String> {
        parse(toml_text)
            .validate(&profiles())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_an_experiment_between_two_profiles() {
        let e = check(
            r#"[online]
            impressions = true
            [[online.experiments]]
            name = "discovery-vs-default"
            routes = ["recommendations"]
            variants = [{ profile = "default" }, { profile = "discovery", weight = 3 }]"#,
        )
        .unwrap();
        assert_eq!(e[0].variants[1].name, "discovery");
        assert_eq!(e[0].variants[1].weight, 3);
        assert!(e[0].applies_to(RouteKind::Recommendations));
        assert!(!e[0].applies_to(RouteKind::Search));
    }

    #[test]
    fn names_the_wrong_key() {
        let base = r#"[online]
            impressions = true
            [[online.experiments]]
            name = "a"
            variants = [{ profile = "default" }, { profile = "discovery" }]
            "#;
        for (extra, key) in [
            (
                r#"[[online.experiments]]
                name = "b"
                variants = [{ profile = "default" }, { profile = "nope" }]"#,
                "`online.experiments[1].variants[1].profile`: unknown rank profile `nope`",
            ),
            (
                r#"[[online.experiments]]
                name = "a"
                variants = [{ profile = "default" }, { profile = "discovery" }]"#,
                "`online.experiments[1].name`: `a` is declared twice",
            ),
            (
                r#"[[online.experiments]]
                name = "b c"
                variants = [{ profile = "default" }, { profile = "discovery" }]"#,
                "`online.experiments[1].name`",
            ),
            (
                r#"[[online.experiments]]
                name = "b"
                routes = ["home"]
                variants = [{ profile = "default" }, { profile = "discovery" }]"#,
                "`online.experiments[1].routes[0]`: unknown request kind `home`",
            ),
            (
                r#"[[online.experiments]]
                name = "b"
                variants = [{ profile = "default" }]"#,
                "`online.experiments[1].variants`: 1 variants",
            ),
            (
                r#"[[online.experiments]]
                name = "b"
                variants = [{ profile = "default" }, { profile = "default" }]"#,
                "`online.experiments[1].variants[1].name`: variant `default` is declared twice",
            ),
            (
                r#"[[online.experiments]]
                name = "b"
                variants = [{ profile = "default", weight = 0 }, { profile = "discovery" }]"#,
                "`online.experiments[1].variants[0].weight`: is 0",
            ),
        ] {
            let e = check(&format!("{base}{extra}")).unwrap_err();
            assert!(e.contains(key), "{e} lacks {key}");
        }
        let e = check(
            r#"[online]
            [[online.experiments]]
            name = "a"
            variants = [{ profile = "default" }, { profile = "discovery" }]"#,
        )
        .unwrap_err();
        assert!(e.contains("`online.impressions`"), "{e}");
        let e = check("[online]\nattribution_window_secs = 0").unwrap_err();
        assert!(e.contains("`online.attribution_window_secs`"), "{e}");
    }

    #[test]
    fn assignment_is_deterministic_and_follows_the_weights() {
        let e = &check(
            r#"[online]
            impressions = true
            [[online.experiments]]
            name = "w"
            variants = [{ profile = "default", weight = 1 }, { profile = "discovery", weight = 3 }]"#,
        )
        .unwrap()[0];
        let mut discovery = 0;
        for u in 0..4000 {
            let user = format!("u{u}");
            let v = e.assign(&user);
            assert_eq!(v, e.assign(&user), "not deterministic for {user}");
            if v.name == "discovery" {
                discovery += 1;
            }
        }
        // 3/4 of 4000 = 3000, within 4 standard deviations (sqrt(4000 * 0.75 * 0.25) = 27)
        assert!((2890..=3110).contains(&discovery), "{discovery}");
    }
}
