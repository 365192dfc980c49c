//! The families derived from walking the containers: the aggregates (`podman_containers`,
//! `podman_pod_containers`, `podman_label_containers`, `podman_pods`), `podman_pod_state` and the
//! per-container families (`podman_container_info`, `_state`, `_labels`, `_started_time_seconds`,
//! `_exit_code`, `_health`, `_restarts_total`), then the per-container resource families of the
//! containers the engine's sample has (written by `resources`, with the same label text).
//!
//! Owns the text of those families and its reuse between scrapes, and the `label_<key>` naming of
//! allowlisted labels. These families are nine tenths of a large scrape, and between two scrapes
//! most containers do not change, so their text is kept (`Cache`):
//! - Each engine's containers are cut into pieces of about 64 containers, the cuts placed by a
//!   hash of the container ID, so that a container coming or going moves no other cut. A piece
//!   holds its containers' records and their lines of the seven per-container families, as one
//!   segment per family, which the scrape body hands out (and compresses) as it is held.
//! - A scrape whose snapshot holds the very records of the last one (a pointer comparison)
//!   reuses every piece and the aggregate text without looking at a container. Otherwise each
//!   piece whose records are all the same records, in the same order, is reused; other pieces
//!   are rebuilt, copying the lines of unchanged records and rendering the rest.
//! - Records are immutable and a changed container is a new record, so a record that is the same
//!   allocation as one the cache holds (and keeps alive) has the same text. The other inputs are
//!   the engine's name and its admitted label keys (when those change, everything is rendered
//!   anew) and the pods' names (a pod whose name changed has its containers rendered anew).
//! - The aggregate gauges are counted incrementally from the records that came and went.
//!
//! Series still exist only while their container exists: the kept text is a rendering of the
//! current snapshot's records, never a store of its own. Counters, resource samples and the
//! exporter's own families are written fresh on every scrape, elsewhere.

use std::sync::{Arc, Mutex};

use super::body::{Body, Segment};
use super::exposition::{self, push_escaped, push_int, push_seconds, push_value, Exposition, Kind};
use super::{sorted, tally, FxMap};
use crate::inventory::{Container, Inventory, LabelPolicy, PodState, SharedStr, PROJECT_LABELS};
use crate::resources::{Sample, Usage};
use crate::snapshot::EngineView;

/// The per-container families, in output order: (name, help, counter).
const FAMILIES: [(&str, &str, bool); 7] = [
    (
        "podman_container_info",
        "Container metadata; always 1.",
        false,
    ),
    (
        "podman_container_state",
        "1 for the container's current state.",
        false,
    ),
    (
        "podman_container_labels",
        "Allowlisted container labels as label_<key> labels; always 1.",
        false,
    ),
    (
        "podman_container_started_time_seconds",
        "Unix time of the container's last start.",
        false,
    ),
    (
        "podman_container_exit_code",
        "Exit code of the container's last run, while it is exited.",
        false,
    ),
    (
        "podman_container_health",
        "1 for the container's current health status (containers with a healthcheck only).",
        false,
    ),
    (
        "podman_container_restarts",
        "Starts seen after a death of the same container.",
        true,
    ),
];
const INFO: usize = 0;
const INFO_OPENING: &str = "podman_container_info{";

/// The aggregate families, in output order: (name, help).
const AGGREGATES: [(&str, &str); 5] = [
    (
        "podman_containers",
        "Containers in each state (infra containers excluded).",
    ),
    (
        "podman_pod_containers",
        "Containers of each pod in each state (infra containers excluded).",
    ),
    (
        "podman_label_containers",
        "Containers per allowlisted label key and value, in each state.",
    ),
    ("podman_pods", "Pods in each state (lower case)."),
    (
        "podman_pod_state",
        "The pod's state (lower case), as podman pod ps shows it; always 1.",
    ),
];

/// A piece ends after a container whose ID hashes to this remainder modulo `PIECE`: pieces of
/// about `PIECE` containers, small enough that one change rebuilds little, large enough that
/// each family's segment compresses well on its own.
const PIECE: u64 = 64;

/// Kept records that left the cache in one scrape, from which the heap is trimmed after it.
const TRIM_AFTER_GONE: usize = 1_000;

/// The text kept between scrapes, per engine (in the order of the scrape's views).
#[derive(Debug, Default)]
pub struct Cache {
    engines: Mutex<Vec<EngineCache>>,
}

impl Cache {
    /// Lets go of every kept piece and count (`--metrics.scrape-cache off`).
    pub fn clear(&self) {
        *self.engines.lock().unwrap_or_else(|p| p.into_inner()) = Vec::new();
    }
}

