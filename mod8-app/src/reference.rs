//! Reference data: the countries and cities addresses refer to, and a small starter catalog
//! (a category tree with products, variants and stock), written when the app starts on the
//! embedded SQLite (see [`crate::App::build`]) so that every example of the workspace README
//! works on a fresh `mod8 serve` — registering with a Berlin/DE address, for instance.
//!
//! Idempotent: a country, city or category already present is left alone and the starter
//! products are created only when the catalog's reference root category is missing, so
//! running it on a database that has the data writes nothing. `mod8 seed` and the demo start
//! from the same data ([`crate::commands::seed::catalogue`]).

use std::collections::{BTreeMap, HashMap};

use mod8_orm::{
    CatalogRepository, City, DynDatabase, LocationRepository, NewCatalogProduct, NewCategory,
    NewCity, NewCountry, NewImage, NewVariant,
};

/// A reference country: name, ISO 3166-1 alpha-2 code, population, GDP per capita in
/// dollars, and its cities as (name, region).
pub type ReferenceCountry = (
    &'static str,
    &'static str,
    i64,
    i64,
    &'static [(&'static str, &'static str)],
);

/// The reference countries and their cities.
pub const COUNTRIES: &[ReferenceCountry] = &[
    (
        "Germany",
        "DE",
        83_200_000,
        52_700,
        &[
            ("Berlin", "Berlin"),
            ("Munich", "Bavaria"),
            ("Hamburg", "Hamburg"),
        ],
    ),
    (
        "France",
        "FR",
        68_000_000,
        44_400,
        &[("Paris", "Île-de-France"), ("Lyon", "Auvergne-Rhône-Alpes")],
    ),
    (
        "Spain",
        "ES",
        48_300_000,
        32_700,
        &[("Madrid", "Madrid"), ("Barcelona", "Catalonia")],
    ),
    (
        "Japan",
        "JP",
        124_500_000,
        33_800,
        &[("Tokyo", "Kantō"), ("Osaka", "Kansai")],
    ),
    (
        "Brazil",
        "BR",
        203_100_000,
        10_000,
        &[
            ("São Paulo", "São Paulo"),
            ("Rio de Janeiro", "Rio de Janeiro"),
        ],
    ),
    (
        "Canada",
        "CA",
        40_100_000,
        53_400,
        &[("Toronto", "Ontario"), ("Vancouver", "British Columbia")],
    ),
    (
        "United States",
        "US",
        334_900_000,
        80_400,
        &[
            ("New York", "New York"),
            ("San Francisco", "California"),
            ("Chicago", "Illinois"),
        ],
    ),
    (
        "United Kingdom",
        "GB",
        68_300_000,
        48_900,
        &[("London", "England"), ("Manchester", "England")],
    ),
    (
        "Italy",
        "IT",
        58_900_000,
        38_400,
        &[("Rome", "Lazio"), ("Milan", "Lombardy")],
    ),
    (
        "Netherlands",
        "NL",
        17_900_000,
        62_500,
        &[
            ("Amsterdam", "North Holland"),
            ("Rotterdam", "South Holland"),
        ],
    ),
    (
        "Poland",
        "PL",
        36_700_000,
        22_100,
        &[("Warsaw", "Masovia"), ("Kraków", "Lesser Poland")],
    ),
    (
        "Sweden",
        "SE",
        10_500_000,
        55_500,
        &[
            ("Stockholm", "Stockholm"),
            ("Gothenburg", "Västra Götaland"),
        ],
    ),
    (
        "Switzerland",
        "CH",
        8_800_000,
        99_600,
        &[("Zurich", "Zurich"), ("Geneva", "Geneva")],
    ),
    (
        "Austria",
        "AT",
        9_100_000,
        56_500,
        &[("Vienna", "Vienna"), ("Graz", "Styria")],
    ),
    (
        "India",
        "IN",
        1_428_600_000,
        2_500,
        &[("Mumbai", "Maharashtra"), ("Bengaluru", "Karnataka")],
    ),
    (
        "China",
        "CN",
        1_410_700_000,
        12_600,
        &[("Shanghai", "Shanghai"), ("Beijing", "Beijing")],
    ),
    (
        "Australia",
        "AU",
        26_600_000,
        64_700,
        &[("Sydney", "New South Wales"), ("Melbourne", "Victoria")],
    ),
    (
        "Mexico",
        "MX",
        128_500_000,
        13_900,
        &[("Mexico City", "Mexico City"), ("Guadalajara", "Jalisco")],
    ),
    (
        "South Korea",
        "KR",
        51_700_000,
        33_100,
        &[("Seoul", "Seoul"), ("Busan", "Busan")],
    ),
    (
        "Nigeria",
        "NG",
        223_800_000,
        1_600,
        &[("Lagos", "Lagos"), ("Abuja", "Federal Capital Territory")],
    ),
    (
        "South Africa",
        "ZA",
        60_400_000,
        6_000,
        &[("Johannesburg", "Gauteng"), ("Cape Town", "Western Cape")],
    ),
];

/// The slug of the reference catalog's first root category: when it exists, the starter
/// catalog is taken as present.
pub const CATALOG_MARKER: &str = "electronics";

