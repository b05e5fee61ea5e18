//! Transaction records and the `customer_id,date,amount` CSV reader.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::activity::{CustomerActivity, ItemPurchase, PurchaseStats};
use crate::error::{Error, Result};

/// One purchase transaction: who, when (a calendar day), how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// Customer identifier, any non-empty string.
    pub customer_id: String,
    /// Day of the transaction.
    pub date: NaiveDate,
    /// Amount spent; finite and non-negative.
    pub amount: f64,
}

impl Transaction {
    /// A transaction, checked: the id must be non-empty and the amount finite and ≥ 0.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] naming the bad field.
    pub fn new(customer_id: impl Into<String>, date: NaiveDate, amount: f64) -> Result<Self> {
        let customer_id = customer_id.into();
        if customer_id.trim().is_empty() {
            return Err(Error::validation("customer_id", "customer_id is empty"));
        }
        if !amount.is_finite() || amount < 0.0 {
            return Err(Error::validation(
                "amount",
                format!("amount must be finite and non-negative, got {amount}"),
            ));
        }
        Ok(Transaction {
            customer_id,
            date,
            amount,
        })
    }
}

const COLUMNS: [&str; 3] = ["customer_id", "date", "amount"];

/// How [`read_transactions`] reads: the default accepts every date.
///
/// ```
/// use mod8_datasci::{NaiveDate, ReadOptions};
/// let end = NaiveDate::from_ymd_opt(2024, 1, 31).unwrap();
/// let options = ReadOptions::default().with_calibration_end(end);
/// assert_eq!(options.calibration_end, Some(end));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadOptions {
    /// Last day of the calibration period: a transaction dated after it is an error, for
    /// callers whose input must end there. `None` (the default): any date — the way to read a
    /// log that goes on after the calibration end ([`crate::RfmSummary::from_transactions`]
    /// leaves the later transactions out, [`crate::HoldoutEvaluation`] uses them).
    pub calibration_end: Option<NaiveDate>,
}

impl ReadOptions {
    /// Refuses transactions dated after `calibration_end`.
    pub fn with_calibration_end(mut self, calibration_end: NaiveDate) -> Self {
        self.calibration_end = Some(calibration_end);
        self
    }
}