/// What one engine's last scrape rendered.
#[derive(Debug)]
struct EngineCache {
    /// The snapshot's inventory last rendered (a cheap clone): compared by pointer with the next.
    inv: Option<Inventory>,
    name: Arc<str>,
    /// The admitted label keys the pieces were rendered with.
    keys: Vec<Arc<str>>,
    pieces: Vec<Arc<Piece>>,
    /// One segment per aggregate family, for `inv`.
    aggregates: Vec<Arc<Segment>>,
    /// What the aggregate families count, kept up to date with `pieces`.
    counts: Counts,
    /// One buffer per family that a piece's lines are written into, reused from piece to piece:
    /// a segment is then allocated once at its exact length and copied, rather than grown and
    /// cut to length, which left a hole beside every kept segment for other blocks to fill.
    texts: Vec<String>,
    /// `label_<key>` names, by raw key.
    names: SanitizedKeys,
    /// Per family of `FAMILIES`, the opening of a container's line up to its ID:
    /// `name{engine="…",id="` (empty until the first container is rendered).
    opens: Vec<String>,
    /// Length of the `engine="…",id="` those end with.
    open_len: usize,
}

impl Default for EngineCache {
    fn default() -> Self {
        Self {
            inv: None,
            name: Arc::from(""),
            keys: Vec::new(),
            pieces: Vec::new(),
            aggregates: Vec::new(),
            counts: Counts::default(),
            texts: Vec::new(),
            names: SanitizedKeys::default(),
            opens: Vec::new(),
            open_len: 0,
        }
    }
}

/// About `PIECE` consecutive containers of one engine and their lines of each per-container
/// family.
#[derive(Debug)]
struct Piece {
    entries: Vec<Entry>,
    /// One per family of `FAMILIES`.
    segments: Vec<Arc<Segment>>,
}

#[derive(Debug)]
struct Entry {
    record: Arc<Container>,
    /// Where this container's lines end in each family's segment (they start where the previous
    /// entry's end).
    ends: [u32; FAMILIES.len()],
    /// Length of `engine="…",id="…",name="…"[,pod="…"]`, which follows `INFO_OPENING` in its
    /// info line: the label text of its resource series.
    head_len: u32,
    /// `ends_piece` of its ID, kept so that a walk over unchanged records never reads them.
    ends_piece: bool,
}

impl Entry {
    fn start(piece: &Piece, i: usize, family: usize) -> usize {
        i.checked_sub(1)
            .map_or(0, |p| piece.entries[p].ends[family] as usize)
    }
}

/// Writes every container-derived family of one scrape into `body`, reusing the text of
/// containers that did not change since the last; `samples` are the engines' resource samples,
/// in the order of `views`.
pub fn write(
    body: &mut Body,
    openmetrics: bool,
    cache: &Cache,
    views: &[EngineView],
    samples: &[Option<Arc<Sample>>],
) {
    let mut engines = cache.engines.lock().unwrap_or_else(|p| p.into_inner());
    engines.resize_with(views.len(), EngineCache::default);
    for (engine, view) in engines.iter_mut().zip(views) {
        engine.update(view);
    }
    let engines: &[EngineCache] = &engines;

    for (f, (name, help)) in AGGREGATES.iter().enumerate() {
        if engines.iter().all(|e| e.aggregates[f].text().is_empty()) {
            continue;
        }
        exposition::descriptor(body.text_mut(), openmetrics, name, help, Kind::Gauge);
        for e in engines {
            body.keep(&e.aggregates[f]);
        }
    }
    for (f, (name, help, counter)) in FAMILIES.iter().enumerate() {
        let segments = || {
            engines
                .iter()
                .flat_map(|e| &e.pieces)
                .map(|p| &p.segments[f])
        };
        if segments().all(|s| s.text().is_empty()) {
            continue;
        }
        let kind = if *counter { Kind::Counter } else { Kind::Gauge };
        exposition::descriptor(body.text_mut(), openmetrics, name, help, kind);
        for s in segments() {
            body.keep(s);
        }
    }

    let mut usages: Vec<(&str, &Usage)> = Vec::new();
    for (engine, sample) in engines.iter().zip(samples) {
        let Some(sample) = sample.as_deref().filter(|s| !s.containers.is_empty()) else {
            continue;
        };
        for piece in &engine.pieces {
            for (i, entry) in piece.entries.iter().enumerate() {
                let c = &entry.record;
                if !super::resources::shows_usage(&c.state) {
                    continue;
                }
                if let Some(u) = sample.containers.get(c.id.as_str()) {
                    let start = Entry::start(piece, i, INFO) + INFO_OPENING.len();
                    let text = piece.segments[INFO].text();
                    let head = text.get(start..start + entry.head_len as usize);
                    usages.extend(head.map(|h| (h, u)));
                }
            }
        }
    }
    super::resources::write_containers(&mut Exposition::new(body.text_mut(), openmetrics), &usages);
}

