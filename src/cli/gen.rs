//! `kindred gen`: writes the "retail-support" benchmark org of DATASET.md as bulk NDJSON files.
//! Pure and deterministic (same customers + seed => same bytes); knows nothing of storage or HTTP.
//!
//! # Output
//! Seven files in `opts.out`, importable in glob order, one `/v1/bulk` line each:
//! `00-klasses` (definitions), `01-directory` (10 teams, 100 users), `02-companies`,
//! `03-customers`, `04-orders`, `05-conversations`, `06-messages`. Ids are per-klass counters
//! from 0 (`customer-0`, `order-0`, ...), so references between files hold.
//!
//! # Determinism
//! Every random choice comes from a ChaCha8 stream (`rand_chacha`, portable across platforms; a
//! new major version of rand or rand_chacha may change the bytes, and the log-normal draws use
//! f64 `ln`/`exp`/`cos`, which could in theory differ by an ulp on another libm and move a cent).
//! One key per purpose (vocabulary, companies, customers) is derived from the
//! seed, and one stream per company or customer. A customer's orders, conversations and
//! messages all come from that customer's stream, so chunks of customers can be generated on
//! any number of threads and written in order with identical bytes. Global ids need prefix sums
//! of per-customer counts, so the counts are the first draws of each stream and a cheap first
//! pass computes them.
//!
//! # Distribution parameters that DATASET.md leaves open
//! - `totalNum`: log-normal, mu = ln 60, sigma = 1.0 (median 60), resampled until in 5..2000.
//! - `ltvNum`: log-normal, mu = ln 400, sigma = 1.2 (median 400), resampled until in 0..20000.
//! - `employeesNum`: exp(U(0, ln 100000)) rounded, so log-uniform 1..100000.
//! - orders per customer: uniform 0..=10; conversations: uniform 0..=4; messages per
//!   conversation: 1 + Binomial(7, 3/7).
//! - customer createdAt: uniform in [2023-01-01, 2025-12-30] (one day kept free so every
//!   customer can still have activity); updatedAt uniform in [createdAt, end].
//! - order placedAt: uniform in [customer.createdAt, end]; createdAt = updatedAt = placedAt.
//! - conversation createdAt: uniform in [customer.createdAt, end - 1 h]; its first message at
//!   createdAt, the next ones 1 min..48 h apart (log-uniform), squeezed to end before 2026;
//!   conversation updatedAt = its last message's createdAt. `snoozedUntil` (snoozed only) =
//!   updatedAt + 1..14 whole days, so it may fall after 2025-12-31 (a snooze still pending at "now").
//! - vocabulary: 5000 generated CV(C) words, ranked shortest first, Zipf s = 1.0; none starts
//!   with a keyword stem, so keyword frequencies are exactly the inserted ones.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to generate and where.
pub struct GenOptions {
    /// N in DATASET.md: number of customers (companies = max(1, N / 20)).
    pub customers: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Directory to write into (created if missing; the seven files are overwritten).
    pub out: PathBuf,
}

/// What was written.
pub struct GenSummary {
    /// (file name, lines, bytes), in import order.
    pub files: Vec<(String, u64, u64)>,
    /// Objects written (companies + customers + orders + conversations + messages);
    /// klass, team and user definitions are not counted.
    pub objects: u64,
}

/// Writes the org into `opts.out`, using up to 4 generator threads.
pub fn generate(opts: &GenOptions) -> anyhow::Result<GenSummary> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4);
    generate_with_threads(opts, threads)
}

// ---------------------------------------------------------------------------------------------
// Constants of the dataset

/// 2023-01-01T00:00:00.000Z in ms since the epoch.
const START_MS: i64 = 1_672_531_200_000;
/// 2025-12-31T23:59:59.999Z.
const END_MS: i64 = 1_767_225_600_000 - 1;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

const TEAMS: u64 = 10;
const USERS: u64 = 100;
/// Customers per unit of work; does not influence the output.
const CHUNK: u64 = 512;

const FILE_NAMES: [&str; 7] = [
    "00-klasses.ndjson",
    "01-directory.ndjson",
    "02-companies.ndjson",
    "03-customers.ndjson",
    "04-orders.ndjson",
    "05-conversations.ndjson",
    "06-messages.ndjson",
];

#[rustfmt::skip]
const INDUSTRIES: [&str; 12] = [
    "retail", "software", "manufacturing", "healthcare", "finance", "education", "logistics",
    "hospitality", "media", "energy", "telecom", "construction",
];

/// ISO 3166 alpha-2, in Zipf rank order (US first).
#[rustfmt::skip]
const COUNTRIES: [&str; 50] = [
    "US", "GB", "CA", "DE", "FR", "AU", "IN", "BR", "NL", "ES", "IT", "MX", "SE", "JP", "IE", "CH",
    "BE", "PL", "NO", "DK", "AT", "NZ", "SG", "FI", "PT", "ZA", "AR", "CL", "CO", "KR", "IL", "AE",
    "TR", "CZ", "GR", "HU", "RO", "PH", "MY", "TH", "ID", "VN", "NG", "KE", "EG", "SA", "PE", "UA",
    "HK", "TW",
];

#[rustfmt::skip]
const TAGS: [&str; 20] = [
    "vip", "churn-risk", "wholesale", "newsletter", "beta", "enterprise", "smb", "returning",
    "first-time", "loyalty", "complaint", "priority", "holiday", "promo", "referral",
    "influencer", "b2b", "international", "mobile", "inactive",
];

const TIERS: [(&str, u32); 4] = [("bronze", 50), ("silver", 30), ("gold", 15), ("platinum", 5)];
const CONV_STATUS: [(&str, u32); 3] = [("open", 20), ("snoozed", 10), ("done", 70)];
const CONV_CHANNELS: [(&str, u32); 5] = [("email", 40), ("chat", 30), ("sms", 15), ("voice", 10), ("social", 5)];
const ORDER_STATUS: [(&str, u32); 5] = [
    ("placed", 10),
    ("shipped", 15),
    ("delivered", 60),
    ("returned", 10),
    ("cancelled", 5),
];
const ORDER_CHANNELS: [(&str, u32); 3] = [("web", 60), ("app", 30), ("store", 10)];

/// Keywords inserted into message bodies, each independently with its probability.
const KEYWORDS: [(&str, f64); 5] = [
    ("refund", 0.08),
    ("delayed", 0.06),
    ("broken", 0.04),
    ("cancel", 0.05),
    ("invoice", 0.03),
];
/// No vocabulary word may start with one of these (keyword stems), so searches for the
/// keywords match exactly the inserted occurrences.
const KEYWORD_STEMS: [&str; 5] = ["refund", "delay", "broke", "cancel", "invoic"];

