//! The tantivy schema every org index shares.
//!
//! Fixed typed fields hold what every object has (klass, num, id, customer, company, createdAt,
//! updatedAt). Attributes live in JSON fields under their stable attribute key, so an org can add
//! attributes without a rebuild:
//!
//! | field | holds | tokenizer | fast |
//! |---|---|---|---|
//! | `kw` | keyword values of every non-text attribute, `externalId`, `tags`, relationship ids | raw | yes |
//! | `words` | words of `string` attributes (`contains`, scored free `text` search) | default | no |
//! | `txt` | stems of `text` attributes (`contains`, scored free `text` search) | en_stem | no |
//! | `tprefix` | every ancestor path of `tree` values (`starts_with`) | raw | no |
//! | `links` | nums named by references and relationships, as i64 (joins) | - | yes |
//! | `exists` | keys of the `text` attributes that are set (`set`) | raw | no |
//!
//! Column names of JSON paths are `<field>.<key>` (`kw.c12`).
//!
//! `words` and `txt` keep term frequencies and field norms, so free `text` search scores its
//! words per attribute (BM25) from the same postings that answer `contains`: each word of a text
//! attribute is indexed once.

use tantivy::schema::{
    Field, IndexRecordOption, JsonObjectOptions, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};

use super::analysis;

/// Fast-field column of the object num.
pub const NUM: &str = "num";
/// Fast-field column of the object id.
pub const ID: &str = "id";
/// Fast-field column of the klass name.
pub const KLASS: &str = "klass";
/// Fast-field column of the customer num.
pub const CUSTOMER: &str = "customer";
/// Fast-field column of the company num.
pub const COMPANY: &str = "company";
/// Fast-field column of createdAt (ms).
pub const CREATED: &str = "created";
/// Fast-field column of updatedAt (ms).
pub const UPDATED: &str = "updated";

/// Key under which `externalId` is indexed in `kw`.
pub const EXTERNAL_ID_KEY: &str = "externalId";
/// Key under which `tags` are indexed in `kw`.
pub const TAGS_KEY: &str = "tags";

/// The fields of the schema.
#[derive(Debug, Clone)]
pub struct IndexSchema {
    /// The tantivy schema.
    pub schema: Schema,
    /// Klass name (raw, fast).
    pub klass: Field,
    /// Object num (u64, indexed, fast).
    pub num: Field,
    /// Object id (raw, fast): `id` searches and the sort tie-break.
    pub id: Field,
    /// Customer num (u64, indexed, fast).
    pub customer: Field,
    /// Company num (u64, indexed, fast).
    pub company: Field,
    /// createdAt ms (i64, fast only).
    pub created: Field,
    /// updatedAt ms (i64, fast only).
    pub updated: Field,
    /// Keyword JSON.
    pub kw: Field,
    /// Words of strings JSON.
    pub words: Field,
    /// Text JSON.
    pub txt: Field,
    /// Tree prefixes JSON.
    pub tprefix: Field,
    /// Link nums JSON.
    pub links: Field,
    /// Keys of the text attributes that are set (the others are set when their `kw` column is).
    pub exists: Field,
}

impl IndexSchema {
    /// Builds the schema.
    pub fn build() -> IndexSchema {
        let mut b = Schema::builder();
        let raw_indexing = || {
            TextFieldIndexing::default()
                .set_tokenizer(analysis::RAW)
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false)
        };
        let keyword_fast = TextOptions::default()
            .set_indexing_options(raw_indexing())
            .set_fast(analysis::RAW);
        let keyword = TextOptions::default().set_indexing_options(raw_indexing());
        let num_opts = || NumericOptions::default().set_indexed().set_fast();
        // Times are only columns: ranges run on them anyway, and a term per nearly every
        // distinct millisecond cost indexing more than the rare equality on a time saves.
        let time_opts = || NumericOptions::default().set_fast();
        let klass = b.add_text_field(KLASS, keyword_fast.clone());
        let num = b.add_u64_field(NUM, num_opts());
        let id = b.add_text_field(ID, keyword_fast);
        let customer = b.add_u64_field(CUSTOMER, num_opts());
        let company = b.add_u64_field(COMPANY, num_opts());
        let created = b.add_i64_field(CREATED, time_opts());
        let updated = b.add_i64_field(UPDATED, time_opts());
        let kw = b.add_json_field(
            "kw",
            JsonObjectOptions::default()
                .set_indexing_options(raw_indexing())
                .set_fast(analysis::RAW),
        );
        let scored = |tokenizer: &str| {
            JsonObjectOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(tokenizer)
                    .set_index_option(IndexRecordOption::WithFreqs),
            )
        };
        let words = b.add_json_field("words", scored(analysis::WORDS));
        let txt = b.add_json_field("txt", scored(analysis::TEXT));
        let tprefix = b.add_json_field(
            "tprefix",
            JsonObjectOptions::default().set_indexing_options(raw_indexing()),
        );
        let links = b.add_json_field(
            "links",
            JsonObjectOptions::default()
                .set_indexing_options(raw_indexing())
                .set_fast(analysis::RAW),
        );
        let exists = b.add_text_field("exists", keyword);
        IndexSchema {
            schema: b.build(),
            klass,
            num,
            id,
            customer,
            company,
            created,
            updated,
            kw,
            words,
            txt,
            tprefix,
            links,
            exists,
        }
    }

    /// Reads the field handles of an existing index's schema.
    ///
    /// # Errors
    /// When the index was built with another schema (an older version): it must be rebuilt.
    pub fn from_schema(schema: Schema) -> Result<IndexSchema, String> {
        let expected = IndexSchema::build();
        if schema != expected.schema {
            return Err("the index was built with an earlier version's schema".into());
        }
        Ok(expected)
    }

    /// The fast-field column name of a JSON path.
    pub fn column(field: &str, key: &str) -> String {
        format!("{field}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_stable_across_builds() {
        assert_eq!(IndexSchema::build().schema, IndexSchema::build().schema);
        assert!(IndexSchema::from_schema(IndexSchema::build().schema).is_ok());
    }
}
