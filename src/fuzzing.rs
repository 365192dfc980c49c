//! Entry points for the coverage-guided fuzz targets in `fuzz/` (`cargo +nightly fuzz`), also
//! run on stable by this module's tests over inputs made from the real fixtures and over every
//! input a fuzzer ever found (`fuzz/regressions/<target>/`).
//!
//! Owns driving each decoder that reads hostile bytes (Podman's event lines, its NDJSON
//! framing, its list and version answers, the web config file, `Accept` and `Accept-Encoding`)
//! the way sealwatch drives it, and the invariants checked on the way. Every function takes
//! arbitrary bytes and panics only on a bug. Not part of sealwatch's API: hidden, and nothing
//! else uses it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::inventory::{Allowlist, Inventory, LabelPolicy};
use crate::podman::ndjson::{LineSplitter, LineTooLong};
use crate::podman::wire::{self, StreamItem};
use crate::snapshot::{EngineStatus, Engines};

/// One fuzz target: arbitrary bytes in, a panic only on a bug.
pub type Target = fn(&[u8]);

/// The fuzz targets, by the name of their `fuzz/fuzz_targets/<name>.rs`.
pub const TARGETS: &[(&str, Target)] = &[
    ("event_line", event_line),
    ("ndjson", ndjson),
    ("lists", lists),
    ("web_config", web_config),
    ("negotiate", negotiate),
];

/// An inventory that lets every label through, with small caps, so hostile labels reach every
/// branch of the label policy.
fn inventory() -> Inventory {
    Inventory::new(LabelPolicy::new(Allowlist::All, 3).with_max_keys(4))
}

/// Renders `inv` in both formats, as a scrape does (hostile names and labels must escape).
fn render(inv: &Inventory) {
    let (registry, _instruments) = crate::metrics::register_instruments(&["fuzz"]);
    let (engines, publishers) =
        Engines::new(vec![("fuzz".into(), "unix:///fuzz".into(), inv.clone())]);
    for p in &publishers {
        let status = EngineStatus {
            connected: true,
            synced: true,
            ..EngineStatus::default()
        };
        p.publish(&status, inv);
    }
    let metrics = crate::metrics::Metrics::new(engines, registry);
    for openmetrics in [false, true] {
        if let Ok(text) = metrics.render(openmetrics) {
            assert!(
                !openmetrics || text.ends_with("# EOF\n"),
                "OpenMetrics ends in # EOF"
            );
        }
    }
}

/// One line of the event stream: decoded as the watcher decodes it (its one-pass decode agreeing
/// with the general one whenever it answers); an event is applied to an inventory (twice: applying is idempotent for state), swept, and rendered.
pub fn event_line(data: &[u8]) {
    // The one-pass decode answers only with what the general way (through `Value`) decodes.
    if let Some(direct) = wire::decode_event_directly(data) {
        let general = wire::decode_via_value(data).ok();
        assert_eq!(general, Some(StreamItem::Event(Box::new(direct))));
    }
    let Ok(item) = wire::decode_stream_line(data) else {
        return;
    };
    let StreamItem::Event(ev) = item else {
        return;
    };
    let _ = (ev.nanos(), ev.attr("name"));
    let mut inv = inventory();
    inv.apply(&ev);
    let once: Vec<_> = inv.containers().cloned().collect();
    inv.apply(&ev);
    let twice: Vec<_> = inv.containers().cloned().collect();
    assert_eq!(once, twice, "state is idempotent under a replayed event");
    inv.sweep(ev.nanos());
    inv.sweep(ev.nanos().saturating_add(i64::MAX / 2));
    render(&inv);
}

