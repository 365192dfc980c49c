//! Listing an engine's images, volumes, networks and component versions, for the resync and for
//! refreshes.
//!
//! Owns which of those lists one call fetches and what a failed one means: these families are
//! extras next to the containers, so a list that fails is logged and leaves that family as it was
//! (the next event of its kind, or the next session, lists it again); it never ends a session or
//! delays readiness. Never decides when to list (`refresh` paces it) and never moves the
//! inventory other than through its `replace_*` transitions.

use crate::inventory::{Components, Inventory};
use crate::podman::wire::{Info, ListImage, ListNetwork, ListVolume};
use crate::podman::{Client, ClientError};

/// Which object families one call lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectKinds {
    pub images: bool,
    pub volumes: bool,
    pub networks: bool,
}

impl ObjectKinds {
    pub const ALL: ObjectKinds = ObjectKinds {
        images: true,
        volumes: true,
        networks: true,
    };
}

/// What the lists answered; `None` for a list that was not asked for.
#[derive(Debug, Default)]
pub struct ObjectLists {
    images: Option<Result<Vec<ListImage>, ClientError>>,
    volumes: Option<Result<Vec<ListVolume>, ClientError>>,
    networks: Option<Result<Vec<ListNetwork>, ClientError>>,
    info: Option<Result<Info, ClientError>>,
}

/// Lists the `kinds` asked for, concurrently, and `GET /libpod/info` too when `with_info` (once
/// per connection: component versions change only with a new Podman).
pub async fn list(client: &Client, kinds: ObjectKinds, with_info: bool) -> ObjectLists {
    async fn when<T>(
        asked: bool,
        f: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Option<Result<T, ClientError>> {
        if asked {
            Some(f.await)
        } else {
            None
        }
    }
    let (images, volumes, networks, info) = tokio::join!(
        when(kinds.images, client.images()),
        when(kinds.volumes, client.volumes()),
        when(kinds.networks, client.networks()),
        when(with_info, client.info()),
    );
    ObjectLists {
        images,
        volumes,
        networks,
        info,
    }
}

/// Puts what was listed into the inventory; a failed list is logged at `level` and changes
/// nothing.
pub fn apply(inventory: &mut Inventory, lists: ObjectLists, engine: &str, warn: bool) {
    let failed = |what: &str, e: ClientError| {
        if warn {
            tracing::warn!(%engine, "cannot list {what}, its families keep their last state: {e}");
        } else {
            tracing::debug!(%engine, "refresh of {what} failed: {e}");
        }
    };
    match lists.images {
        Some(Ok(l)) => inventory.replace_images(l),
        Some(Err(e)) => failed("images", e),
        None => {}
    }
    match lists.volumes {
        Some(Ok(l)) => inventory.replace_volumes(l),
        Some(Err(e)) => failed("volumes", e),
        None => {}
    }
    match lists.networks {
        Some(Ok(l)) => inventory.replace_networks(l),
        Some(Err(e)) => failed("networks", e),
        None => {}
    }
    match lists.info {
        Some(Ok(info)) => inventory.set_components(Components::from_info(&info)),
        Some(Err(e)) => failed("the engine's info", e),
        None => {}
    }
}