impl EngineCache {
    /// Brings the kept text up to `view`'s snapshot.
    fn update(&mut self, view: &EngineView) {
        let inv = &view.inventory;
        let keys = inv.label_policy().admitted_keys();
        if *self.name != *view.name || self.keys != keys {
            // Every line names the engine; the admitted keys decide the labels line.
            *self = Self {
                name: view.name.clone(),
                keys,
                ..Self::default()
            };
        }
        let prev = self.inv.take();
        let same_containers = prev.as_ref().is_some_and(|i| i.same_containers(inv));
        let same_names = prev.as_ref().is_some_and(|i| i.same_pod_names(inv));
        let mut turnover = 0;
        let mut labels = None;
        if !(same_containers && same_names) {
            // With nothing kept every record is rendered: the labels to fold are counted on the
            // way, while the record is at hand (a second walk of 10,000 records misses the cache
            // on every label).
            let count = self.pieces.is_empty() && !self.counts.folds_as(inv.label_policy());
            let (pieces, gone, counted) = self.rebuild_pieces(inv, prev.as_ref(), count);
            self.pieces = pieces;
            turnover = gone;
            labels = counted;
        }
        let same_aggregates =
            same_containers && prev.as_ref().is_some_and(|i| i.same_pods_and_labels(inv));
        if !same_aggregates || self.aggregates.is_empty() {
            self.aggregates = self.counts.render(inv, &self.name, labels, &self.names);
        }
        self.inv = Some(inv.clone());
        drop(prev);
        // After a resync that replaced many records (those it listed as they were it keeps), the
        // old ones and their text, freed just now, lie between live blocks, and glibc would keep
        // them resident.
        if turnover >= TRIM_AFTER_GONE {
            crate::allocator::trim();
        }
    }

