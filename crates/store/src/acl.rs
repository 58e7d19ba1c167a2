//! Least-privilege Redis ACL rules for redrec's two roles, as `ACL SETUSER` arguments.
//!
//! redrec shares a Redis with the rest of a stack, so its users should reach only their own
//! namespace: every key redrec touches starts with `{namespace}:`. docs/SECURITY.md prints these
//! rules; the e2e test `acl` runs the gateway as a user created from them.
//!
//! ```
//! use redrec_core::keys::Namespace;
//! let rules = redrec_store::acl::gateway_rules(&Namespace::new("shop"));
//! assert!(rules.contains(&"~shop:*".to_string()));
//! ```

use redrec_core::keys::Namespace;

/// Commands both roles need beyond plain key reads and writes: connection setup and health, the
/// capability probe (`MODULE LIST`, `COMMAND INFO`), loading progress (`INFO`), RediSearch
/// queries, and the user-state Redis Function (loaded on first use, then called).
const COMMON: &[&str] = &[
    "+@connection",
    "+info",
    "+module|list",
    "+command|info",
    "+ft.search",
    "+ft.aggregate",
    "+ft.info",
    "+ft._list",
    "+fcall",
    "+fcall_ro",
    "+function|load",
    "+function|list",
    "+multi",
    "+exec",
    "+discard",
];

/// Add to either role on servers that have `FT.HYBRID` (Redis 8.4+; an ACL rule naming an unknown
/// command is an error on older servers, so it is not in the base rules).
pub const HYBRID_RULE: &str = "+ft.hybrid";

/// The gateway: reads and writes its namespace's keys (items on admin routes, user state,
/// rate-limit counters), runs searches and the event function; no index administration, no
/// `FLUSH*`, `KEYS`, `CONFIG`, `DEBUG` or other dangerous commands.
pub fn gateway_rules(ns: &Namespace) -> Vec<String> {
    rules(ns, &[])
}

/// The loader (`redrec-ingest`): the gateway's rights plus index administration (create, alter,
/// alias, drop), JSON documents, and `EVAL` for the in-place vector refresh's "set if the item
/// exists" step (a script runs with its caller's ACL, so it reaches no more keys than the user).
pub fn loader_rules(ns: &Namespace) -> Vec<String> {
    rules(
        ns,
        &[
            "+ft.create",
            "+ft.alter",
            "+ft.aliasadd",
            "+ft.aliasupdate",
            "+ft.aliasdel",
            "+ft.dropindex",
            "+json.set",
            "+json.get",
            "+json.merge",
            "+json.del",
            "+eval",
        ],
    )
}

fn rules(ns: &Namespace, extra: &[&str]) -> Vec<String> {
    let mut out = vec![
        "resetkeys".to_owned(),
        format!("~{}:*", ns.name()),
        "resetchannels".to_owned(),
        "-@all".to_owned(),
        // plain data commands on the namespace's keys, minus the dangerous ones (KEYS, SORT, ...)
        "+@read".to_owned(),
        "+@write".to_owned(),
        "-@dangerous".to_owned(),
        // the script/function families are in @write/@read too: keep only FCALL and loading
        "-@scripting".to_owned(),
    ];
    out.extend(COMMON.iter().map(|s| (*s).to_owned()));
    out.extend(extra.iter().map(|s| (*s).to_owned()));
    out
}
