//! Input checks shared by every backend; they run before the database is touched.

use crate::catalog::{
    NewCatalogProduct, NewCategory, NewImage, NewReview, NewVariant, ProductChanges, VariantLine,
};
use crate::error::{Error, Result};
use crate::model::{NewAddress, NewCity, NewCountry, NewOrder, NewProduct, NewUser, UserUpdate};

/// Longest accepted username, in characters (after NFKC; see [`mod8_rules`]).
pub const MAX_USERNAME_CHARS: usize = mod8_rules::MAX_USERNAME_CHARS;
/// Longest accepted username, in bytes (after NFKC).
pub const MAX_USERNAME_BYTES: usize = mod8_rules::MAX_USERNAME_BYTES;
/// Shortest accepted username, in characters.
pub const MIN_USERNAME_CHARS: usize = mod8_rules::MIN_USERNAME_CHARS;
/// Longest accepted e-mail address, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = mod8_rules::MAX_EMAIL_BYTES;

/// The 249 officially assigned ISO 3166-1 alpha-2 codes, sorted.
const ISO_3166_ALPHA2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

impl From<mod8_rules::Invalid> for Error {
    fn from(e: mod8_rules::Invalid) -> Self {
        Error::validation(e.field, e.message)
    }
}

/// The e-mail address trimmed, in NFC and lower-cased, or a validation error naming `email`.
///
/// The rule is [`mod8_rules::email`] (the one the message consumers and the API apply too):
/// one `@`, a local part of 1–64 bytes not starting with `$`, a dotted domain of letters,
/// digits and `-`, at most 254 bytes, no whitespace, control, zero-width or bidirectional
/// formatting character. The database also keeps e-mail addresses unique case-insensitively
/// (a unique index on `lower(email)`).
pub fn email(raw: &str) -> Result<String> {
    Ok(mod8_rules::email(raw)?)
}

/// The username's display form (trimmed, NFKC, case kept), or a validation error naming
/// `username`.
///
/// The rule is [`mod8_rules::username`] (the one the message consumers and the API apply
/// too): letters of one script among Latin, Greek and Cyrillic, the digits `0-9`, `_`, `.`
/// and `-`; 3–50 characters and at most 64 bytes; no control, zero-width or bidirectional
/// formatting character. Usernames are unique by [`username_key`].
pub fn username(raw: &str) -> Result<String> {
    Ok(mod8_rules::username(raw)?)
}

/// The key a username is unique by (stored in `users.username_key`, under a unique index):
/// NFKC, lower-cased, NFKC ([`mod8_rules::username_key`]). `Grace` and `grace`, or the NFC
/// and NFD forms of one name, share a key, so the second is a conflict on `username`.
pub fn username_key(username: &str) -> String {
    mod8_rules::username_key(username)
}

/// The code upper-cased if it is an assigned ISO 3166-1 alpha-2 code.
pub fn country_code(raw: &str) -> Result<String> {
    let code = raw.trim().to_ascii_uppercase();
    if ISO_3166_ALPHA2.binary_search(&code.as_str()).is_ok() {
        Ok(code)
    } else {
        Err(Error::validation(
            "country_code",
            format!(
                "{} is not an ISO 3166-1 alpha-2 country code",
                mod8_rules::echo(raw)
            ),
        ))
    }
}

/// A non-blank text of at most `max` characters, trimmed.
pub fn text(field: &'static str, raw: &str, max: usize) -> Result<String> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(Error::validation(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(Error::validation(
            field,
            format!("at most {max} characters allowed"),
        ));
    }
    Ok(value.to_owned())
}

/// A number that must not be negative.
pub fn non_negative(field: &'static str, value: i64) -> Result<i64> {
    if value < 0 {
        Err(Error::validation(field, format!("{value} is negative")))
    } else {
        Ok(value)
    }
}

/// A quantity that must be positive.
pub fn quantity(value: i64) -> Result<i64> {
    if value <= 0 {
        Err(Error::validation(
            "quantity",
            format!("{value} is not a positive quantity"),
        ))
    } else {
        Ok(value)
    }
}