    /// The pieces of `inv`'s containers: the kept ones where their records are unchanged. Keeps
    /// `counts` in step: a record not kept before is counted, a kept record now gone is not.
    /// Returns the pieces, how many kept records left them, and when `count_labels` (every
    /// record is rendered), the labels of every container.
    fn rebuild_pieces<'a>(
        &mut self,
        inv: &'a Inventory,
        prev: Option<&Inventory>,
        count_labels: bool,
    ) -> (Vec<Arc<Piece>>, usize, Option<RawLabels<'a>>) {
        let old = std::mem::take(&mut self.pieces);
        let renamed = prev.filter(|i| !i.same_pod_names(inv));
        let mut found = Finder::new(&old);
        let mut pieces = Vec::with_capacity(old.len().max(inv.container_count() / 50));
        let mut members: Vec<Member> = Vec::with_capacity(2 * PIECE as usize);
        let mut scratch = Scratch {
            raw: count_labels.then(|| {
                FxMap::with_capacity_and_hasher(inv.container_count(), Default::default())
            }),
            ..Scratch::default()
        };
        let policy = inv.label_policy();
        let containers = inv.containers();
        let mut containers = containers.peekable();
        // A cold walk reads records ahead of the render (see `touch`).
        let ahead: Vec<&Arc<Container>> = if old.is_empty() {
            inv.containers().collect()
        } else {
            Vec::new()
        };
        let mut n = 0;
        while let Some(c) = containers.next() {
            if !ahead.is_empty() {
                std::hint::black_box(touch(&ahead, n));
                n += 1;
            }
            let at = found.locate(c);
            if at.is_none() {
                self.counts.add(c, policy, 1);
            }
            // A pod's name can become known after its containers: their text names the pod.
            let at = at.filter(|_| {
                renamed.is_none_or(|old| {
                    c.pod_id
                        .as_deref()
                        .is_none_or(|p| old.pod_name(p) == inv.pod_name(p))
                })
            });
            // An unchanged record's cut is known: the walk compares addresses only and never
            // reads the record (each read is a cache miss at this size).
            let cut = match at {
                Some((p, i)) => old[p].entries[i].ends_piece,
                None => ends_piece(&c.id),
            };
            members.push((c, at));
            if cut || containers.peek().is_none() {
                pieces.push(self.piece(&old, &members, inv, &mut scratch));
                members.clear();
            }
        }
        let mut gone = 0;
        for record in found.unvisited() {
            self.counts.add(record, policy, -1);
            gone += 1;
        }
        (pieces, gone, scratch.raw)
    }

    /// The piece of `members` (each with its place in `old` if its record is unchanged): the
    /// old piece itself when they are exactly its entries.
    fn piece<'a>(
        &mut self,
        old: &[Arc<Piece>],
        members: &[Member<'a>],
        inv: &Inventory,
        scratch: &mut Scratch<'a>,
    ) -> Arc<Piece> {
        if let Some((p, 0)) = members[0].1 {
            let same = old[p].entries.len() == members.len()
                && members
                    .iter()
                    .enumerate()
                    .all(|(i, (_, at))| *at == Some((p, i)));
            if same {
                return old[p].clone();
            }
        }
        let mut texts = std::mem::take(&mut self.texts);
        texts.resize_with(FAMILIES.len(), String::new);
        texts.iter_mut().for_each(String::clear);
        let mut entries = Vec::with_capacity(members.len());
        for (c, at) in members {
            let (head_len, cut) = match at {
                Some((p, i)) => {
                    let (piece, i) = (&old[*p], *i);
                    for (f, text) in texts.iter_mut().enumerate() {
                        let start = Entry::start(piece, i, f);
                        let end = piece.entries[i].ends[f] as usize;
                        text.push_str(piece.segments[f].text().get(start..end).unwrap_or(""));
                    }
                    (piece.entries[i].head_len, piece.entries[i].ends_piece)
                }
                None => {
                    let c: &'a Arc<Container> = c;
                    (self.render(c, inv, &mut texts, scratch), ends_piece(&c.id))
                }
            };
            let mut ends = [0u32; FAMILIES.len()];
            for (end, text) in ends.iter_mut().zip(&texts) {
                *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
            }
            entries.push(Entry {
                record: Arc::clone(c),
                ends,
                head_len,
                ends_piece: cut,
            });
        }
        let piece = Arc::new(Piece {
            entries,
            segments: texts.iter().map(|t| Arc::new(Segment::copied(t))).collect(),
        });
        self.texts = texts;
        piece
    }

    /// Appends one container's line to each family it has a series in; returns the length of
    /// its `engine, id, name[, pod]` label text.
    fn render<'a>(
        &mut self,
        c: &'a Container,
        inv: &Inventory,
        texts: &mut [String],
        scratch: &mut Scratch<'a>,
    ) -> u32 {
        let Scratch {
            head,
            labels,
            used,
            raw,
        } = scratch;
        let mut raw = raw.as_mut().filter(|_| !c.infra);
        let state = Arc::as_ptr(c.state.as_arc()) as *const u8 as usize;
        if self.opens.is_empty() {
            let mut engine = String::new();
            push_value(&mut engine, "engine=\"", &self.name);
            engine.push_str(",id=\"");
            self.open_len = engine.len();
            self.opens = FAMILIES
                .iter()
                .map(|(name, _, counter)| {
                    let total = if *counter { "_total" } else { "" };
                    format!("{name}{total}{{{engine}")
                })
                .collect();
        }
        // The label text after `engine="…",id="`, which each line's opening ends with.
        head.clear();
        push_escaped(head, c.short_id());
        push_value(head, "\",name=\"", &c.name);
        let bare = head.len();
        if let Some(id) = c.pod_id.as_deref() {
            push_value(head, ",pod=\"", inv.pod_name(id));
        }

        labels.clear();
        used.clear();
        let policy = inv.label_policy();
        // Container::project, found on the way (cheaper than two more map lookups).
        let mut project = [None, None];
        for (at, (k, v)) in c.labels.iter().enumerate() {
            let (index, key) = self.names.lookup(at, k, policy);
            if let Some(raw) = raw.as_mut().filter(|_| key.counted) {
                raw.entry((index, v, state)).or_insert((&c.state, 0)).1 += 1;
            }
            if let Some(i) = key.project {
                project[i] = Some(v);
            }
            let Some(slot) = key.slot else {
                continue;
            };
            // Of keys that sanitize alike (`a.b`, `a-b`), the container keeps the first.
            if !used.contains(&slot) {
                used.push(slot);
                push_value(labels, &self.names.openings[slot], v);
            }
        }

        let opens = &self.opens;
        let head = &**head;
        let line = |out: &mut String, f: usize| {
            out.push_str(&opens[f]);
            out.push_str(head);
        };
        {
            let out = &mut texts[0];
            line(out, 0);
            push_value(out, ",image=\"", &c.image);
            if let Some(p) = project[0].or(project[1]) {
                push_value(out, ",project=\"", p);
            }
            out.push_str("} 1\n");
        }
        {
            let out = &mut texts[1];
            line(out, 1);
            push_value(out, ",state=\"", &c.state);
            out.push_str("} 1\n");
        }
        {
            let out = &mut texts[2];
            out.push_str(&opens[2]);
            out.push_str(&head[..bare]);
            out.push_str(labels);
            out.push_str("} 1\n");
        }
        if let Some(t) = c.started_at {
            let out = &mut texts[3];
            line(out, 3);
            out.push_str("} ");
            push_seconds(out, t);
            out.push('\n');
        }
        if let Some(code) = c.exit_code {
            let out = &mut texts[4];
            line(out, 4);
            out.push_str("} ");
            push_int(out, code);
            out.push('\n');
        }
        if let Some(h) = c.health.as_deref() {
            let out = &mut texts[5];
            line(out, 5);
            push_value(out, ",status=\"", h);
            out.push_str("} 1\n");
        }
        {
            let out = &mut texts[6];
            line(out, 6);
            out.push_str("} ");
            push_int(out, c.restarts);
            out.push('\n');
        }
        u32::try_from(self.open_len + head.len()).unwrap_or(u32::MAX)
    }
}