#[rustfmt::skip]
const FIRST_NAMES: [&str; 200] = [
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Betty", "Anthony",
    "Margaret", "Mark", "Sandra", "Donald", "Ashley", "Steven", "Kimberly", "Paul", "Emily",
    "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Carol", "Kevin", "Amanda", "Brian",
    "Dorothy", "George", "Melissa", "Timothy", "Deborah", "Ronald", "Stephanie", "Edward",
    "Rebecca", "Jason", "Sharon", "Jeffrey", "Laura", "Ryan", "Cynthia", "Jacob", "Kathleen",
    "Gary", "Amy", "Nicholas", "Angela", "Eric", "Shirley", "Jonathan", "Anna", "Stephen",
    "Brenda", "Larry", "Pamela", "Justin", "Emma", "Scott", "Nicole", "Brandon", "Helen",
    "Benjamin", "Samantha", "Samuel", "Katherine", "Gregory", "Christine", "Alexander", "Debra",
    "Frank", "Rachel", "Patrick", "Carolyn", "Raymond", "Janet", "Jack", "Catherine", "Dennis",
    "Maria", "Jerry", "Heather", "Tyler", "Diane", "Aaron", "Ruth", "Jose", "Julie", "Adam",
    "Olivia", "Nathan", "Joyce", "Henry", "Virginia", "Douglas", "Victoria", "Zachary", "Kelly",
    "Peter", "Lauren", "Kyle", "Christina", "Ethan", "Joan", "Walter", "Evelyn", "Noah",
    "Judith", "Jeremy", "Megan", "Christian", "Andrea", "Keith", "Cheryl", "Roger", "Hannah",
    "Terry", "Jacqueline", "Gerald", "Martha", "Harold", "Gloria", "Sean", "Teresa", "Austin",
    "Ann", "Carl", "Sara", "Arthur", "Madison", "Lawrence", "Frances", "Dylan", "Kathryn",
    "Jesse", "Janice", "Jordan", "Jean", "Bryan", "Abigail", "Billy", "Alice", "Joe", "Julia",
    "Bruce", "Judy", "Gabriel", "Sophia", "Logan", "Grace", "Albert", "Denise", "Willie",
    "Amber", "Alan", "Doris", "Juan", "Marilyn", "Wayne", "Danielle", "Elijah", "Beverly",
    "Randy", "Isabella", "Roy", "Theresa", "Vincent", "Diana", "Ralph", "Natalie", "Eugene",
    "Brittany", "Russell", "Charlotte", "Bobby", "Marie", "Mason", "Kayla", "Philip", "Alexis",
    "Louis", "Lori",
];

#[rustfmt::skip]
const LAST_NAMES: [&str; 200] = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans",
    "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris",
    "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson",
    "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson",
    "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price",
    "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez",
    "Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler",
    "Henderson", "Barnes", "Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan",
    "Patterson", "Alexander", "Hamilton", "Graham", "Reynolds", "Griffin", "Wallace", "Moreno",
    "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson", "Ellis", "Tran", "Medina",
    "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens", "Harrison",
    "Fernandez", "Mcdonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas", "Henry",
    "Chen", "Freeman", "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson", "Simpson",
    "Porter", "Hunter", "Gordon", "Mendez", "Silva", "Shaw", "Snyder", "Mason", "Dixon",
    "Munoz", "Hunt", "Hicks", "Holmes", "Palmer", "Wagner", "Black", "Robertson", "Boyd",
    "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills", "Meyer", "Rice", "Schmidt", "Garza",
    "Daniels", "Ferguson", "Nichols", "Stephens", "Soto", "Weaver", "Ryan", "Gardner", "Payne",
    "Grant", "Dunn", "Kelley", "Spencer", "Hawkins",
];

// ---------------------------------------------------------------------------------------------
// Random streams and distributions

/// Independent purposes, each with its own ChaCha key.
#[derive(Clone, Copy)]
enum Purpose {
    Vocabulary = 1,
    Companies = 2,
    Customers = 3,
}

/// Derives one 32-byte key per purpose from the seed; streams are then numbered per entity.
#[derive(Clone)]
struct Streams {
    keys: [[u8; 32]; 4],
}

impl Streams {
    fn new(seed: u64) -> Self {
        let mut keys = [[0u8; 32]; 4];
        for (p, key) in keys.iter_mut().enumerate() {
            let mut master = ChaCha8Rng::seed_from_u64(seed);
            master.set_stream(p as u64);
            master.fill(&mut key[..]);
        }
        Streams { keys }
    }

    fn rng(&self, purpose: Purpose, index: u64) -> ChaCha8Rng {
        let mut r = ChaCha8Rng::from_seed(self.keys[purpose as usize]);
        r.set_stream(index);
        r
    }
}

/// Zipf over ranks 1..=n (returned 0-based) by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += (k as f64).powf(-s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len() - 1)
    }
}

fn weighted<'a>(rng: &mut impl Rng, table: &[(&'a str, u32)]) -> &'a str {
    let total: u32 = table.iter().map(|t| t.1).sum();
    let mut x = rng.random_range(0..total);
    for &(v, w) in table {
        if x < w {
            return v;
        }
        x -= w;
    }
    unreachable!("weights cover the range")
}

fn std_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Log-normal(mu, sigma) resampled until in [lo, hi], rounded to cents.
fn log_normal_cents(rng: &mut impl Rng, mu: f64, sigma: f64, lo: f64, hi: f64) -> i64 {
    loop {
        let x = (mu + sigma * std_normal(rng)).exp();
        let cents = (x * 100.0).round() as i64;
        if cents >= (lo * 100.0) as i64 && cents <= (hi * 100.0) as i64 {
            return cents;
        }
    }
}

fn uniform_ms(rng: &mut impl Rng, lo: i64, hi: i64) -> i64 {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

/// `k` distinct indices below `n`, in draw order.
fn distinct(rng: &mut impl Rng, n: usize, k: usize) -> ([usize; 4], usize) {
    let mut out = [0usize; 4];
    let mut len = 0;
    while len < k {
        let x = rng.random_range(0..n as u32) as usize;
        if !out[..len].contains(&x) {
            out[len] = x;
            len += 1;
        }
    }
    (out, len)
}

/// The 5000-word vocabulary, shortest words first (they take the high Zipf ranks).
fn make_vocabulary(streams: &Streams) -> Vec<String> {
    const ONSETS: [&str; 32] = [
        "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "ch", "cl",
        "cr", "dr", "fl", "gr", "pl", "pr", "sh", "sl", "st", "th", "tr",
    ];
    const VOWELS: [&str; 12] = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ou", "io"];
    const CODAS: [&str; 13] = ["", "", "", "", "n", "r", "s", "l", "m", "t", "nd", "rt", "sk"];
    const SYLLABLES: [usize; 7] = [1, 2, 2, 2, 3, 3, 4];
    let mut rng = streams.rng(Purpose::Vocabulary, 0);
    let mut seen = HashSet::new();
    let mut words = Vec::with_capacity(5000);
    while words.len() < 5000 {
        let n = SYLLABLES[rng.random_range(0..SYLLABLES.len())];
        let mut w = String::new();
        for i in 0..n {
            if i == 0 || rng.random_bool(0.85) {
                w.push_str(ONSETS[rng.random_range(0..ONSETS.len())]);
            }
            w.push_str(VOWELS[rng.random_range(0..VOWELS.len())]);
            if i + 1 == n || rng.random_bool(0.2) {
                w.push_str(CODAS[rng.random_range(0..CODAS.len())]);
            }
        }
        if w.len() < 3 || w.len() > 12 || KEYWORD_STEMS.iter().any(|k| w.starts_with(k)) {
            continue;
        }
        if seen.insert(w.clone()) {
            words.push(w);
        }
    }
    words.sort_by_key(|w| w.len()); // stable: the order stays deterministic
    words
}

// ---------------------------------------------------------------------------------------------
// JSON writing: every string we write is plain ASCII, but `push_str` escapes anyway.

fn push_raw(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(s.as_bytes());
}

fn push_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.extend_from_slice(s.as_bytes());
    } else {
        let quoted = serde_json::to_string(s).expect("a str always serializes");
        buf.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
    }
    buf.push(b'"');
}

fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// `"<prefix><n>"`, e.g. `"customer-12"`.
fn push_id(buf: &mut Vec<u8>, prefix: &str, n: u64) {
    buf.push(b'"');
    push_raw(buf, prefix);
    push_u64(buf, n);
    buf.push(b'"');
}

/// Non-negative cents as a JSON number with two decimals (`12.30`).
fn push_cents(buf: &mut Vec<u8>, cents: i64) {
    push_u64(buf, (cents / 100) as u64);
    buf.push(b'.');
    push_2(buf, (cents % 100) as u32);
}

fn push_2(buf: &mut Vec<u8>, n: u32) {
    buf.push(b'0' + (n / 10) as u8);
    buf.push(b'0' + (n % 10) as u8);
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe as i64 + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `"2025-12-01T00:00:00.000Z"` (quoted) for ms since the epoch (years 1000..9999).
fn push_time(buf: &mut Vec<u8>, ms: i64) {
    let days = ms.div_euclid(DAY);
    let rem = ms.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    buf.push(b'"');
    push_u64(buf, y as u64);
    buf.push(b'-');
    push_2(buf, m);
    buf.push(b'-');
    push_2(buf, d);
    buf.push(b'T');
    push_2(buf, (rem / HOUR) as u32);
    buf.push(b':');
    push_2(buf, (rem / MINUTE % 60) as u32);
    buf.push(b':');
    push_2(buf, (rem / 1000 % 60) as u32);
    buf.push(b'.');
    let milli = (rem % 1000) as u32;
    buf.push(b'0' + (milli / 100) as u8);
    push_2(buf, milli % 100);
    push_raw(buf, "Z\"");
}

fn push_tags(buf: &mut Vec<u8>, idx: &[usize]) {
    buf.push(b'[');
    for (j, &t) in idx.iter().enumerate() {
        if j > 0 {
            buf.push(b',');
        }
        push_str(buf, TAGS[t]);
    }
    buf.push(b']');
}

// ---------------------------------------------------------------------------------------------
// The org

/// Shared, read-only generation state.
struct World {
    streams: Streams,
    customers: u64,
    companies: u64,
    vocab: Vec<String>,
    word_rank: Zipf,
    sku_rank: Zipf,
    country_rank: Zipf,
}

impl World {
    fn new(customers: u64, seed: u64) -> Self {
        let streams = Streams::new(seed);
        let vocab = make_vocabulary(&streams);
        World {
            customers,
            companies: (customers / 20).max(1),
            word_rank: Zipf::new(vocab.len(), 1.0),
            sku_rank: Zipf::new(1000, 1.0),
            country_rank: Zipf::new(COUNTRIES.len(), 1.1),
            vocab,
            streams,
        }
    }

    fn word(&self, rng: &mut impl Rng) -> &str {
        &self.vocab[self.word_rank.sample(rng)]
    }

    /// `"Word word word. Word word."`: `n` vocabulary words in sentences of 5..=12 words, with
    /// each keyword (message bodies only) inserted independently at a random position.
    fn push_prose<'a>(
        &'a self,
        buf: &mut Vec<u8>,
        rng: &mut impl Rng,
        n: usize,
        keywords: bool,
        words: &mut Vec<&'a str>,
    ) {
        words.clear();
        for _ in 0..n {
            words.push(self.word(rng));
        }
        if keywords {
            for &(kw, p) in &KEYWORDS {
                if rng.random_bool(p) {
                    let at = rng.random_range(0..=words.len() as u32) as usize;
                    words.insert(at, kw);
                }
            }
        }
        buf.push(b'"');
        let mut left_in_sentence = 0u32;
        for (j, w) in words.iter().enumerate() {
            if left_in_sentence == 0 {
                if j > 0 {
                    push_raw(buf, ". ");
                }
                left_in_sentence = rng.random_range(5..=12u32);
                buf.push(w.as_bytes()[0].to_ascii_uppercase());
                buf.extend_from_slice(&w.as_bytes()[1..]);
            } else {
                buf.push(b' ');
                push_raw(buf, w);
            }
            left_in_sentence -= 1;
        }
        push_raw(buf, ".\"");
    }
}

/// Per-customer counts: the first draws of the customer's stream.
struct Counts {
    orders: u64,
    conversations: u64,
    messages: [u64; 4],
}

impl Counts {
    fn draw(rng: &mut impl Rng) -> Counts {
        let orders = rng.random_range(0..=10u32) as u64;
        let conversations = rng.random_range(0..=4u32) as u64;
        let mut messages = [0u64; 4];
        for m in messages.iter_mut().take(conversations as usize) {
            *m = 1 + (0..7).filter(|_| rng.random_bool(3.0 / 7.0)).count() as u64;
        }
        Counts {
            orders,
            conversations,
            messages,
        }
    }

    fn total_messages(&self) -> u64 {
        self.messages.iter().sum()
    }
}

/// First global ids of a chunk.
#[derive(Clone, Copy, Default)]
struct Bases {
    order: u64,
    conversation: u64,
    message: u64,
}

/// Output of one chunk of customers: bytes and line counts for files 03..=06.
struct ChunkOut {
    index: u64,
    bufs: [Vec<u8>; 4],
    lines: [u64; 4],
}

