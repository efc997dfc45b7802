//! The schema of one org: its klasses, and how they relate for joins.

use std::collections::BTreeMap;

use super::klass::{AttrType, Klass};

/// Which side of a relation holds the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The related objects hold the nums of the context object (customer <- order by `customer`).
    Child,
    /// The context object holds the nums of the related objects (order -> customer, relationships).
    Parent,
}

/// How objects of a context klass reach objects of a related klass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// The related klass.
    pub related: String,
    /// The attribute or relationship key that holds the link.
    pub key: String,
    /// Who holds it.
    pub side: Side,
}

/// Every klass of an org.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrgSchema {
    /// Klasses by name.
    pub klasses: BTreeMap<String, Klass>,
}

impl OrgSchema {
    /// A klass by name.
    pub fn klass(&self, name: &str) -> Option<&Klass> {
        self.klasses.get(name)
    }

    /// The relation followed by a path that starts with a reference attribute or relationship of
    /// `context` (`customer.custom.tierStr` on conversations): the context holds the link.
    /// `segment` is a standard reference attribute or a relationship name.
    pub fn upward(&self, context: &Klass, segment: &str) -> Option<Relation> {
        if let Some(a) = context
            .standard_attribute(segment)
            .filter(|a| a.ty == AttrType::Reference)
        {
            return Some(Relation {
                related: a.target.clone()?,
                key: a.key.clone(),
                side: Side::Parent,
            });
        }
        context.relationship(segment).map(|r| Relation {
            related: r.klass.clone(),
            key: r.key.clone(),
            side: Side::Parent,
        })
    }

    /// The relation followed by a custom reference attribute (`custom.accountRef.name`).
    pub fn upward_custom(&self, context: &Klass, attr: &str) -> Option<Relation> {
        let a = context.custom_attribute(attr).filter(|a| a.ty == AttrType::Reference)?;
        Some(Relation {
            related: a.target.clone()?,
            key: a.key.clone(),
            side: Side::Parent,
        })
    }

    /// How `context` reaches objects of `related` for `has` and klass-prefixed paths, the first
    /// kind of link that exists: relationships the context declares to it; then the related
    /// klass's standard references to the context (`customer`, `company`, `conversation`); then
    /// relationships the related klass declares to the context; then its custom references to the
    /// context. Every link of that kind counts: an order with a `shipment` and a `parcels`
    /// relationship to shipments reaches them through both.
    pub fn relations(&self, context: &str, related: &str) -> Vec<Relation> {
        let (Some(ctx), Some(rel)) = (self.klass(context), self.klass(related)) else {
            return Vec::new();
        };
        // The relationships `k` declares to `target`, from `side`.
        let declared = |k: &Klass, target: &str, side: Side| -> Vec<Relation> {
            k.relationships
                .iter()
                .filter(|r| r.klass == target)
                .map(|r| Relation {
                    related: related.into(),
                    key: r.key.clone(),
                    side,
                })
                .collect()
        };
        // The related klass's references to the context, standard or custom.
        let refs_to_ctx = |standard: bool| -> Vec<Relation> {
            rel.attributes
                .iter()
                .filter(|a| {
                    a.standard == standard && a.ty == AttrType::Reference && a.target.as_deref() == Some(context)
                })
                .map(|a| Relation {
                    related: related.into(),
                    key: a.key.clone(),
                    side: Side::Child,
                })
                .collect()
        };
        let ours = declared(ctx, related, Side::Parent);
        if !ours.is_empty() {
            return ours;
        }
        let standard = refs_to_ctx(true);
        if !standard.is_empty() {
            return standard;
        }
        let theirs = declared(rel, context, Side::Child);
        if !theirs.is_empty() {
            return theirs;
        }
        refs_to_ctx(false)
    }
}
