"""program.json's self-digest: a SHA-256 over the canonical JSON of every meaning-carrying field.

The per-file hashes in program.json cover the `.bin`/`.fsa` files, the trace and the layout, but
not program.json's own fields (the target's links, the layers' shards, steps, tokens...), which
`simulate` reads as much as the binaries. `manifest_sha256` covers everything else in the
document, the file hashes included, so it stands for the whole program directory. It is an
integrity check against edits and corruption, not a signature: whoever can write the directory
can recompute it, and `fsedpc asm` does, after checking the old one (so `asm` cannot launder a
hand-edited program.json). `edited` is covered like any other field: only `asm` sets it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

DIGEST_FIELD = "manifest_sha256"
"""The key of program.json's self-digest."""


def canonical_json(obj: Any) -> bytes:
    """`obj` as canonical JSON: sorted keys, no whitespace, UTF-8, no NaN (stable across writers)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def manifest_digest(doc: dict[str, Any]) -> str:
    """The SHA-256 (hex) of `doc`'s canonical JSON without its own digest field."""
    return hashlib.sha256(canonical_json({k: v for k, v in doc.items() if k != DIGEST_FIELD})).hexdigest()


def with_digest(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` (as JSON would read it back: tuples as lists) with its digest field set."""
    plain = json.loads(json.dumps(doc))
    plain[DIGEST_FIELD] = manifest_digest(plain)
    return plain
