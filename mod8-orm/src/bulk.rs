//! Bulk loading of catalog products ([`CatalogBulkLoad`]): many products with their variants,
//! images, inventory rows and opening `receipt` movements in one transaction, for seeding and
//! imports. On PostgreSQL every table is written with one `COPY ... FROM STDIN` (CSV) per
//! call; on SQLite with multi-row `INSERT`s as large as its parameter limit allows. Either
//! way the stock ledger balances: each variant's inventory row equals its one receipt.
//!
//! Reach it from a type-erased handle with [`crate::Database::catalog_bulk_load`].

use async_trait::async_trait;
use uuid::Uuid;

use crate::catalog::NewCatalogProduct;
use crate::error::Result;

/// The ids [`CatalogBulkLoad::load_catalog`] gave one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedProduct {
    /// The product.
    pub product_id: Uuid,
    /// Its variants, in the order given.
    pub variant_ids: Vec<Uuid>,
}

/// Loads many catalog products at once.
#[async_trait]
pub trait CatalogBulkLoad: Send + Sync {
    /// Validates `products` (as [`crate::CatalogRepository::create_catalog_product`] does)
    /// and writes them, their variants, images, inventory rows and opening `receipt`
    /// movements (for an `initial_stock` above 0) in one transaction: all or nothing.
    /// Returns their ids in the order given.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Validation`] for an invalid product (nothing written),
    /// [`crate::Error::Conflict`] for a product or variant SKU that exists,
    /// [`crate::Error::NotFound`] for a missing category, or the database failing.
    async fn load_catalog(&self, products: Vec<NewCatalogProduct>) -> Result<Vec<LoadedProduct>>;
}

/// Validated products with the ids they will get.
pub(crate) struct Prepared {
    pub(crate) products: Vec<NewCatalogProduct>,
    pub(crate) ids: Vec<LoadedProduct>,
}

/// Validates `products` and assigns their ids.
pub(crate) fn prepare(products: Vec<NewCatalogProduct>) -> Result<Prepared> {
    let products = products
        .iter()
        .map(crate::validate::new_catalog_product)
        .collect::<Result<Vec<_>>>()?;
    let ids = products
        .iter()
        .map(|p| LoadedProduct {
            product_id: Uuid::new_v4(),
            variant_ids: p.variants.iter().map(|_| Uuid::new_v4()).collect(),
        })
        .collect();
    Ok(Prepared { products, ids })
}

/// The reason of every opening receipt.
pub(crate) const OPENING_REASON: &str = "opening balance";

/// Appends `s` as a quoted CSV field.
#[cfg(feature = "postgres")]
pub(crate) fn csv_text(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_double_their_quotes() {
        let mut out = String::new();
        csv_text(&mut out, "27\" monitor, \"4K\"");
        assert_eq!(out, "\"27\"\" monitor, \"\"4K\"\"\"");
    }
}
