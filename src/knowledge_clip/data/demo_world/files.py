# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""Writing the world's JSON documents and binary files, creating their folders as needed."""

import json
from pathlib import Path


def write_json(path: Path, payload, ensure_ascii: bool = True) -> None:
    """Writes one UTF-8 JSON document, spaced like `json.dumps` defaults (as the published files are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=ensure_ascii), encoding="utf-8")


def write_bytes(path: Path, data: bytes) -> None:
    """Writes `data` (an image file) to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