/// A finite profile score between 0 and 100.
pub fn profile_score(value: f64) -> Result<f64> {
    if value.is_finite() && (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(Error::validation(
            "profile_score",
            format!("{value} is not between 0 and 100"),
        ))
    }
}

/// Checks and normalises a new user.
pub fn new_user(user: &NewUser) -> Result<NewUser> {
    Ok(NewUser {
        email: email(&user.email)?,
        username: username(&user.username)?,
        profile_score: profile_score(user.profile_score)?,
        ..user.clone()
    })
}

/// Checks and normalises a user update.
pub fn user_update(update: &UserUpdate) -> Result<UserUpdate> {
    Ok(UserUpdate {
        email: update.email.as_deref().map(email).transpose()?,
        username: update.username.as_deref().map(username).transpose()?,
        profile_score: update.profile_score.map(profile_score).transpose()?,
        ..update.clone()
    })
}

/// Checks and normalises a new country.
pub fn new_country(country: &NewCountry) -> Result<NewCountry> {
    Ok(NewCountry {
        name: text("name", &country.name, 100)?,
        iso_code: country_code(&country.iso_code)?,
        population: non_negative("population", country.population)?,
        gdp_per_capita_cents: non_negative("gdp_per_capita_cents", country.gdp_per_capita_cents)?,
    })
}

/// Checks and normalises a new city.
pub fn new_city(city: &NewCity) -> Result<NewCity> {
    let region = city.region.trim();
    if region.chars().count() > 100 {
        return Err(Error::validation(
            "region",
            "at most 100 characters allowed",
        ));
    }
    Ok(NewCity {
        name: text("name", &city.name, 100)?,
        region: region.to_owned(),
        country_code: country_code(&city.country_code)?,
    })
}

/// Checks and normalises a new address.
pub fn new_address(address: &NewAddress) -> Result<NewAddress> {
    Ok(NewAddress {
        street: text("street", &address.street, 200)?,
        postal_code: text("postal_code", &address.postal_code, 20)?,
        city_id: address.city_id,
    })
}

/// Checks and normalises a new product.
pub fn new_product(product: &NewProduct) -> Result<NewProduct> {
    Ok(NewProduct {
        sku: text("sku", &product.sku, 64)?,
        name: text("name", &product.name, 200)?,
        category: text("category", &product.category, 100)?,
        price_cents: non_negative("price_cents", product.price_cents)?,
        stock: non_negative("stock", product.stock)?,
    })
}

