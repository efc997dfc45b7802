//! Klasses: list, read, create, patch (add attributes and relationships, change display
//! metadata), remove custom attributes, delete custom klasses, and the auto-declaration of
//! Kustomer-suffix attributes on first write.

use serde_json::Value;

use super::auth::{Action, Caller};
use super::directory::list_json;
use super::error::{Result, ServiceError};
use super::{App, OrgRuntime};
use crate::error::{ErrorKind, Problem};
use crate::model::ids::check_name;
use crate::model::klass::{AttributeDef, KlassDef, RelationshipDef, RESERVED_KLASS_NAMES, STANDARD_KLASSES};
use crate::model::{AttrType, Attribute, Klass, Relationship};
use crate::storage::{Collection, Expect, Op};

fn def_problem(e: serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let mut pointer = String::new();
    for seg in e.path().iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            serde_path_to_error::Segment::Map { key } => pointer.push_str(&format!("/{key}")),
            _ => {}
        }
    }
    // The path already ends at the offending key (an unknown field included).
    let inner = e.into_inner().to_string();
    let inner = inner.split(" at line ").next().unwrap_or(&inner).to_string();
    Problem::invalid("invalid_definition", inner).at(pointer)
}

fn parse_def(body: &Value) -> Result<KlassDef> {
    if !body.is_object() {
        return Err(Problem::bad_request("invalid_body", "the body must be a JSON object").into());
    }
    serde_path_to_error::deserialize(body).map_err(|e| def_problem(e).into())
}

impl App {
    /// `GET /v1/klasses`.
    pub fn list_klasses(&self, caller: &Caller) -> Result<Value> {
        caller.require(Action::Read)?;
        let schema = self.runtime(&caller.org)?.schema();
        let mut klasses: Vec<&Klass> = schema.klasses.values().collect();
        klasses.sort_by_key(|k| {
            (
                !k.standard,
                STANDARD_KLASSES.iter().position(|s| *s == k.name),
                k.name.clone(),
            )
        });
        Ok(list_json(klasses.into_iter().map(Klass::to_json).collect()))
    }

    /// `GET /v1/klasses/{name}`.
    pub fn get_klass(&self, caller: &Caller, name: &str) -> Result<Value> {
        caller.require(Action::Read)?;
        let schema = self.runtime(&caller.org)?.schema();
        schema
            .klass(name)
            .map(Klass::to_json)
            .ok_or_else(|| Problem::not_found("klass", name).into())
    }

    /// `POST /v1/klasses`: a custom klass.
    pub fn create_klass(&self, caller: &Caller, body: &Value) -> Result<Value> {
        self.create_klass_named(caller, body, Names::Strict)
    }

    fn create_klass_named(&self, caller: &Caller, body: &Value, names: Names) -> Result<Value> {
        caller.require(Action::WriteSchema)?;
        let def = parse_def(body)?;
        let rt = self.runtime(&caller.org)?;
        let _g = rt.admin_write.lock().expect("admin lock");
        let k = self.new_klass(&rt, def, names)?;
        self.store().apply(
            rt.org.num,
            vec![Op::put(Collection::Klass, k.name.clone(), &k, Expect::Absent)],
        )?;
        self.reload_schema(&rt)?;
        tracing::info!(org = %rt.org.id, klass = %k.name, "klass created");
        Ok(k.to_json())
    }

    fn new_klass(&self, rt: &OrgRuntime, def: KlassDef, names: Names) -> Result<Klass> {
        let name = def.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(Problem::invalid("missing_field", "`name` is required")
                .at("/name")
                .into());
        }
        check_name(&name).map_err(|e| Problem::invalid("invalid_name", e.to_string()).at("/name"))?;
        let reserved = |r: &&str| match names {
            Names::Strict => r.eq_ignore_ascii_case(&name),
            Names::Exact => *r == name,
        };
        if RESERVED_KLASS_NAMES.iter().any(reserved) {
            return Err(Problem::invalid(
                "reserved_name",
                format!("`{name}` is reserved; choose another klass name"),
            )
            .at("/name")
            .into());
        }
        let schema = rt.schema();
        if schema.klass(&name).is_some() {
            return Err(Problem::conflict("duplicate_klass", format!("klass `{name}` already exists")).into());
        }
        // Names that differ only by case would make paths and klass prefixes easy to confuse.
        let similar = schema.klasses.keys().find(|k| k.eq_ignore_ascii_case(&name));
        if let (Names::Strict, Some(other)) = (names, similar) {
            return Err(Problem::conflict(
                "duplicate_klass",
                format!("klass `{other}` already exists; klass names must differ by more than case"),
            )
            .at("/name")
            .into());
        }
        let now = self.now();
        let mut k = Klass {
            name: name.clone(),
            display_name: def.display_name.clone(),
            icon: def.icon.clone(),
            color: def.color.clone(),
            standard: false,
            attributes: self.options().standard.kobject.clone(),
            relationships: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        self.add_definitions(rt, &mut k, def.attributes, def.relationships, true)?;
        Ok(k)
    }