/// The NDJSON splitter over the input cut into chunks (the first byte sets their size): the
/// lines it yields, and its rest, are exactly the input's non-blank lines, trimmed; a small
/// bound fails only when a line is longer than it.
pub fn ndjson(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 17) + 1;
    let split = |max: usize| -> (Vec<Vec<u8>>, Result<(), LineTooLong>) {
        let mut s = LineSplitter::new(max);
        let mut lines = Vec::new();
        for c in body.chunks(chunk) {
            if let Err(e) = s.push(c, |l| lines.push(l.to_vec())) {
                return (lines, Err(e));
            }
        }
        lines.extend(s.finish());
        (lines, Ok(()))
    };
    let trim = |l: &[u8]| -> Vec<u8> {
        let s = l.iter().position(|b| !b.is_ascii_whitespace());
        let e = l.iter().rposition(|b| !b.is_ascii_whitespace());
        match (s, e) {
            (Some(s), Some(e)) => l[s..=e].to_vec(),
            _ => Vec::new(),
        }
    };
    let expected: Vec<Vec<u8>> = body
        .split(|&b| b == b'\n')
        .map(trim)
        .filter(|l| !l.is_empty())
        .collect();
    let (lines, end) = split(usize::MAX);
    assert_eq!(end, Ok(()));
    assert_eq!(lines, expected, "the lines, whatever the chunking");

    let max = 8;
    let longest = body
        .split(|&b| b == b'\n')
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    let (short, end) = split(max);
    match end {
        Ok(()) => {
            assert!(
                longest <= max,
                "a {longest}-byte line passed the {max}-byte bound"
            );
            assert_eq!(short, expected);
        }
        Err(e) => {
            assert_eq!(e, LineTooLong { max });
            assert!(longest > max, "refused lines no longer than {max} bytes");
            assert!(
                expected.starts_with(&short),
                "lines before the long one are intact"
            );
        }
    }
}

/// A list or version answer (the first byte picks which): decoded as the client decodes it, and
/// the lists merged into an inventory (resync, then refresh) and rendered.
pub fn lists(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let mut inv = inventory();
    match kind % 8 {
        0 | 1 => {
            let Ok(containers) = serde_json::from_slice::<Vec<wire::ListContainer>>(body) else {
                return;
            };
            inv.resync(containers.clone(), vec![], 0);
            inv.refresh(containers, vec![]);
        }
        2 => {
            let Ok(pods) = serde_json::from_slice::<Vec<wire::ListPod>>(body) else {
                return;
            };
            inv.resync(vec![], pods.clone(), 0);
            inv.refresh(vec![], pods);
        }
        3 => {
            if let Ok(v) = serde_json::from_slice::<wire::Version>(body) {
                let _ = v.libpod_api_version();
                inv.set_podman_version(&v.version);
            }
        }
        4 => match serde_json::from_slice::<Vec<wire::ListImage>>(body) {
            Ok(list) => inv.replace_images(list),
            Err(_) => return,
        },
        5 => match serde_json::from_slice::<Vec<wire::ListVolume>>(body) {
            Ok(list) => inv.replace_volumes(list),
            Err(_) => return,
        },
        6 => match serde_json::from_slice::<Vec<wire::ListNetwork>>(body) {
            Ok(list) => inv.replace_networks(list),
            Err(_) => return,
        },
        _ => match serde_json::from_slice::<wire::Info>(body) {
            Ok(info) => inv.set_components(crate::inventory::Components::from_info(&info)),
            Err(_) => return,
        },
    }
    inv.sweep(0);
    render(&inv);
}

/// A web config file with this text, loaded as `--web.config.file` loads it (from a file in the
/// temporary directory: the loader reads the file itself).
pub fn web_config(data: &[u8]) {
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "sealwatch-fuzz-web-config-{}-{}.yml",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed) % 4
    ));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let loaded = crate::webconfig::WebConfig::load(&path);
    let _ = std::fs::remove_file(&path);
    if let Err(e) = loaded {
        let line = e.to_string();
        assert!(!line.is_empty());
    }
}

