//! The text of the event counters and lifecycle histograms (`events`, `lifecycle`), kept between
//! scrapes while no engine counted anything new.
//!
//! Owns the decision to reuse it. That text depends only on each engine's name, counts,
//! histograms and pod names; a snapshot holds those in persistent structures that a change
//! copies, so pointer comparisons with the ones last rendered (held here, which keeps every
//! later change a copy) tell whether they are the very same. On a host where nothing happened
//! between two scrapes (most scrapes of most hosts), the families with the most series after a
//! long run are then neither aggregated nor written nor compressed again. Never renders anything
//! itself and never changes the text: a kept segment is byte for byte what a fresh render
//! writes.

use std::sync::{Arc, Mutex};

use super::body::{Body, Segment};
use super::exposition::Exposition;
use crate::inventory::CountsHeld;
use crate::snapshot::EngineView;

/// The text of the last scrape only, in its format: Prometheus asks for one format, and at
/// 10,000 containers after a long run the text is megabytes (a scraper asking for the other
/// format has it written anew, as before this cache).
#[derive(Debug, Default)]
pub struct Cache {
    kept: Mutex<Option<Kept>>,
}

impl Cache {
    /// Lets go of the kept text (`--metrics.scrape-cache off`).
    pub fn clear(&self) {
        *self.kept.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[derive(Debug)]
struct Kept {
    openmetrics: bool,
    /// Each engine's name and what its text was written from, in the order of the views.
    engines: Vec<(Arc<str>, CountsHeld)>,
    segment: Arc<Segment>,
}

impl Kept {
    fn holds(&self, openmetrics: bool, views: &[EngineView]) -> bool {
        self.openmetrics == openmetrics
            && self.engines.len() == views.len()
            && self
                .engines
                .iter()
                .zip(views)
                .all(|((name, held), v)| **name == *v.name && v.inventory.same_counts(held))
    }
}

/// Writes the event counter and lifecycle families of `views` into `body`, as kept when nothing
/// they are written from changed since the last scrape, which asked for the same format.
pub fn write(body: &mut Body, openmetrics: bool, cache: &Cache, views: &[EngineView]) {
    let mut slot = cache.kept.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(k) = slot.as_ref().filter(|k| k.holds(openmetrics, views)) {
        body.keep(&k.segment);
        return;
    }
    let mut text = String::with_capacity(slot.as_ref().map_or(0, |k| k.segment.text().len()));
    super::events::write(&mut Exposition::new(&mut text, openmetrics), views);
    super::lifecycle::write(&mut Exposition::new(&mut text, openmetrics), views);
    let segment = Arc::new(Segment::new(text));
    body.keep(&segment);
    *slot = Some(Kept {
        openmetrics,
        engines: views
            .iter()
            .map(|v| (v.name.clone(), v.inventory.counts_held()))
            .collect(),
        segment,
    });
}
