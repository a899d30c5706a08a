"""The device's data folder (seed 000 `data_path`: "绑定成功后 data_path 路径下会产生大小不为0的密钥文件").

The secret file is replaced atomically: the new content goes to a temporary file in the same folder,
is flushed to disk (fsync), and is renamed over the old one (rename is atomic on POSIX), then the folder
itself is flushed so the rename survives a power cut. A process killed at any moment leaves the old file
or the new one, never a mix; a leftover temporary file is ignored and replaced by the next write.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

SECRET_FILE = "device_secret.json"


@dataclass(frozen=True)
class DeviceSecret:
    sn: str
    biz_name: str
    secret: str


class UnreadableSecret(Exception):
    """The secret file exists but does not hold a secret (never written by this module)."""


class DataFolder:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)

    @property
    def secret_path(self) -> Path:
        return self.path / SECRET_FILE

    def read_secret(self) -> DeviceSecret | None:
        """The stored secret; None when the device never registered (or the folder was cleared)."""
        try:
            raw = self.secret_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            stored = json.loads(raw)
            return DeviceSecret(sn=stored["sn"], biz_name=stored["biz_name"], secret=stored["secret"])
        except (ValueError, KeyError, TypeError) as error:
            raise UnreadableSecret(f"{self.secret_path} does not hold a device secret") from error

    def write_secret(self, secret: DeviceSecret) -> None:
        content = json.dumps({"sn": secret.sn, "biz_name": secret.biz_name, "secret": secret.secret}).encode()
        temporary = self.path / f".{SECRET_FILE}.{os.getpid()}.tmp"
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.secret_path)
        folder = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def clear(self) -> None:
        """Forgets the registration (the seed's factory reset: delete the data folder's files)."""
        self.secret_path.unlink(missing_ok=True)
