//! Text analysis, in one place for the index and the in-memory evaluator, so both agree on
//! what a word is.
//!
//! - `text` attributes: split on non-alphanumeric characters, drop tokens over 40 bytes,
//!   lowercase, English (Porter) stemming — tantivy's `en_stem`.
//! - words of `string` attributes (for `contains` and free text): the same without stemming —
//!   tantivy's `default`.
//! - keywords (`equals`, sorting): the whole value, lowercased by the mapper for case-insensitive
//!   types; indexed with the `raw` tokenizer.

use std::cell::RefCell;

use tantivy::tokenizer::{TextAnalyzer, TokenizerManager};

/// Tokenizer of text attributes.
pub const TEXT: &str = "en_stem";
/// Tokenizer of the words of string attributes.
pub const WORDS: &str = "default";
/// Tokenizer of keywords.
pub const RAW: &str = "raw";

thread_local! {
    static ANALYZERS: RefCell<(TextAnalyzer, TextAnalyzer)> = {
        let m = TokenizerManager::default();
        RefCell::new((m.get(TEXT).expect("en_stem is built in"), m.get(WORDS).expect("default is built in")))
    };
}

fn run(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// The stemmed tokens of a text value or a text query.
pub fn text_tokens(text: &str) -> Vec<String> {
    ANALYZERS.with(|a| run(&mut a.borrow_mut().0, text))
}

/// The lowercased words of a string value or query.
pub fn word_tokens(text: &str) -> Vec<String> {
    ANALYZERS.with(|a| run(&mut a.borrow_mut().1, text))
}

/// Lowercases a keyword the way the mapper does for case-insensitive types.
pub fn fold(s: &str) -> String {
    s.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_stemmed_and_lowercased() {
        assert_eq!(
            text_tokens("Refunds DELAYED, broken-box"),
            vec!["refund", "delay", "broken", "box"]
        );
    }

    #[test]
    fn words_are_lowercased_not_stemmed() {
        assert_eq!(word_tokens("Gold Members"), vec!["gold", "members"]);
        assert!(word_tokens("!!!").is_empty());
    }
}