/// The starter category tree as (slug, name, parent slug), parents first.
pub const CATEGORIES: &[(&str, &str, Option<&str>)] = &[
    (CATALOG_MARKER, "Electronics", None),
    ("computers", "Computers", Some(CATALOG_MARKER)),
    ("audio", "Audio", Some(CATALOG_MARKER)),
    ("home-kitchen", "Home & Kitchen", None),
    ("kitchen", "Kitchen", Some("home-kitchen")),
    ("furniture", "Furniture", Some("home-kitchen")),
    ("outdoors", "Outdoors", None),
    ("camping", "Camping", Some("outdoors")),
];

/// A starter product: SKU, name, category slug, brand, base price in cents, and its
/// variants' option values (the option name is the first element).
pub type ReferenceProduct = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    i64,
    (&'static str, &'static [&'static str]),
);

/// The starter products (20), each with one variant per option value.
pub const PRODUCTS: &[ReferenceProduct] = &[
    (
        "REF-LAPTOP-13",
        "Ultrabook 13",
        "computers",
        "Lumen",
        109_900,
        ("memory", &["16 GB", "32 GB"]),
    ),
    (
        "REF-LAPTOP-16",
        "Workstation 16",
        "computers",
        "Lumen",
        229_900,
        ("memory", &["32 GB", "64 GB"]),
    ),
    (
        "REF-KEYBOARD",
        "Mechanical Keyboard",
        "computers",
        "Keyform",
        12_900,
        ("layout", &["US", "DE", "FR"]),
    ),
    (
        "REF-MOUSE",
        "Ergonomic Mouse",
        "computers",
        "Keyform",
        7_900,
        ("hand", &["right", "left"]),
    ),
    (
        "REF-MONITOR-27",
        "27\" 4K Monitor",
        "computers",
        "Viewtek",
        39_900,
        ("stand", &["fixed", "adjustable"]),
    ),
    (
        "REF-HEADPHONES",
        "Noise-Cancelling Headphones",
        "audio",
        "Sonora",
        29_900,
        ("colour", &["black", "silver"]),
    ),
    (
        "REF-EARBUDS",
        "Wireless Earbuds",
        "audio",
        "Sonora",
        14_900,
        ("colour", &["black", "white", "blue"]),
    ),
    (
        "REF-SPEAKER",
        "Bookshelf Speakers",
        "audio",
        "Sonora",
        24_900,
        ("finish", &["oak", "walnut"]),
    ),
    (
        "REF-TURNTABLE",
        "Turntable",
        "audio",
        "Groove",
        34_900,
        ("finish", &["black"]),
    ),
    (
        "REF-KETTLE",
        "Electric Kettle",
        "kitchen",
        "Hearth",
        4_900,
        ("colour", &["steel", "cream"]),
    ),
    (
        "REF-KNIFE",
        "Chef's Knife",
        "kitchen",
        "Hearth",
        8_900,
        ("length", &["20 cm", "24 cm"]),
    ),
    (
        "REF-PAN",
        "Cast-Iron Pan",
        "kitchen",
        "Hearth",
        5_900,
        ("diameter", &["24 cm", "28 cm", "32 cm"]),
    ),
    (
        "REF-ESPRESSO",
        "Espresso Machine",
        "kitchen",
        "Crema",
        44_900,
        ("colour", &["steel"]),
    ),
    (
        "REF-DESK",
        "Standing Desk",
        "furniture",
        "Oakline",
        59_900,
        ("width", &["120 cm", "160 cm"]),
    ),
    (
        "REF-CHAIR",
        "Office Chair",
        "furniture",
        "Oakline",
        34_900,
        ("colour", &["grey", "black"]),
    ),
    (
        "REF-LAMP",
        "Desk Lamp",
        "furniture",
        "Oakline",
        6_900,
        ("colour", &["white", "black"]),
    ),
    (
        "REF-TENT",
        "Two-Person Tent",
        "camping",
        "Trailhead",
        24_900,
        ("colour", &["green", "orange"]),
    ),
    (
        "REF-BAG",
        "Sleeping Bag",
        "camping",
        "Trailhead",
        12_900,
        ("size", &["regular", "long"]),
    ),
    (
        "REF-STOVE",
        "Camping Stove",
        "camping",
        "Trailhead",
        5_900,
        ("fuel", &["gas"]),
    ),
    (
        "REF-LANTERN",
        "LED Lantern",
        "camping",
        "Trailhead",
        2_900,
        ("colour", &["yellow", "grey"]),
    ),
];

/// Units each starter variant receives (its opening `receipt`).
pub const OPENING_STOCK: i64 = 500;

/// What [`ensure`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReferenceReport {
    /// Countries created.
    pub countries: usize,
    /// Cities created.
    pub cities: usize,
    /// Categories created.
    pub categories: usize,
    /// Products created.
    pub products: usize,
}

