//! The per-customer summary CSV (`customer_id,frequency,recency,T,monetary_value`): the input
//! the Python lifetimes package works on, and the form CDNOW and many exported data sets come in.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::rfm::{CustomerSummary, Rfm, RfmSummary};

const COLUMNS: [&str; 5] = ["customer_id", "frequency", "recency", "T", "monetary_value"];

/// Reads a per-customer summary from CSV text with a header row naming exactly the columns
/// `customer_id`, `frequency`, `recency`, `T` and `monetary_value`, in any order — lifetimes'
/// conventions, time in **weeks**:
///
/// - `frequency`: repeat purchases x (purchase periods after the first), a whole number ≥ 0
///   (`3` or `3.0`);
/// - `recency`: time from the first to the last purchase, tₓ, with `0 ≤ recency ≤ T`, and 0
///   when `frequency` is 0;
/// - `T`: time from the first purchase to the end of the observation period, ≥ 0;
/// - `monetary_value`: average value of the repeat purchases, ≥ 0 (ignored by the models when
///   `frequency` is 0).
///
/// lifetimes' `summary_data_from_transaction_data` counts in days unless given `freq="W"`:
/// divide its `recency` and `T` by 7 first. Customers keep the file's order; the summary has no
/// dates ([`RfmSummary::calibration_end`] and every [`CustomerSummary::first_purchase`] are
/// `None`).
///
/// # Errors
///
/// - [`Error::InvalidRecord`] with the 1-based line number (header = line 1) and the field: an
///   unknown, repeated or missing column; an empty or repeated `customer_id`; a value that is
///   not a number, NaN, infinite or negative; a `frequency` that is not a whole number (or
///   above 4,294,967,295); `recency` above `T`; a non-zero `recency` with `frequency` 0; a row
///   with the wrong number of fields;
/// - [`Error::EmptyInput`] when there is no header or no data row;
/// - [`Error::Backend`] (`"csv"`) when the input cannot be read.
///
/// ```
/// use mod8_datasci::read_summary;
/// let csv = "customer_id,frequency,recency,T,monetary_value\n\
///            c1,2,30.43,38.86,22.35\n\
///            c2,0,0,38.86,0\n";
/// let summary = read_summary(csv.as_bytes())?;
/// assert_eq!(summary.len(), 2);
/// assert_eq!(summary.customers[0].rfm.frequency, 2);
///
/// let bad = "customer_id,frequency,recency,T,monetary_value\nc1,2,40,38.86,22.35\n";
/// let err = read_summary(bad.as_bytes()).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "row 2, field `recency`: recency 40 is after T 38.86 (need recency ≤ T)"
/// );
/// # Ok::<(), mod8_datasci::Error>(())
/// ```
pub fn read_summary<R: Read>(reader: R) -> Result<RfmSummary> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = csv.headers().map_err(csv_error)?.clone();
    if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
        return Err(Error::EmptyInput {
            what: "summary file has no header row".into(),
        });
    }
    let mut index = [usize::MAX; 5];
    for (i, name) in headers.iter().enumerate() {
        let header_error = |message: &str| Error::InvalidRecord {
            row: 1,
            field: name.to_owned(),
            message: message.to_owned(),
        };
        match COLUMNS.iter().position(|c| *c == name) {
            Some(k) if index[k] == usize::MAX => index[k] = i,
            Some(_) => return Err(header_error("column appears twice")),
            None => {
                return Err(header_error(
                    "unknown column (expected customer_id,frequency,recency,T,monetary_value)",
                ))
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
    let [id_col, frequency_col, recency_col, t_col, monetary_col] = index;

    let mut customers = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
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
        if let Some(first) = seen.get(customer_id) {
            return Err(bad(
                "customer_id",
                format!("customer `{customer_id}` already appears on row {first}"),
            ));
        }
        let number = |col: usize, field: &str| -> Result<f64> {
            let text = record.get(col).unwrap_or_default();
            let value: f64 = text
                .parse()
                .map_err(|_| bad(field, format!("`{text}` is not a number")))?;
            if value.is_nan() {
                return Err(bad(field, format!("{field} is NaN")));
            }
            if value.is_infinite() {
                return Err(bad(field, format!("{field} is infinite")));
            }
            if value < 0.0 {
                return Err(bad(field, format!("{field} {value} is negative")));
            }
            Ok(value)
        };
        let frequency = number(frequency_col, "frequency")?;
        if frequency.fract() != 0.0 || frequency > f64::from(u32::MAX) {
            return Err(bad(
                "frequency",
                format!("frequency {frequency} is not a whole number of repeat purchases"),
            ));
        }
        let frequency = frequency as u32;
        let recency = number(recency_col, "recency")?;
        let t = number(t_col, "T")?;
        let monetary_value = number(monetary_col, "monetary_value")?;
        // The tolerance of `Rfm::validate`: summaries computed in floating point may carry
        // rounding noise in the last digits.
        if recency > t + 1e-9 {
            return Err(bad(
                "recency",
                format!("recency {recency} is after T {t} (need recency ≤ T)"),
            ));
        }
        if frequency == 0 && recency != 0.0 {
            return Err(bad(
                "recency",
                format!("recency must be 0 when frequency is 0, got {recency}"),
            ));
        }
        seen.insert(customer_id.to_owned(), row);
        customers.push(CustomerSummary {
            customer_id: customer_id.to_owned(),
            first_purchase: None,
            rfm: Rfm {
                frequency,
                recency,
                t,
                monetary_value,
            },
        });
    }
    if customers.is_empty() {
        return Err(Error::EmptyInput {
            what: "summary file has a header but no data rows".into(),
        });
    }
    Ok(RfmSummary {
        calibration_end: None,
        customers,
    })
}

/// [`read_summary`] on a file.
///
/// # Errors
///
/// As [`read_summary`], plus [`Error::Backend`] (`"io"`) when the file cannot be opened.
pub fn read_summary_file(path: impl AsRef<Path>) -> Result<RfmSummary> {
    let file = std::fs::File::open(path.as_ref()).map_err(Error::io)?;
    read_summary(std::io::BufReader::new(file))
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
    if let csv::ErrorKind::Utf8 { pos, .. } = e.kind() {
        return Error::InvalidRecord {
            row: pos.as_ref().map_or(0, |p| p.line()),
            field: "(record)".into(),
            message: "not valid UTF-8".into(),
        };
    }
    Error::backend("csv", e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "customer_id,frequency,recency,T,monetary_value\n";

    fn err(text: &str) -> (u64, String, String) {
        match read_summary(text.as_bytes()).unwrap_err() {
            Error::InvalidRecord {
                row,
                field,
                message,
            } => (row, field, message),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn row_err(rows: &str) -> (u64, String) {
        let (row, field, _) = err(&format!("{HEADER}a,1,2,10,5\n{rows}"));
        (row, field)
    }

    #[test]
    fn reads_in_file_order_and_any_column_order() {
        let s = read_summary(
            "T,monetary_value,customer_id,recency,frequency\n\
             38.86,22.35,z,30.43,2\n\
             38.86,0,a,0,0\n\
             10,7.5,m,10,3.0\n"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(s.calibration_end, None);
        let ids: Vec<_> = s.customers.iter().map(|c| c.customer_id.as_str()).collect();
        assert_eq!(ids, ["z", "a", "m"]);
        let z = &s.customers[0];
        assert_eq!(z.first_purchase, None);
        assert_eq!(
            z.rfm,
            Rfm {
                frequency: 2,
                recency: 30.43,
                t: 38.86,
                monetary_value: 22.35,
            }
        );
        // recency = T and a whole number written as a float are fine.
        assert_eq!(s.customers[2].rfm.frequency, 3);
        assert_eq!(s.customers[2].rfm.recency, 10.0);
    }

    #[test]
    fn bad_values_name_row_and_field() {
        for (rows, expected) in [
            ("b,1,11,10,5\n", (3, "recency")),
            ("b,0,1,10,0\n", (3, "recency")),
            ("b,-1,0,10,0\n", (3, "frequency")),
            ("b,1.5,2,10,5\n", (3, "frequency")),
            ("b,1e10,2,10,5\n", (3, "frequency")),
            ("b,x,2,10,5\n", (3, "frequency")),
            ("b,1,-2,10,5\n", (3, "recency")),
            ("b,1,2,-10,5\n", (3, "T")),
            ("b,1,2,NaN,5\n", (3, "T")),
            ("b,1,2,10,-5\n", (3, "monetary_value")),
            ("b,1,2,10,inf\n", (3, "monetary_value")),
            ("b,1,2,10,\n", (3, "monetary_value")),
            ("b,1,2,ten,5\n", (3, "T")),
            (",1,2,10,5\n", (3, "customer_id")),
            ("a,1,2,10,5\n", (3, "customer_id")),
            ("b,1,2,10\n", (3, "(record)")),
            ("b,1,2,10,5\nc,1,3,2,5\n", (4, "recency")),
        ] {
            let (row, field) = row_err(rows);
            assert_eq!((row, field.as_str()), expected, "{rows}");
        }
        let (_, _, message) = err(&format!("{HEADER}a,1,2,10,5\na,2,3,10,5\n"));
        assert_eq!(message, "customer `a` already appears on row 2");
        let (_, _, message) = err(&format!("{HEADER}a,0,3,10,0\n"));
        assert_eq!(message, "recency must be 0 when frequency is 0, got 3");
        let (_, _, message) = err(&format!("{HEADER}a,2,1,10,nan\n"));
        assert_eq!(message, "monetary_value is NaN");
    }

    #[test]
    fn bad_headers() {
        let (row, field, message) = err("customer_id,frequency,recency,t,monetary_value\n");
        assert_eq!((row, field.as_str()), (1, "t"));
        assert!(message.starts_with("unknown column"), "{message}");
        let (row, field, message) = err("customer_id,frequency,recency,T\na,1,2,3\n");
        assert_eq!(
            (row, field.as_str(), message.as_str()),
            (1, "monetary_value", "missing column")
        );
        let (row, field, _) = err("customer_id,frequency,recency,T,T,monetary_value\n");
        assert_eq!((row, field.as_str()), (1, "T"));
        // A transaction log given as a summary.
        let (row, field, _) = err("customer_id,date,amount\nc1,2024-01-01,3\n");
        assert_eq!((row, field.as_str()), (1, "date"));
    }

    #[test]
    fn empty_inputs() {
        assert!(matches!(
            read_summary("".as_bytes()),
            Err(Error::EmptyInput { .. })
        ));
        assert!(matches!(
            read_summary(HEADER.as_bytes()),
            Err(Error::EmptyInput { .. })
        ));
        assert!(matches!(
            read_summary_file("/no/such/summary.csv"),
            Err(Error::Backend { backend: "io", .. })
        ));
    }

    #[test]
    fn read_summaries_fit_like_computed_ones() {
        // The same customers as a transaction log and as a summary: identical points.
        let d = |m, day| chrono::NaiveDate::from_ymd_opt(2024, m, day).unwrap();
        let tx = vec![
            crate::Transaction::new("a", d(1, 1), 10.0).unwrap(),
            crate::Transaction::new("a", d(1, 15), 20.0).unwrap(),
            crate::Transaction::new("b", d(1, 8), 4.0).unwrap(),
        ];
        let computed = RfmSummary::from_transactions(&tx, d(1, 29)).unwrap();
        let read = read_summary(format!("{HEADER}a,1,2,4,20\nb,0,0,3,0\n").as_bytes()).unwrap();
        assert_eq!(computed.points(), read.points());
    }
}