/// `Accept` and `Accept-Encoding` values as the scrape handler reads them; `q=0` is never a yes.
pub fn negotiate(data: &[u8]) {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let gzip = crate::web::negotiate::accepts_gzip(header);
    let om = crate::web::negotiate::wants_openmetrics(header);
    let lower = header.to_ascii_lowercase();
    if lower.trim() == "gzip;q=0" {
        assert!(!gzip, "{header:?}");
    }
    if lower.trim() == "application/openmetrics-text;q=0" {
        assert!(!om, "{header:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs made from the real fixtures (each line, each whole file, each list with every
    /// selector byte) and some known-hostile ones, per target.
    fn seeds(target: &str) -> Vec<Vec<u8>> {
        let fixtures: &[&str] = &[
            include_str!("../tests/fixtures/events.ndjson"),
            include_str!("../tests/fixtures/events-replay-died.ndjson"),
            include_str!("../tests/fixtures/objects/events-4.3.1.ndjson"),
            include_str!("../tests/fixtures/5.4.2/events.ndjson"),
        ];
        let lists: &[(u8, &str)] = &[
            (0, include_str!("../tests/fixtures/containers-json.json")),
            (
                0,
                include_str!("../tests/fixtures/5.4.2/containers-json.json"),
            ),
            (2, include_str!("../tests/fixtures/pods-json.json")),
            (2, include_str!("../tests/fixtures/5.4.2/pods-json.json")),
            (3, include_str!("../tests/fixtures/version.json")),
            (3, include_str!("../tests/fixtures/5.4.2/version.json")),
            (
                4,
                include_str!("../tests/fixtures/objects/images-json.json"),
            ),
            (
                5,
                include_str!("../tests/fixtures/objects/volumes-json.json"),
            ),
            (
                6,
                include_str!("../tests/fixtures/objects/networks-json.json"),
            ),
            (7, include_str!("../tests/fixtures/info.json")),
            (7, include_str!("../tests/fixtures/5.4.2/info.json")),
        ];
        let mut out: Vec<Vec<u8>> = vec![vec![], b"\n".to_vec(), b"null".to_vec()];
        match target {
            "event_line" => {
                for f in fixtures {
                    out.extend(f.lines().map(|l| l.as_bytes().to_vec()));
                }
                out.push(br#"{"Type":"container","Action":"died","timeNano":-9223372036854775808,"Actor":{"ID":"x","Attributes":{"podId":"p","containerExitCode":"-1"}}}"#.to_vec());
                out.push(br#"{"cause":"x","message":"m\nforged","response":500}"#.to_vec());
            }
            "ndjson" => {
                for (i, f) in fixtures.iter().enumerate() {
                    let mut v = vec![u8::try_from(i).unwrap_or(0)];
                    v.extend_from_slice(f.as_bytes());
                    out.push(v);
                }
                out.push(b"\x03a\r\n\n  \r\nbbbbbbbbbbbbbbbbbbbb\nc".to_vec());
            }
            "lists" => {
                for (kind, body) in lists {
                    let mut v = vec![*kind];
                    v.extend_from_slice(body.as_bytes());
                    out.push(v);
                }
            }
            "web_config" => {
                out.push(b"basic_auth_users:\n  alice: $2y$04$hCWmWSyJ9QvWZGExpoRZUeLB1p3Nd6mBZv2aWhCH42h5tBuwa27gK\n".to_vec());
                out.push(b"tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n".to_vec());
                out.push(b"a: &a [*a]\n".to_vec());
                out.push(b"{{{{{{{{{{{{{{{{{{{{".to_vec());
            }
            "negotiate" => {
                for h in [
                    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
                    "gzip;q=0",
                    "GZIP;Q=0",
                    "*;q=0.5, gzip;q=0",
                    "gzip;q=0.000",
                    "br, gzip;q=1e-3, identity",
                    "gzip;q=NaN",
                ] {
                    out.push(h.as_bytes().to_vec());
                }
            }
            other => panic!("no seeds for {other}"),
        }
        out
    }

    /// The seeds and every input a fuzzer found (committed under fuzz/regressions/<target>/).
    fn seeds_and_findings(target: &str) -> Vec<Vec<u8>> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        let mut inputs = seeds(target);
        if let Ok(dir) = std::fs::read_dir(root.join(target)) {
            for entry in dir.flatten() {
                inputs.push(std::fs::read(entry.path()).unwrap());
            }
        }
        inputs
    }

    /// Every fuzz target runs on stable over the fixture-made seeds and over every input a
    /// fuzzer found without panicking.
    #[test]
    fn fuzz_targets_hold_on_seeds_and_past_findings() {
        for (name, target) in TARGETS {
            for input in &seeds_and_findings(name) {
                target(input);
            }
        }
    }

    /// xorshift64*: a few lines of deterministic randomness, so a finding is replayed from its
    /// seed alone.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n.max(1) as u64).unwrap()
        }
    }

    /// One to four of libFuzzer's simplest mutations of `input`: a flipped bit, a byte set to
    /// one that matters to JSON, YAML or a header, a byte inserted, a range deleted, duplicated
    /// or replaced by part of `other`, or the input cut short.
    fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
        const BYTES: &[u8] = b"\0\n\r\t \"\\{}[]:,;=*-.0123456789eE&!#|>\x7f\xc3\xff";
        let mut v = input.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(v.len() + 1);
            let len = rng.below(16) + 1;
            match rng.below(7) {
                0 if at < v.len() => v[at] ^= 1 << rng.below(8),
                1 if at < v.len() => v[at] = BYTES[rng.below(BYTES.len())],
                2 => v.insert(at, BYTES[rng.below(BYTES.len())]),
                3 => drop(v.drain(at..(at + len).min(v.len()))),
                4 => {
                    let copy = v[at..(at + len).min(v.len())].to_vec();
                    v.splice(at..at, copy);
                }
                5 if !other.is_empty() => {
                    let from = rng.below(other.len());
                    let part = &other[from..(from + len * 4).min(other.len())];
                    v.splice(at..(at + len).min(v.len()), part.iter().copied());
                }
                _ => v.truncate(at),
            }
        }
        v
    }

    /// Every fuzz target holds on thousands of random mutations of its seeds and past findings:
    /// a fuzzer's first minutes, without coverage guidance, on stable and in every test run
    /// (`scripts/fuzz.sh` is the real fuzzer). The seed is new each run and printed with a
    /// finding, which is written to the temporary directory, to be copied into
    /// fuzz/regressions/<target>/ once fixed;
    /// `SEALWATCH_MUTATION_SEED` replays a run.
    #[test]
    fn fuzz_targets_hold_on_mutated_seeds() {
        let seed = std::env::var("SEALWATCH_MUTATION_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
                now.map_or(1, |d| d.as_nanos() as u64)
            });
        // Per target, as many as run in about a quarter of a second in a debug build (an
        // `ndjson` input is a whole event file).
        let rounds = |name: &str| match name {
            "ndjson" => 250,
            "negotiate" => 20_000,
            _ => 3_000,
        };
        // xorshift stays at 0 from 0.
        let mut rng = Rng(seed | 1);
        for (name, target) in TARGETS {
            let inputs = seeds_and_findings(name);
            for _ in 0..rounds(name) {
                let input = &inputs[rng.below(inputs.len())];
                let other = &inputs[rng.below(inputs.len())];
                let mutated = mutate(&mut rng, input, other);
                let run = std::panic::catch_unwind(|| target(&mutated));
                if run.is_err() {
                    let path = std::env::temp_dir()
                        .join(format!("sealwatch-mutation-finding-{name}-{seed}"));
                    std::fs::write(&path, &mutated).unwrap();
                    panic!(
                        "{name} panicked on a mutated seed (SEALWATCH_MUTATION_SEED={seed}); \
                         the input is in {}",
                        path.display()
                    );
                }
            }
        }
    }
}