impl ReferenceReport {
    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Writes the reference countries, cities and starter catalog where missing (see the module
/// documentation); returns what it wrote.
///
/// # Errors
///
/// The SQL store failing.
pub async fn ensure(sql: &DynDatabase) -> mod8_orm::Result<ReferenceReport> {
    let mut report = ReferenceReport::default();
    ensure_countries(sql, &mut report).await?;
    ensure_catalog(sql, &mut report).await?;
    if !report.is_empty() {
        tracing::info!(?report, "reference data written");
    }
    Ok(report)
}

/// The reference countries and cities, created where missing; returns every reference city
/// with its country's ISO code.
///
/// # Errors
///
/// The SQL store failing.
pub async fn countries(sql: &DynDatabase) -> mod8_orm::Result<Vec<(City, String)>> {
    ensure_countries(sql, &mut ReferenceReport::default()).await
}

async fn ensure_countries(
    sql: &DynDatabase,
    report: &mut ReferenceReport,
) -> mod8_orm::Result<Vec<(City, String)>> {
    let mut cities = Vec::new();
    for (name, code, population, gdp, city_list) in COUNTRIES {
        match sql.country_by_code(code).await {
            Ok(_) => {}
            Err(mod8_orm::Error::NotFound { .. }) => {
                match sql
                    .create_country(NewCountry {
                        name: (*name).to_owned(),
                        iso_code: (*code).to_owned(),
                        population: *population,
                        gdp_per_capita_cents: gdp * 100,
                    })
                    .await
                {
                    // Another instance starting at the same time created it.
                    Ok(_) => report.countries += 1,
                    Err(mod8_orm::Error::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        for (city, region) in *city_list {
            let found = match sql.find_city(city, code).await? {
                Some(c) => c,
                None => {
                    report.cities += 1;
                    sql.create_city(NewCity {
                        name: (*city).to_owned(),
                        region: (*region).to_owned(),
                        country_code: (*code).to_owned(),
                    })
                    .await?
                }
            };
            cities.push((found, (*code).to_owned()));
        }
    }
    Ok(cities)
}

async fn ensure_catalog(sql: &DynDatabase, report: &mut ReferenceReport) -> mod8_orm::Result<()> {
    let existing = sql.categories().await?;
    if existing.iter().any(|c| c.slug == CATALOG_MARKER) {
        return Ok(());
    }
    let mut ids: HashMap<&str, uuid::Uuid> = existing
        .iter()
        .filter_map(|c| {
            CATEGORIES
                .iter()
                .find(|(slug, _, _)| *slug == c.slug)
                .map(|(slug, _, _)| (*slug, c.id))
        })
        .collect();
    for (slug, name, parent) in CATEGORIES {
        if ids.contains_key(slug) {
            continue;
        }
        let parent_id = parent.and_then(|p| ids.get(p).copied());
        let created = sql
            .create_category(NewCategory {
                parent_id,
                slug: (*slug).to_owned(),
                name: (*name).to_owned(),
            })
            .await?;
        report.categories += 1;
        ids.insert(slug, created.id);
    }
    for (sku, name, category, brand, price, (option, values)) in PRODUCTS {
        let Some(category_id) = ids.get(category).copied() else {
            continue;
        };
        let variants = values
            .iter()
            .enumerate()
            .map(|(i, value)| NewVariant {
                sku: format!("{sku}-{}", i + 1),
                options: BTreeMap::from([((*option).to_owned(), (*value).to_owned())]),
                // Each further option value costs 10 % more.
                price_cents: price + price * i as i64 / 10,
                currency: "EUR".to_owned(),
                initial_stock: OPENING_STOCK,
            })
            .collect();
        let product = NewCatalogProduct {
            sku: (*sku).to_owned(),
            name: (*name).to_owned(),
            category_id,
            brand: Some((*brand).to_owned()),
            description: format!("{name} by {brand}."),
            attributes: serde_json::json!({ "reference": true }),
            variants,
            images: vec![NewImage {
                url: format!(
                    "https://images.example.com/{}.jpg",
                    sku.to_ascii_lowercase()
                ),
                alt_text: (*name).to_owned(),
            }],
        };
        match sql.create_catalog_product(product).await {
            Ok(_) => report.products += 1,
            // Created by another instance, or by hand with the same code: left as it is.
            Err(mod8_orm::Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reference_data_is_written_once() {
        let sql = mod8_orm::connect("sqlite::memory:").await.unwrap();
        let first = ensure(&sql).await.unwrap();
        assert_eq!(first.countries, COUNTRIES.len());
        assert_eq!(
            first.cities,
            COUNTRIES.iter().map(|c| c.4.len()).sum::<usize>()
        );
        assert_eq!(first.categories, CATEGORIES.len());
        assert_eq!(first.products, PRODUCTS.len());
        let again = ensure(&sql).await.unwrap();
        assert!(again.is_empty(), "{again:?}");
        let berlin = sql.find_city("Berlin", "DE").await.unwrap();
        assert!(berlin.is_some());
        let root = sql
            .categories()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.slug == CATALOG_MARKER)
            .unwrap();
        let page = sql
            .list_category_products(root.id, mod8_orm::ListingQuery::default())
            .await
            .unwrap();
        assert_eq!(page.items.len(), 9, "electronics holds computers and audio");
        assert!(page.items.iter().all(|p| p.available > 0));
    }
}
