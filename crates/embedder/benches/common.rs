//! Inputs shared by the bench and the latency example: a short query and product-like texts
//! shaped like the Complete Journey (department, category, type, size) strings, ~10 tokens each.

/// A typical short search query.
pub const QUERY: &str = "organic whole milk";

/// `n` distinct product-like texts of about 8-14 tokens.
pub fn product_texts(n: usize) -> Vec<String> {
    const DEPARTMENTS: [&str; 6] = [
        "GROCERY",
        "DRUG GM",
        "PRODUCE",
        "MEAT-PCKGD",
        "DELI",
        "PASTRY",
    ];
    const CATEGORIES: [&str; 8] = [
        "FLUID MILK PRODUCTS",
        "SOFT DRINKS",
        "BAG SNACKS",
        "FROZEN PIZZA",
        "VITAMINS",
        "BEEF",
        "CHEESES",
        "BREAD",
    ];
    const TYPES: [&str; 7] = [
        "FLUID MILK WHITE ONLY",
        "SFT DRNK 2 LITER BTL CARB INCL",
        "POTATO CHIPS",
        "PIZZA/PREMIUM",
        "VITAMIN - MINERALS",
        "LEAN",
        "SPECIALTY CHEESE PRE-PACK",
    ];
    (0..n)
        .map(|i| {
            format!(
                "{} {} {} {} OZ",
                DEPARTMENTS[i % DEPARTMENTS.len()],
                CATEGORIES[(i / 6) % CATEGORIES.len()],
                TYPES[(i / 48) % TYPES.len()],
                i % 97 + 1
            )
        })
        .collect()
}