/// Checks an order: at least one line, positive quantities, each product once.
pub fn new_order(order: &NewOrder) -> Result<()> {
    if order.lines.is_empty() {
        return Err(Error::validation(
            "lines",
            "an order needs at least one line",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for line in &order.lines {
        quantity(line.quantity)?;
        if !seen.insert(line.product_id) {
            return Err(Error::validation(
                "lines",
                format!("product {} appears twice", line.product_id),
            ));
        }
    }
    Ok(())
}

/// Text that may be empty, at most `max` characters (kept as given, trimmed).
fn optional_text(field: &'static str, raw: &str, max: usize) -> Result<String> {
    let value = raw.trim();
    if value.chars().count() > max {
        return Err(Error::validation(
            field,
            format!("at most {max} characters allowed"),
        ));
    }
    Ok(value.to_owned())
}

/// A category slug: 1–100 characters `a-z`, `0-9` and `-`, not starting or ending with `-`.
pub fn slug(raw: &str) -> Result<String> {
    let value = raw.trim();
    let ok = !value.is_empty()
        && value.len() <= 100
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(Error::validation(
            "slug",
            format!("{value:?} is not 1-100 characters a-z, 0-9 and inner hyphens"),
        ))
    }
}

/// An ISO 4217 currency code: three upper-case ASCII letters.
pub fn currency(raw: &str) -> Result<String> {
    if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(raw.to_owned())
    } else {
        Err(Error::validation(
            "currency",
            format!("{raw:?} is not a three-letter upper-case ISO 4217 code"),
        ))
    }
}

/// Checks and normalises a new category.
pub fn new_category(category: &NewCategory) -> Result<NewCategory> {
    Ok(NewCategory {
        parent_id: category.parent_id,
        slug: slug(&category.slug)?,
        name: text("name", &category.name, 200)?,
    })
}

/// Most variants one product may have.
pub const MAX_VARIANTS: usize = 100;
/// Most images one product may have.
pub const MAX_IMAGES: usize = 50;
/// Most option values one variant may have.
pub const MAX_OPTIONS: usize = 16;

/// Checks and normalises a variant.
pub fn new_variant(variant: &NewVariant) -> Result<NewVariant> {
    if variant.options.len() > MAX_OPTIONS {
        return Err(Error::validation(
            "options",
            format!("at most {MAX_OPTIONS} option values"),
        ));
    }
    let mut options = std::collections::BTreeMap::new();
    for (name, value) in &variant.options {
        options.insert(text("options", name, 64)?, text("options", value, 200)?);
    }
    Ok(NewVariant {
        sku: text("sku", &variant.sku, 64)?,
        options,
        price_cents: non_negative("price_cents", variant.price_cents)?,
        currency: currency(&variant.currency)?,
        initial_stock: non_negative("initial_stock", variant.initial_stock)?,
    })
}

/// Checks an image: an `http(s)` URL of at most 2,048 characters, alt text of at most 500.
pub fn new_image(image: &NewImage) -> Result<NewImage> {
    let url = text("url", &image.url, 2_048)?;
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.contains(char::is_whitespace)
    {
        return Err(Error::validation(
            "url",
            format!("{url:?} is not an http or https URL"),
        ));
    }
    Ok(NewImage {
        url,
        alt_text: optional_text("alt_text", &image.alt_text, 500)?,
    })
}

/// Product attributes: a JSON object of at most 64 KiB.
pub fn attributes(value: &serde_json::Value) -> Result<serde_json::Value> {
    if !value.is_object() {
        return Err(Error::validation("attributes", "must be a JSON object"));
    }
    if value.to_string().len() > 64 * 1024 {
        return Err(Error::validation("attributes", "at most 64 KiB of JSON"));
    }
    Ok(value.clone())
}

/// Checks and normalises a new catalog product: at least one and at most [`MAX_VARIANTS`]
/// variants with distinct SKUs, at most [`MAX_IMAGES`] images.
pub fn new_catalog_product(product: &NewCatalogProduct) -> Result<NewCatalogProduct> {
    if product.variants.is_empty() || product.variants.len() > MAX_VARIANTS {
        return Err(Error::validation(
            "variants",
            format!("a product needs 1 to {MAX_VARIANTS} variants"),
        ));
    }
    if product.images.len() > MAX_IMAGES {
        return Err(Error::validation(
            "images",
            format!("at most {MAX_IMAGES} images"),
        ));
    }
    let variants = product
        .variants
        .iter()
        .map(new_variant)
        .collect::<Result<Vec<_>>>()?;
    let mut skus = std::collections::HashSet::new();
    for v in &variants {
        if !skus.insert(v.sku.as_str()) {
            return Err(Error::validation(
                "sku",
                format!("variant SKU {} appears twice", v.sku),
            ));
        }
    }
    Ok(NewCatalogProduct {
        sku: text("sku", &product.sku, 64)?,
        name: text("name", &product.name, 200)?,
        category_id: product.category_id,
        brand: product
            .brand
            .as_deref()
            .map(|b| text("brand", b, 100))
            .transpose()?,
        description: optional_text("description", &product.description, 10_000)?,
        attributes: attributes(&product.attributes)?,
        images: product
            .images
            .iter()
            .map(new_image)
            .collect::<Result<Vec<_>>>()?,
        variants,
    })
}

/// Checks and normalises product changes.
pub fn product_changes(changes: &ProductChanges) -> Result<ProductChanges> {
    Ok(ProductChanges {
        name: changes
            .name
            .as_deref()
            .map(|n| text("name", n, 200))
            .transpose()?,
        brand: match &changes.brand {
            Some(Some(b)) => Some(Some(text("brand", b, 100)?)),
            other => other.clone(),
        },
        description: changes
            .description
            .as_deref()
            .map(|d| optional_text("description", d, 10_000))
            .transpose()?,
        attributes: changes.attributes.as_ref().map(attributes).transpose()?,
        category_id: changes.category_id,
        prices: changes
            .prices
            .iter()
            .map(|(id, price)| Ok((*id, non_negative("price_cents", *price)?)))
            .collect::<Result<_>>()?,
    })
}

/// Most units of one variant a cart line or an order line may hold.
pub const MAX_CART_QUANTITY: i64 = 10_000;

/// A cart quantity: 1–[`MAX_CART_QUANTITY`].
pub fn cart_quantity(value: i64) -> Result<i64> {
    if (1..=MAX_CART_QUANTITY).contains(&value) {
        Ok(value)
    } else {
        Err(Error::validation(
            "quantity",
            format!("{value} is not between 1 and {MAX_CART_QUANTITY}"),
        ))
    }
}

/// A stock reason: at most 500 characters.
pub fn reason(raw: &str) -> Result<String> {
    optional_text("reason", raw, 500)
}

/// Checks and normalises a review: rating 1–5, title 1–200 characters, body at most 10,000.
pub fn new_review(review: &NewReview) -> Result<NewReview> {
    if !(1..=5).contains(&review.rating) {
        return Err(Error::validation(
            "rating",
            format!("{} is not between 1 and 5", review.rating),
        ));
    }
    Ok(NewReview {
        product_id: review.product_id,
        user_id: review.user_id,
        rating: review.rating,
        title: text("title", &review.title, 200)?,
        body: optional_text("body", &review.body, 10_000)?,
    })
}

/// Checks checkout lines: at least one and at most 1,000, quantities 1–[`MAX_CART_QUANTITY`],
/// each variant once.
pub fn checkout_lines(lines: &[VariantLine]) -> Result<()> {
    if lines.is_empty() || lines.len() > 1_000 {
        return Err(Error::validation("lines", "an order needs 1 to 1000 lines"));
    }
    let mut seen = std::collections::HashSet::new();
    for line in lines {
        cart_quantity(line.quantity)?;
        if !seen.insert(line.variant_id) {
            return Err(Error::validation(
                "lines",
                format!("variant {} appears twice", line.variant_id),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_table_is_sorted_and_unique() {
        assert!(ISO_3166_ALPHA2.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn emails() {
        assert_eq!(email(" Ada@Example.ORG ").unwrap(), "ada@example.org");
        for bad in [
            "",
            "ada",
            "ada@",
            "@x.org",
            "ada@org",
            "a da@x.org",
            "ada@x..org",
            "ada@-x.org",
        ] {
            assert!(
                matches!(email(bad), Err(Error::Validation { field, .. }) if field == "email"),
                "{bad}"
            );
        }
    }

    #[test]
    fn usernames() {
        assert!(username("ada_l.o-ve").is_ok());
        assert!(username("").is_err());
        assert!(username("ab").is_err());
        assert_eq!(username(" Grace ").unwrap(), "Grace");
        assert_eq!(username_key("Grace"), username_key("grace"));
        assert!(username(&"x".repeat(51)).is_err());
        assert!(username(&"x".repeat(50)).is_ok());
        assert!(username("robert'); DROP TABLE users;--").is_err());
    }

    #[test]
    fn country_codes() {
        assert_eq!(country_code("de").unwrap(), "DE");
        assert!(country_code("XX").is_err());
        assert!(country_code("DEU").is_err());
    }

    #[test]
    fn quantities_and_scores() {
        assert!(quantity(0).is_err());
        assert!(quantity(-3).is_err());
        assert!(profile_score(f64::NAN).is_err());
        assert!(profile_score(101.0).is_err());
        assert!(non_negative("stock", -1).is_err());
    }
}