fn write_klasses(buf: &mut Vec<u8>) -> u64 {
    const LINES: [&str; 3] = [
        r#"{"op":"upsert","resource":"klass","object":{"name":"company","attributes":[{"name":"industryStr","type":"string"},{"name":"employeesNum","type":"integer"}]}}"#,
        r#"{"op":"upsert","resource":"klass","object":{"name":"customer","attributes":[{"name":"tierStr","type":"string"},{"name":"ltvNum","type":"number"},{"name":"countryStr","type":"string"},{"name":"vipBool","type":"boolean"},{"name":"bioTxt","type":"text"}]}}"#,
        r##"{"op":"upsert","resource":"klass","object":{"name":"order","displayName":"Order","icon":"cart","color":"#3366ff","attributes":[{"name":"orderNumberStr","type":"string"},{"name":"totalNum","type":"number"},{"name":"statusStr","type":"string"},{"name":"placedAt","type":"date"},{"name":"itemsNum","type":"integer"},{"name":"skuStr","type":"string"},{"name":"channelStr","type":"string"}]}}"##,
    ];
    for l in LINES {
        push_raw(buf, l);
        buf.push(b'\n');
    }
    LINES.len() as u64
}

fn write_directory(buf: &mut Vec<u8>) -> u64 {
    for t in 0..TEAMS {
        push_raw(buf, r#"{"op":"upsert","resource":"team","object":{"id":"team-"#);
        push_u64(buf, t);
        push_raw(buf, r#"","name":"Team "#);
        push_u64(buf, t);
        push_raw(buf, "\",\"members\":[]}}\n");
    }
    for u in 0..USERS {
        push_raw(buf, r#"{"op":"upsert","resource":"user","object":{"id":"user-"#);
        push_u64(buf, u);
        push_raw(buf, r#"","name":"Agent "#);
        push_u64(buf, u);
        push_raw(buf, r#"","email":"agent"#);
        push_u64(buf, u);
        push_raw(buf, r#"@retail.example","role":"agent","teams":["team-"#);
        push_u64(buf, u % TEAMS);
        push_raw(buf, "\"]}}\n");
    }
    TEAMS + USERS
}

fn write_companies(w: &World, buf: &mut Vec<u8>) -> u64 {
    for i in 0..w.companies {
        let mut rng = w.streams.rng(Purpose::Companies, i);
        let industry = INDUSTRIES[rng.random_range(0..INDUSTRIES.len() as u32) as usize];
        let employees = (rng.random::<f64>() * 100_000f64.ln())
            .exp()
            .round()
            .clamp(1.0, 100_000.0) as u64;
        let created = uniform_ms(&mut rng, START_MS, END_MS);
        let updated = uniform_ms(&mut rng, created, END_MS);
        push_raw(buf, r#"{"op":"upsert","klass":"company","id":"company-"#);
        push_u64(buf, i);
        push_raw(buf, r#"","object":{"name":"Company "#);
        push_u64(buf, i);
        push_raw(buf, r#"","domains":["company"#);
        push_u64(buf, i);
        push_raw(buf, r#".example"],"custom":{"industryStr":"#);
        push_str(buf, industry);
        push_raw(buf, r#","employeesNum":"#);
        push_u64(buf, employees);
        push_raw(buf, r#"},"createdAt":"#);
        push_time(buf, created);
        push_raw(buf, r#","updatedAt":"#);
        push_time(buf, updated);
        push_raw(buf, "}}\n");
    }
    w.companies
}

/// Customers `first..end` with their orders, conversations and messages.
fn generate_chunk(w: &World, index: u64, first: u64, end: u64, bases: Bases) -> ChunkOut {
    let n = end - first;
    let mut out = ChunkOut {
        index,
        bufs: [
            Vec::with_capacity((n * 700) as usize),
            Vec::with_capacity((n * 5 * 420) as usize),
            Vec::with_capacity((n * 2 * 330) as usize),
            Vec::with_capacity((n * 8 * 560) as usize),
        ],
        lines: [0; 4],
    };
    let [cbuf, obuf, vbuf, mbuf] = &mut out.bufs;
    let mut next = bases;
    let mut words: Vec<&str> = Vec::with_capacity(96);
    for i in first..end {
        let mut rng = w.streams.rng(Purpose::Customers, i);
        let counts = Counts::draw(&mut rng);

        // customer
        let first_name = FIRST_NAMES[rng.random_range(0..200u32) as usize];
        let last_name = LAST_NAMES[rng.random_range(0..200u32) as usize];
        let created = uniform_ms(&mut rng, START_MS, END_MS - DAY);
        let updated = uniform_ms(&mut rng, created, END_MS);
        let (tags, ntags) = {
            let k = rng.random_range(0..=3u32) as usize;
            distinct(&mut rng, TAGS.len(), k)
        };
        let tier = weighted(&mut rng, &TIERS);
        let ltv = log_normal_cents(&mut rng, 400f64.ln(), 1.2, 0.0, 20_000.0);
        let country = COUNTRIES[w.country_rank.sample(&mut rng)];
        let vip = rng.random_bool(0.05);
        push_raw(cbuf, r#"{"op":"upsert","klass":"customer","id":"customer-"#);
        push_u64(cbuf, i);
        push_raw(cbuf, r#"","object":{"name":""#);
        push_raw(cbuf, first_name);
        cbuf.push(b' ');
        push_raw(cbuf, last_name);
        push_raw(cbuf, r#"","emails":[""#);
        for name in [first_name, last_name] {
            cbuf.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
            cbuf.push(b'.');
        }
        cbuf.pop();
        push_u64(cbuf, i);
        push_raw(cbuf, r#"@example.com"],"phones":["+1555"#);
        let phone = i % 10_000_000;
        for p in [1_000_000, 100_000, 10_000, 1_000, 100, 10, 1] {
            cbuf.push(b'0' + (phone / p % 10) as u8);
        }
        push_raw(cbuf, r#""],"company":"#);
        push_id(cbuf, "company-", i % w.companies);
        push_raw(cbuf, r#","tags":"#);
        push_tags(cbuf, &tags[..ntags]);
        push_raw(cbuf, r#","custom":{"tierStr":"#);
        push_str(cbuf, tier);
        push_raw(cbuf, r#","ltvNum":"#);
        push_cents(cbuf, ltv);
        push_raw(cbuf, r#","countryStr":"#);
        push_str(cbuf, country);
        push_raw(cbuf, r#","vipBool":"#);
        push_raw(cbuf, if vip { "true" } else { "false" });
        push_raw(cbuf, r#","bioTxt":"#);
        let nbio = rng.random_range(10..=30u32) as usize;
        w.push_prose(cbuf, &mut rng, nbio, false, &mut words);
        push_raw(cbuf, r#"},"createdAt":"#);
        push_time(cbuf, created);
        push_raw(cbuf, r#","updatedAt":"#);
        push_time(cbuf, updated);
        push_raw(cbuf, "}}\n");
        out.lines[0] += 1;

        // orders
        for _ in 0..counts.orders {
            let n = next.order;
            next.order += 1;
            let total = log_normal_cents(&mut rng, 60f64.ln(), 1.0, 5.0, 2000.0);
            let status = weighted(&mut rng, &ORDER_STATUS);
            let placed = uniform_ms(&mut rng, created, END_MS);
            let items = rng.random_range(1..=10u32);
            let sku = w.sku_rank.sample(&mut rng) as u32;
            let channel = weighted(&mut rng, &ORDER_CHANNELS);
            push_raw(obuf, r#"{"op":"upsert","klass":"order","id":"order-"#);
            push_u64(obuf, n);
            push_raw(obuf, r#"","externalId":"ORD-"#);
            push_u64(obuf, n);
            push_raw(obuf, r#"","object":{"customer":"#);
            push_id(obuf, "customer-", i);
            push_raw(obuf, r#","title":"#);
            push_id(obuf, "ORD-", n);
            push_raw(obuf, r#","custom":{"orderNumberStr":"#);
            push_id(obuf, "ORD-", n);
            push_raw(obuf, r#","totalNum":"#);
            push_cents(obuf, total);
            push_raw(obuf, r#","statusStr":"#);
            push_str(obuf, status);
            push_raw(obuf, r#","placedAt":"#);
            push_time(obuf, placed);
            push_raw(obuf, r#","itemsNum":"#);
            push_u64(obuf, items as u64);
            push_raw(obuf, r#","skuStr":"SKU-"#);
            push_2(obuf, sku / 100);
            push_2(obuf, sku % 100);
            push_raw(obuf, r#"","channelStr":"#);
            push_str(obuf, channel);
            push_raw(obuf, r#"},"createdAt":"#);
            push_time(obuf, placed);
            push_raw(obuf, r#","updatedAt":"#);
            push_time(obuf, placed);
            push_raw(obuf, "}}\n");
            out.lines[1] += 1;
        }

        // conversations and their messages
        for c in 0..counts.conversations as usize {
            let conv = next.conversation;
            next.conversation += 1;
            let status = weighted(&mut rng, &CONV_STATUS);
            let channel = weighted(&mut rng, &CONV_CHANNELS);
            let priority = rng.random_range(1..=5u32);
            let team = rng.random_range(0..TEAMS as u32) as u64;
            let user = team + TEAMS * rng.random_range(0..(USERS / TEAMS) as u32) as u64;
            let (tags, ntags) = {
                let k = rng.random_range(0..=2u32) as usize;
                distinct(&mut rng, TAGS.len(), k)
            };
            let conv_created = uniform_ms(&mut rng, created, END_MS - HOUR);
            // message times: first at conv_created, then gaps of 1 min..48 h, squeezed to fit
            let nmsg = counts.messages[c] as usize;
            let mut gaps = [0i64; 8];
            let mut sum = 0i64;
            for g in gaps.iter_mut().take(nmsg).skip(1) {
                let lo = MINUTE as f64;
                let hi = (48 * HOUR) as f64;
                *g = (lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp() as i64;
                sum += *g;
            }
            let room = END_MS - conv_created - 8;
            if sum > room {
                for g in gaps.iter_mut().take(nmsg).skip(1) {
                    *g = ((*g as i128 * room as i128 / sum as i128) as i64).max(1);
                }
            }
            let mut times = [0i64; 8];
            let mut t = conv_created;
            for k in 0..nmsg {
                t += gaps[k];
                times[k] = t;
            }
            let conv_updated = times[nmsg - 1];

            push_raw(vbuf, r#"{"op":"upsert","klass":"conversation","id":"conversation-"#);
            push_u64(vbuf, conv);
            push_raw(vbuf, r#"","object":{"customer":"#);
            push_id(vbuf, "customer-", i);
            push_raw(vbuf, r#","subject":""#);
            let nsubj = rng.random_range(4..=8u32);
            for k in 0..nsubj {
                let word = w.word(&mut rng);
                if k == 0 {
                    vbuf.push(word.as_bytes()[0].to_ascii_uppercase());
                    vbuf.extend_from_slice(&word.as_bytes()[1..]);
                } else {
                    vbuf.push(b' ');
                    push_raw(vbuf, word);
                }
            }
            push_raw(vbuf, r#"","status":"#);
            push_str(vbuf, status);
            push_raw(vbuf, r#","channel":"#);
            push_str(vbuf, channel);
            push_raw(vbuf, r#","priority":"#);
            push_u64(vbuf, priority as u64);
            push_raw(vbuf, r#","assignedTeam":"#);
            push_id(vbuf, "team-", team);
            push_raw(vbuf, r#","assignedUser":"#);
            push_id(vbuf, "user-", user);
            push_raw(vbuf, r#","tags":"#);
            push_tags(vbuf, &tags[..ntags]);
            push_raw(vbuf, r#","createdAt":"#);
            push_time(vbuf, conv_created);
            push_raw(vbuf, r#","updatedAt":"#);
            push_time(vbuf, conv_updated);
            if status == "snoozed" {
                let days = rng.random_range(1..=14u32) as i64;
                push_raw(vbuf, r#","snoozedUntil":"#);
                push_time(vbuf, conv_updated + days * DAY);
            }
            push_raw(vbuf, "}}\n");
            out.lines[2] += 1;

            for (k, &at) in times.iter().take(nmsg).enumerate() {
                let m = next.message;
                next.message += 1;
                push_raw(mbuf, r#"{"op":"upsert","klass":"message","id":"message-"#);
                push_u64(mbuf, m);
                push_raw(mbuf, r#"","object":{"conversation":"#);
                push_id(mbuf, "conversation-", conv);
                push_raw(mbuf, r#","customer":"#);
                push_id(mbuf, "customer-", i);
                push_raw(mbuf, r#","direction":"#);
                push_raw(mbuf, if k % 2 == 0 { r#""in""# } else { r#""out""# });
                push_raw(mbuf, r#","channel":"#);
                push_str(mbuf, channel);
                push_raw(mbuf, r#","body":"#);
                let nbody = rng.random_range(20..=80u32) as usize;
                w.push_prose(mbuf, &mut rng, nbody, true, &mut words);
                push_raw(mbuf, r#","createdAt":"#);
                push_time(mbuf, at);
                push_raw(mbuf, r#","updatedAt":"#);
                push_time(mbuf, at);
                push_raw(mbuf, "}}\n");
                out.lines[3] += 1;
            }
        }
    }
    out
}

fn create(dir: &Path, name: &str) -> anyhow::Result<File> {
    let path = dir.join(name);
    File::create(&path).with_context(|| format!("cannot create {}", path.display()))
}

fn write_all(file: &mut File, dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", dir.join(name).display()))
}

/// [`generate`] with an explicit number of generator threads (the output does not depend on it).
fn generate_with_threads(opts: &GenOptions, threads: usize) -> anyhow::Result<GenSummary> {
    let dir = opts.out.as_path();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create output directory {}", dir.display()))?;
    let world = World::new(opts.customers, opts.seed);
    let mut files: Vec<(String, u64, u64)> = Vec::with_capacity(FILE_NAMES.len());

    // small files, single-threaded
    let small: [fn(&World, &mut Vec<u8>) -> u64; 3] =
        [|_, b| write_klasses(b), |_, b| write_directory(b), write_companies];
    for (name, write) in FILE_NAMES.iter().zip(small) {
        let mut buf = Vec::new();
        let lines = write(&world, &mut buf);
        let mut f = create(dir, name)?;
        write_all(&mut f, dir, name, &buf)?;
        files.push((name.to_string(), lines, buf.len() as u64));
    }

    // first pass: id bases of every chunk
    let chunks = world.customers.div_ceil(CHUNK);
    let mut bases = Vec::with_capacity(chunks as usize);
    let mut acc = Bases::default();
    for i in 0..world.customers {
        if i % CHUNK == 0 {
            bases.push(acc);
        }
        let c = Counts::draw(&mut world.streams.rng(Purpose::Customers, i));
        acc.order += c.orders;
        acc.conversation += c.conversations;
        acc.message += c.total_messages();
    }

    // second pass: chunks on worker threads, written in order by this thread
    let mut outs = Vec::with_capacity(4);
    for name in &FILE_NAMES[3..] {
        outs.push(create(dir, name)?);
    }
    let mut lines = [0u64; 4];
    let mut bytes = [0u64; 4];
    let next_chunk = AtomicU64::new(0);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let (tx, rx) = mpsc::sync_channel::<ChunkOut>(threads * 2);
        for _ in 0..threads.max(1) {
            let tx = tx.clone();
            let (world, bases, next_chunk) = (&world, &bases, &next_chunk);
            s.spawn(move || loop {
                let c = next_chunk.fetch_add(1, Ordering::Relaxed);
                if c >= chunks {
                    break;
                }
                let first = c * CHUNK;
                let end = (first + CHUNK).min(world.customers);
                if tx
                    .send(generate_chunk(world, c, first, end, bases[c as usize]))
                    .is_err()
                {
                    break; // the writer gave up
                }
            });
        }
        drop(tx);
        let rx = rx; // dropped on return, which stops the workers if writing failed
        let mut pending = BTreeMap::new();
        let mut want = 0u64;
        for out in rx.iter() {
            pending.insert(out.index, out);
            while let Some(out) = pending.remove(&want) {
                for k in 0..4 {
                    write_all(&mut outs[k], dir, FILE_NAMES[3 + k], &out.bufs[k])?;
                    lines[k] += out.lines[k];
                    bytes[k] += out.bufs[k].len() as u64;
                }
                want += 1;
            }
        }
        anyhow::ensure!(want == chunks, "generator thread stopped early");
        Ok(())
    })?;
    for (k, f) in outs.iter_mut().enumerate() {
        f.flush()
            .with_context(|| format!("cannot write {}", FILE_NAMES[3 + k]))?;
    }
    debug_assert_eq!(
        [lines[1], lines[2], lines[3]],
        [acc.order, acc.conversation, acc.message]
    );
    for k in 0..4 {
        files.push((FILE_NAMES[3 + k].to_string(), lines[k], bytes[k]));
    }
    let objects = files[2..].iter().map(|f| f.1).sum();
    Ok(GenSummary { files, objects })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::HashMap;
    use std::sync::atomic::AtomicUsize;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "kindred-gen-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn run(customers: u64, seed: u64, threads: usize) -> (TempDir, GenSummary) {
        let dir = TempDir::new();
        let opts = GenOptions {
            customers,
            seed,
            out: dir.0.clone(),
        };
        let summary = generate_with_threads(&opts, threads).unwrap();
        (dir, summary)
    }

    fn read_all(dir: &Path) -> Vec<Vec<u8>> {
        FILE_NAMES.iter().map(|n| std::fs::read(dir.join(n)).unwrap()).collect()
    }

    fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = if y >= 0 { y } else { y - 399 } / 400;
        let yoe = (y - era * 400) as u64;
        let mp = if m > 2 { m - 3 } else { m + 9 } as u64;
        let doy = (153 * mp + 2) / 5 + d as u64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe as i64 - 719_468
    }

    /// Parses exactly the `YYYY-MM-DDTHH:MM:SS.mmmZ` form the generator writes.
    fn ms(v: &Value) -> i64 {
        let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
        let b = s.as_bytes();
        assert_eq!(b.len(), 24, "{s}");
        assert!(
            b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[19] == b'.' && b[23] == b'Z',
            "{s}"
        );
        let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
        let days = days_from_civil(n(0..4), n(5..7) as u32, n(8..10) as u32);
        days * DAY + n(11..13) * HOUR + n(14..16) * MINUTE + n(17..19) * 1000 + n(20..23)
    }

    fn lines(dir: &Path, name: &str) -> Vec<Value> {
        std::fs::read_to_string(dir.join(name))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")))
            .collect()
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(|k| k.as_str()).collect()
    }

    fn in_range(t: i64) -> bool {
        (START_MS..=END_MS).contains(&t)
    }

    fn cents_ok(v: &Value, lo: f64, hi: f64) -> bool {
        let x = v.as_f64().unwrap();
        (lo..=hi).contains(&x) && ((x * 100.0).round() - x * 100.0).abs() < 1e-6
    }

    #[test]
    fn time_formatting() {
        let f = |t| {
            let mut b = Vec::new();
            push_time(&mut b, t);
            String::from_utf8(b).unwrap()
        };
        assert_eq!(f(START_MS), "\"2023-01-01T00:00:00.000Z\"");
        assert_eq!(f(END_MS), "\"2025-12-31T23:59:59.999Z\"");
        assert_eq!(f(0), "\"1970-01-01T00:00:00.000Z\"");
        let leap = days_from_civil(2024, 2, 29) * DAY + 13 * HOUR + 5 * MINUTE + 7_042;
        assert_eq!(f(leap), "\"2024-02-29T13:05:07.042Z\"");
        for t in [START_MS, END_MS, leap, START_MS + 12_345_678_901] {
            assert_eq!(ms(&Value::String(f(t).trim_matches('"').to_string())), t);
        }
    }

    #[test]
    fn vocabulary_is_5000_distinct_words_without_keywords() {
        let v = make_vocabulary(&Streams::new(1));
        assert_eq!(v.len(), 5000);
        assert_eq!(v.iter().collect::<HashSet<_>>().len(), 5000);
        for w in &v {
            assert!(w.bytes().all(|b| b.is_ascii_lowercase()), "{w}");
            assert!(!KEYWORD_STEMS.iter().any(|k| w.starts_with(k)), "{w}");
        }
        assert_eq!(v, make_vocabulary(&Streams::new(1)));
    }

    #[test]
    fn deterministic_whatever_the_thread_count() {
        let (a, sa) = run(1300, 7, 1);
        let (b, sb) = run(1300, 7, 3);
        let (c, _) = run(1300, 8, 2);
        assert_eq!(read_all(&a.0), read_all(&b.0));
        assert_eq!(sa.files, sb.files);
        assert_ne!(read_all(&a.0)[3], read_all(&c.0)[3], "another seed gives other data");
        for (k, (name, lines, bytes)) in sa.files.iter().enumerate() {
            assert_eq!(name, FILE_NAMES[k]);
            let data = &read_all(&a.0)[k];
            assert_eq!(*bytes, data.len() as u64);
            assert_eq!(*lines, data.iter().filter(|&&b| b == b'\n').count() as u64);
        }
    }

    #[test]
    fn tiny_orgs() {
        for n in [0, 1, 19] {
            let (dir, s) = run(n, 3, 2);
            assert_eq!(s.files[2].1, 1, "at least one company");
            assert_eq!(s.files[3].1, n);
            for l in lines(&dir.0, "03-customers.ndjson") {
                assert_eq!(l["object"]["company"], "company-0");
            }
        }
    }

    /// Shape, references, counts, dates and orderings of a 2000-customer org.
    #[test]
    fn org_is_well_formed() {
        const N: u64 = 2000;
        let (dir, summary) = run(N, 42, 2);
        let d = dir.0.as_path();

        // 00: klasses
        let klasses = lines(d, FILE_NAMES[0]);
        let names: Vec<_> = klasses.iter().map(|k| k["object"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["company", "customer", "order"]);
        for k in &klasses {
            assert_eq!(keys(k), ["op", "resource", "object"]);
            assert_eq!(
                (k["op"].as_str(), k["resource"].as_str()),
                (Some("upsert"), Some("klass"))
            );
        }
        let order_attrs: Vec<_> = klasses[2]["object"]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(order_attrs.len(), 7);

        // 01: teams then users
        let dirl = lines(d, FILE_NAMES[1]);
        assert_eq!(dirl.len(), 110);
        let mut teams = HashSet::new();
        let mut user_team = HashMap::new();
        for (j, l) in dirl.iter().enumerate() {
            let o = &l["object"];
            if j < 10 {
                assert_eq!(l["resource"], "team");
                assert_eq!(o["id"], format!("team-{j}"));
                assert_eq!(o["name"], format!("Team {j}"));
                assert_eq!(o["members"], serde_json::json!([]));
                teams.insert(o["id"].as_str().unwrap().to_string());
            } else {
                let u = j - 10;
                assert_eq!(l["resource"], "user");
                assert_eq!(keys(o), ["id", "name", "email", "role", "teams"]);
                assert_eq!(o["email"], format!("agent{u}@retail.example"));
                let t = o["teams"][0].as_str().unwrap();
                assert_eq!(t, format!("team-{}", u % 10));
                assert!(teams.contains(t));
                user_team.insert(o["id"].as_str().unwrap().to_string(), t.to_string());
            }
        }

        // 02: companies
        let companies = lines(d, FILE_NAMES[2]);
        assert_eq!(companies.len() as u64, N / 20);
        let mut company_ids = HashSet::new();
        for (i, l) in companies.iter().enumerate() {
            assert_eq!(keys(l), ["op", "klass", "id", "object"]);
            assert_eq!(l["id"], format!("company-{i}"));
            let o = &l["object"];
            assert_eq!(keys(o), ["name", "domains", "custom", "createdAt", "updatedAt"]);
            assert_eq!(o["domains"][0], format!("company{i}.example"));
            assert!(INDUSTRIES.contains(&o["custom"]["industryStr"].as_str().unwrap()));
            let e = o["custom"]["employeesNum"].as_u64().unwrap();
            assert!((1..=100_000).contains(&e));
            let (c, u) = (ms(&o["createdAt"]), ms(&o["updatedAt"]));
            assert!(in_range(c) && in_range(u) && c <= u);
            company_ids.insert(l["id"].as_str().unwrap().to_string());
        }

        // 03: customers
        let customers = lines(d, FILE_NAMES[3]);
        assert_eq!(customers.len() as u64, N);
        let mut cust_created = HashMap::new();
        let mut tiers: HashMap<String, u64> = HashMap::new();
        let mut countries: HashMap<String, u64> = HashMap::new();
        let mut vips = 0;
        for (i, l) in customers.iter().enumerate() {
            assert_eq!(l["id"], format!("customer-{i}"));
            let o = &l["object"];
            assert_eq!(
                keys(o),
                [
                    "name",
                    "emails",
                    "phones",
                    "company",
                    "tags",
                    "custom",
                    "createdAt",
                    "updatedAt"
                ]
            );
            let name = o["name"].as_str().unwrap();
            let (f, la) = name.split_once(' ').unwrap();
            assert!(FIRST_NAMES.contains(&f) && LAST_NAMES.contains(&la));
            let email = format!("{}.{}{i}@example.com", f.to_lowercase(), la.to_lowercase());
            assert_eq!(o["emails"], serde_json::json!([email]));
            assert_eq!(o["phones"], serde_json::json!([format!("+1555{i:07}")]));
            assert_eq!(o["company"], format!("company-{}", i as u64 % (N / 20)));
            assert!(company_ids.contains(o["company"].as_str().unwrap()));
            let tags = o["tags"].as_array().unwrap();
            assert!(tags.len() <= 3);
            assert_eq!(tags.iter().collect::<HashSet<_>>().len(), tags.len());
            assert!(tags.iter().all(|t| TAGS.contains(&t.as_str().unwrap())));
            let c = &o["custom"];
            assert_eq!(keys(c), ["tierStr", "ltvNum", "countryStr", "vipBool", "bioTxt"]);
            *tiers.entry(c["tierStr"].as_str().unwrap().into()).or_default() += 1;
            *countries.entry(c["countryStr"].as_str().unwrap().into()).or_default() += 1;
            assert!(cents_ok(&c["ltvNum"], 0.0, 20_000.0));
            vips += c["vipBool"].as_bool().unwrap() as u64;
            let bio = c["bioTxt"].as_str().unwrap().split(' ').count();
            assert!((10..=30).contains(&bio), "{bio}");
            let (cr, up) = (ms(&o["createdAt"]), ms(&o["updatedAt"]));
            assert!(in_range(cr) && in_range(up) && cr <= up);
            cust_created.insert(l["id"].as_str().unwrap().to_string(), cr);
        }
        let frac = |m: &HashMap<String, u64>, k: &str| *m.get(k).unwrap_or(&0) as f64 / N as f64;
        for (t, p) in [("bronze", 0.5), ("silver", 0.3), ("gold", 0.15), ("platinum", 0.05)] {
            assert!((frac(&tiers, t) - p).abs() < 0.04, "{t}: {}", frac(&tiers, t));
        }
        let top = countries.iter().max_by_key(|(_, n)| **n).unwrap().0;
        assert_eq!(top, "US");
        assert!(countries.len() <= 50 && countries.len() > 30);
        assert!(
            (frac(&countries, "US") - 0.26).abs() < 0.05,
            "{}",
            frac(&countries, "US")
        );
        assert!((40..=160).contains(&vips), "{vips}");

        // 04: orders
        let orders = lines(d, FILE_NAMES[4]);
        let mut per_customer: HashMap<&str, u64> = HashMap::new();
        for (n, l) in orders.iter().enumerate() {
            assert_eq!(keys(l), ["op", "klass", "id", "externalId", "object"]);
            assert_eq!(l["id"], format!("order-{n}"));
            assert_eq!(l["externalId"], format!("ORD-{n}"));
            let o = &l["object"];
            assert_eq!(keys(o), ["customer", "title", "custom", "createdAt", "updatedAt"]);
            let cust = o["customer"].as_str().unwrap();
            *per_customer.entry(cust).or_default() += 1;
            let c = &o["custom"];
            assert_eq!(
                keys(c),
                [
                    "orderNumberStr",
                    "totalNum",
                    "statusStr",
                    "placedAt",
                    "itemsNum",
                    "skuStr",
                    "channelStr"
                ]
            );
            assert_eq!(c["orderNumberStr"], format!("ORD-{n}"));
            assert_eq!(o["title"], format!("ORD-{n}"));
            assert!(cents_ok(&c["totalNum"], 5.0, 2000.0));
            assert!(ORDER_STATUS.iter().any(|s| s.0 == c["statusStr"]));
            assert!(ORDER_CHANNELS.iter().any(|s| s.0 == c["channelStr"]));
            assert!((1..=10).contains(&c["itemsNum"].as_u64().unwrap()));
            let sku = c["skuStr"].as_str().unwrap();
            assert!(sku.len() == 8 && sku.starts_with("SKU-") && sku[4..].parse::<u32>().unwrap() < 1000);
            let placed = ms(&c["placedAt"]);
            assert!(in_range(placed) && placed >= cust_created[cust]);
            assert_eq!(ms(&o["createdAt"]), placed);
            assert_eq!(ms(&o["updatedAt"]), placed);
        }
        assert!(per_customer.values().all(|&k| k <= 10));
        let mean = orders.len() as f64 / N as f64;
        assert!((4.6..=5.4).contains(&mean), "{mean}");

        // 05: conversations
        let convs = lines(d, FILE_NAMES[5]);
        let mut conv_info: HashMap<String, (String, String, i64, i64)> = HashMap::new();
        let mut per_customer: HashMap<&str, u64> = HashMap::new();
        let mut open = 0;
        for (n, l) in convs.iter().enumerate() {
            assert_eq!(l["id"], format!("conversation-{n}"));
            let o = &l["object"];
            let status = o["status"].as_str().unwrap();
            let mut expect = vec![
                "customer",
                "subject",
                "status",
                "channel",
                "priority",
                "assignedTeam",
                "assignedUser",
                "tags",
                "createdAt",
                "updatedAt",
            ];
            if status == "snoozed" {
                expect.push("snoozedUntil");
            }
            assert_eq!(keys(o), expect);
            open += (status == "open") as u64;
            let cust = o["customer"].as_str().unwrap();
            *per_customer.entry(cust).or_default() += 1;
            let subj = o["subject"].as_str().unwrap().split(' ').count();
            assert!((4..=8).contains(&subj));
            assert!(CONV_CHANNELS.iter().any(|s| s.0 == o["channel"]));
            assert!((1..=5).contains(&o["priority"].as_u64().unwrap()));
            let team = o["assignedTeam"].as_str().unwrap();
            assert!(teams.contains(team));
            assert_eq!(user_team[o["assignedUser"].as_str().unwrap()], team);
            assert!(o["tags"].as_array().unwrap().len() <= 2);
            let (cr, up) = (ms(&o["createdAt"]), ms(&o["updatedAt"]));
            assert!(in_range(cr) && in_range(up) && cr <= up && cr >= cust_created[cust]);
            if status == "snoozed" {
                let until = ms(&o["snoozedUntil"]);
                assert!(until > up && until - up <= 14 * DAY && (until - up) % DAY == 0);
            }
            conv_info.insert(
                l["id"].as_str().unwrap().into(),
                (cust.into(), o["channel"].as_str().unwrap().into(), cr, up),
            );
        }
        assert!(per_customer.values().all(|&k| k <= 4));
        let mean = convs.len() as f64 / N as f64;
        assert!((1.8..=2.2).contains(&mean), "{mean}");
        assert!((open as f64 / convs.len() as f64 - 0.2).abs() < 0.04);

        // 06: messages
        let msgs = lines(d, FILE_NAMES[6]);
        let mut last: HashMap<String, (i64, usize)> = HashMap::new();
        let mut kw = [0u64; 5];
        for (n, l) in msgs.iter().enumerate() {
            assert_eq!(l["id"], format!("message-{n}"));
            let o = &l["object"];
            assert_eq!(
                keys(o),
                [
                    "conversation",
                    "customer",
                    "direction",
                    "channel",
                    "body",
                    "createdAt",
                    "updatedAt"
                ]
            );
            let conv = o["conversation"].as_str().unwrap();
            let (cust, channel, conv_cr, conv_up) = &conv_info[conv];
            assert_eq!(o["customer"], cust.as_str());
            assert_eq!(o["channel"], channel.as_str());
            let t = ms(&o["createdAt"]);
            assert_eq!(ms(&o["updatedAt"]), t);
            assert!(in_range(t) && t >= *conv_cr && t <= *conv_up);
            let k = match last.get(conv) {
                None => {
                    assert_eq!(t, *conv_cr, "first message at the conversation's creation");
                    0
                }
                Some(&(prev, k)) => {
                    assert!(t > prev, "increasing inside a conversation");
                    k + 1
                }
            };
            assert_eq!(o["direction"], if k % 2 == 0 { "in" } else { "out" });
            last.insert(conv.to_string(), (t, k));
            let body = o["body"].as_str().unwrap();
            let words: Vec<String> = body
                .split(' ')
                .map(|w| w.trim_end_matches('.').to_lowercase())
                .collect();
            assert!((20..=85).contains(&words.len()), "{}", words.len());
            for (j, (kwd, _)) in KEYWORDS.iter().enumerate() {
                kw[j] += words.iter().any(|w| w == kwd) as u64;
            }
        }
        for (conv, (_, _, _, up)) in &conv_info {
            let (t, k) = last[conv];
            assert_eq!(t, *up, "conversation updatedAt = last message");
            assert!(k < 8);
        }
        let mean = msgs.len() as f64 / convs.len() as f64;
        assert!((3.8..=4.2).contains(&mean), "{mean}");
        for (j, (kwd, p)) in KEYWORDS.iter().enumerate() {
            let f = kw[j] as f64 / msgs.len() as f64;
            assert!((f - p).abs() < 0.012, "{kwd}: {f}");
        }

        // summary
        let counts: Vec<u64> = summary.files.iter().map(|f| f.1).collect();
        assert_eq!(
            counts,
            [
                3,
                110,
                companies.len(),
                customers.len(),
                orders.len(),
                convs.len(),
                msgs.len()
            ]
            .map(|x| x as u64)
        );
        assert_eq!(summary.objects, counts[2..].iter().sum::<u64>());
    }
}
