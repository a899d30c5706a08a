"""The licence service's rules over one `LicenceStore`, by what they model: call apps and their keys and
signatures (apps.py), device licences, activation and registration (devices.py), and users'
authorisations with the check before a device call (authorisations.py). No transport and no SQL here: the
gRPC servicer and the event handlers translate to and from their records, and the store (store.py) keeps
them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from services.licence import keys
from services.licence.apps import Apps
from services.licence.authorisations import Authorisations
from services.licence.devices import Devices
from services.licence.store import LicenceStore


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Licensing:
    def __init__(
        self,
        store: LicenceStore,
        master_key: keys.MasterKey,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.apps = Apps(store, master_key, clock)
        self.devices = Devices(store, clock)
        self.authorisations = Authorisations(store, clock)
