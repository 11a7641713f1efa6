//! Which tables and columns Fivetran asked for, in domain terms: a deselected
//! table is never fetched, a deselected column is never sent, and primary keys
//! are always sent.

use std::collections::HashMap;

use crate::schema::Table;

/// The user's selection. `Selection::all()` when Fivetran sends none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Tables not listed are included iff this is true.
    pub include_new_tables: bool,
    /// Listed tables by destination name.
    pub tables: HashMap<String, TableSelection>,
}

/// The selection of one listed table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSelection {
    /// Whether the table is synced at all.
    pub included: bool,
    /// Listed columns and whether each is included.
    pub columns: HashMap<String, bool>,
    /// Columns not listed are included iff this is true.
    pub include_new_columns: bool,
}

/// The columns to send for one included table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnFilter {
    /// Every column, including unknown ones the API adds.
    All,
    /// Only some columns.
    Some {
        /// Listed columns and whether each is included.
        columns: HashMap<String, bool>,
        /// Whether columns not listed are included.
        include_new_columns: bool,
    },
}

impl Selection {
    /// Everything selected, as when Fivetran sends no selection.
    pub fn all() -> Self {
        Self {
            include_new_tables: true,
            tables: HashMap::new(),
        }
    }

    /// The column filter for `table`, or `None` if the table is deselected.
    pub fn table(&self, table: Table) -> Option<ColumnFilter> {
        match self.tables.get(table.name()) {
            None => self.include_new_tables.then_some(ColumnFilter::All),
            Some(selection) if !selection.included => None,
            Some(selection) => Some(ColumnFilter::Some {
                columns: selection.columns.clone(),
                include_new_columns: selection.include_new_columns,
            }),
        }
    }
}

impl ColumnFilter {
    /// Whether a non-key column is sent. Callers send primary keys regardless.
    pub fn includes(&self, column: &str) -> bool {
        match self {
            ColumnFilter::All => true,
            ColumnFilter::Some {
                columns,
                include_new_columns,
            } => columns.get(column).copied().unwrap_or(*include_new_columns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_tables_follow_their_flag_and_unlisted_follow_include_new_tables() {
        let mut selection = Selection {
            include_new_tables: false,
            tables: HashMap::new(),
        };
        selection.tables.insert(
            "traffic".into(),
            TableSelection {
                included: true,
                columns: HashMap::from([("sumouts".to_string(), false)]),
                include_new_columns: true,
            },
        );
        selection.tables.insert(
            "zone".into(),
            TableSelection {
                included: false,
                columns: HashMap::new(),
                include_new_columns: true,
            },
        );
        let traffic = selection.table(Table::Traffic).unwrap();
        assert!(!traffic.includes("sumouts"));
        assert!(traffic.includes("sumins"));
        assert!(selection.table(Table::Zone).is_none());
        assert!(selection.table(Table::Site).is_none());
        assert_eq!(Selection::all().table(Table::Site), Some(ColumnFilter::All));
    }
}
