"""One exception hierarchy for edgeanomaly.

Every error a user can cause derives from :class:`EdgeAnomalyError`, so a line
integrator can catch one type. Specific errors also derive from the matching
builtin (``ValueError``, ``FileNotFoundError``, ``ImportError``...) so that
ordinary Python code that catches those keeps working.

Messages follow one pattern: what was expected, what came, and what to do.
"""

from __future__ import annotations

__all__ = [
    "EdgeAnomalyError",
    "ImageReadError",
    "DatasetError",
    "BundleError",
    "BundleIntegrityError",
    "GraphMismatchError",
    "SignatureError",
    "UnsignedBundleError",
    "UntrustedKeyError",
    "BadSignatureError",
    "BackendUnavailableError",
    "DeviceUnavailableError",
    "InferenceError",
    "NotFittedError",
    "ConfigError",
    "UnknownSettingError",
    "MissingDependencyError",
    "ExportError",
    "ParityError",
    "OutOfSpaceError",
    "UndertrainedWarning",
]


class EdgeAnomalyError(Exception):
    """Base class of every error raised on purpose by edgeanomaly."""


class ImageReadError(EdgeAnomalyError, ValueError):
    """An image or mask file is missing, empty, truncated or not an image."""


class DatasetError(EdgeAnomalyError, ValueError):
    """A dataset folder does not have the expected layout or content."""


class BundleError(EdgeAnomalyError, ValueError):
    """A bundle is missing, malformed, of an unsupported version or inconsistent."""


class BundleIntegrityError(BundleError):
    """An artifact of a bundle does not match the checksum or size in its manifest."""


class GraphMismatchError(BundleError):
    """A graph file's own ``model_info`` (ONNX ``metadata_props``, OpenVINO ``rt_info``) disagrees
    with the bundle's manifest: the graph belongs to another model or another export."""


class SignatureError(BundleError):
    """A bundle is refused under a trust setting (see :class:`UnsignedBundleError`,
    :class:`UntrustedKeyError`, :class:`BadSignatureError`)."""


class UnsignedBundleError(SignatureError):
    """Trusted keys are set and the bundle carries no signature."""


class UntrustedKeyError(SignatureError):
    """The bundle is signed by a key that is not among the trusted keys."""


class BadSignatureError(SignatureError):
    """The signature does not verify with the trusted key it names, is malformed, or covers
    another manifest than the bundle's (the manifest or a file changed after signing)."""


class BackendUnavailableError(EdgeAnomalyError, RuntimeError):
    """An inference backend (OpenVINO, ONNX Runtime) is not installed or cannot run the artifact."""


class DeviceUnavailableError(EdgeAnomalyError, RuntimeError):
    """The requested device is not present; the message lists the devices that are."""


class InferenceError(EdgeAnomalyError, RuntimeError):
    """The inference engine failed to run a request (the message says which input and why)."""


class NotFittedError(EdgeAnomalyError, ValueError, AttributeError):
    """An estimator was used before ``fit()``."""


class ConfigError(EdgeAnomalyError, ValueError):
    """An option or setting has an invalid value (unknown name, wrong range, bad combination)."""


class UnknownSettingError(ConfigError, TypeError):
    """A model was given a setting it does not take (the message names the close ones). Also a
    ``TypeError``, as Python's own error for an unexpected keyword argument."""


class MissingDependencyError(EdgeAnomalyError, ImportError):
    """An optional package is needed; the message names the extra that installs it."""


class ExportError(EdgeAnomalyError, RuntimeError):
    """Exporting a model to a graph format failed."""


class ParityError(ExportError):
    """An exported FP32 artifact disagrees with the torch model beyond tolerance."""


class OutOfSpaceError(EdgeAnomalyError, OSError):
    """Not enough free disk space for an output (the message names where, how much is needed and free)."""


class UndertrainedWarning(UserWarning):
    """A trained model's time limit (``max_minutes``) ended a stage of its training before half
    of its epochs: the model may be undertrained (scikit-learn's ``ConvergenceWarning`` for
    the models trained for epochs). ``fit`` on the command line says it after the stage's
    first epoch instead."""