/// Reads what the renders of the next containers read, before the render of container `n`:
/// the record three ahead, the strings and the labels' block two ahead, the labels' text one
/// ahead. A cold scrape meets each record and its strings for the first time, each a cache miss,
/// and each level's address is read from the one before; touched a stage at a time, the misses
/// of one stage overlap each other and the render at hand instead of stalling it one after
/// another.
fn touch(ahead: &[&Arc<Container>], n: usize) -> u64 {
    let first = |s: &str| u64::from(s.as_bytes().first().copied().unwrap_or(0));
    let mut t = 0;
    if let Some(c) = ahead.get(n + 3) {
        t ^= u64::from(c.infra) ^ c.restarts;
    }
    if let Some(c) = ahead.get(n + 2) {
        t ^= first(&c.id) ^ first(&c.name) ^ first(&c.image) ^ c.labels.len() as u64;
        if let Some(pod) = &c.pod_id {
            t ^= first(pod);
        }
    }
    if let Some(c) = ahead.get(n + 1) {
        for (k, v) in c.labels.iter() {
            t ^= first(k) ^ first(v);
        }
    }
    t
}

/// A container of the piece being built, with its place among the old pieces if its record is
/// unchanged (and its text still right).
type Member<'a> = (&'a Arc<Container>, Option<(usize, usize)>);

/// Buffers reused across the containers rendered in one scrape.
#[derive(Default)]
struct Scratch<'a> {
    head: String,
    labels: String,
    used: Vec<usize>,
    /// The allowlisted labels of the rendered containers, when they are to be counted.
    raw: Option<RawLabels<'a>>,
}

/// (key's index in `SanitizedKeys::known`, value, state's address) -> (state, containers): the
/// labels as the records hold them, before folding.
type RawLabels<'a> = FxMap<(usize, &'a str, usize), (&'a SharedStr, i64)>;

/// Whether a piece ends after the container with this ID: the same cuts every scrape. The bytes
/// are mixed eight at a time and finished with splitmix64's finalizer, so the cut is independent
/// of the inventory map's own FxHash, whose bits decide the order the walk meets the containers
/// in (cuts by those bits would all fall at the end of the walk).
fn ends_piece(id: &str) -> bool {
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    for chunk in id.as_bytes().chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    h % PIECE == PIECE - 1
}

/// Finds a record among the old pieces by address: a record held there is alive, so an equal
/// address is the same, unchanged record. The walk mostly meets records in the old order, so
/// the next old entry is tried first and the index of every address is built only on a miss.
struct Finder<'a> {
    old: &'a [Arc<Piece>],
    next: (usize, usize),
    index: Option<FxMap<usize, (usize, usize)>>,
    /// Per old piece, which of its entries were found.
    visited: Vec<Vec<bool>>,
}

impl<'a> Finder<'a> {
    fn new(old: &'a [Arc<Piece>]) -> Self {
        Self {
            old,
            next: (0, 0),
            index: None,
            visited: old.iter().map(|p| vec![false; p.entries.len()]).collect(),
        }
    }

    /// The old records that were not found: gone or changed.
    fn unvisited(&self) -> impl Iterator<Item = &'a Container> + '_ {
        let old = self.old;
        self.visited.iter().enumerate().flat_map(move |(p, seen)| {
            seen.iter()
                .zip(&old[p].entries)
                .filter(|(seen, _)| !**seen)
                .map(|(_, e)| &*e.record)
        })
    }

    fn at(&self, (p, i): (usize, usize)) -> Option<&Arc<Container>> {
        self.old.get(p)?.entries.get(i).map(|e| &e.record)
    }

    fn locate(&mut self, c: &Arc<Container>) -> Option<(usize, usize)> {
        let here = if self.at(self.next).is_some_and(|r| Arc::ptr_eq(r, c)) {
            self.next
        } else {
            let old = self.old;
            let index = self.index.get_or_insert_with(|| {
                let mut index = FxMap::default();
                for (p, piece) in old.iter().enumerate() {
                    for (i, e) in piece.entries.iter().enumerate() {
                        index.insert(Arc::as_ptr(&e.record) as usize, (p, i));
                    }
                }
                index
            });
            *index.get(&(Arc::as_ptr(c) as usize))?
        };
        let (p, i) = here;
        self.visited[p][i] = true;
        self.next = if i + 1 < self.old[p].entries.len() {
            (p, i + 1)
        } else {
            (p + 1, 0)
        };
        Some(here)
    }
}

