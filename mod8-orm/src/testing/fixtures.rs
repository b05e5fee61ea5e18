//! Fixtures shared by the conformance cases, the benchmarks and anyone's own tests.
#![allow(clippy::unwrap_used)]

use crate::*;

/// A small world: three countries, five cities, products.
#[derive(Debug, Clone)]
pub struct World {
    /// Germany, France, Japan.
    pub countries: Vec<Country>,
    /// Berlin, Munich (DE), Paris, Lyon (FR), Tokyo (JP).
    pub cities: Vec<City>,
    /// Four products in two categories.
    pub products: Vec<Product>,
}

impl World {
    /// The city with this name.
    pub fn city(&self, name: &str) -> &City {
        self.cities.iter().find(|c| c.name == name).unwrap()
    }
}

/// Seeds [`World`] through `db`'s location and product repositories (any database, unit of
/// work or store that has both).
pub async fn seed_world<R>(db: &R) -> World
where
    R: LocationRepository + ProductRepository + ?Sized,
{
    let mut countries = Vec::new();
    for (name, code, population, gdp) in [
        ("Germany", "DE", 83_200_000_i64, 5_180_000_i64),
        ("France", "FR", 68_000_000, 4_400_000),
        ("Japan", "JP", 124_500_000, 3_380_000),
    ] {
        countries.push(
            db.create_country(NewCountry {
                name: name.into(),
                iso_code: code.into(),
                population,
                gdp_per_capita_cents: gdp,
            })
            .await
            .unwrap(),
        );
    }
    let mut cities = Vec::new();
    for (name, region, code) in [
        ("Berlin", "Berlin", "DE"),
        ("Munich", "Bavaria", "DE"),
        ("Paris", "Ile-de-France", "FR"),
        ("Lyon", "Auvergne-Rhone-Alpes", "FR"),
        ("Tokyo", "Kanto", "JP"),
    ] {
        cities.push(
            db.create_city(NewCity {
                name: name.into(),
                region: region.into(),
                country_code: code.into(),
            })
            .await
            .unwrap(),
        );
    }
    let mut products = Vec::new();
    for (sku, name, category, price, stock) in [
        ("BK-001", "Rust in Action", "books", 3_999_i64, 10_i64),
        ("BK-002", "Database Internals", "books", 4_599, 5),
        ("GD-001", "Trowel", "garden", 1_250, 100),
        ("GD-002", "Watering can", "garden", 2_100, 2),
    ] {
        products.push(
            db.create_product(NewProduct {
                sku: sku.into(),
                name: name.into(),
                category: category.into(),
                price_cents: price,
                stock,
            })
            .await
            .unwrap(),
        );
    }
    World {
        countries,
        cities,
        products,
    }
}

/// Creates a user living at a new address in `city` (one `create_user_with_address` call).
pub async fn user_in<U>(users: &U, city: &City, username: &str, score: f64) -> User
where
    U: UserRepository + ?Sized,
{
    let mut user = NewUser::new(format!("{username}@example.org"), username);
    user.profile_score = score;
    users
        .create_user_with_address(
            NewAddress {
                street: format!("{username} street 1"),
                postal_code: "10115".into(),
                city_id: city.id,
            },
            user,
        )
        .await
        .unwrap()
        .0
}

pub(crate) fn line(product: &Product, quantity: i64) -> OrderLine {
    OrderLine {
        product_id: product.id,
        quantity,
    }
}

pub(crate) fn order(user: &User, lines: Vec<OrderLine>) -> NewOrder {
    NewOrder {
        user_id: user.id,
        lines,
        created_at: None,
    }
}
