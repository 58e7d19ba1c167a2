//! Deterministic experiment assignment: a stable 64-bit hash of (experiment, user id), the same
//! in every gateway process and release (FNV-1a, then a SplitMix64 finaliser so that the low
//! bits used by the modulo are well mixed). Hashing the experiment's name with the user makes
//! the splits of two experiments independent.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h = FNV_OFFSET;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // a separator no name or id contains: ("ab", "c") and ("a", "bc") differ
            h ^= 0xff;
            h = h.wrapping_mul(FNV_PRIME);
        }
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    }
    h
}

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The user's point in `0..total` for `experiment` (`total` > 0).
pub fn bucket(experiment: &str, user_id: &str, total: u64) -> u64 {
    splitmix64(fnv1a(&[experiment.as_bytes(), user_id.as_bytes()])) % total.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // pinned: a change here moves users between variants of running experiments
        assert_eq!(
            bucket("exp", "u1", 1_000_000),
            bucket("exp", "u1", 1_000_000)
        );
        let pinned = [
            bucket("exp", "u1", 100),
            bucket("exp", "u2", 100),
            bucket("other", "u1", 100),
        ];
        assert_eq!(pinned, [PIN_U1, PIN_U2, PIN_OTHER_U1]);
        assert_ne!(
            fnv1a(&[b"ab", b"c"]),
            fnv1a(&[b"a", b"bc"]),
            "parts are separated"
        );
    }

    const PIN_U1: u64 = 89;
    const PIN_U2: u64 = 5;
    const PIN_OTHER_U1: u64 = 51;

    #[test]
    fn experiments_split_independently() {
        // users in the first half of experiment a are spread over both halves of b
        let in_a: Vec<String> = (0..2000)
            .map(|u| format!("user-{u}"))
            .filter(|u| bucket("a", u, 2) == 0)
            .collect();
        let also_b = in_a.iter().filter(|u| bucket("b", u, 2) == 0).count();
        let share = also_b as f64 / in_a.len() as f64;
        assert!((0.45..0.55).contains(&share), "{share}");
    }
}
