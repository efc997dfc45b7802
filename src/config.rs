//! Configuration: one typed struct, loaded once by the binary.
//!
//! Precedence: defaults < TOML file (`--config FILE`) < environment (`KINDRED_*`) < command-line
//! flags. Validated before use. This is the only module that reads the environment.
//!
//! ```
//! let c = kindred::config::Config::default();
//! assert_eq!(c.listen, "127.0.0.1:7700");
//! assert!(c.validate().is_ok());
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct.
    #[error("config file `{path}`: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("config `{key}`: {message}")]
    Invalid {
        /// Key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Service configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "snake_case")]
pub struct Config {
    /// Data directory (store, indexes, admin key).
    pub data_dir: PathBuf,
    /// HTTP listen address.
    pub listen: String,
    /// First admin key, used on the first start only (else a random one is generated).
    pub admin_key: Option<String>,
    /// Largest request body, bytes (except `/v1/bulk`, which streams).
    pub body_limit: usize,
    /// Largest line of a bulk body, bytes.
    pub bulk_line_limit: usize,
    /// Largest hook body, bytes.
    pub hook_body_limit: usize,
    /// Directory overriding the embedded `index-config/`.
    pub index_config_dir: Option<PathBuf>,
    /// sled page cache, MiB.
    pub store_cache_mb: u64,
    /// Seconds before a request times out.
    pub request_timeout_secs: u64,
    /// SMTP listen address for email hooks (off when absent).
    pub smtp_listen: Option<String>,
    /// Domain of email hook addresses.
    pub smtp_domain: String,
    /// Hosts (`host` or `host:port`) that `http.request` steps may reach.
    pub http_allow: Vec<String>,
    /// Log format: `text` or `json`.
    pub log_format: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            listen: "127.0.0.1:7700".into(),
            admin_key: None,
            body_limit: 1 << 20,
            bulk_line_limit: 1 << 20,
            hook_body_limit: 256 << 10,
            index_config_dir: None,
            store_cache_mb: 256,
            request_timeout_secs: 60,
            smtp_listen: None,
            smtp_domain: "hooks.localhost".into(),
            http_allow: Vec::new(),
            log_format: "text".into(),
        }
    }
}

impl Config {
    /// Defaults, then the file if given, then the environment.
    ///
    /// # Errors
    /// An unreadable or invalid file, or an environment value that does not parse.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut c = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        c.apply_env(|k| std::env::var(k).ok())?;
        Ok(c)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(key: &'static str, v: String) -> Result<T, ConfigError> {
            v.parse().map_err(|_| ConfigError::Invalid {
                key,
                message: format!("`{v}` is not a number"),
            })
        }
        if let Some(v) = get("KINDRED_DATA") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("KINDRED_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("KINDRED_ADMIN_KEY").filter(|v| !v.is_empty()) {
            self.admin_key = Some(v);
        }
        if let Some(v) = get("KINDRED_BODY_LIMIT") {
            self.body_limit = num("KINDRED_BODY_LIMIT", v)?;
        }
        if let Some(v) = get("KINDRED_INDEX_CONFIG") {
            self.index_config_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get("KINDRED_STORE_CACHE_MB") {
            self.store_cache_mb = num("KINDRED_STORE_CACHE_MB", v)?;
        }
        if let Some(v) = get("KINDRED_SMTP_LISTEN") {
            self.smtp_listen = Some(v);
        }
        if let Some(v) = get("KINDRED_SMTP_DOMAIN") {
            self.smtp_domain = v;
        }
        if let Some(v) = get("KINDRED_HTTP_ALLOW") {
            self.http_allow = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(v) = get("KINDRED_LOG_FORMAT") {
            self.log_format = v;
        }
        Ok(())
    }

    /// Checks ranges.
    ///
    /// # Errors
    /// The first value out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.into(),
            })
        };
        if self.body_limit < 1024 {
            return invalid("body_limit", "must be at least 1024 bytes");
        }
        if self.bulk_line_limit < 1024 || self.hook_body_limit < 1024 {
            return invalid("bulk_line_limit", "limits must be at least 1024 bytes");
        }
        if self.store_cache_mb < 8 {
            return invalid("store_cache_mb", "must be at least 8");
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return invalid("log_format", "must be `text` or `json`");
        }
        if let Some(k) = &self.admin_key {
            if k.len() < 16 {
                return invalid("admin_key", "must be at least 16 characters");
            }
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return invalid("listen", "must be an address like 127.0.0.1:7700");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_defaults() {
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "KINDRED_LISTEN" => Some("0.0.0.0:9000".into()),
            "KINDRED_HTTP_ALLOW" => Some("a.example, b.example:8080".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.http_allow, vec!["a.example", "b.example:8080"]);
    }

    #[test]
    fn unknown_keys_in_a_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.toml");
        std::fs::write(&p, "listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap();
        let err = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(err.contains("listen_port"), "{err}");
    }

    #[test]
    fn short_admin_keys_are_refused() {
        let c = Config {
            admin_key: Some("short".into()),
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }
}