/// What each raw label key means for a container's lines, decided once per key for the cache's
/// life (which ends when the engine's admitted keys change): its `label_<key>` slot if the labels
/// line shows it (keys that sanitize alike, `a.b` and `a-b`, share one slot), and whether it
/// names the compose project.
#[derive(Debug, Default)]
struct SanitizedKeys {
    /// Raw key -> index in `known`.
    by_raw: FxMap<String, usize>,
    known: Vec<(String, KeyUse)>,
    /// Per position in the last container's labels, its key's index in `known`: containers
    /// mostly carry the same keys, in the same (sorted) order, so that key is tried first.
    last: Vec<usize>,
    by_name: FxMap<String, usize>,
    /// `,label_<key>="` per slot.
    openings: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct KeyUse {
    /// Slot of `openings`, if `podman_container_labels` shows the key.
    slot: Option<usize>,
    /// Index in `PROJECT_LABELS`, if it is one.
    project: Option<usize>,
    /// Whether the key is allowlisted (counted in `podman_label_containers`).
    counted: bool,
}

impl SanitizedKeys {
    /// What the key at position `at` of a container's labels means; `policy` decides which keys
    /// are shown (the same answer for the cache's life).
    /// Returns its index in `known` too.
    fn lookup(&mut self, at: usize, raw: &str, policy: &LabelPolicy) -> (usize, KeyUse) {
        if let Some(&i) = self.last.get(at) {
            if self.known[i].0 == raw {
                return (i, self.known[i].1);
            }
        }
        let i = match self.by_raw.get(raw) {
            Some(&i) => i,
            None => {
                let slot = policy.shows_key(raw).then(|| self.slot(raw));
                let project = PROJECT_LABELS.iter().position(|p| *p == raw);
                let counted = policy.allowlist().allows(raw);
                let key = KeyUse {
                    slot,
                    project,
                    counted,
                };
                self.known.push((raw.to_owned(), key));
                self.by_raw.insert(raw.to_owned(), self.known.len() - 1);
                self.known.len() - 1
            }
        };
        if at < self.last.len() {
            self.last[at] = i;
        } else {
            self.last.push(i);
        }
        (i, self.known[i].1)
    }

    fn slot(&mut self, raw: &str) -> usize {
        let name = sanitize_label_key(raw);
        match self.by_name.get(&name) {
            Some(&slot) => slot,
            None => {
                self.openings.push(format!(",{name}=\""));
                self.by_name.insert(name, self.openings.len() - 1);
                self.openings.len() - 1
            }
        }
    }
}

/// `label_<key>` with every character outside `[a-zA-Z0-9_]` replaced by `_`, as
/// kube-state-metrics names Kubernetes labels.
fn sanitize_label_key(key: &str) -> String {
    let mut out = String::with_capacity(6 + key.len());
    out.push_str("label_");
    out.extend(
        key.chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' }),
    );
    out
}

/// What the aggregate families count, per engine: a container's record is added when it enters
/// the kept pieces and subtracted when it leaves them, so a scrape after a few changes counts
/// only those. Infra containers count only towards their pod's state.
#[derive(Debug, Default)]
struct Counts {
    /// Containers per state.
    by_state: States,
    /// Per pod ID.
    pods: FxMap<SharedStr, PodCounts>,
    /// Containers per allowlisted label, folded into `__other__` as `folded_with` admits them.
    /// Kept in step by `add` while the engine's admissions stay the same (a scrape after a few
    /// changes then folds only those); counted again from the snapshot, in one pass, when they
    /// changed (and on a cold scrape).
    folded: Folded,
    folded_with: Option<LabelPolicy>,
}

/// Label counts keyed by the addresses of the key and value strings the policy holds (the same
/// allocation for the same text while its admissions stay the same): no text hashed or copied.
type Folded = FxMap<(usize, usize), FoldedCount>;

#[derive(Debug)]
struct FoldedCount {
    /// Held here so that the addresses stay theirs.
    key: Arc<str>,
    value: Arc<str>,
    states: States,
}

/// Adds `delta` containers in `state` with the held label `key=value`, dropping an entry that
/// reaches 0.
fn count_folded(
    folded: &mut Folded,
    key: &Arc<str>,
    value: &Arc<str>,
    state: &SharedStr,
    delta: i64,
) {
    let at = (
        Arc::as_ptr(key) as *const u8 as usize,
        Arc::as_ptr(value) as *const u8 as usize,
    );
    let entry = folded.entry(at).or_insert_with(|| FoldedCount {
        key: key.clone(),
        value: value.clone(),
        states: States::new(),
    });
    bump(&mut entry.states, state, delta);
    if entry.states.is_empty() {
        folded.remove(&at);
    }
}

#[derive(Debug, Default)]
struct PodCounts {
    /// Every member, infra included: what the pod's state is derived from.
    members: States,
    /// Members that are not infra.
    containers: States,
}

/// Counts per state word; a handful of states, so a short list.
type States = Vec<(SharedStr, i64)>;

fn bump(states: &mut States, state: &SharedStr, delta: i64) {
    // States are mostly the shared words of `inventory::word`: the address finds them.
    let at = states
        .iter()
        .position(|(s, _)| Arc::ptr_eq(s.as_arc(), state.as_arc()))
        .or_else(|| states.iter().position(|(s, _)| s == state));
    match at {
        Some(i) => {
            states[i].1 += delta;
            if states[i].1 == 0 {
                states.swap_remove(i);
            }
        }
        None => states.push((state.clone(), delta)),
    }
}

impl Counts {
    /// Whether `folded` follows `policy`'s admissions (else it is counted again by `render`).
    fn folds_as(&self, policy: &LabelPolicy) -> bool {
        self.folded_with
            .as_ref()
            .is_some_and(|p| p.same_admissions(policy))
    }

