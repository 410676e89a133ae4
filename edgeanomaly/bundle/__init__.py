"""The bundle format: manifest schema, atomic write, verified read, zip, migration.

A bundle is a directory (or one ``.zip``) holding ``manifest.json`` and the exported graphs,
and ``signature.json`` when it is signed (Ed25519, :func:`sign_bundle`; a device that sets
trusted keys refuses any bundle they did not sign).
This package is torch-free (NumPy, json and the standard library): a device reads bundles
with it. The specification is ``export/BUNDLE.md``.

>>> from edgeanomaly.bundle import read_bundle, describe_bundle
>>> with read_bundle("out/patchcore.zip") as bundle:      # doctest: +SKIP
...     print(describe_bundle(bundle))
"""

from __future__ import annotations

from edgeanomaly.bundle._bundle import Bundle
from edgeanomaly.bundle._calibration import Calibration, normalize, utc_now
from edgeanomaly.bundle._atomic import staging_beside, temp_dir_beside, write_bytes_atomic
from edgeanomaly.bundle._describe import describe_bundle, format_bytes
from edgeanomaly.bundle._io import (
    check_destination,
    load_manifest,
    pack_bundle,
    read_bundle,
    sign_bundle,
    update_calibration,
    verify_bundle,
    write_bundle,
)
from edgeanomaly.bundle._manifest import Artifact, ArtifactFile, Manifest, input_spec, output_specs
from edgeanomaly.bundle._graphinfo import check_graph, graph_model_info
from edgeanomaly.bundle._migrate import migrate, register_migration
from edgeanomaly.bundle._signing import (
    TRUST_ENV,
    Signature,
    SigningKey,
    TrustedKeys,
    generate_keypair,
    resolve_trust,
    verify_signature,
)
from edgeanomaly.bundle._schema import (
    CALIBRATION_METHODS,
    FORMATS,
    MANIFEST_NAME,
    MODEL_INFO_KEYS,
    PRECISIONS,
    SCHEMA_VERSION,
    SIGNATURE_NAME,
    TASKS,
)

__all__ = [
    "SCHEMA_VERSION",
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "TRUST_ENV",
    "FORMATS",
    "PRECISIONS",
    "TASKS",
    "CALIBRATION_METHODS",
    "MODEL_INFO_KEYS",
    "Manifest",
    "Calibration",
    "Artifact",
    "ArtifactFile",
    "Bundle",
    "read_bundle",
    "write_bundle",
    "check_destination",
    "pack_bundle",
    "update_calibration",
    "describe_bundle",
    "format_bytes",
    "staging_beside",
    "temp_dir_beside",
    "write_bytes_atomic",
    "verify_bundle",
    "load_manifest",
    "input_spec",
    "output_specs",
    "normalize",
    "utc_now",
    "migrate",
    "register_migration",
    "Signature",
    "SigningKey",
    "TrustedKeys",
    "generate_keypair",
    "sign_bundle",
    "resolve_trust",
    "verify_signature",
    "check_graph",
    "graph_model_info",
]
