//! Text analysis, in one place for the index and the in-memory evaluator, so both agree on
//! what a word is.
//!
//! - `text` attributes: split on non-alphanumeric characters, drop tokens over 40 bytes,
//!   lowercase, English (Porter) stemming — tantivy's `en_stem`.
//! - words of `string` attributes (for `contains` and free text): the same without stemming —
//!   tantivy's `default`.
//! - keywords (`equals`, sorting): the whole value, lowercased by the mapper for case-insensitive
//!   types; indexed with the `raw` tokenizer.
//!
//! The `en_stem` analyzer is tantivy's, except that its stemmer remembers the stems it computed
//! ([`CachedStemmer`]): stemming was 29% of the indexing threads' CPU in an import at scale S,
//! and a corpus repeats the same few thousand words. The index registers it under tantivy's name
//! ([`register`]), so the tokens, and indexes built before it, are unchanged.

use std::cell::RefCell;
use std::collections::HashMap;

use rustc_hash::FxBuildHasher;
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer,
    TokenizerManager,
};

/// Tokenizer of text attributes.
pub const TEXT: &str = "en_stem";
/// Tokenizer of the words of string attributes.
pub const WORDS: &str = "default";
/// Tokenizer of keywords.
pub const RAW: &str = "raw";

/// Stems remembered by one analyzer (each indexing thread has its own copy) before it starts over.
const STEM_CACHE_MAX: usize = 50_000;

/// Tokens longer than this are dropped (as tantivy's `default` and `en_stem` do).
const MAX_TOKEN_BYTES: usize = 40;

/// The analyzer of text attributes: tantivy's `en_stem` pipeline with a [`CachedStemmer`].
pub fn text_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .filter(CachedStemmer)
        .build()
}

/// Registers Kindred's analyzers on an index (replacing tantivy's `en_stem` by the caching one).
pub fn register(tokenizers: &TokenizerManager) {
    tokenizers.register(TEXT, text_analyzer());
}

/// English (Porter 2) stemming as tantivy's `Stemmer` does it, remembering each word's stem.
/// Tokens must be lowercased before it.
#[derive(Clone, Copy, Debug, Default)]
pub struct CachedStemmer;

impl TokenFilter for CachedStemmer {
    type Tokenizer<T: Tokenizer> = CachedStemmerFilter<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> CachedStemmerFilter<T> {
        CachedStemmerFilter {
            inner: tokenizer,
            stems: HashMap::default(),
        }
    }
}

/// A tokenizer followed by a [`CachedStemmer`]; a clone starts with the stems of its original.
#[derive(Clone)]
pub struct CachedStemmerFilter<T> {
    inner: T,
    stems: HashMap<Box<str>, Box<str>, FxBuildHasher>,
}

impl<T: Tokenizer> Tokenizer for CachedStemmerFilter<T> {
    type TokenStream<'a> = CachedStemmerStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        CachedStemmerStream {
            tail: self.inner.token_stream(text),
            stems: &mut self.stems,
        }
    }
}

/// The token stream of a [`CachedStemmerFilter`].
pub struct CachedStemmerStream<'a, S> {
    tail: S,
    stems: &'a mut HashMap<Box<str>, Box<str>, FxBuildHasher>,
}

impl<S: TokenStream> TokenStream for CachedStemmerStream<'_, S> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        if let Some(stem) = self.stems.get(token.text.as_str()) {
            if **stem != *token.text {
                token.text.clear();
                token.text.push_str(stem);
            }
            return true;
        }
        let stem: Box<str> = frostem::Stemmer::new(frostem::Algorithm::English)
            .stem(&token.text)
            .into();
        if self.stems.len() >= STEM_CACHE_MAX {
            self.stems.clear();
        }
        let word: Box<str> = token.text.as_str().into();
        token.text.clear();
        token.text.push_str(&stem);
        self.stems.insert(word, stem);
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

thread_local! {
    static ANALYZERS: RefCell<(TextAnalyzer, TextAnalyzer)> = {
        let m = TokenizerManager::default();
        RefCell::new((text_analyzer(), m.get(WORDS).expect("default is built in")))
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

    /// The caching stemmer must give exactly tantivy's `en_stem` tokens, positions and offsets
    /// included, whether a word's stem is computed or remembered, and after the cache restarts.
    #[test]
    fn cached_stemming_agrees_with_tantivys_en_stem() {
        let mut ours = text_analyzer();
        let mut theirs = TokenizerManager::default().get(TEXT).expect("built in");
        let collect = |a: &mut TextAnalyzer, text: &str| {
            let mut out = Vec::new();
            let mut stream = a.token_stream(text);
            while stream.advance() {
                let t = stream.token();
                out.push((t.text.clone(), t.position, t.offset_from, t.offset_to));
            }
            out
        };
        let texts = [
            "Refunds DELAYED, broken-box; the running runner ran running",
            "generously generous generalizations of caresses, ponies and ties",
            "Ünïcode wörds stay, numbers 123 and mixed r2d2 too; a-very-long-word-that-goes-past-the-forty-byte-limit",
            "running runner ran running refunds refund REFUNDS",
            "",
        ];
        for _ in 0..2 {
            for t in texts {
                assert_eq!(collect(&mut ours, t), collect(&mut theirs, t), "{t}");
            }
        }
        // Past the cache's bound it starts over and still agrees.
        let many: String = (0..STEM_CACHE_MAX + 10).map(|i| format!("w{i}ing ")).collect();
        assert_eq!(collect(&mut ours, &many), collect(&mut theirs, &many));
        assert_eq!(collect(&mut ours, texts[0]), collect(&mut theirs, texts[0]));
    }

    #[test]
    fn words_are_lowercased_not_stemmed() {
        assert_eq!(word_tokens("Gold Members"), vec!["gold", "members"]);
        assert!(word_tokens("!!!").is_empty());
    }
}