    /// Adds (`delta` 1) or subtracts (-1) one container's record; `policy` is its engine's.
    fn add(&mut self, c: &Container, policy: &LabelPolicy, delta: i64) {
        if let Some(pod) = &c.pod_id {
            let counts = match self.pods.get_mut(pod.as_str()) {
                Some(counts) => counts,
                None => self.pods.entry(pod.clone()).or_default(),
            };
            bump(&mut counts.members, &c.state, delta);
            if !c.infra {
                bump(&mut counts.containers, &c.state, delta);
            }
            if counts.members.is_empty() {
                self.pods.remove(pod.as_str());
            }
        }
        if c.infra {
            return;
        }
        bump(&mut self.by_state, &c.state, delta);
        if !self.folds_as(policy) {
            return;
        }
        for (k, v) in c.labels.iter() {
            if let Some((k, v)) = policy.folded_held(k, v) {
                count_folded(&mut self.folded, k, v, &c.state, delta);
            }
        }
    }

    /// `folded` made to follow `inv`'s admissions: counted again when they changed, from
    /// `labels` if the render counted them (the keys named by their index in `names`), else
    /// from `inv`'s containers in one pass that groups the labels by their text as the records
    /// hold it (no copies); then each distinct key and value is folded once.
    fn fold(&mut self, inv: &Inventory, labels: Option<RawLabels>, names: &SanitizedKeys) {
        let policy = inv.label_policy();
        if self.folds_as(policy) {
            return;
        }
        self.folded.clear();
        let mut fold = |key: &str, value: &str, state: &SharedStr, n: i64| {
            if let Some((k, v)) = policy.folded_held(key, value) {
                count_folded(&mut self.folded, k, v, state, n);
            }
        };
        if let Some(labels) = labels {
            for ((k, v, _), (state, n)) in labels {
                fold(&names.known[k].0, v, state, n);
            }
            self.folded_with = Some(policy.clone());
            return;
        }
        // Per label key met: the key, and whether it is allowlisted. Records list their labels
        // in key order, and containers mostly carry the same keys, so the key at the same
        // position as in the last record is tried first.
        let mut keys: Vec<(&str, bool)> = Vec::new();
        let mut key_index: FxMap<&str, usize> = FxMap::default();
        let mut raw: RawLabels =
            FxMap::with_capacity_and_hasher(inv.container_count(), Default::default());
        for c in inv.containers() {
            if c.infra {
                continue;
            }
            let state = Arc::as_ptr(c.state.as_arc()) as *const u8 as usize;
            for (j, (k, v)) in c.labels.iter().enumerate() {
                let at = match keys.get(j) {
                    Some((key, _)) if *key == k => j,
                    _ => *key_index.entry(k).or_insert_with(|| {
                        keys.push((k, policy.allowlist().allows(k)));
                        keys.len() - 1
                    }),
                };
                if keys[at].1 {
                    raw.entry((at, v, state)).or_insert((&c.state, 0)).1 += 1;
                }
            }
        }
        for ((k, v, _), (state, n)) in raw {
            fold(keys[k].0, v, state, n);
        }
        self.folded_with = Some(policy.clone());
    }

