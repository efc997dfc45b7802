//! A cache of opened fast-field columns, per segment and column name.
//!
//! Opening a column deserializes its block metadata: on an org of 1.6 M objects that was about a
//! third of the CPU of a small query. Segments are immutable, so an opened column stays valid for
//! the segment's life; entries of segments that are gone are dropped after each reload.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use tantivy::columnar::{Column, StrColumn};
use tantivy::index::SegmentId;
use tantivy::SegmentReader;

#[derive(Clone)]
enum Slot {
    U64(Option<Column<u64>>),
    I64(Option<Column<i64>>),
    F64(Option<Column<f64>>),
    Bool(Option<Column<bool>>),
    Str(Option<StrColumn>),
}

/// Opened columns by (segment, column name, kind).
#[derive(Default)]
pub struct ColumnCache {
    map: Mutex<HashMap<(SegmentId, String, u8), Slot>>,
}

macro_rules! typed {
    ($name:ident, $t:ty, $variant:ident, $tag:expr) => {
        /// The column of that type in the segment, opened once.
        pub fn $name(&self, seg: &SegmentReader, column: &str) -> tantivy::Result<Option<$t>> {
            let key = (seg.segment_id(), column.to_string(), $tag);
            if let Some(Slot::$variant(c)) = self.map.lock().expect("column cache").get(&key) {
                return Ok(c.clone());
            }
            let opened = self.open_slot(seg, column, $tag)?;
            let out = match &opened {
                Slot::$variant(c) => c.clone(),
                _ => None,
            };
            self.map.lock().expect("column cache").insert(key, opened);
            Ok(out)
        }
    };
}

impl ColumnCache {
    typed!(u64, Column<u64>, U64, 0);
    typed!(i64, Column<i64>, I64, 1);
    typed!(f64, Column<f64>, F64, 2);
    typed!(bool, Column<bool>, Bool, 3);
    typed!(str, StrColumn, Str, 4);

    fn open_slot(&self, seg: &SegmentReader, column: &str, tag: u8) -> tantivy::Result<Slot> {
        let ff = seg.fast_fields();
        Ok(match tag {
            0 => Slot::U64(ff.column_opt::<u64>(column)?),
            1 => Slot::I64(ff.column_opt::<i64>(column)?),
            2 => Slot::F64(ff.column_opt::<f64>(column)?),
            3 => Slot::Bool(ff.column_opt::<bool>(column)?),
            _ => Slot::Str(ff.str(column)?),
        })
    }

    /// Drops the columns of segments not in `live`.
    pub fn retain(&self, live: &HashSet<SegmentId>) {
        self.map
            .lock()
            .expect("column cache")
            .retain(|(seg, _, _), _| live.contains(seg));
    }

    /// Number of cached columns.
    pub fn len(&self) -> usize {
        self.map.lock().expect("column cache").len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether any value of `doc` in `column` satisfies `test`: the rows of the doc read directly,
/// without the iterator adaptors of `Column::values_for_doc` (this runs once per candidate doc in
/// the predicates of a search).
#[inline]
pub fn any_value<T: PartialOrd + Copy + Send + Sync + 'static>(
    column: &Column<T>,
    doc: tantivy::DocId,
    mut test: impl FnMut(T) -> bool,
) -> bool {
    let rows = column.index.value_row_ids(doc);
    let mut row = rows.start;
    while row < rows.end {
        if test(column.values.get_val(row)) {
            return true;
        }
        row += 1;
    }
    false
}