    /// Adds attributes and relationships to `k`, assigning keys to new ones; an existing one must
    /// keep its type (409 otherwise) and only its display metadata (and enum values) change.
    fn add_definitions(
        &self,
        rt: &OrgRuntime,
        k: &mut Klass,
        attrs: Vec<AttributeDef>,
        rels: Vec<RelationshipDef>,
        creating: bool,
    ) -> Result<()> {
        let schema = rt.schema();
        let mut errors = Vec::new();
        let mut fresh: Vec<(AttributeDef, AttrType)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, d) in attrs.into_iter().enumerate() {
            let at = format!("/attributes/{i}");
            let before = errors.len();
            let ty = d.check(&at, &mut errors);
            if errors.len() > before {
                continue;
            }
            let ty = ty.expect("checked");
            if !seen.insert(d.name.clone()) {
                errors.push(crate::model::klass::DefError {
                    pointer: format!("{at}/name"),
                    code: "duplicate_attribute",
                    title: format!("attribute `{}` is declared twice", d.name),
                });
                continue;
            }
            if let Some(target) = &d.klass {
                if schema.klass(target).is_none() && target != &k.name {
                    errors.push(crate::model::klass::DefError {
                        pointer: format!("{at}/klass"),
                        code: "unknown_klass",
                        title: format!("klass `{target}` does not exist"),
                    });
                    continue;
                }
            }
            // A standard attribute of the same name counts as existing: no second attribute of one name.
            match k.attributes.iter_mut().find(|a| a.name == d.name) {
                Some(existing) => {
                    if existing.ty != ty || existing.list != d.list || existing.target != d.klass {
                        return Err(Problem::conflict(
                            "attribute_type_change",
                            format!(
                                "attribute `{}` is {}{}; its type cannot change",
                                d.name,
                                if existing.list { "a list of " } else { "" },
                                existing.ty.name()
                            ),
                        )
                        .at(format!("{at}/type"))
                        .into());
                    }
                    if d.display_name.is_some() {
                        existing.display_name = d.display_name;
                    }
                    if let Some(values) = d.values {
                        if existing.standard && values != existing.values {
                            return Err(Problem::conflict(
                                "standard_attribute",
                                format!("the values of standard attribute `{}` cannot change", d.name),
                            )
                            .at(format!("{at}/values"))
                            .into());
                        }
                        existing.values = values;
                    }
                }
                None => fresh.push((d, ty)),
            }
        }
        let mut fresh_rels = Vec::new();
        for (i, r) in rels.into_iter().enumerate() {
            let at = format!("/relationships/{i}");
            let mut err = |p: &str, code, title: String| {
                errors.push(crate::model::klass::DefError {
                    pointer: format!("{at}{p}"),
                    code,
                    title,
                })
            };
            if let Err(e) = check_name(&r.name) {
                err("/name", "invalid_name", e.to_string());
                continue;
            }
            if schema.klass(&r.klass).is_none() && r.klass != k.name {
                err("/klass", "unknown_klass", format!("klass `{}` does not exist", r.klass));
                continue;
            }
            match k.relationships.iter_mut().find(|x| x.name == r.name) {
                Some(existing) => {
                    if existing.klass != r.klass || existing.cardinality != r.cardinality {
                        return Err(Problem::conflict(
                            "relationship_change",
                            format!(
                                "relationship `{}` links to `{}`; its target and cardinality cannot change",
                                r.name, existing.klass
                            ),
                        )
                        .at(at)
                        .into());
                    }
                    if r.display_name.is_some() {
                        existing.display_name = r.display_name;
                    }
                }
                None => {
                    if fresh_rels.iter().any(|x: &RelationshipDef| x.name == r.name) {
                        err(
                            "/name",
                            "duplicate_relationship",
                            format!("relationship `{}` is declared twice", r.name),
                        );
                        continue;
                    }
                    fresh_rels.push(r)
                }
            }
        }
        if !errors.is_empty() {
            return Err(ServiceError::Rejected(
                errors
                    .into_iter()
                    .map(|e| Problem::new(ErrorKind::Unprocessable, e.code, e.title).at(e.pointer))
                    .collect(),
            ));
        }
        let _ = creating;
        let n = (fresh.len() + fresh_rels.len()) as u64;
        if n > 0 {
            let start = self.store().counter_add(rt.org.num, "attribute_key", n)?;
            let mut next = start;
            for (d, ty) in fresh {
                next += 1;
                k.attributes.push(d.into_attribute(ty, format!("c{next}"), false));
            }
            for r in fresh_rels {
                next += 1;
                k.relationships.push(Relationship {
                    name: r.name,
                    klass: r.klass,
                    cardinality: r.cardinality,
                    key: format!("r{next}"),
                    display_name: r.display_name,
                });
            }
        }
        Ok(())
    }

    /// `PATCH /v1/klasses/{name}`: display metadata, new attributes and relationships.
    pub fn update_klass(&self, caller: &Caller, name: &str, body: &Value) -> Result<Value> {
        caller.require(Action::WriteSchema)?;
        let def = parse_def(body)?;
        let rt = self.runtime(&caller.org)?;
        let _g = rt.admin_write.lock().expect("admin lock");
        let mut k = rt
            .schema()
            .klass(name)
            .cloned()
            .ok_or_else(|| Problem::not_found("klass", name))?;
        if let Some(n) = &def.name {
            if n != name {
                return Err(Problem::invalid("immutable_field", "`name` cannot change")
                    .at("/name")
                    .into());
            }
        }
        if def.display_name.is_some() {
            k.display_name = def.display_name.clone();
        }
        if def.icon.is_some() {
            k.icon = def.icon.clone();
        }
        if def.color.is_some() {
            k.color = def.color.clone();
        }
        self.add_definitions(&rt, &mut k, def.attributes, def.relationships, false)?;
        k.updated_at = self.now();
        self.store().apply(
            rt.org.num,
            vec![Op::put(Collection::Klass, k.name.clone(), &k, Expect::Present)],
        )?;
        self.reload_schema(&rt)?;
        Ok(k.to_json())
    }

    /// Creates a custom klass, or adds to an existing one (bulk `upsert` of a klass definition).
    pub fn upsert_klass(&self, caller: &Caller, body: &Value) -> Result<(bool, Value)> {
        caller.require(Action::WriteSchema)?;
        let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let exists = self.runtime(&caller.org)?.schema().klass(&name).is_some();
        if exists {
            Ok((false, self.update_klass(caller, &name, body)?))
        } else {
            // Upserts load exports: an org made before names were compared regardless of case
            // (`Order` beside `order`) still loads.
            Ok((true, self.create_klass_named(caller, body, Names::Exact)?))
        }
    }

    /// `DELETE /v1/klasses/{name}/attributes/{attr}`: a custom attribute; its values are no longer
    /// accepted, searchable or returned.
    pub fn delete_attribute(&self, caller: &Caller, name: &str, attr: &str) -> Result<()> {
        caller.require(Action::WriteSchema)?;
        let rt = self.runtime(&caller.org)?;
        let _g = rt.admin_write.lock().expect("admin lock");
        let mut k = rt
            .schema()
            .klass(name)
            .cloned()
            .ok_or_else(|| Problem::not_found("klass", name))?;
        match k.attributes.iter().position(|a| a.name == attr && !a.standard) {
            Some(i) => {
                k.attributes.remove(i);
            }
            None if k.standard_attribute(attr).is_some() => {
                return Err(Problem::conflict(
                    "standard_attribute",
                    format!("`{attr}` is a standard attribute and cannot be removed"),
                )
                .into())
            }
            None => return Err(Problem::not_found("attribute", attr).into()),
        }
        k.updated_at = self.now();
        self.store().apply(
            rt.org.num,
            vec![Op::put(Collection::Klass, k.name.clone(), &k, Expect::Present)],
        )?;
        self.reload_schema(&rt)?;
        tracing::info!(org = %rt.org.id, klass = name, attribute = attr, "attribute removed");
        Ok(())
    }

    /// `DELETE /v1/klasses/{name}`: custom klasses only; 409 while objects of it exist or other
    /// klasses reference it.
    pub fn delete_klass(&self, caller: &Caller, name: &str) -> Result<()> {
        caller.require(Action::WriteSchema)?;
        let rt = self.runtime(&caller.org)?;
        let _g = rt.admin_write.lock().expect("admin lock");
        let schema = rt.schema();
        let k = schema.klass(name).ok_or_else(|| Problem::not_found("klass", name))?;
        if k.standard {
            return Err(Problem::conflict(
                "standard_klass",
                format!("`{name}` is a standard klass and cannot be deleted"),
            )
            .into());
        }
        let n = self.store().klass_count(rt.org.num, name)?;
        if n > 0 {
            return Err(Problem::conflict(
                "klass_in_use",
                format!("klass `{name}` still has {n} objects; delete them first"),
            )
            .into());
        }
        for other in schema.klasses.values().filter(|o| o.name != name) {
            let referenced = other.attributes.iter().any(|a| a.target.as_deref() == Some(name))
                || other.relationships.iter().any(|r| r.klass == name);
            if referenced {
                return Err(
                    Problem::conflict("klass_in_use", format!("klass `{}` references `{name}`", other.name)).into(),
                );
            }
        }
        self.store()
            .apply(rt.org.num, vec![Op::delete(Collection::Klass, name)])?;
        self.reload_schema(&rt)?;
        Ok(())
    }

    /// Declares custom attributes named with a Kustomer type suffix on first write.
    pub(crate) fn declare_suffix_attributes(&self, rt: &OrgRuntime, klass: &str, names: &[String]) -> Result<()> {
        let _g = rt.admin_write.lock().expect("admin lock");
        let current = rt
            .schema()
            .klass(klass)
            .cloned()
            .ok_or_else(|| Problem::not_found("klass", klass))?;
        let Some(mut k) = self.with_suffix_attributes(rt, &current, names)? else {
            return Ok(());
        };
        k.updated_at = self.now();
        self.store().apply(
            rt.org.num,
            vec![Op::put(Collection::Klass, k.name.clone(), &k, Expect::Present)],
        )?;
        self.reload_schema(rt)?;
        Ok(())
    }

    /// `k` as it is once the undeclared `names` with a type suffix are declared (nothing is
    /// stored); `None` when there are none.
    pub(crate) fn with_suffix_attributes(&self, rt: &OrgRuntime, k: &Klass, names: &[String]) -> Result<Option<Klass>> {
        let missing: Vec<AttributeDef> = names
            .iter()
            .filter(|n| k.custom_attribute(n).is_none())
            .filter_map(|n| {
                let ty = AttrType::from_suffix(n)?;
                Some(AttributeDef {
                    name: n.clone(),
                    ty: ty.name().into(),
                    list: false,
                    display_name: None,
                    values: None,
                    klass: None,
                    required: false,
                    default: None,
                    min: None,
                    max: None,
                    directory: None,
                })
            })
            .collect();
        if missing.is_empty() {
            return Ok(None);
        }
        let mut k = k.clone();
        self.add_definitions(rt, &mut k, missing, Vec::new(), false)?;
        Ok(Some(k))
    }
}

/// The custom attributes of a klass by name.
pub fn custom_attribute<'a>(k: &'a Klass, name: &str) -> Option<&'a Attribute> {
    k.custom_attribute(name)
}

/// How a new klass name is checked against reserved and existing names.
#[derive(Debug, Clone, Copy)]
enum Names {
    /// Regardless of case (`POST /v1/klasses`, bulk `create`).
    Strict,
    /// Exactly (upserts, which load exports of orgs made before the strict rule).
    Exact,
}