/// Reads transactions from CSV text with a header row naming exactly the columns
/// `customer_id`, `date` (ISO `YYYY-MM-DD`) and `amount`, in any order.
///
/// With [`ReadOptions::calibration_end`] set, a transaction dated after it is an error.
///
/// # Errors
///
/// - [`Error::InvalidRecord`] with the 1-based line number (header = line 1) and the field:
///   an unknown or missing column, an empty `customer_id`, an unparsable date, a date after
///   `calibration_end`, an amount that is not a number, NaN, infinite or negative, or a row with
///   the wrong number of fields;
/// - [`Error::EmptyInput`] when there is no header or no data row;
/// - [`Error::Backend`] (`"csv"`) when the input cannot be read.
///
/// ```
/// use mod8_datasci::{read_transactions, ReadOptions};
/// let csv = "customer_id,date,amount\nc1,2024-01-05,12.50\nc1,2024-02-01,8\n";
/// let tx = read_transactions(csv.as_bytes(), ReadOptions::default())?;
/// assert_eq!(tx.len(), 2);
///
/// let bad = "customer_id,date,amount\nc1,2024-01-05,NaN\n";
/// let err = read_transactions(bad.as_bytes(), ReadOptions::default()).unwrap_err();
/// assert_eq!(err.to_string(), "row 2, field `amount`: amount is NaN");
/// # Ok::<(), mod8_datasci::Error>(())
/// ```
pub fn read_transactions<R: Read>(reader: R, options: ReadOptions) -> Result<Vec<Transaction>> {
    let calibration_end = options.calibration_end;
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = csv.headers().map_err(csv_error)?.clone();
    if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
        return Err(Error::EmptyInput {
            what: "transactions file has no header row".into(),
        });
    }
    let mut index = [usize::MAX; 3];
    for (i, name) in headers.iter().enumerate() {
        match COLUMNS.iter().position(|c| *c == name) {
            Some(k) if index[k] == usize::MAX => index[k] = i,
            Some(_) => {
                return Err(Error::InvalidRecord {
                    row: 1,
                    field: name.to_owned(),
                    message: "column appears twice".into(),
                })
            }
            None => {
                return Err(Error::InvalidRecord {
                    row: 1,
                    field: name.to_owned(),
                    message: "unknown column (expected customer_id,date,amount)".into(),
                })
            }
        }
    }
    if let Some(k) = index.iter().position(|i| *i == usize::MAX) {
        return Err(Error::InvalidRecord {
            row: 1,
            field: COLUMNS[k].to_owned(),
            message: "missing column".into(),
        });
    }
    let [id_col, date_col, amount_col] = index;

    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(e)),
        }
        let row = record.position().map_or(0, |p| p.line());
        let bad = |field: &str, message: String| Error::InvalidRecord {
            row,
            field: field.to_owned(),
            message,
        };
        let customer_id = record.get(id_col).unwrap_or_default();
        if customer_id.is_empty() {
            return Err(bad("customer_id", "customer_id is empty".into()));
        }
        let date_text = record.get(date_col).unwrap_or_default();
        let date = NaiveDate::parse_from_str(date_text, "%Y-%m-%d").map_err(|e| {
            bad(
                "date",
                format!("`{date_text}` is not an ISO date YYYY-MM-DD ({e})"),
            )
        })?;
        if let Some(end) = calibration_end {
            if date > end {
                return Err(bad(
                    "date",
                    format!("{date} is after the calibration end {end}"),
                ));
            }
        }
        let amount_text = record.get(amount_col).unwrap_or_default();
        let amount: f64 = amount_text
            .parse()
            .map_err(|_| bad("amount", format!("`{amount_text}` is not a number")))?;
        if amount.is_nan() {
            return Err(bad("amount", "amount is NaN".into()));
        }
        if amount.is_infinite() {
            return Err(bad("amount", "amount is infinite".into()));
        }
        if amount < 0.0 {
            return Err(bad("amount", format!("amount {amount} is negative")));
        }
        out.push(Transaction {
            customer_id: customer_id.to_owned(),
            date,
            amount,
        });
    }
    if out.is_empty() {
        return Err(Error::EmptyInput {
            what: "transactions file has a header but no data rows".into(),
        });
    }
    Ok(out)
}