    /// The aggregate families' lines (without descriptors), one segment per family of
    /// `AGGREGATES`: label values folded as the engine's policy now says, pods named as its
    /// inventory now names them, pod states derived from the members' counts.
    /// `labels`: every container's labels, if the pieces were all rendered just now.
    fn render(
        &mut self,
        inv: &Inventory,
        engine_name: &str,
        labels: Option<RawLabels>,
        names: &SanitizedKeys,
    ) -> Vec<Arc<Segment>> {
        self.fold(inv, labels, names);
        let by_state: FxMap<&str, i64> = self
            .by_state
            .iter()
            .map(|(s, n)| (s.as_str(), *n))
            .collect();
        // Two pod IDs can carry one name (a name reused after its pod was removed): one series.
        let mut by_pod: FxMap<(&str, &str), i64> = FxMap::default();
        for (id, counts) in &self.pods {
            let name = inv.pod_name(id);
            for (state, n) in &counts.containers {
                *by_pod.entry((name, state.as_str())).or_insert(0) += n;
            }
        }
        let mut by_label: Vec<((&str, &str, &str), i64)> = Vec::new();
        for f in self.folded.values() {
            by_label.extend(
                f.states
                    .iter()
                    .map(|(s, n)| ((&*f.key, &*f.value, s.as_str()), *n)),
            );
        }
        by_label.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        // An admitted value spelled `__other__` and the values folded into it are one series.
        by_label.dedup_by(|b, a| {
            let same = a.0 == b.0;
            if same {
                a.1 += b.1;
            }
            same
        });
        let mut pods_by_state: FxMap<&'static str, i64> = FxMap::default();
        let mut pod_states = Vec::new();
        for p in inv.pods() {
            let state = self.pods.get(p.id.as_str()).map_or(PodState::Created, |c| {
                PodState::derive(
                    c.members
                        .iter()
                        .flat_map(|(s, n)| std::iter::repeat_n(s.as_str(), *n as usize)),
                )
            });
            tally(&mut pods_by_state, state.as_str());
            pod_states.push((p.name.as_str(), state.as_str()));
        }

        let mut texts: Vec<String> = (0..AGGREGATES.len()).map(|_| String::new()).collect();
        let open = |out: &mut String, f: usize| {
            out.push_str(AGGREGATES[f].0);
            push_value(out, "{engine=\"", engine_name);
        };
        let end = |out: &mut String, n: i64| {
            out.push_str("} ");
            push_int(out, n);
            out.push('\n');
        };
        for (state, n) in sorted(by_state) {
            let out = &mut texts[0];
            open(out, 0);
            push_value(out, ",state=\"", state);
            end(out, n);
        }
        for ((pod, state), n) in sorted(by_pod) {
            let out = &mut texts[1];
            open(out, 1);
            push_value(out, ",pod=\"", pod);
            push_value(out, ",state=\"", state);
            end(out, n);
        }
        for ((key, value, state), n) in by_label {
            let out = &mut texts[2];
            open(out, 2);
            push_value(out, ",label=\"", key);
            push_value(out, ",value=\"", value);
            push_value(out, ",state=\"", state);
            end(out, n);
        }
        for (state, n) in sorted(pods_by_state) {
            let out = &mut texts[3];
            open(out, 3);
            push_value(out, ",state=\"", state);
            end(out, n);
        }
        for (pod, state) in pod_states {
            let out = &mut texts[4];
            open(out, 4);
            push_value(out, ",pod=\"", pod);
            push_value(out, ",state=\"", state);
            end(out, 1);
        }
        texts
            .into_iter()
            .map(|t| Arc::new(Segment::new(t)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cuts fall about once per `PIECE` IDs whatever the order the inventory map keeps them in:
    /// over 11,000 Podman-like IDs, iterated in the map's order, every stretch of 1,000 holds
    /// between a third and three times its share of cuts.
    #[test]
    fn cuts_are_spread_over_the_walk() {
        let mut inv = crate::inventory::Inventory::new(crate::inventory::LabelPolicy::new(
            crate::inventory::Allowlist::default(),
            10,
        ));
        for i in 0..11_000u64 {
            let id = format!("{:016x}{:048x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i);
            let ev = super::super::fixture::event(
                1_795_976_300_000_000_000 + i as i64,
                "container",
                "create",
                &id,
                serde_json::json!({"name": format!("c{i}"), "image": "i"}),
            );
            inv.apply(&ev);
        }
        let cuts: Vec<bool> = inv.containers().map(|c| ends_piece(&c.id)).collect();
        let share = 1_000 / PIECE as usize;
        for stretch in cuts.chunks(1_000) {
            let n = stretch.iter().filter(|c| **c).count();
            assert!(
                (share / 3..=share * 3).contains(&n),
                "{n} cuts in a stretch of 1,000 (expected about {share})"
            );
        }
    }
}