/// Per-customer purchase aggregates as of `as_of` (later transactions are left out), sorted by
/// customer id, for profiling a transaction file with [`crate::AnalyticsEngine`]: the last
/// purchase day is also the last active day; activity counts are zero (a transaction file has
/// none).
///
/// ```
/// use mod8_datasci::{activity_by_customer, NaiveDate, Transaction};
/// let d = |day| NaiveDate::from_ymd_opt(2024, 1, day).unwrap();
/// let tx = [
///     Transaction::new("b", d(3), 5.0)?,
///     Transaction::new("a", d(1), 10.0)?,
///     Transaction::new("a", d(1), 2.0)?, // same day: one purchase day
///     Transaction::new("a", d(9), 4.0)?,
///     Transaction::new("a", d(20), 7.0)?, // after as_of
/// ];
/// let users = activity_by_customer(&tx, d(10));
/// assert_eq!(users.len(), 2);
/// let (id, a) = &users[0];
/// assert_eq!((id.as_str(), a.purchases.count, a.purchases.total_amount), ("a", 2, 16.0));
/// assert_eq!(a.last_active, Some(d(9)));
/// # Ok::<(), mod8_datasci::Error>(())
/// ```
pub fn activity_by_customer(
    transactions: &[Transaction],
    as_of: NaiveDate,
) -> Vec<(String, CustomerActivity)> {
    let mut by_customer: HashMap<&str, Vec<ItemPurchase>> = HashMap::new();
    for t in transactions.iter().filter(|t| t.date <= as_of) {
        by_customer
            .entry(t.customer_id.as_str())
            .or_default()
            .push(ItemPurchase {
                product_id: String::new(),
                amount: t.amount,
                date: t.date,
            });
    }
    let mut out: Vec<(String, CustomerActivity)> = by_customer
        .into_iter()
        .map(|(id, purchases)| {
            let purchases = PurchaseStats::from_purchases(&purchases);
            let activity = CustomerActivity {
                last_active: purchases.last,
                purchases,
                ..CustomerActivity::default()
            };
            (id.to_owned(), activity)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// [`read_transactions`] on a file.
///
/// # Errors
///
/// As [`read_transactions`], plus [`Error::Backend`] (`"io"`) when the file cannot be opened.
pub fn read_transactions_file(
    path: impl AsRef<Path>,
    options: ReadOptions,
) -> Result<Vec<Transaction>> {
    let file = std::fs::File::open(path.as_ref()).map_err(Error::io)?;
    read_transactions(std::io::BufReader::new(file), options)
}

fn csv_error(e: csv::Error) -> Error {
    if let csv::ErrorKind::UnequalLengths {
        pos,
        expected_len,
        len,
    } = e.kind()
    {
        return Error::InvalidRecord {
            row: pos.as_ref().map_or(0, |p| p.line()),
            field: "(record)".into(),
            message: format!("expected {expected_len} fields, found {len}"),
        };
    }
    if let csv::ErrorKind::Utf8 { pos, err } = e.kind() {
        return Error::InvalidRecord {
            row: pos.as_ref().map_or(0, |p| p.line()),
            field: COLUMNS
                .get(err.field())
                .copied()
                .unwrap_or("(record)")
                .into(),
            message: "not valid UTF-8".into(),
        };
    }
    Error::backend("csv", e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str, end: Option<NaiveDate>) -> (u64, String) {
        let options = ReadOptions {
            calibration_end: end,
        };
        match read_transactions(text.as_bytes(), options).unwrap_err() {
            Error::InvalidRecord { row, field, .. } => (row, field),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn reads_columns_in_any_order() {
        let tx = read_transactions(
            "amount,customer_id,date\n3.5,a,2024-03-01\n0,b,2024-03-02\n".as_bytes(),
            ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(tx[0].customer_id, "a");
        assert_eq!(tx[0].amount, 3.5);
        assert_eq!(tx[1].date, NaiveDate::from_ymd_opt(2024, 3, 2).unwrap());
    }

    #[test]
    fn bad_values_name_row_and_field() {
        let h = "customer_id,date,amount\n";
        let ok = "a,2024-01-01,1\n";
        assert_eq!(
            err(&format!("{h}{ok}a,2024-01-02,nan\n"), None),
            (3, "amount".into())
        );
        assert_eq!(
            err(&format!("{h}a,2024-01-02,inf\n"), None),
            (2, "amount".into())
        );
        assert_eq!(
            err(&format!("{h}a,2024-01-02,-1\n"), None),
            (2, "amount".into())
        );
        assert_eq!(
            err(&format!("{h}a,2024-01-02,abc\n"), None),
            (2, "amount".into())
        );
        assert_eq!(
            err(&format!("{h}a,02/01/2024,1\n"), None),
            (2, "date".into())
        );
        assert_eq!(
            err(&format!("{h},2024-01-02,1\n"), None),
            (2, "customer_id".into())
        );
        assert_eq!(
            err(&format!("{h}{ok}{ok}a,2024-01-02\n"), None),
            (4, "(record)".into())
        );
        let end = NaiveDate::from_ymd_opt(2024, 1, 31);
        assert_eq!(
            err(&format!("{h}{ok}a,2024-02-01,1\n"), end),
            (3, "date".into())
        );
    }

    #[test]
    fn bad_headers() {
        assert_eq!(
            err("customer_id,date,amount,extra\n", None),
            (1, "extra".into())
        );
        assert_eq!(
            err("customer_id,date\na,2024-01-01\n", None),
            (1, "amount".into())
        );
        assert_eq!(err("customer_id,date,date\n", None), (1, "date".into()));
    }

    #[test]
    fn empty_inputs() {
        assert!(matches!(
            read_transactions("".as_bytes(), ReadOptions::default()),
            Err(Error::EmptyInput { .. })
        ));
        assert!(matches!(
            read_transactions(
                "customer_id,date,amount\n".as_bytes(),
                ReadOptions::default()
            ),
            Err(Error::EmptyInput { .. })
        ));
    }

    #[test]
    fn constructor_checks() {
        let d = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        assert!(Transaction::new("a", d, 1.0).is_ok());
        assert!(Transaction::new("", d, 1.0).is_err());
        assert!(Transaction::new("a", d, f64::NAN).is_err());
        assert!(Transaction::new("a", d, -0.5).is_err());
    }
}
